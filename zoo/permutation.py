"""Permutation specs: which hidden-unit permutation acts on which axis of which parameter.

Permuting the hidden units of a network (and the matching rows/columns of the next layer)
leaves its function unchanged. A :class:`PermutationSpec` names every such permutation group
and, for each parameter, the group acting on each of its axes (``None`` = not permuted).
Canonicalization (``canonicalize/``) searches over these groups; :func:`apply_permutation`
applies a choice of permutations to flat weight vectors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import torch
from torch import Tensor

from zoo.layout import Layout


class GroupKind(StrEnum):
    """What a permutation group permutes; decides how canonicalization may treat it."""

    UNITS = "units"  # hidden units / channels: any permutation is a symmetry
    RESIDUAL = "residual"  # the residual stream of a Transformer: a symmetry, often left alone
    ATTENTION_QK = "attention_qk"  # query/key dims: heads move as blocks, dims only inside a head
    ATTENTION_VO = "attention_vo"  # value/output dims: same block structure, same head order as QK


@dataclass(frozen=True)
class PermGroup:
    """A permutation group of ``size`` elements.

    For attention groups, ``heads`` > 1 means the permutation must be block structured: whole
    heads of ``size // heads`` dims are permuted, and dims are permuted only within a head.
    ``partner`` names the group that must use the same head order (QK <-> VO of one block).
    """

    name: str
    size: int
    kind: GroupKind = GroupKind.UNITS
    heads: int = 1
    partner: str | None = None

    @property
    def head_dim(self) -> int:
        return self.size // self.heads


@dataclass(frozen=True)
class PermutationSpec:
    groups: dict[str, PermGroup]
    axes: dict[str, tuple[str | None, ...]]  # param name -> group per axis
    group_axes: dict[str, list[tuple[str, int]]] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        ga: dict[str, list[tuple[str, int]]] = {g: [] for g in self.groups}
        for pname, per_axis in self.axes.items():
            for ax, g in enumerate(per_axis):
                if g is not None:
                    if g not in ga:
                        raise ValueError(f"parameter {pname} names unknown group {g!r}")
                    ga[g].append((pname, ax))
        object.__setattr__(self, "group_axes", ga)

    def check(self, layout: Layout) -> None:
        """Raise ValueError if the spec does not fit the layout."""
        for pname, per_axis in self.axes.items():
            if pname not in layout.by_name:
                raise ValueError(f"permutation spec names unknown parameter {pname!r}")
            shape = layout.by_name[pname].shape
            if len(per_axis) != len(shape):
                raise ValueError(f"{pname}: {len(per_axis)} axes in spec, shape {shape}")
            for ax, g in enumerate(per_axis):
                if g is not None and shape[ax] != self.groups[g].size:
                    raise ValueError(
                        f"{pname} axis {ax} has size {shape[ax]}, group {g} has {self.groups[g].size}"
                    )

    def identity(self) -> dict[str, Tensor]:
        return {g.name: torch.arange(g.size) for g in self.groups.values()}

    def random(self, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """A random permutation that is a valid symmetry (block structured for attention)."""
        perms: dict[str, Tensor] = {}
        head_orders: dict[str, Tensor] = {}
        for g in self.groups.values():
            if g.heads > 1:
                key = min(g.name, g.partner or g.name)
                if key not in head_orders:
                    head_orders[key] = torch.randperm(g.heads, generator=generator)
                inner = [torch.randperm(g.head_dim, generator=generator) for _ in range(g.heads)]
                perms[g.name] = block_permutation(head_orders[key], inner)
            else:
                perms[g.name] = torch.randperm(g.size, generator=generator)
        return perms


def block_permutation(head_order: Tensor, inner: list[Tensor]) -> Tensor:
    """Full index vector for 'new head h = old head head_order[h], its dim d = old dim inner[h][d]'."""
    hd = len(inner[0])
    return torch.cat([head_order[h] * hd + inner[h] for h in range(len(inner))])


def apply_permutation(
    layout: Layout, spec: PermutationSpec, perms: dict[str, Tensor], flat: Tensor
) -> Tensor:
    """Permute flat weights (..., N): new[..., i along axis] = old[..., perm[i] along axis].

    Missing groups are left as identity. The result computes exactly the same function.
    """
    params = layout.unflatten(flat)
    lead = flat.dim() - 1
    out = {}
    for name, w in params.items():
        for ax, g in enumerate(spec.axes.get(name, ())):
            if g is not None and g in perms:
                w = torch.index_select(w, lead + ax, perms[g].to(w.device))
        out[name] = w
    return layout.flatten(out)


def invert(perm: Tensor) -> Tensor:
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(len(perm), device=perm.device)
    return inv
