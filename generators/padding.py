"""One shared vector space for several layouts: every layout is padded into the widest one.

Width conditioning needs models of different widths (or input sizes) in one tensor. Layouts
with the same parameter names are embedded corner-first: each parameter tensor of a narrow model
fills the leading slice ``[:s0, :s1, ...]`` of the widest shape of that parameter, the rest is
zero and masked out of every loss. A generator thus sees one flat vector of ``dim`` coordinates;
:meth:`PaddedLayout.crop` cuts a sample back to the layout asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from zoo.layout import Layout, ParamSpec


@dataclass(frozen=True)
class PaddedLayout:
    """The union (elementwise max shape per parameter) of ``layouts``, which share names."""

    layouts: tuple[Layout, ...]

    def __post_init__(self) -> None:
        if not self.layouts:
            raise ValueError("a padded layout needs at least one layout")
        names = self.layouts[0].names
        for lay in self.layouts[1:]:
            if lay.names != names:
                raise ValueError(
                    "populations of one generator must share parameter names (same family and "
                    f"depth): {names} vs {lay.names}"
                )
            for name in names:
                if len(lay.by_name[name].shape) != len(self.layouts[0].by_name[name].shape):
                    raise ValueError(f"parameter {name} differs in rank between layouts")

    @cached_property
    def union(self) -> Layout:
        specs = []
        for name in self.layouts[0].names:
            shapes = [lay.by_name[name].shape for lay in self.layouts]
            specs.append(ParamSpec(name, tuple(max(s) for s in zip(*shapes, strict=True))))
        return Layout(tuple(specs))

    @property
    def dim(self) -> int:
        return self.union.num_params

    @cached_property
    def indices(self) -> tuple[Tensor, ...]:
        """Per layout, (N_layout,) long positions of its coordinates in the padded vector."""
        out = []
        for lay in self.layouts:
            parts = []
            for p in lay.params:
                start, _ = self.union.offsets[p.name]
                full = torch.arange(self.union.by_name[p.name].size).reshape(
                    self.union.by_name[p.name].shape
                )
                corner = full[tuple(slice(0, s) for s in p.shape)]
                parts.append(start + corner.reshape(-1))
            out.append(torch.cat(parts))
        return tuple(out)

    @cached_property
    def masks(self) -> Tensor:
        """(L, dim) bool: which padded coordinates are real for each layout."""
        m = torch.zeros(len(self.layouts), self.dim, dtype=torch.bool)
        for i, idx in enumerate(self.indices):
            m[i, idx] = True
        return m

    def index_of(self, layout: Layout) -> int:
        for i, lay in enumerate(self.layouts):
            if lay == layout:
                return i
        raise ValueError("layout is not part of this padded layout")

    def pad(self, flat: Tensor, which: int) -> Tensor:
        """(M, N_which) -> (M, dim), zeros outside layout ``which``."""
        idx = self.indices[which]
        if flat.shape[-1] != len(idx):
            raise ValueError(f"weights have {flat.shape[-1]} entries, layout expects {len(idx)}")
        out = flat.new_zeros(*flat.shape[:-1], self.dim)
        out[..., idx] = flat
        return out

    def crop(self, padded: Tensor, which: int) -> Tensor:
        """(M, dim) -> (M, N_which): the coordinates of layout ``which``, in its own order."""
        return padded[..., self.indices[which]]
