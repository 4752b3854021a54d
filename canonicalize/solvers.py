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
    def solve(self, cost: np.ndarray) -> np.ndarray:
        """(size, size) similarities -> (size,) permutation maximising sum_i cost[i, perm[i]]."""


class FreeAssignment(GroupSolver):
    """Any permutation: one linear assignment problem (Git Re-Basin weight matching).

    Warm start: coordinate descent solves the same group many times on slowly changing
    matrices. Subtracting a constant per column leaves the optimal assignment unchanged, and
    subtracting column prices estimated from the previous solution (each column's price is the
    most any row would gain by switching to it) makes the previous assignment nearly tight, so
    scipy's shortest-augmenting-path solver finds short paths. The result is exact either way.
    """

    def __init__(self) -> None:
        self.prices: np.ndarray | None = None  # (size,) column prices from the last solve

    def initial(self, size: int) -> np.ndarray:
        return np.arange(size)

    def solve(self, cost: np.ndarray) -> np.ndarray:
        shifted = cost if self.prices is None else cost - self.prices[None, :]
        rows, cols = linear_sum_assignment(shifted, maximize=True)
        perm = cols[np.argsort(rows)]
        self.prices = column_prices(cost, perm)
        return perm


def column_prices(cost: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """(size,) price of column j = max(0, max_i cost[i, j] - cost[i, perm[i]])."""
    own = cost[np.arange(len(cost)), perm]  # (n,) what each row has now
    return np.maximum((cost - own[:, None]).max(axis=0), 0.0)


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

    def solve(self, cost: np.ndarray) -> np.ndarray:
        hd = len(cost) // self.heads
        out = np.empty(len(cost), dtype=np.int64)
        for h, src in enumerate(self.head_order):
            block = cost[h * hd : (h + 1) * hd, src * hd : (src + 1) * hd]  # (hd, hd)
            rows, cols = linear_sum_assignment(block, maximize=True)
            out[h * hd : (h + 1) * hd] = src * hd + cols[np.argsort(rows)]
        return out
