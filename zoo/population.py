"""Population: models sharing one architecture/layout, as a ``(models, params)`` weight matrix.

The zoo hands these out (backed by the Zarr store, see :class:`zoo.store.StoredPopulation`) and
generators return them (in memory). Either way a population turns into standalone modules, one
vectorized ensemble, or an evaluation on a task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from zoo.architectures import Architecture
from zoo.layout import Layout
from zoo.tasks import TaskData, get_task
from zoo.training import evaluate


@dataclass
class Population:
    """In-memory population.

    arch: the shared architecture; final: (M, N) float32 weights; task: the task the models
    were trained (or generated) for; conditioning: per-model conditioning values, {name: (M,)}.
    """

    arch: Architecture
    final: Tensor
    task: str | None = None
    name: str = "population"
    conditioning: dict[str, Tensor] = field(default_factory=dict)

    @property
    def layout(self) -> Layout:
        return self.arch.layout

    def __len__(self) -> int:
        return len(self.weights())

    def weights(self, checkpoint: int = -1, canonical: bool = False) -> Tensor:
        """(M, N) float32 weights. In-memory populations hold one checkpoint."""
        if checkpoint not in (-1, 0) or canonical:
            raise ValueError("an in-memory population holds one set of weights (checkpoint=-1)")
        return self.final

    def model(self, i: int, checkpoint: int = -1, canonical: bool = False) -> nn.Module:
        """Model ``i`` as a standalone ``torch.nn.Module`` (eval mode)."""
        w = self.weights(checkpoint=checkpoint, canonical=canonical)
        if not 0 <= i < len(w):
            raise IndexError(f"model index {i} out of range for {len(w)} models")
        return self.arch.module(w[i])

    def to_modules(self, checkpoint: int = -1, canonical: bool = False) -> list[nn.Module]:
        w = self.weights(checkpoint=checkpoint, canonical=canonical)
        return [self.arch.module(row) for row in w]

    def ensemble(self, checkpoint: int = -1, canonical: bool = False) -> Callable[[Tensor], Tensor]:
        """One vectorized callable: x (B, ...) -> mean of the members' softmax probabilities (B, K)."""
        w = self.weights(checkpoint=checkpoint, canonical=canonical)
        arch = self.arch

        @torch.no_grad()
        def predict(x: Tensor) -> Tensor:
            return torch.softmax(arch.forward(w, x), dim=-1).mean(dim=0)

        return predict

    def evaluate(
        self, task: str | TaskData | None = None, split: str = "test",
        checkpoint: int = -1, canonical: bool = False,
    ) -> Tensor:  # fmt: skip
        """(M,) accuracy of each member on ``task``'s split (test loss for regression tasks)."""
        task = task if task is not None else self.task
        if task is None:
            raise ValueError("evaluate needs a task: this population has none recorded")
        data = get_task(task) if isinstance(task, str) else task
        loss, acc = evaluate(self.arch, data, self.weights(checkpoint, canonical), split)
        return acc if data.kind == "classification" else loss
