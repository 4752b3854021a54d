"""Small CNN for 8x8 / 28x28 / 32x32 images: 3x3 convolutions, global average pooling, linear head.

No BatchNorm on purpose: its running statistics break weight interpolation and permutation
alignment (Git Re-Basin's known trap), and functional population training stays stateless.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor, nn

from zoo.architectures.base import Architecture
from zoo.permutation import PermGroup, PermutationSpec


class CNNModule(nn.Module):
    def __init__(self, in_channels: int, channels: list[int], strides: list[int], classes: int):
        super().__init__()
        sizes = [in_channels, *channels]
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, 3, stride=s, padding=1)
            for a, b, s in zip(sizes[:-1], sizes[1:], strides, strict=True)
        )
        self.head = nn.Linear(channels[-1], classes)

    def forward(self, x: Tensor) -> Tensor:
        h = x
        for conv in self.convs:
            h = conv(h).relu()
        return self.head(h.mean(dim=(-2, -1)))  # global average pool


@dataclass(frozen=True)
class CNN(Architecture):
    """width: channels of the first conv; later convs have 2 * width channels, stride 2."""

    family: ClassVar[str] = "cnn"
    in_shape: tuple[int, ...] = (1, 8, 8)
    num_outputs: int = 10
    depth: int = 3

    def __post_init__(self) -> None:
        if self.width <= 0 or self.depth <= 0:
            raise ValueError(
                f"cnn width and depth must be positive, got {self.width}, {self.depth}"
            )
        if len(self.in_shape) != 3:
            raise ValueError(f"cnn needs (channels, height, width) inputs, got {self.in_shape}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.in_shape)

    @property
    def channels(self) -> list[int]:
        return [self.width] + [2 * self.width] * (self.depth - 1)

    def build(self) -> nn.Module:
        strides = [1] + [2] * (self.depth - 1)
        return CNNModule(self.in_shape[0], self.channels, strides, self.num_outputs)

    def permutation_spec(self) -> PermutationSpec:
        groups = {f"c{i}": PermGroup(f"c{i}", c) for i, c in enumerate(self.channels)}
        axes: dict[str, tuple[str | None, ...]] = {}
        for i in range(self.depth):
            prev = f"c{i - 1}" if i > 0 else None
            axes[f"convs.{i}.weight"] = (f"c{i}", prev, None, None)
            axes[f"convs.{i}.bias"] = (f"c{i}",)
        axes["head.weight"] = (None, f"c{self.depth - 1}")
        axes["head.bias"] = (None,)
        return PermutationSpec(groups, axes)
