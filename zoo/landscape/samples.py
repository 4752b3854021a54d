"""The fixed training batches on which landscape metrics are measured.

Yang et al. 2021 measure Hessian metrics on a fixed set of training batches (10 batches of 64).
We default to 10 batches of 32 (320 samples): the Hessian cost is linear in the samples, and
half of Yang's set keeps the landscape stage under half the build time of the default zoo.
Every model of a zoo sees the same batches, drawn once from a seed, so metrics of different
models (and of a resumed run) are comparable and reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from zoo.tasks import TaskData

N_BATCHES = 10
BATCH_SIZE = 32
SAMPLE_SEED = 0


@dataclass(frozen=True)
class FixedBatches:
    """x: (n_batches, batch, *input_shape); y: (n_batches, batch[, outputs]). Equal-size batches,
    so the mean of the per-batch mean losses is the mean loss over all their samples."""

    x: Tensor
    y: Tensor

    @property
    def num_samples(self) -> int:
        return self.x.shape[0] * self.x.shape[1]

    def flat(self) -> tuple[Tensor, Tensor]:
        """All samples as one batch: x (S, *input_shape), y (S[, outputs])."""
        return self.x.flatten(0, 1), self.y.flatten(0, 1)


def fixed_batches(
    task: TaskData,
    n_batches: int = N_BATCHES,
    batch_size: int = BATCH_SIZE,
    seed: int = SAMPLE_SEED,
    split: str = "train",
) -> FixedBatches:
    """``n_batches`` disjoint batches of ``batch_size`` drawn without replacement from ``split``.

    When the split is smaller than ``n_batches * batch_size``, the batch count shrinks (at least
    one batch, of at most the split's size).
    """
    if n_batches < 1 or batch_size < 1:
        raise ValueError(f"need n_batches >= 1 and batch_size >= 1, got {n_batches}, {batch_size}")
    x, y = task.split(split)
    if len(x) == 0:
        raise ValueError(f"task {task.name!r} has an empty {split} split")
    batch_size = min(batch_size, len(x))
    n_batches = min(n_batches, len(x) // batch_size)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    idx = order[: n_batches * batch_size].reshape(n_batches, batch_size)
    return FixedBatches(x[idx], y[idx])
