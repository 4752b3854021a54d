"""The chunked head: one shared MLP emits a net's weights chunk by chunk, as a residual.

The padded weight vector (:mod:`generators.padding`, D coordinates) is cut into K = ceil(D / C)
chunks of C weights. Chunk k's output is ``head([c, e_k])`` with ``c`` the conditioning vector and
``e_k`` a learned chunk embedding, so one head of a fixed size serves nets of any size (HyperLight's
chunked hypernetwork; the cost grows with the number of chunks, not the head's size).

The output is a residual (Ortiz et al., 2024): ``theta = theta_0[width] + s[width] * delta``,
with ``theta_0`` a base net per width (the zoo's mean training net, or an ordinary
initialization) and ``s`` the fan-aware scale 1 / sqrt(fan_in) of each weight's parameter
tensor, so one unit of head output moves every layer by its own initialization scale. The output
layer is initialized so that delta has std ``delta_init`` (0: zero, the net starts at theta_0).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from zoo.layout import Layout


def fan_in_scale(layout: Layout) -> Tensor:
    """(N,) 1 / sqrt(fan_in) of each coordinate's parameter tensor, in layout order.

    fan_in of a tensor of rank >= 2 is the product of all but its first axis (a linear layer's
    inputs, a conv's in-channels x kernel); a 1-D tensor (a bias) takes that of the ``weight``
    of its own module, if that has rank >= 2, else 1 (norm gains and biases)."""
    parts = []
    for p in layout.params:
        shape = p.shape
        if len(shape) < 2:
            prefix = p.name.rpartition(".")[0]
            sibling = layout.by_name.get(f"{prefix}.weight" if prefix else "weight")
            shape = sibling.shape if sibling is not None and len(sibling.shape) >= 2 else (1, 1)
        fan = math.prod(shape[1:])
        parts.append(torch.full((p.size,), 1.0 / math.sqrt(fan)))
    return torch.cat(parts)


class ChunkedHead(nn.Module):
    """(B, cond_dim) conditioning + width ids -> (B, D) padded weights theta_0 + s * delta.

    theta0, scale: (W, D) base weights and fan-aware scales per width, zero on padding (buffers,
    saved with the network)."""

    def __init__(
        self, theta0: Tensor, scale: Tensor, cond_dim: int, hidden: int, chunk_size: int,
        chunk_dim: int, delta_init: float,
    ) -> None:  # fmt: skip
        super().__init__()
        self.dim = theta0.shape[1]
        self.chunk_size = chunk_size
        self.num_chunks = math.ceil(self.dim / chunk_size)
        self.register_buffer("theta0", theta0.clone())  # (W, D)
        self.register_buffer("scale", scale.clone())  # (W, D)
        self.chunks = nn.Parameter(torch.randn(self.num_chunks, chunk_dim))  # (K, E)
        self.cond_in = nn.Linear(cond_dim, hidden)
        self.chunk_in = nn.Linear(chunk_dim, hidden, bias=False)
        self.mid = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, chunk_size)
        nn.init.normal_(self.out.weight, std=delta_init / math.sqrt(hidden))
        nn.init.zeros_(self.out.bias)

    def delta(self, cond: Tensor) -> Tensor:
        """(B, cond_dim) -> (B, D) the head's raw output, chunk by chunk, before scaling."""
        # first layer split in two: (B, 1, H) + (1, K, H) instead of B x K concatenations
        h = self.cond_in(cond).unsqueeze(1) + self.chunk_in(self.chunks).unsqueeze(0)  # (B, K, H)
        h = self.mid(nn.functional.gelu(h))
        out = self.out(nn.functional.gelu(h))  # (B, K, C)
        return out.flatten(1)[:, : self.dim]  # (B, D)

    def forward(self, cond: Tensor, width: Tensor) -> Tensor:
        """cond (B, cond_dim), width (B,) long ids -> (B, D) padded weights."""
        return self.theta0[width] + self.scale[width] * self.delta(cond)
