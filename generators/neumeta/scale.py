"""Per-tensor output scale of the field as a power law of the width, fitted on the zoo.

NeuMeta multiplies the field's output by 1 / fan-in, the mean-field scaling that keeps a layer's
sum over its inputs the same at any width. Trained nets of a zoo follow their own law (nearer
1 / sqrt(fan-in) at small widths), so the exponent is fitted instead of fixed: per task and
tensor, ``log rms(w) = a + b log(width)`` (rms: the median over the models of each one's) by least squares over the zoo's widths (b = 0 with one
width). Dividing by it puts every tensor of every width on a unit scale for the field, and the
fitted law gives the scale of a width in no population.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

MIN_RMS = 1e-6


def fit_scale(points: dict[tuple[int, int], list[tuple[int, float]]], tasks: int,
              vocab: int) -> Tensor:  # fmt: skip
    """(tasks, vocab, 2) coefficients (a, b) from {(task, tensor): [(width, rms), ...]};
    tensors without points get (0, 0), a unit scale."""
    coef = torch.zeros(tasks, vocab, 2, dtype=torch.float64)
    for (t, v), pts in points.items():
        x = torch.tensor([math.log(w) for w, _ in pts], dtype=torch.float64)
        y = torch.tensor([math.log(max(r, MIN_RMS)) for _, r in pts], dtype=torch.float64)
        if len(set(x.tolist())) < 2:
            coef[t, v] = torch.tensor([float(y.mean()), 0.0])
            continue
        xm, ym = x.mean(), y.mean()
        b = ((x - xm) * (y - ym)).sum() / ((x - xm) ** 2).sum()
        coef[t, v] = torch.stack([ym - b * xm, b])
    return coef.float()


def scale_of(coef: Tensor, task: int, tensors: Tensor, width: int) -> Tensor:
    """(L,) the scale of the tensors (L,) vocabulary ids of ``task`` at ``width``."""
    a, b = coef[task, tensors].unbind(-1)
    return torch.exp(a + b * math.log(width))
