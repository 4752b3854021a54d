"""Shortest Hamiltonian path heuristic: nearest neighbour, then 2-opt.

A dummy city at distance 0 from every city closes the path into a tour, so a tour through the
dummy without it is a path with free endpoints. 2-opt moves are evaluated for all pairs of
edges at once with numpy (O(n^2) per evaluation) and several non-overlapping improving moves
are applied per evaluation, which keeps 512 cities well under a second.
"""

from __future__ import annotations

import numpy as np

REL_TOL = 1e-10  # a 2-opt move must shorten the path by more than this fraction


def path_length(dist: np.ndarray, order: np.ndarray) -> float:
    """Length of the open path visiting ``order`` (indices into the (n, n) matrix ``dist``)."""
    return float(dist[order[:-1], order[1:]].sum()) if len(order) > 1 else 0.0


def nearest_neighbour_path(dist: np.ndarray, start: int) -> np.ndarray:
    """Greedy path from ``start``: always go to the closest unvisited city."""
    n = len(dist)
    visited = np.zeros(n, dtype=bool)
    order = np.empty(n, dtype=np.int64)
    cur = start
    for k in range(n):
        order[k] = cur
        visited[cur] = True
        if k < n - 1:
            row = np.where(visited, np.inf, dist[cur])
            cur = int(np.argmin(row))
    return order


def two_opt_path(dist: np.ndarray, order: np.ndarray, max_moves: int = 100_000) -> np.ndarray:
    """Improve an open path by best-improvement 2-opt moves until none shortens it."""
    n = len(order)
    if n < 3:
        return order.copy()
    d = np.zeros((n + 1, n + 1))
    d[:n, :n] = dist
    tour = np.concatenate([[n], order])  # dummy city n first; a cycle of m = n + 1 cities
    m = n + 1
    nxt = np.roll(np.arange(m), -1)
    i_idx, j_idx = np.triu_indices(m, k=2)  # edges (i, i+1) and (j, j+1), not adjacent
    ok = ~((i_idx == 0) & (j_idx == m - 1))  # in a cycle these two edges touch
    i_idx, j_idx = i_idx[ok], j_idx[ok]
    tol = REL_TOL * max(path_length(dist, order), 1e-30)
    for _ in range(max_moves):
        dt = d[np.ix_(tour, tour)]  # (m, m) distances in tour order
        edge = dt[np.arange(m), nxt]  # (m,) length of edge k -> k+1
        gain = edge[i_idx] + edge[j_idx] - dt[i_idx, j_idx] - dt[nxt[i_idx], nxt[j_idx]]
        good = np.flatnonzero(gain > tol)
        if len(good) == 0:
            break
        for i, j in _disjoint_moves(i_idx[good], j_idx[good], gain[good]):
            tour[i + 1 : j + 1] = tour[i + 1 : j + 1][::-1].copy()
    at = int(np.flatnonzero(tour == n)[0])
    return np.concatenate([tour[at + 1 :], tour[:at]])


def _disjoint_moves(
    i: np.ndarray, j: np.ndarray, gain: np.ndarray, limit: int = 64
) -> list[tuple[int, int]]:
    """Best moves first, keeping those whose spans [i, j + 1] do not overlap: their gains,
    computed on the same tour, then add up exactly, so one evaluation serves several moves."""
    top = np.argsort(-gain)[:limit]
    chosen: list[tuple[int, int]] = []
    for k in top:
        a, b = int(i[k]), int(j[k])
        if all(a >= d + 1 or b + 1 <= c for c, d in chosen):
            chosen.append((a, b))
    return chosen


def shortest_path_order(dist: np.ndarray) -> np.ndarray:
    """A short open path through all cities of the (n, n) distance matrix: (n,) visiting order.

    Starts from the better of the identity order and a nearest-neighbour path (from the city
    farthest from the rest), then 2-opt; the result is never longer than the identity order.
    """
    n = len(dist)
    ident = np.arange(n)
    if n < 3:
        return ident
    nn = nearest_neighbour_path(dist, int(np.argmax(dist.sum(axis=1))))
    start = nn if path_length(dist, nn) < path_length(dist, ident) else ident
    return two_opt_path(dist, start)
