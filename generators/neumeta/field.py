"""The implicit weight field: a residual MLP over encoded coordinates, read out by a latent code.

NeuMeta's field maps a weight's coordinates to its value. Ours is one trunk for every tensor of a
family (the tensor enters as a learned layer embedding, the task as a task embedding) whose last
layer is read out affinely by a per-model latent ``z``:

    weight(coord, z) = scale(tensor, width) * (basis(coord) . [z, 1])

so the trunk runs once per coordinate of a layout, whatever the number of nets drawn, and each
net costs one (K + 1)-long dot product per weight: 1,000 nets of a layout are one matmul.
``scale`` (:mod:`generators.neumeta.scale`) puts every tensor's weights on a unit scale, the
generalisation of NeuMeta's 1 / fan-in output scaling. ``codes`` holds the auto-decoder code of
every training model.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from generators.neumeta.config import NeuMetaModelConfig
from generators.neumeta.coordinates import encoded_dim

CODE_INIT_STD = 1.0
READOUT_INIT = 0.6  # initial nets: weights of about a third of the unit scale
GRID_INIT_STD = 1e-2


def grid_resolutions(finest: int) -> list[int]:
    """Grid sizes 8, 16, ... up to ``finest`` (at least one)."""
    levels = [8]
    while levels[-1] * 2 <= finest:
        levels.append(levels[-1] * 2)
    return levels


class ResidualBlock(nn.Module):
    """x + W2 silu(W1 LayerNorm(x)) (pre-norm, as NeuMeta's residual MLP)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, hidden)
        self.fc2 = nn.Linear(hidden, hidden)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fc2(F.silu(self.fc1(self.norm(x))))


class WeightField(nn.Module):
    """Coordinate trunk + affine latent readout + the training models' codes.

    vocab: number of distinct tensors (``family:name``) the field places; tasks: number of tasks;
    models: number of training models (one code each)."""

    def __init__(self, vocab: int, tasks: int, models: int, cfg: NeuMetaModelConfig) -> None:
        super().__init__()
        self.frequencies = cfg.frequencies
        self.layer = nn.Embedding(vocab, cfg.embed)
        self.task = nn.Embedding(tasks, cfg.embed)
        self.position = nn.Linear(encoded_dim(cfg.frequencies), cfg.hidden)
        self.context = nn.Linear(cfg.embed, cfg.hidden, bias=False)
        self.blocks = nn.ModuleList(ResidualBlock(cfg.hidden) for _ in range(cfg.blocks))
        self.norm = nn.LayerNorm(cfg.hidden)
        # multiresolution grids over (in, out) positions, one per tensor and resolution: bilinear
        # lookups that fit a rough table fast (an MLP on Fourier features alone fits it slowly)
        self.grids = nn.ParameterList(
            nn.Parameter(torch.randn(vocab, cfg.grid_channels, r, r) * GRID_INIT_STD)
            for r in grid_resolutions(cfg.grid_max)
        )
        self.grid = nn.Linear(cfg.grid_channels * len(self.grids), cfg.hidden, bias=False)
        self.readout = nn.Linear(cfg.hidden, cfg.latent + 1)
        self.codes = nn.Parameter(torch.randn(models, cfg.latent) * CODE_INIT_STD)
        std = READOUT_INIT / (cfg.hidden * (cfg.latent + 1)) ** 0.5
        nn.init.normal_(self.readout.weight, std=std)
        nn.init.zeros_(self.readout.bias)

    @property
    def latent(self) -> int:
        return self.codes.shape[1]

    def grid_features(self, u: Tensor, layer: Tensor) -> Tensor:
        """(R, C x levels) bilinear lookups of the (in, out) positions u (R, 2) in the grids of
        each row's tensor (layer (R,) vocabulary ids)."""
        out = u.new_empty(len(u), self.grid.in_features)
        pts = (2 * u - 1).flip(1)  # grid_sample's (x, y) = (in, out), in [-1, 1]
        for v in layer.unique().tolist():
            rows = torch.nonzero(layer == v).flatten()
            p = pts[rows].view(1, len(rows), 1, 2)
            looks = [F.grid_sample(g[v : v + 1], p, align_corners=False).view(g.shape[1], -1)
                     for g in self.grids]  # fmt: skip
            out[rows] = torch.cat(looks).T
        return out

    def basis(self, features: Tensor, u: Tensor, layer: Tensor, task: int) -> Tensor:
        """(R, K + 1) readout rows of R coordinates: features (R, encoded_dim) from
        :func:`generators.neumeta.coordinates.encode`, u (R, 2) their (in, out) positions,
        layer (R,) vocabulary ids, one task id. A net with code z has the (unscaled) weights
        ``basis @ [z, 1]``."""
        ctx = self.context(self.layer.weight + self.task.weight[task])  # (V, H): per tensor
        h = self.position(features) + self.grid(self.grid_features(u, layer)) + ctx[layer]
        for block in self.blocks:
            h = block(h)
        return self.readout(F.silu(self.norm(h)))  # (R, K + 1)


def with_one(codes: Tensor) -> Tensor:
    """(m, K) codes -> (m, K + 1) with a trailing 1 (the readout's offset column)."""
    return torch.cat([codes, codes.new_ones(len(codes), 1)], dim=1)
