"""Parameter layout: how one model's parameters map onto one flat float32 vector.

A layout is the ordered list of (name, shape) pairs of a model's parameters. Every model of a
population shares one layout, so a population is a ``(models, params)`` matrix and a single
model is a row of it. Names follow ``nn.Module.named_parameters()`` so a row can be loaded
straight into the architecture's module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor


@dataclass(frozen=True)
class ParamSpec:
    """One parameter tensor: its name and its shape (without the population axis)."""

    name: str
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Layout:
    """Ordered parameter specs; offsets are derived, so a layout is fully given by its specs."""

    params: tuple[ParamSpec, ...]

    @cached_property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    @cached_property
    def offsets(self) -> dict[str, tuple[int, int]]:
        """name -> (start, stop) in the flat vector."""
        out, pos = {}, 0
        for p in self.params:
            out[p.name] = (pos, pos + p.size)
            pos += p.size
        return out

    @cached_property
    def by_name(self) -> dict[str, ParamSpec]:
        return {p.name: p for p in self.params}

    @property
    def num_params(self) -> int:
        return sum(p.size for p in self.params)

    def unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        """(..., num_params) -> {name: (..., *shape)}; views, no copies."""
        if flat.shape[-1] != self.num_params:
            raise ValueError(
                f"flat weights have {flat.shape[-1]} entries, layout expects {self.num_params}"
            )
        lead = flat.shape[:-1]
        return {
            p.name: flat[..., a:b].reshape(*lead, *p.shape)
            for p, (a, b) in zip(self.params, self.offsets.values(), strict=True)
        }

    def flatten(self, tensors: dict[str, Tensor]) -> Tensor:
        """{name: (..., *shape)} -> (..., num_params), in layout order."""
        missing = set(self.names) - set(tensors)
        if missing:
            raise ValueError(f"missing parameters for layout: {sorted(missing)}")
        parts = []
        for p in self.params:
            t = tensors[p.name]
            lead = t.shape[: t.dim() - len(p.shape)]
            if tuple(t.shape[len(lead) :]) != p.shape:
                raise ValueError(
                    f"parameter {p.name}: shape {tuple(t.shape)} does not end in {p.shape}"
                )
            parts.append(t.reshape(*lead, p.size))
        return torch.cat(parts, dim=-1)

    def to_dict(self) -> dict:
        return {"params": [{"name": p.name, "shape": list(p.shape)} for p in self.params]}

    @classmethod
    def from_dict(cls, d: dict) -> Layout:
        return cls(tuple(ParamSpec(p["name"], tuple(p["shape"])) for p in d["params"]))

    @classmethod
    def from_module(cls, module: torch.nn.Module) -> Layout:
        return cls(tuple(ParamSpec(n, tuple(p.shape)) for n, p in module.named_parameters()))
