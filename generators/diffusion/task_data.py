"""Where the task encoder's examples come from: a task's training split, or data given directly."""

from __future__ import annotations

import torch
from torch import Tensor

from generators.diffusion.task_encoder import SetFeatures
from zoo.tasks import TaskData


def draw_examples(x: Tensor, y: Tensor, k: int, rng: torch.Generator) -> tuple[Tensor, Tensor]:
    """``k`` of the (x, y) pairs (all of them when there are no more), drawn without
    replacement."""
    if len(x) <= k:
        return x, y
    pick = torch.randperm(len(x), generator=rng)[:k]
    return x[pick], y[pick]


def encoder_features(tasks: list[TaskData]) -> SetFeatures:
    """Feature rows for these tasks' examples: inputs zero-filled to the widest, one-hot labels
    over the most classes (or one regression value), standardized by their training splits."""
    kinds = {t.kind for t in tasks}
    if len(kinds) != 1:
        raise ValueError("a diffusion generator's tasks must all be classification or regression")
    classification = kinds == {"classification"}
    in_dim = max(int(t.x_train[0].numel()) for t in tasks)
    out_dim = max(t.num_outputs for t in tasks) if classification else 1
    features = SetFeatures(in_dim, out_dim, classification)
    features.fit([t.x_train for t in tasks], [t.y_train for t in tasks])
    return features


def check_task_data(task_data: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """(x (S, *input_shape), y (S,)) as tensors, or a ValueError naming what is wrong."""
    if not isinstance(task_data, tuple | list) or len(task_data) != 2:
        raise ValueError("task_data must be a pair (x, y) of tensors")
    x, y = (torch.as_tensor(v) for v in task_data)
    if x.dim() < 2 or len(x) != len(y) or len(x) == 0:
        raise ValueError(
            f"task_data must be x (S, *input_shape) and y (S,) with S >= 1, got shapes "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    return x.float(), y
