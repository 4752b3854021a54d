"""Small pre-LayerNorm Transformer encoder over token sequences, classifying from the last token.

Attention has separate q, k, v, o projections so that the permutation spec can name the
head-structured symmetries TransFusion uses: within a head, q/k dims move together and v/o dims
move together; whole heads move as units (the same head order for q/k and v/o).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from zoo.architectures.base import Architecture
from zoo.permutation import GroupKind, PermGroup, PermutationSpec


class Attention(nn.Module):
    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model, bias=False)  # a key bias only adds a per-query
        # constant to the scores, which softmax cancels: its gradient is exactly zero
        self.v = nn.Linear(d_model, d_model)
        self.o = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor) -> Tensor:
        *lead, t, d = x.shape
        hd = d // self.heads

        def split(z: Tensor) -> Tensor:  # (..., T, D) -> (..., H, T, hd)
            return z.reshape(*lead, t, self.heads, hd).transpose(-3, -2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        att = torch.softmax(q @ k.transpose(-1, -2) / hd**0.5, dim=-1)  # (..., H, T, T)
        y = (att @ v).transpose(-3, -2).reshape(*lead, t, d)
        return self.o(y)


class Block(nn.Module):
    def __init__(self, d_model: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = Attention(d_model, heads)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, hidden)
        self.fc2 = nn.Linear(hidden, d_model)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.ln2(x))))


class TransformerModule(nn.Module):
    def __init__(
        self, vocab: int, seq_len: int, d: int, heads: int, layers: int, hidden: int, classes: int
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(seq_len, d) * 0.02)
        self.blocks = nn.ModuleList(Block(d, heads, hidden) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.embed(tokens.long()) + self.pos
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x[..., -1, :]))


@dataclass(frozen=True)
class Transformer(Architecture):
    """width: d_model (must be divisible by heads); the MLP has mlp_ratio * width hidden units."""

    family: ClassVar[str] = "transformer"
    vocab: int = 97
    seq_len: int = 3
    num_outputs: int = 97
    heads: int = 4
    layers: int = 1
    mlp_ratio: int = 2

    def __post_init__(self) -> None:
        if self.width <= 0 or self.layers <= 0 or self.heads <= 0:
            raise ValueError(f"transformer width, layers, heads must be positive, got {self.width}")
        if self.width % self.heads:
            raise ValueError(
                f"transformer width {self.width} is not divisible by heads {self.heads}"
            )

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.seq_len,)

    @property
    def input_dtype(self) -> torch.dtype:
        return torch.long

    def build(self) -> nn.Module:
        return TransformerModule(
            self.vocab, self.seq_len, self.width, self.heads, self.layers,
            self.mlp_ratio * self.width, self.num_outputs,
        )  # fmt: skip

    def permutation_spec(self) -> PermutationSpec:
        d, r = self.width, "residual"
        groups = {r: PermGroup(r, d, GroupKind.RESIDUAL)}
        axes: dict[str, tuple[str | None, ...]] = {"embed.weight": (None, r), "pos": (None, r)}
        for i in range(self.layers):
            b, qk, vo, mlp = f"blocks.{i}", f"b{i}.qk", f"b{i}.vo", f"b{i}.mlp"
            groups[qk] = PermGroup(qk, d, GroupKind.ATTENTION_QK, self.heads, partner=vo)
            groups[vo] = PermGroup(vo, d, GroupKind.ATTENTION_VO, self.heads, partner=qk)
            groups[mlp] = PermGroup(mlp, self.mlp_ratio * d)
            for ln in ("ln1", "ln2"):
                axes[f"{b}.{ln}.weight"] = (r,)
                axes[f"{b}.{ln}.bias"] = (r,)
            for proj, g in (("q", qk), ("k", qk), ("v", vo)):
                axes[f"{b}.attn.{proj}.weight"] = (g, r)
            axes[f"{b}.attn.q.bias"] = (qk,)
            axes[f"{b}.attn.v.bias"] = (vo,)
            axes[f"{b}.attn.o.weight"] = (r, vo)
            axes[f"{b}.attn.o.bias"] = (r,)
            axes[f"{b}.fc1.weight"] = (mlp, r)
            axes[f"{b}.fc1.bias"] = (mlp,)
            axes[f"{b}.fc2.weight"] = (r, mlp)
            axes[f"{b}.fc2.bias"] = (r,)
        axes["ln_f.weight"] = (r,)
        axes["ln_f.bias"] = (r,)
        axes["head.weight"] = (None, r)
        axes["head.bias"] = (None,)
        return PermutationSpec(groups, axes)
