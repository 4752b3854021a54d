"""An exact linear assignment solver that restarts from a previous solution (compiled with numba).

Coordinate descent solves each group's assignment dozens of times on matrices that change a
little between visits. A solver that starts from nothing (scipy's) pays for a full solve every
time; this one keeps the previous assignment and column duals and repairs only what changed:

1. with column duals ``v`` (the previous solve's), each row's dual is ``u_i = min_j c_ij - v_j``
   (so ``u_i + v_j <= c_ij`` everywhere: dual feasible); a row keeps its previous column when
   that column attains its minimum (complementary slackness holds there), the others are freed;
2. augmenting row reduction (Jonker & Volgenant, Computing 1987) settles most freed rows with
   cheap auction-like steps that keep every assigned row on a column attaining its minimum;
3. every row still free is assigned by one shortest augmenting path over the reduced costs
   ``c_ij - u_i - v_j >= 0`` (Dijkstra; the algorithm of Crouse, IEEE TAES 2016, that scipy
   implements), which keeps the duals feasible and the assigned rows tight.

At the end every row is assigned on a tight edge under feasible duals: the assignment is optimal,
exactly as scipy's, whatever ``v`` and the starting assignment were (they only change the work).
When no row had to be freed the starting assignment was optimal already and nothing is solved.
Costs are maximised: ``c = -cost`` throughout, in float64 whatever the input's float dtype.
"""

from __future__ import annotations

import numpy as np
from numba import njit

ARR_PASSES = 2  # passes of augmenting row reduction over the free rows (as in LAPJV)


@njit(cache=True, nogil=True)
def _keep_tight(
    cost: np.ndarray,
    v: np.ndarray,
    col4row: np.ndarray,
    row4col: np.ndarray,
    u: np.ndarray,
    rows: np.ndarray,
) -> None:  # pragma: no cover
    """For the rows flagged in ``rows``: dual u_i = min_j c_ij - v_j, and unassign the row
    (in both col4row and row4col) when its column does not attain it."""
    n = cost.shape[0]
    for i in range(n):
        if not rows[i]:
            continue
        best = np.inf
        for j in range(n):
            r = -cost[i, j] - v[j]
            if r < best:
                best = r
        u[i] = best
        j = col4row[i]
        if j >= 0 and -cost[i, j] - v[j] > best:
            row4col[j] = -1
            col4row[i] = -1


@njit(cache=True, nogil=True)
def _row_reduction(
    cost: np.ndarray,
    v: np.ndarray,
    col4row: np.ndarray,
    row4col: np.ndarray,
    free: np.ndarray,
    n_free: int,
    touched: np.ndarray,
) -> None:  # pragma: no cover
    """Augmenting row reduction (Jonker & Volgenant 1987): cheap auction-like steps.

    A free row takes its best column and lowers that column's dual until the row is indifferent
    between its best and second-best column; the column's previous owner, if any, becomes free
    and, when the dual moved, is served next. Every assigned row keeps a column attaining its
    row minimum (lowering one column's dual never breaks another row's). ``free``: the first
    ``n_free`` entries are the free rows; ``touched`` (n,) bool: set for every row assigned
    here (the only rows whose tightness float rounding can have broken).
    """
    n = cost.shape[0]
    if n < 2:
        return
    for _ in range(ARR_PASSES):
        k = 0
        pending = n_free
        n_free = 0
        budget = 4 * n  # guards against float cycling; the rest go to the exact phase
        while k < pending:
            i = free[k]
            k += 1
            budget -= 1
            u1 = np.inf
            u2 = np.inf
            j1 = -1
            j2 = -1
            for j in range(n):
                h = -cost[i, j] - v[j]
                if h < u2:
                    if h >= u1:
                        u2 = h
                        j2 = j
                    else:
                        u2 = u1
                        j2 = j1
                        u1 = h
                        j1 = j
            owner = row4col[j1]
            if u1 < u2:
                v[j1] -= u2 - u1
            elif owner >= 0:
                j1 = j2
                owner = row4col[j2]
            row4col[j1] = i
            col4row[i] = j1
            touched[i] = True
            if owner >= 0:
                col4row[owner] = -1
                if u1 < u2 and budget > 0:
                    k -= 1
                    free[k] = owner
                else:
                    free[n_free] = owner
                    n_free += 1
        if n_free == 0:
            return


@njit(cache=True, nogil=True)
def _free_rows(col4row: np.ndarray, free: np.ndarray) -> int:  # pragma: no cover
    """Write the unassigned rows into ``free``; returns how many there are."""
    n_free = 0
    for i in range(len(col4row)):
        if col4row[i] == -1:
            free[n_free] = i
            n_free += 1
    return n_free


@njit(cache=True, nogil=True)
def _repair(cost: np.ndarray, v: np.ndarray, col4row: np.ndarray) -> int:  # pragma: no cover
    """Maximise sum_i cost[i, col4row[i]] in place, from the assignment and duals given.

    cost: (n, n) float; v: (n,) float64 column duals (min convention on ``-cost``), updated to
    the optimal duals; col4row: (n,) int64 starting column per row (-1: none), updated to the
    optimum. Returns the number of rows that had to be re-assigned (0: the start was optimal),
    -1 if no augmenting path exists (impossible for a finite square matrix).
    """
    n = cost.shape[0]
    u = np.empty(n)
    row4col = np.full(n, -1, np.int64)
    for i in range(n):
        j = col4row[i]
        if j >= 0:
            if row4col[j] == -1:
                row4col[j] = i
            else:
                col4row[i] = -1  # a column given twice: the later row starts free
    free = np.empty(n, np.int64)
    touched = np.ones(n, np.bool_)
    _keep_tight(cost, v, col4row, row4col, u, touched)  # 1. keep what is still optimal
    repaired = _free_rows(col4row, free)
    if repaired == 0:
        return 0
    touched[:] = False
    _row_reduction(cost, v, col4row, row4col, free, repaired, touched)  # 2. cheap steps
    for i in range(n):
        touched[i] = touched[i] or col4row[i] == -1
    _keep_tight(cost, v, col4row, row4col, u, touched)  # exact duals where step 2 moved any
    n_free = _free_rows(col4row, free)
    shortest = np.empty(n)
    path = np.empty(n, np.int64)
    remaining = np.empty(n, np.int64)
    in_rows = np.zeros(n, np.bool_)
    in_cols = np.zeros(n, np.bool_)
    for f in range(n_free):  # 3. one shortest augmenting path per row still free
        start = free[f]
        shortest[:] = np.inf
        path[:] = -1
        in_rows[:] = False
        in_cols[:] = False
        for k in range(n):
            remaining[k] = n - 1 - k
        n_rem = n
        min_val = 0.0
        i = start
        sink = -1
        while sink == -1:
            in_rows[i] = True
            lowest = np.inf
            index = -1
            for k in range(n_rem):
                j = remaining[k]
                r = min_val - cost[i, j] - u[i] - v[j]
                if r < shortest[j]:
                    path[j] = i
                    shortest[j] = r
                if shortest[j] < lowest or (shortest[j] == lowest and row4col[j] == -1):
                    lowest = shortest[j]
                    index = k
            if index == -1:
                return -1
            min_val = lowest
            j = remaining[index]
            if row4col[j] == -1:
                sink = j
            else:
                i = row4col[j]
            in_cols[j] = True
            n_rem -= 1
            remaining[index] = remaining[n_rem]
        u[start] += min_val  # dual update along the search tree
        for r in range(n):
            if in_rows[r] and r != start:
                u[r] += min_val - shortest[col4row[r]]
        for c in range(n):
            if in_cols[c]:
                v[c] -= min_val - shortest[c]
        j = sink  # augment: flip the path
        while True:
            i = path[j]
            row4col[j] = i
            nxt = col4row[i]
            col4row[i] = j
            j = nxt
            if i == start:
                break
    return repaired


def repair_assignment(cost: np.ndarray, v: np.ndarray, col4row: np.ndarray) -> int:
    """Make ``col4row`` (n,) the assignment maximising ``sum_i cost[i, col4row[i]]``, in place.

    ``cost`` (n, n) float32/float64; ``v`` (n,) float64 column duals, updated to the new
    optimum's (pass them to the next call on a similar matrix); ``col4row`` int64 starting
    columns (-1: none). Returns how many rows were re-assigned: 0 means the start was optimal.
    """
    if cost.ndim != 2 or cost.shape[0] != cost.shape[1]:
        raise ValueError(f"cost must be a square matrix, got shape {cost.shape}")
    n = cost.shape[0]
    if v.shape != (n,) or v.dtype != np.float64 or col4row.shape != (n,):
        raise ValueError(f"v must be (n,) float64 and col4row (n,) for n={n}")
    if col4row.dtype != np.int64:
        raise ValueError(f"col4row must be int64, got {col4row.dtype}")
    if n == 0:
        return 0
    if not np.isfinite(cost).all():
        raise ValueError("cost contains NaN or inf")
    cost = np.ascontiguousarray(cost)
    if cost.dtype not in (np.float32, np.float64):
        cost = cost.astype(np.float64)
    repaired = _repair(cost, v, col4row)
    if repaired < 0:  # pragma: no cover - a dense finite matrix always has a perfect matching
        raise RuntimeError("assignment solver found no augmenting path")
    return repaired
