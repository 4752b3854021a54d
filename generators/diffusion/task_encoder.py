"""A task from a sample of its data: a Set-Transformer encoder of (x, y) examples.

Each example becomes one feature row: x flattened and standardized (zero-filled up to the widest
input of the generator's tasks), y one-hot (classification) or standardized (regression). An
MLP embeds every row, one self-attention block lets the examples see each other (SAB), and
attention pooling with a learned seed query (PMA) reduces the set to one vector. Attention over a
set does not depend on the order of its rows; to make that exact in floating point too, the
rows are first put in one canonical order (lexicographic on their features), so a permuted set
gives the same embedding bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn


class SetFeatures(nn.Module):
    """(x, y) examples -> (S, in_dim + out_dim) feature rows, in canonical order. Buffers:
    x_mean, x_std (in_dim,) and y_mean, y_std (0-d) standardize inputs and regression targets;
    ``classification``: y is a class label (one-hot over out_dim), else a value."""

    def __init__(self, in_dim: int, out_dim: int, classification: bool) -> None:
        super().__init__()
        self.in_dim, self.out_dim, self.classification = in_dim, out_dim, classification
        self.register_buffer("x_mean", torch.zeros(in_dim))
        self.register_buffer("x_std", torch.ones(in_dim))
        self.register_buffer("y_mean", torch.zeros(()))
        self.register_buffer("y_std", torch.ones(()))

    @property
    def dim(self) -> int:
        return self.in_dim + self.out_dim

    def fit(self, xs: list[Tensor], ys: list[Tensor]) -> None:
        """Standardization statistics from the training tasks' examples."""
        x = torch.cat([self.flat_x(v) for v in xs]).double()
        self.x_mean.copy_(x.mean(0).float())
        self.x_std.copy_(x.std(0, unbiased=False).clamp_min(1e-6).float())
        if not self.classification:
            y = torch.cat([v.reshape(len(v), -1)[:, 0] for v in ys]).double()
            self.y_mean.copy_(y.mean().float())
            self.y_std.copy_(y.std(unbiased=False).clamp_min(1e-6).float())

    def flat_x(self, x: Tensor) -> Tensor:
        """(S, *input_shape) -> (S, in_dim), zero-filled; a ValueError for a wider input."""
        flat = x.reshape(len(x), -1).float()
        if flat.shape[1] > self.in_dim:
            raise ValueError(
                f"task data has {flat.shape[1]} input values per example; this generator's "
                f"task encoder takes at most {self.in_dim}"
            )
        return nn.functional.pad(flat, (0, self.in_dim - flat.shape[1]))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(
                f"task data needs as many labels as inputs (at least one): {len(x)} x, {len(y)} y"
            )
        fx = (self.flat_x(x) - self.x_mean) / self.x_std
        if self.classification:
            labels = y.reshape(-1).long()
            if labels.min() < 0 or labels.max() >= self.out_dim:
                raise ValueError(
                    f"task data labels must be classes in [0, {self.out_dim}), got "
                    f"[{int(labels.min())}, {int(labels.max())}]"
                )
            fy = nn.functional.one_hot(labels, self.out_dim).float()
        else:
            value = (y.reshape(len(y), -1)[:, :1].float() - self.y_mean) / self.y_std
            fy = nn.functional.pad(value, (0, self.out_dim - 1))
        rows = torch.cat([fx, fy], dim=1)  # (S, F)
        order = np.lexsort(rows.detach().numpy().T[::-1])  # first column most significant
        return rows[torch.from_numpy(order.copy())]


class AttentionBlock(nn.Module):
    """Multi-head attention of queries over a set, plus a feed-forward layer (pre-norm)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm_q, self.norm_kv, self.norm_ff = (
            nn.LayerNorm(dim),
            nn.LayerNorm(dim),
            nn.LayerNorm(dim),
        )
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, q: Tensor, kv: Tensor) -> Tensor:
        kv = self.norm_kv(kv)
        h = q + self.attn(self.norm_q(q), kv, kv, need_weights=False)[0]
        return h + self.ff(self.norm_ff(h))


class TaskEncoder(nn.Module):
    """(x (S, *input_shape), y (S,)) -> (out,) embedding of the task, invariant to the order of
    the S examples."""

    def __init__(self, features: SetFeatures, hidden: int, heads: int, out: int) -> None:
        super().__init__()
        self.features = features
        self.embed = nn.Sequential(nn.Linear(features.dim, hidden), nn.GELU(),
                                   nn.Linear(hidden, hidden))  # fmt: skip
        self.sab = AttentionBlock(hidden, heads)  # examples attend to each other
        self.seed = nn.Parameter(torch.randn(1, 1, hidden) * 0.02)
        self.pma = AttentionBlock(hidden, heads)  # one seed query pools the set
        self.out = nn.Linear(hidden, out)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = self.embed(self.features(x, y)).unsqueeze(0)  # (1, S, hidden)
        h = self.sab(h, h)
        return self.out(self.pma(self.seed, h)[0, 0])  # (out,)
