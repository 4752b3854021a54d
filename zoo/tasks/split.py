"""The validation split rule: stratified by class, with a floor for small training sets.

The validation split is carved from the training data (never from the test split):

* each class gives the same share of its examples (regression tasks: the whole pool);
* the share is ``share`` (10% of the data for built-in tasks, ``val_fraction`` of the training
  set for registered and file tasks), raised to 20% when the training pool has fewer than
  ``SMALL_POOL`` examples;
* every class gives at least ``MIN_PER_CLASS`` examples (regression: ``MIN_REGRESSION``), and
  never more than half of its own examples, so each class keeps training data.

On a 3-class task of 142 training examples this holds 28 points (9-10 per class) instead of the
12 a plain 10% draw gave.
"""

from __future__ import annotations

import numpy as np

SMALL_POOL = 1000
SMALL_SHARE = 0.2
MIN_PER_CLASS = 5
MIN_REGRESSION = 20


def val_count(n: int, share: float, floor: int) -> int:
    """Validation examples taken from ``n`` of one class (or a regression pool)."""
    if n < 2 or share <= 0:
        return 0
    return min(max(int(round(share * n)), floor), n // 2)


def stratified_val(
    y: np.ndarray, share: float, classification: bool, small_floor: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, val rows) of a pool whose rows are already in a seeded random order.

    Per class, the first ``val_count`` rows in pool order go to validation, so the split is
    deterministic given the order. ``small_floor=False`` takes the share as given (no small-pool
    share, no per-class minimum).
    """
    n = len(y)
    if share <= 0:
        return np.arange(n), np.zeros(0, dtype=np.int64)
    if small_floor and n < SMALL_POOL:
        share = max(share, SMALL_SHARE)
    is_val = np.zeros(n, dtype=bool)
    if classification:
        labels = np.asarray(y).reshape(n)
        floor = MIN_PER_CLASS if small_floor else 0
        for c in np.unique(labels):
            rows = np.flatnonzero(labels == c)
            is_val[rows[: val_count(len(rows), share, floor)]] = True
    else:
        is_val[: val_count(n, share, MIN_REGRESSION if small_floor else 0)] = True
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)
