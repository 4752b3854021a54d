"""TransFusion (Rinaldi et al., ICML 2025): head-aware alignment of attention.

Per attention block:

1. heads are matched as whole units: the cost between head i of A and head j of B is the sum,
   over the projections that produce head dims (Q, K, V), of the L2 distance between the
   singular values of the two heads' row blocks. Singular values do not change when dims are
   permuted inside a head or when the residual stream is permuted, so this cost does not
   depend on any other choice; one assignment gives the head order, shared by the block's QK
   and VO groups (partners);
2. inside each matched pair of heads, q/k dims are assigned jointly (rows of Q and K, with
   biases) and v/o dims jointly (rows of V with the columns of O), by the weight-matching
   similarity restricted to the pair (:class:`canonicalize.solvers.BlockAssignment`);
3. the resulting block permutations (:func:`zoo.permutation.block_permutation` layout) move
   whole heads and permute dims only inside a head, so no dim can cross heads.

The MLP hidden units are matched by weight matching in the same coordinate descent; the
residual stream stays identity unless ``residual=True``.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from canonicalize.descent import coordinate_descent
from canonicalize.permutation import Permutation, check_weights
from canonicalize.solvers import BlockAssignment, GroupSolver
from canonicalize.weight_matching import free_solvers
from zoo.architectures import Architecture
from zoo.permutation import GroupKind, PermutationSpec

ATTENTION = (GroupKind.ATTENTION_QK, GroupKind.ATTENTION_VO)


def _head_spectra(spec: PermutationSpec, params: dict[str, Tensor], group: str) -> list[Tensor]:
    """Singular values of each head's row block, per projection producing the group's dims.

    Returns [(heads, head_dim)] for every matrix parameter whose first axis is ``group``.
    """
    heads = spec.groups[group].heads
    out = []
    for pname, axis in spec.group_axes[group]:
        w = params[pname]
        if axis == 0 and w.dim() >= 2:
            blocks = w.reshape(heads, w.shape[0] // heads, -1)  # (H, hd, rest)
            out.append(torch.linalg.svdvals(blocks.double()))
    return out


def head_orders(arch: Architecture, w_a: Tensor, w_b: Tensor) -> dict[str, np.ndarray]:
    """{attention group: (heads,) head order}: new head h of B = old head order[h], matched to
    A's head h. Partner groups (QK and VO of one block) get the same order."""
    spec = arch.permutation_spec()
    pa, pb = arch.layout.unflatten(w_a), arch.layout.unflatten(w_b)
    orders: dict[str, np.ndarray] = {}
    for g in spec.groups.values():
        if g.kind not in ATTENTION or g.name in orders:
            continue
        members = [g.name] + ([g.partner] if g.partner else [])
        cost = torch.zeros(g.heads, g.heads, dtype=torch.float64)
        for m in members:
            if spec.groups[m].heads != g.heads:
                raise ValueError(f"partner groups {g.name} and {m} have different head counts")
            for sa, sb in zip(_head_spectra(spec, pa, m), _head_spectra(spec, pb, m), strict=True):
                cost += torch.cdist(sa, sb).cpu()  # (H, H)
        rows, cols = linear_sum_assignment(cost.numpy())
        order = cols[np.argsort(rows)]
        for m in members:
            orders[m] = order
    return orders


def transfusion(
    arch: Architecture,
    w_a: Tensor | np.ndarray,
    w_b: Tensor | np.ndarray,
    seed: int = 0,
    residual: bool = False,
    max_iter: int = 100,
) -> Permutation:
    """The permutation of B (flat (N,)) aligning it to A: heads first, then dims inside heads,
    MLP units by weight matching. Architectures without attention reduce to weight matching."""
    w_a = check_weights(arch, w_a, "w_a")
    w_b = check_weights(arch, w_b, "w_b").to(device=w_a.device, dtype=w_a.dtype)
    solvers: dict[str, GroupSolver] = free_solvers(arch, residual)
    for g, order in head_orders(arch, w_a, w_b).items():
        solvers[g] = BlockAssignment(order)
    res = coordinate_descent(arch, w_a, w_b, solvers, seed=seed, max_iter=max_iter)
    return Permutation(arch, res.perms)
