"""Conditioning encoder shared by generators: task, width and a scalar property -> one vector.

* task: a learned embedding per task of the training zoo, plus a learned "null" embedding used
  when the condition is dropped (classifier-free guidance);
* width: a learned embedding per width. Width is structural (it fixes which padded coordinates
  are real, see :mod:`generators.padding`), so it is never dropped;
* property: a scalar per model (standardized, e.g. validation accuracy) through a small MLP, with
  its own null embedding for models without a value and for guidance.

The three parts are summed into one (B, dim) vector.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Conditioner(nn.Module):
    """Embeds (task, width, property) ids/values into (B, dim); dropped parts use null tokens."""

    def __init__(self, num_tasks: int, num_widths: int, dim: int, use_property: bool) -> None:
        super().__init__()
        self.task = nn.Embedding(num_tasks + 1, dim)  # last row: null task
        self.width = nn.Embedding(num_widths, dim)
        self.use_property = use_property
        self.prop = nn.Sequential(nn.Linear(1, dim), nn.GELU(), nn.Linear(dim, dim))
        self.null_prop = nn.Parameter(torch.zeros(dim))
        self.num_tasks = num_tasks
        for emb in (self.task, self.width):
            nn.init.normal_(emb.weight, std=0.5)

    def forward(
        self, task: Tensor, width: Tensor, prop: Tensor, has_prop: Tensor, drop: Tensor
    ) -> Tensor:
        """task, width: (B,) long; prop: (B,) float; has_prop, drop: (B,) bool -> (B, dim).

        ``drop`` marks rows whose task and property are replaced by the null embeddings.
        """
        t = torch.where(drop, torch.full_like(task, self.num_tasks), task)
        out = self.task(t) + self.width(width)
        if self.use_property:
            keep = (has_prop & ~drop).unsqueeze(-1)
            out = out + torch.where(keep, self.prop(prop.unsqueeze(-1)), self.null_prop)
        return out
