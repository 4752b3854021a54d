"""A chosen permutation for every group of an architecture's permutation spec.

Every canonicalization method returns a :class:`Permutation`; applying it to a model's flat
weight vector gives a different point of weight space that computes exactly the same function.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from zoo.architectures import Architecture
from zoo.finite import all_finite
from zoo.permutation import apply_permutation, invert


@dataclass
class Permutation:
    """perms: {group name: (size,) long index}, new[i] = old[perm[i]] along every axis the group
    acts on (see :func:`zoo.permutation.apply_permutation`). Groups of the architecture's spec
    that are missing are identity."""

    arch: Architecture
    perms: dict[str, Tensor]

    def __post_init__(self) -> None:
        groups = self.arch.permutation_spec().groups
        for name, p in self.perms.items():
            if name not in groups:
                raise ValueError(f"unknown permutation group {name!r} ({', '.join(groups)})")
            if p.shape != (groups[name].size,):
                raise ValueError(
                    f"group {name}: permutation has shape {tuple(p.shape)}, "
                    f"expected ({groups[name].size},)"
                )
        self.perms = {g: self.perms[g].long().cpu() for g in groups if g in self.perms}

    @classmethod
    def identity(cls, arch: Architecture) -> Permutation:
        return cls(arch, arch.permutation_spec().identity())

    def apply(self, w: Tensor) -> Tensor:
        """Permute flat weights (N,) or (M, N); returns a new tensor of the same shape."""
        return apply_permutation(self.arch.layout, self.arch.permutation_spec(), self.perms, w)

    def inverse(self) -> Permutation:
        """The permutation that undoes this one: ``p.inverse().apply(p.apply(w)) == w``."""
        return Permutation(self.arch, {g: invert(p) for g, p in self.perms.items()})

    def then(self, second: Permutation) -> Permutation:
        """The permutation that applies ``self`` first, then ``second``."""
        ident = self.arch.permutation_spec().identity()
        groups = set(self.perms) | set(second.perms)
        return Permutation(
            self.arch,
            {g: self.perms.get(g, ident[g])[second.perms.get(g, ident[g])] for g in groups},
        )

    def is_identity(self) -> bool:
        return all(torch.equal(p, torch.arange(len(p))) for p in self.perms.values())


def check_weights(arch: Architecture, w: Tensor | np.ndarray, what: str = "weights") -> Tensor:
    """One model's flat float weights (N,) for ``arch``, or a ValueError naming the problem."""
    w = torch.as_tensor(w)
    n = arch.num_params
    if w.dim() != 1:
        raise ValueError(f"{what} must be one flat weight vector (N,), got shape {tuple(w.shape)}")
    if len(w) != n:
        raise ValueError(
            f"{what} has {len(w)} entries, but the {arch.family} layout has {n} parameters "
            "(two models of different layouts?)"
        )
    if not w.is_floating_point():
        raise ValueError(f"{what} must be floating point, got {w.dtype}")
    if not all_finite(w):
        raise ValueError(f"{what} contains NaN or inf (a diverged model?)")
    return w
