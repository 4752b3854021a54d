"""Coordinate descent over permutation groups (the core of Git Re-Basin weight matching).

To align model B to model A, every free group P is visited in a random order per pass; its
similarity matrix is ``sum over (param, axis) touched by P of A (axis first, flattened) @
B~ (same, with every OTHER group's current permutation applied)^T`` and a :class:`GroupSolver`
picks the permutation maximising ``trace`` of it. Descent stops when a full pass improves
nothing (by more than ``TOL``: the strict rule, the default) or after ``max_iter`` passes; an
optional relative ``tol`` stops it sooner.

Speed, none of it changing the result: the per-(param, axis) matrices are precomputed once;
terms whose other axes are fixed are summed into a constant matrix once; the other terms'
products are cached and, when a neighbour's permutation moved in at most half the positions,
corrected by a low-rank update; a group whose neighbours have not changed since it was last
solved is skipped (its assignment would come out the same, improving nothing); the assignment
solver is warm-started and first tests whether the current permutation is optimal already (see
:class:`canonicalize.solvers.FreeAssignment`); torch runs on one thread, and two consecutive
groups that share no parameter can be solved at once on two threads (``overlap``).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from canonicalize.solvers import GroupSolver
from zoo.architectures import Architecture

TOL = 1e-12  # smallest objective gain that counts as progress
LOW_RANK_FRACTION = 2  # update a cached product when at most 1/2 of the positions moved
MAX_UPDATES = 16  # then recompute it in full, so float rounding cannot pile up


@dataclass
class _Term:
    """One (param, axis) of a group whose other axes carry groups that still move.

    a, b: (n, *rest) models A's and B's parameter with the group's axis first (fixed groups
    already applied to b). moving: [(dim, group)] for the other axes whose permutation changes
    during descent. The product ``a @ b~^T`` is cached; when a single moving permutation
    changed in few places, it is updated by a low-rank correction instead of recomputed.
    """

    a: Tensor
    b: Tensor
    moving: list[tuple[int, str]]
    key: tuple[int, ...] | None = None  # versions of the moving groups behind ``product``
    product: Tensor | None = None  # (n, n)
    used: Tensor | None = None  # the moving permutation behind ``product`` (single moving axis)
    updates: int = 0  # low-rank updates since the last full product

    def value(self, perms: dict[str, Tensor], version: dict[str, int]) -> Tensor:
        """(n, n) sum over the other axes of a[i, ...] * b~[j, ...]."""
        key = tuple(version[og] for _, og in self.moving)
        if key == self.key and self.product is not None:
            return self.product
        n = len(self.a)
        if len(self.moving) == 1 and self.product is not None and self.updates < MAX_UPDATES:
            dim, og = self.moving[0]
            new, old = perms[og], self.used
            changed = torch.nonzero(new != old).squeeze(1)  # (K,)
            if len(changed) * LOW_RANK_FRACTION <= len(new):
                a_k = self.a.index_select(dim, changed).reshape(n, -1)
                db = self.b.index_select(dim, new[changed]) - self.b.index_select(dim, old[changed])
                self.product = torch.addmm(self.product, a_k, db.reshape(n, -1).T)
                self.key, self.used, self.updates = key, new, self.updates + 1
                return self.product
        b = self.b
        for dim, og in self.moving:
            b = b.index_select(dim, perms[og])
        self.product = self.a.reshape(n, -1) @ b.reshape(n, -1).T
        self.key, self.updates = key, 0
        self.used = perms[self.moving[0][1]] if len(self.moving) == 1 else None
        return self.product


@dataclass
class DescentResult:
    """perms: {group: (size,) long} for every group of the spec; passes: full passes run."""

    perms: dict[str, Tensor]
    passes: int


class _Problem:
    """Precomputed matrices of A and B for the groups being solved."""

    def __init__(
        self, arch: Architecture, w_a: Tensor, w_b: Tensor, free: set[str], fixed: dict[str, Tensor]
    ) -> None:
        spec = arch.permutation_spec()
        pa, pb = arch.layout.unflatten(w_a), arch.layout.unflatten(w_b)
        self.sizes = {g: spec.groups[g].size for g in free}
        self.const: dict[str, Tensor] = {}
        self.terms: dict[str, list[_Term]] = {g: [] for g in free}
        self.neighbours: dict[str, list[str]] = {g: [] for g in free}
        self.out: dict[str, Tensor] = {}  # per group: (n, n) buffer of the last cost matrix
        for g in free:
            n = self.sizes[g]
            const = torch.zeros(n, n, dtype=w_a.dtype, device=w_a.device)
            for pname, axis in spec.group_axes[g]:
                a = pa[pname].movedim(axis, 0)
                b = pb[pname].movedim(axis, 0)
                moving = []
                for j, og in enumerate(spec.axes[pname]):
                    if j == axis or og is None:
                        continue
                    dim = j + 1 if j < axis else j  # where axis j sits after movedim
                    if og in free:
                        moving.append((dim, og))
                        if og not in self.neighbours[g]:
                            self.neighbours[g].append(og)
                    elif og in fixed:
                        b = b.index_select(dim, fixed[og].to(b.device))
                if moving:
                    self.terms[g].append(_Term(a.contiguous(), b.contiguous(), moving))
                else:
                    const.addmm_(a.reshape(n, -1), b.reshape(n, -1).T)
            self.const[g] = const

    def cost(self, g: str, perms: dict[str, Tensor], version: dict[str, int]) -> np.ndarray:
        """(n, n) similarity of A's units (rows) and B's units (columns) for group g.

        Written into a buffer owned by g (valid until g's next call: visits of one group run
        in sequence)."""
        c = self.out.get(g)
        if c is None:
            c = self.out[g] = torch.empty_like(self.const[g])
        c.copy_(self.const[g])
        for t in self.terms[g]:
            c.add_(t.value(perms, version))
        return c.cpu().numpy()


@dataclass
class _Pending:
    """A group solved on the helper thread: its skip key, pass index and result."""

    group: str
    key: tuple[int, ...]
    pass_index: int
    future: Future


class _Descent:
    """The state of one coordinate descent: current permutations and their versions."""

    def __init__(
        self,
        prob: _Problem,
        solvers: dict[str, GroupSolver],
        order: list[str],
        device: torch.device,
        tol: float,
    ) -> None:
        self.prob, self.solvers, self.device, self.tol = prob, solvers, device, tol
        self.cur = {g: solvers[g].initial(prob.sizes[g]) for g in order}
        self.cur_t = {g: torch.as_tensor(p, device=device) for g, p in self.cur.items()}
        self.version = dict.fromkeys(order, 0)
        self.solved_at: dict[str, tuple[int, ...] | None] = dict.fromkeys(order)
        self.progress: list[bool] = []  # per pass: did any group change

    def key(self, g: str) -> tuple[int, ...]:
        """Versions of g's neighbours: g's cost matrix is a function of them."""
        return tuple(self.version[og] for og in self.prob.neighbours[g])

    def solve(self, g: str) -> tuple[np.ndarray, np.ndarray]:
        """(n, n) cost matrix of g and its best permutation (n,); reads only g's neighbours."""
        c = self.prob.cost(g, self.cur_t, self.version)
        return c, self.solvers[g].solve(c, current=self.cur[g])

    def commit(
        self, g: str, key: tuple[int, ...], pass_index: int, result: tuple[np.ndarray, np.ndarray]
    ) -> None:
        """Take g's new permutation if it gains more than the tolerance."""
        c, new = result
        self.solved_at[g] = key
        if new is self.cur[g]:
            return  # certified optimal already
        rows = np.arange(len(c))
        now = c[rows, self.cur[g]].sum(dtype=np.float64)
        gain = c[rows, new].sum(dtype=np.float64) - now
        if gain > max(TOL, self.tol * abs(now)):
            self.cur[g] = new
            self.cur_t[g] = torch.as_tensor(new, device=self.device)
            self.version[g] += 1
            self.progress[pass_index] = True

    def finish(self, job: _Pending) -> None:
        self.commit(job.group, job.key, job.pass_index, job.future.result())


def coordinate_descent(
    arch: Architecture,
    w_a: Tensor,
    w_b: Tensor,
    solvers: dict[str, GroupSolver],
    fixed: dict[str, Tensor] | None = None,
    seed: int = 0,
    max_iter: int = 100,
    tol: float = 0.0,
    overlap: bool = False,
) -> DescentResult:
    """Permutations of B's groups that bring B close to A (flat weights (N,) each).

    ``solvers`` names the groups to optimise and how; ``fixed`` gives permutations held
    constant; every other group of the spec stays identity. ``tol`` (default 0: the strict
    rule) ignores a group's new permutation unless it raises that group's similarity sum by
    more than ``tol`` times that sum, so descent stops sooner. ``overlap`` solves two
    consecutive groups that share no parameter (their cost matrices do not depend on each
    other) at the same time on two threads; the result is the same as in sequence. It pays only
    with a free second core and large groups (3x512 MLP pair: 12% less wall time on 2 cores at
    load 1.5, none at load 2.5; for 64-256 units the thread hand-offs cost more than they
    save), so it is off by default. Torch runs on one thread inside (:func:`_one_torch_thread`).
    """
    if not tol >= 0:
        raise ValueError(f"tol must be >= 0 (0: the strict rule), got {tol}")
    spec = arch.permutation_spec()
    fixed = dict(fixed or {})
    free = set(solvers)
    with _one_torch_thread():
        prob = _Problem(arch, w_a, w_b, free, fixed)
        order = [g for g in spec.groups if g in free]  # spec order: deterministic
        state = _Descent(prob, solvers, order, w_a.device, tol)
        passes = _descend(state, order, np.random.default_rng(seed), max_iter, overlap)
    perms = {g: torch.arange(grp.size) for g, grp in spec.groups.items()}
    perms.update({g: p.long().cpu() for g, p in fixed.items()})
    perms.update({g: torch.as_tensor(p, dtype=torch.long) for g, p in state.cur.items()})
    return DescentResult(perms, passes)


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run torch on one CPU thread inside, restoring the setting after (process-wide).

    The descent's torch work is a few small matrix products between long single-threaded
    assignment solves; OpenMP workers spinning in between starved the solver (3.5x the wall
    time of a 3x512 pair with 2 threads on 2 cores). The second core can go to ``overlap``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _descend(
    state: _Descent, order: list[str], rng: np.random.Generator, max_iter: int, overlap: bool
) -> int:
    """Run the passes (see :func:`coordinate_descent`); returns the number of passes."""
    prob = state.prob
    passes = 0
    pending: _Pending | None = None
    with ThreadPoolExecutor(1) if overlap else nullcontext() as pool:
        for p in range(max_iter):
            passes += 1
            state.progress.append(False)
            for i in rng.permutation(len(order)):
                g = order[i]
                if pending is not None and (
                    pending.group == g or pending.group in prob.neighbours[g]
                ):
                    state.finish(pending)  # g's cost matrix depends on it
                    pending = None
                key = state.key(g)
                if state.solved_at[g] == key:
                    continue  # same cost matrix as last time: nothing to gain
                if pool is None:
                    state.commit(g, key, p, state.solve(g))
                elif pending is None:
                    pending = _Pending(g, key, p, pool.submit(state.solve, g))
                else:  # independent of the pending group: solve both at once
                    result = state.solve(g)
                    state.finish(pending)
                    pending = None
                    state.commit(g, key, p, result)
            if pending is not None and not state.progress[p]:
                state.finish(pending)  # the last group decides whether to stop
                pending = None
            if not state.progress[p]:
                break
        if pending is not None:
            state.finish(pending)
    return passes
