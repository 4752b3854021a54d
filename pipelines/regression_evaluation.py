"""``zoo evaluate`` for a regression zoo (the sinusoids): generated against held-out real nets by
their test MSE, per (task, width) group and pooled, beside the held-out tasks' loss ratio.

The classification report (:mod:`pipelines.evaluate`) compares predicted classes (disagreement,
ensembles, novelty on the test split); a regressor has none, so its report is the loss ratio:
mean test MSE of generated nets / that of the group's held-out real nets (1 = as good; below 1,
better). Distances to the nearest training net are reported in weight space.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import Tensor

from generators import WeightDataset, WeightGenerator, sample
from zoo.architectures import Architecture
from zoo.tasks import TaskData
from zoo.training import task_loss

CHUNK = 256  # nets per forward pass


@torch.no_grad()
def split_losses(arch: Architecture, task: TaskData, w: Tensor) -> Tensor:
    """(M,) test MSE of the nets w (M, N), in chunks of ``CHUNK`` nets."""
    x, y = task.split("test")
    if len(w) == 0:
        return torch.zeros(0)
    return torch.cat([task_loss(task, arch.forward(w[a : a + CHUNK], x), y)
                      for a in range(0, len(w), CHUNK)])  # fmt: skip


def nearest_distance(w: Tensor, reference: Tensor) -> float:
    """Mean L2 distance of each net of w (M, N) to its nearest net of reference (R, N)."""
    if len(w) == 0 or len(reference) == 0:
        return float("nan")
    return float(torch.cdist(w.double(), reference.double()).min(dim=1).values.mean())


def regression_group(
    gen: WeightGenerator, ds: WeightDataset, g: int, n: int, seed: int, options: dict[str, Any],
    task: TaskData,
) -> dict[str, Any]:  # fmt: skip
    """One group's row: generated, held-out and training nets' mean test MSE, the loss ratio,
    and the distance to the nearest training net (generated, and held-out real for scale)."""
    grp = ds.groups[g]
    train_w, held_w = ds.group_weights(g, True), ds.group_weights(g, False)
    t0 = time.perf_counter()
    gen_w = sample(gen, n, task=grp.task, width=grp.width, seed=seed, **options).weights()
    seconds = (time.perf_counter() - t0) / n
    generated = float(split_losses(grp.arch, task, gen_w).mean())
    held = float(split_losses(grp.arch, task, held_w).mean()) if len(held_w) else float("nan")
    return {
        "group": grp.key, "task": grp.task, "width": grp.width, "train_models": len(train_w),
        "heldout_models": len(held_w), "generated_loss": generated, "heldout_loss": held,
        "train_loss": float(split_losses(grp.arch, task, train_w).mean()),
        "loss_ratio": generated / held if held > 0 else float("nan"),
        "generated_nn_distance": nearest_distance(gen_w, train_w),
        "heldout_nn_distance": nearest_distance(held_w, train_w), "seconds_per_net": seconds,
    }  # fmt: skip


def regression_summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Pooled over groups: mean generated and held-out test MSE (held-out weighted by their
    models) and their ratio."""
    gen = float(np.mean([r["generated_loss"] for r in rows]))
    held = [(r["heldout_loss"], r["heldout_models"]) for r in rows if r["heldout_models"]]
    n_held = sum(m for _, m in held)
    held_mean = sum(v * m for v, m in held) / n_held if n_held else float("nan")
    return {"generated_loss": gen, "heldout_loss": held_mean,
            "loss_ratio": gen / held_mean if held_mean > 0 else float("nan"),
            "seconds_per_net": float(np.mean([r["seconds_per_net"] for r in rows]))}  # fmt: skip
