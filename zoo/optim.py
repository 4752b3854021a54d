"""Batched optimizers over a population's ``(P, N)`` weight matrix, one row per model.

Each row gets its own learning rate and weight decay; the update formulas are exactly those of
``torch.optim.SGD`` (momentum, L2 weight decay) and ``torch.optim.Adam`` (L2 weight decay), so a
population trains like P independent ``torch.optim`` runs, in a handful of kernel launches.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor


class PopulationOptimizer(ABC):
    def __init__(self, weights: Tensor, lr: Tensor, weight_decay: Tensor) -> None:
        self.w = weights  # (P, N), updated in place
        self.lr = lr.reshape(-1, 1).to(weights)  # (P, 1)
        self.wd = weight_decay.reshape(-1, 1).to(weights)  # (P, 1)
        self.steps = 0

    @torch.no_grad()
    def step(self, grad: Tensor, lr_factor: float, active: Tensor) -> None:
        """One update; ``active`` (P,) bool freezes the other rows (diverged models).

        Fused and in place: one (P, N) temporary per step (fresh large buffers cost page faults).
        """
        self.steps += 1
        g = torch.addcmul(grad, self.wd, self.w)  # grad + wd * w, as torch.optim's L2 decay
        delta = self._direction(g)  # (P, N)
        scale = self.lr * (-lr_factor) * active.reshape(-1, 1).to(self.w)  # (P, 1)
        self.w.addcmul_(scale, delta)

    @abstractmethod
    def _direction(self, g: Tensor) -> Tensor: ...


class SGD(PopulationOptimizer):
    def __init__(self, weights: Tensor, lr: Tensor, weight_decay: Tensor, momentum: float = 0.9):
        super().__init__(weights, lr, weight_decay)
        self.momentum = momentum
        self.buf: Tensor | None = None

    def _direction(self, g: Tensor) -> Tensor:
        if self.momentum == 0:
            return g
        if self.buf is None:
            self.buf = g.clone()
        else:
            self.buf.mul_(self.momentum).add_(g)
        return self.buf


class Adam(PopulationOptimizer):
    def __init__(
        self, weights: Tensor, lr: Tensor, weight_decay: Tensor,
        betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
    ) -> None:  # fmt: skip
        super().__init__(weights, lr, weight_decay)
        self.b1, self.b2, self.eps = betas[0], betas[1], eps
        self.m = torch.zeros_like(weights)
        self.v = torch.zeros_like(weights)

    def _direction(self, g: Tensor) -> Tensor:
        self.m.lerp_(g, 1 - self.b1)
        self.v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
        bc1 = 1 - self.b1**self.steps
        bc2 = 1 - self.b2**self.steps
        d = torch.sqrt(self.v, out=g).div_(math.sqrt(bc2)).add_(self.eps)  # g is ours: reuse it
        return torch.div(self.m, d, out=d).div_(bc1)


def lr_factor(schedule: str, step: int, total: int) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``total`` steps.

    constant: 1. cosine: 0.5 (1 + cos(pi step / total)). onecycle: linear warm-up from 1/25 to 1
    over the first 30% of steps, then cosine annealing to 0 (the shape used by the phase zoo).
    """
    frac = step / max(total, 1)
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * frac))
    if schedule == "onecycle":
        warm = 0.3
        if frac < warm:
            return 1 / 25 + (1 - 1 / 25) * frac / warm
        return 0.5 * (1 + math.cos(math.pi * (frac - warm) / (1 - warm)))
    raise ValueError(f"unknown schedule {schedule!r} (constant, cosine, onecycle)")


OPTIMIZERS = {"sgd": SGD, "adam": Adam}
