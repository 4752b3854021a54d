"""Multi-layer perceptron: ``depth`` hidden layers of ``width`` units with ReLU."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
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

    def forward_params(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        """Batched forward of P MLPs as explicit batched matmuls, in a feature-major layout.

        Same function as the generic ``vmap(functional_call)``, but activations are kept as
        (P, features, B), so every layer is one ``baddbmm(b, W, h)`` and autograd returns each
        weight's gradient as a contiguous (P, out, in) product (the generic path yields a
        transposed one that the optimizer would have to copy), and the bias add is fused.
        """
        return self.forward_from_response(self.input_response(params, x), params)

    @property
    def input_layer(self) -> tuple[str, ...]:
        return ("hidden.0.weight", "hidden.0.bias")

    def input_response(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        """(P, width, B) the first hidden layer's pre-activation W x + b, feature-major; x is
        (B, *in_shape) shared by the P models, or (P, B, *in_shape)."""
        n_in = math.prod(self.in_shape)
        w, b = params["hidden.0.weight"], params["hidden.0.bias"]
        if x.dim() == len(self.in_shape) + 1:  # (B, *in_shape) -> (P, in, B), a broadcast view
            h = x.reshape(x.shape[0], n_in).T.expand(w.shape[0], n_in, x.shape[0])
        else:  # (P, B, *in_shape) -> (P, in, B)
            h = x.reshape(x.shape[0], x.shape[1], n_in).transpose(1, 2)
        return torch.baddbmm(b.unsqueeze(-1), w, h)

    def forward_from_response(self, response: Tensor, params: dict[str, Tensor]) -> Tensor:
        h = response.relu_()  # (P, width, B), in place
        for i in range(1, self.depth):
            w, b = params[f"hidden.{i}.weight"], params[f"hidden.{i}.bias"]
            h = torch.baddbmm(b.unsqueeze(-1), w, h).relu_()  # (P, width, B), in place
        out = torch.baddbmm(params["out.bias"].unsqueeze(-1), params["out.weight"], h)
        return out.transpose(1, 2)  # (P, B, outputs)

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
