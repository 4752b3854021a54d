"""Per-group assignment solvers used by coordinate descent (see :mod:`canonicalize.descent`).

A solver turns a group's similarity matrix ``cost[i, j]`` (unit i of model A vs unit j of model
B) into the permutation ``perm`` maximising ``sum_i cost[i, perm[i]]`` over the permutations it
allows. Unconstrained groups (hidden units, channels, the residual stream) allow any; attention
groups allow only block permutations with a fixed head order, so dims never cross heads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from scipy.optimize import linear_sum_assignment


class GroupSolver(ABC):
    """Chooses one group's permutation from its (size, size) similarity matrix."""

    @abstractmethod
    def initial(self, size: int) -> np.ndarray:
        """A feasible starting permutation (size,)."""

    @abstractmethod
    def solve(self, cost: np.ndarray, current: np.ndarray | None = None) -> np.ndarray:
        """(size, size) similarities -> (size,) permutation maximising sum_i cost[i, perm[i]].

        ``current`` (size,), the group's permutation now, may be returned as it is when it is
        provably optimal already (no better permutation exists)."""


class FreeAssignment(GroupSolver):
    """Any permutation: one linear assignment problem (Git Re-Basin weight matching), exact.

    Warm start: coordinate descent solves the same group many times on slowly changing
    matrices. Subtracting a constant per column leaves the optimal assignment unchanged, and
    subtracting column prices (dual variables, :func:`column_prices`) from the previous
    solution makes it nearly tight, so scipy's shortest-augmenting-path solver finds short
    paths (see :func:`max_assignment`, which also tests the current permutation first).
    """

    def __init__(self) -> None:
        self.prices: np.ndarray | None = None  # (size,) column prices from the last solve
        self._neg: np.ndarray | None = None  # (size, size) float64 scratch, reused
        self._scratch: np.ndarray | None = None  # (size, size) scratch of the cost's dtype

    def initial(self, size: int) -> np.ndarray:
        return np.arange(size)

    def solve(self, cost: np.ndarray, current: np.ndarray | None = None) -> np.ndarray:
        if self._neg is None or self._neg.shape != cost.shape:
            self._neg = np.empty(cost.shape, dtype=np.float64)
            self._scratch = np.empty_like(cost)
        perm = max_assignment(cost, self.prices, current, self._neg)
        if perm is not current:
            self.prices = column_prices(cost, perm, out=self._scratch)
        return perm


def max_assignment(
    cost: np.ndarray,
    prices: np.ndarray | None = None,
    current: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """(n, n) similarities -> (n,) permutation maximising sum_i cost[i, perm[i]], exactly.

    The problem is handed to scipy as a minimisation, in float64 (``out``: an optional (n, n)
    float64 buffer), shifted by constants per column and per row, which leaves the optimal
    assignment unchanged: first ``prices`` (n,), near the optimal column duals (warm start),
    then the row minima and the column minima (the classic reduction: every entry >= 0, a zero
    in every row and column; together 1.3x fewer seconds in scipy here). If every row's zero
    after the row reduction is at ``current`` (n,), that permutation is optimal (complementary
    slackness) and is returned itself, with no solve.
    """
    neg = np.empty(cost.shape, dtype=np.float64) if out is None else out
    if prices is None:
        np.negative(cost, out=neg, dtype=np.float64)
    else:
        np.subtract(prices[None, :], cost, out=neg, dtype=np.float64)
    neg -= neg.min(axis=1, keepdims=True)
    if current is not None and (neg[np.arange(len(cost)), current] <= 0).all():
        return current
    neg -= neg.min(axis=0, keepdims=True)
    rows, cols = linear_sum_assignment(neg)
    perm = np.empty(len(cost), dtype=np.int64)
    perm[rows] = cols
    return perm


PRICE_ROUNDS = 3  # Bellman-Ford rounds in column_prices (1 -> 3: ~10% less time per pair here)


def column_prices(
    cost: np.ndarray, perm: np.ndarray, rounds: int = PRICE_ROUNDS, out: np.ndarray | None = None
) -> np.ndarray:
    """(n,) column duals v >= 0 under which the optimal ``perm`` is nearly tight for ``cost``.

    Round 1: v_j = max(0, max_i cost[i, j] - cost[i, perm[i]]), the most any row would gain by
    switching to column j. Each further round is one Bellman-Ford step towards exact duals
    (v_j = max_i cost[i, j] - u_i, with u_i = cost[i, perm[i]] - v[perm[i]] from
    complementary slackness). ``out``: an optional (n, n) scratch array of the cost's dtype.
    """
    buf = np.empty_like(cost) if out is None else out
    own = cost[np.arange(len(cost)), perm]  # (n,) what each row has now
    v = np.zeros(len(cost), dtype=cost.dtype)
    for _ in range(rounds):
        u = own - v[perm]  # (n,) row duals implied by complementary slackness
        v = np.subtract(cost, u[:, None], out=buf).max(axis=0)
        np.maximum(v, 0.0, out=v)
    return v


class BlockAssignment(GroupSolver):
    """Block permutations with a fixed head order: new head h = old head ``head_order[h]``.

    Only the dims inside each matched pair of heads are assigned (one small assignment per
    head), so a dim of one head can never land in another head (TransFusion, step 2).
    """

    def __init__(self, head_order: np.ndarray) -> None:
        self.head_order = np.asarray(head_order, dtype=np.int64)
        if sorted(self.head_order.tolist()) != list(range(len(self.head_order))):
            raise ValueError(f"head order {self.head_order.tolist()} is not a permutation")

    @property
    def heads(self) -> int:
        return len(self.head_order)

    def initial(self, size: int) -> np.ndarray:
        hd = size // self.heads
        return (self.head_order[:, None] * hd + np.arange(hd)[None, :]).reshape(-1)

    def solve(self, cost: np.ndarray, current: np.ndarray | None = None) -> np.ndarray:
        hd = len(cost) // self.heads
        out = np.empty(len(cost), dtype=np.int64)
        for h, src in enumerate(self.head_order):
            block = cost[h * hd : (h + 1) * hd, src * hd : (src + 1) * hd]  # (hd, hd)
            out[h * hd : (h + 1) * hd] = src * hd + max_assignment(block)
        return out
