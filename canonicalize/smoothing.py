"""NeuMeta-style smoothing order (Yang & Wang, ECCV 2024) for one model.

NeuMeta learns weights as a continuous function of (layer, unit index), which is easier when
neighbouring units have similar weights. For every UNITS group, each unit is a "city": the
concatenation of its incoming and outgoing weights (every (param, axis) the group touches); the
L1 distance between cities, summed along the new order, is exactly the total variation of those
weights along the permuted axis. A short Hamiltonian path (:mod:`canonicalize.tsp`) therefore
lowers the total variation while the permuted model computes the same function. L1 distances do
not change when other groups are permuted, so every group is ordered independently.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from canonicalize.permutation import Permutation, check_weights
from canonicalize.tsp import shortest_path_order
from zoo.architectures import Architecture
from zoo.permutation import GroupKind


def smoothed_groups(arch: Architecture) -> list[str]:
    """The groups smoothing reorders (hidden units and channels)."""
    return [g.name for g in arch.permutation_spec().groups.values() if g.kind == GroupKind.UNITS]


def unit_features(arch: Architecture, w: Tensor, group: str) -> Tensor:
    """(size, F): each unit's incoming and outgoing weights, concatenated."""
    spec = arch.permutation_spec()
    params = arch.layout.unflatten(w)
    n = spec.groups[group].size
    parts = [params[p].movedim(ax, 0).reshape(n, -1) for p, ax in spec.group_axes[group]]
    return torch.cat(parts, dim=1)


def smooth(arch: Architecture, w: Tensor | np.ndarray) -> Permutation:
    """The permutation of one model (flat (N,)) that orders every UNITS group along a short
    L1 path of its units; ``perm.apply(w)`` has lower (never higher) total variation."""
    w = check_weights(arch, w, "w")
    perms = {}
    for g in smoothed_groups(arch):
        x = unit_features(arch, w, g).double()
        dist = torch.cdist(x, x, p=1).cpu().numpy()  # (n, n)
        order = shortest_path_order(dist)
        norms = x.abs().sum(dim=1).cpu().numpy()
        if norms[order[-1]] < norms[order[0]]:  # orientation: start at the smaller unit
            order = order[::-1].copy()
        perms[g] = torch.as_tensor(order, dtype=torch.long)
    return Permutation(arch, perms)


def total_variation(arch: Architecture, w: Tensor, groups: list[str] | None = None) -> Tensor:
    """Sum over every axis permuted by ``groups`` (default: the smoothed ones) of
    |w[i+1] - w[i]| along that axis. w: (N,) -> scalar, or (M, N) -> (M,)."""
    spec = arch.permutation_spec()
    chosen = set(smoothed_groups(arch) if groups is None else groups)
    params = arch.layout.unflatten(w)
    lead = w.dim() - 1
    tv = torch.zeros(w.shape[:-1], dtype=w.dtype, device=w.device)
    for pname, per_axis in spec.axes.items():
        for ax, g in enumerate(per_axis):
            if g in chosen:
                d = params[pname].diff(dim=lead + ax).abs()
                tv = tv + d.flatten(lead).sum(dim=-1)
    return tv
