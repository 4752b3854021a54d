"""Multi-layer perceptron: ``depth`` hidden layers of ``width`` units with ReLU."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from zoo.architectures.base import Architecture
from zoo.permutation import PermGroup, PermutationSpec


class MLPModule(nn.Module):
    def __init__(self, in_features: int, widths: list[int], out_features: int) -> None:
        super().__init__()
        sizes = [in_features, *widths]
        self.hidden = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.out = nn.Linear(sizes[-1], out_features)

    def forward(self, x: Tensor) -> Tensor:
        h = x.flatten(-len(x.shape) + 1) if x.dim() > 2 else x
        for layer in self.hidden:
            h = layer(h).relu()
        return self.out(h)


@dataclass(frozen=True)
class MLP(Architecture):
    """width: hidden units per layer; depth: number of hidden layers."""

    family: ClassVar[str] = "mlp"
    in_shape: tuple[int, ...] = (64,)
    num_outputs: int = 10
    depth: int = 2

    def __post_init__(self) -> None:
        if self.width <= 0 or self.depth <= 0:
            raise ValueError(
                f"mlp width and depth must be positive, got {self.width}, {self.depth}"
            )

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.in_shape)

    def build(self) -> nn.Module:
        return MLPModule(math.prod(self.in_shape), [self.width] * self.depth, self.num_outputs)

    def permutation_spec(self) -> PermutationSpec:
        groups = {f"h{i}": PermGroup(f"h{i}", self.width) for i in range(self.depth)}
        axes: dict[str, tuple[str | None, ...]] = {}
        for i in range(self.depth):
            prev = f"h{i - 1}" if i > 0 else None
            axes[f"hidden.{i}.weight"] = (f"h{i}", prev)
            axes[f"hidden.{i}.bias"] = (f"h{i}",)
        axes["out.weight"] = (None, f"h{self.depth - 1}")
        axes["out.bias"] = (None,)
        return PermutationSpec(groups, axes)
