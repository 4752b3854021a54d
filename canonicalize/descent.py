"""Coordinate descent over permutation groups (the core of Git Re-Basin weight matching).

To align model B to model A, every free group P is visited in a random order per pass; its
similarity matrix is ``sum over (param, axis) touched by P of A (axis first, flattened) @
B~ (same, with every OTHER group's current permutation applied)^T`` and a :class:`GroupSolver`
picks the permutation maximising ``trace`` of it. Descent stops when a full pass improves
nothing (by more than ``TOL``) or after ``max_iter`` passes.

Speed: the per-(param, axis) matrices are precomputed once; terms whose other axes are fixed
are summed into a constant matrix once; the other terms' products are cached and, when a
neighbour's permutation moved only a few units, corrected by a low-rank update; a group whose
neighbours have not changed since it was last solved is skipped (its assignment would come out
the same, improving nothing); the assignment solver is warm-started (see
:class:`canonicalize.solvers.FreeAssignment`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from canonicalize.solvers import GroupSolver
from zoo.architectures import Architecture

TOL = 1e-12  # smallest objective gain that counts as progress
LOW_RANK_FRACTION = 4  # update a cached product when at most 1/4 of the positions moved
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
        """(n, n) similarity of A's units (rows) and B's units (columns) for group g."""
        c = self.const[g]
        for t in self.terms[g]:
            c = c + t.value(perms, version)  # new tensor: const stays intact
        return c.cpu().numpy()


def coordinate_descent(
    arch: Architecture,
    w_a: Tensor,
    w_b: Tensor,
    solvers: dict[str, GroupSolver],
    fixed: dict[str, Tensor] | None = None,
    seed: int = 0,
    max_iter: int = 100,
) -> DescentResult:
    """Permutations of B's groups that bring B close to A (flat weights (N,) each).

    ``solvers`` names the groups to optimise and how; ``fixed`` gives permutations held
    constant; every other group of the spec stays identity.
    """
    spec = arch.permutation_spec()
    fixed = dict(fixed or {})
    free = set(solvers)
    prob = _Problem(arch, w_a, w_b, free, fixed)
    device = w_a.device
    order = [g for g in spec.groups if g in free]  # spec order: deterministic
    cur = {g: solvers[g].initial(spec.groups[g].size) for g in order}
    cur_t = {g: torch.as_tensor(p, device=device) for g, p in cur.items()}
    version = dict.fromkeys(order, 0)
    solved_at: dict[str, tuple[int, ...] | None] = dict.fromkeys(order)
    rng = np.random.default_rng(seed)
    passes = 0
    for _ in range(max_iter):
        passes += 1
        progress = False
        for i in rng.permutation(len(order)):
            g = order[i]
            key = tuple(version[og] for og in prob.neighbours[g])
            if solved_at[g] == key:
                continue  # same cost matrix as last time: nothing to gain
            c = prob.cost(g, cur_t, version)
            new = solvers[g].solve(c)
            rows = np.arange(len(c))
            gain = c[rows, new].sum(dtype=np.float64) - c[rows, cur[g]].sum(dtype=np.float64)
            if gain > TOL:
                cur[g] = new
                cur_t[g] = torch.as_tensor(new, device=device)
                version[g] += 1
                progress = True
            solved_at[g] = key
        if not progress:
            break
    perms = {g: torch.arange(grp.size) for g, grp in spec.groups.items()}
    perms.update({g: p.long().cpu() for g, p in fixed.items()})
    perms.update({g: torch.as_tensor(p, dtype=torch.long) for g, p in cur.items()})
    return DescentResult(perms, passes)
