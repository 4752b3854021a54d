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

from canonicalize.augmenting_path import repair_assignment


class GroupSolver(ABC):
    """Chooses one group's permutation from its (size, size) similarity matrix."""

    def initial(self, size: int) -> np.ndarray:
        """A feasible starting permutation (size,): the identity, unless constraints forbid it."""
        return np.arange(size)

    @abstractmethod
    def solve(self, cost: np.ndarray, current: np.ndarray | None = None) -> np.ndarray:
        """(size, size) similarities -> (size,) permutation maximising sum_i cost[i, perm[i]].

        ``current`` (size,), the group's permutation now, may be returned as it is when it is
        provably optimal already (no better permutation exists)."""


class FreeAssignment(GroupSolver):
    """Any permutation: one linear assignment problem (Git Re-Basin weight matching), exact.

    Warm start: coordinate descent solves the same group many times on slowly changing
    matrices, so the solver keeps the column duals of its last solve and restarts from the
    group's current permutation (:func:`canonicalize.augmenting_path.repair_assignment`): rows
    whose column is still optimal under those duals are kept, and only the others are
    re-assigned. When none has to be, ``current`` itself is returned (it is provably optimal).
    """

    def __init__(self) -> None:
        self.duals: np.ndarray | None = None  # (size,) float64 column duals of the last solve

    def solve(self, cost: np.ndarray, current: np.ndarray | None = None) -> np.ndarray:
        if self.duals is None or self.duals.shape != (len(cost),):
            self.duals = np.zeros(len(cost))
        return max_assignment(cost, self.duals, current)


def max_assignment(
    cost: np.ndarray, duals: np.ndarray | None = None, current: np.ndarray | None = None
) -> np.ndarray:
    """(n, n) similarities -> (n,) permutation maximising sum_i cost[i, perm[i]], exactly.

    ``duals`` (n,) float64: column duals to start from (those of a similar matrix make the
    solve short; any values give the same optimum), updated in place to this optimum's.
    ``current`` (n,): a permutation to start from; returned itself when it is optimal already
    (complementary slackness under ``duals``), with no search.
    """
    n = len(cost)
    v = np.zeros(n) if duals is None else duals
    start = np.full(n, -1, np.int64) if current is None else np.array(current, dtype=np.int64)
    repaired = repair_assignment(cost, v, start)
    if current is not None and repaired == 0 and np.array_equal(start, current):
        return current
    return start


class ScipyAssignment(GroupSolver):
    """Any permutation, solved from scratch by scipy at every visit: the reference solver.

    Same optimum as :class:`FreeAssignment` (which it checks in tests and benchmarks), with no
    warm start."""

    def solve(self, cost: np.ndarray, current: np.ndarray | None = None) -> np.ndarray:
        rows, cols = linear_sum_assignment(cost.astype(np.float64), maximize=True)
        return cols[np.argsort(rows)]


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
