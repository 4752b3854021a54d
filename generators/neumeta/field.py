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

CODE_INIT_STD = 0.1
READOUT_INIT_STD = 1e-3


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
        self.readout = nn.Linear(cfg.hidden, cfg.latent + 1)
        self.codes = nn.Parameter(torch.randn(models, cfg.latent) * CODE_INIT_STD)
        nn.init.normal_(self.readout.weight, std=READOUT_INIT_STD)  # nets start near zero: a
        nn.init.zeros_(self.readout.bias)  # smooth field's weights add up coherently

    @property
    def latent(self) -> int:
        return self.codes.shape[1]

    def basis(self, features: Tensor, layer: Tensor, task: int) -> Tensor:
        """(R, K + 1) readout rows of R coordinates: features (R, encoded_dim) from
        :func:`generators.neumeta.coordinates.encode`, layer (R,) vocabulary ids, one task id.
        A net with code z has the (unscaled) weights ``basis @ [z, 1]``."""
        ctx = self.context(self.layer.weight + self.task.weight[task])  # (V, H): per tensor
        h = self.position(features) + ctx[layer]  # (R, H)
        for block in self.blocks:
            h = block(h)
        return self.readout(F.silu(self.norm(h)))  # (R, K + 1)


def with_one(codes: Tensor) -> Tensor:
    """(m, K) codes -> (m, K + 1) with a trailing 1 (the readout's offset column)."""
    return torch.cat([codes, codes.new_ones(len(codes), 1)], dim=1)
