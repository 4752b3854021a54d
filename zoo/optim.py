"""Batched optimizers over a population's ``(P, N)`` weight matrix, one row per model.

Each row gets its own learning rate and weight decay; the update formulas are exactly those of
``torch.optim.SGD`` (momentum, L2 weight decay) and ``torch.optim.Adam`` (L2 weight decay), so a
population trains like P independent ``torch.optim`` runs, in a handful of kernel launches.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor

from zoo.optim_kernels import adam_step, sgd_step


class PopulationOptimizer(ABC):
    """Updates a ``(P, N)`` weight matrix in place, row p with its own lr and weight decay.

    ``fused`` runs the compiled one-pass kernels of :mod:`zoo.optim_kernels` on each
    parameter's slice, reading that parameter's gradient where autograd left it; otherwise the
    update is a few torch ops on the flat matrix. Both follow ``torch.optim``'s formulas. The
    default (None) fuses float32 CPU matrices of at least ``FUSED_MIN_ELEMENTS`` entries: below
    that, per-call overhead outweighs the memory traffic saved (64 MLPs of width 32: 8% slower).
    """

    FUSED_MIN_ELEMENTS = 1 << 20

    def __init__(
        self, weights: Tensor, lr: Tensor, weight_decay: Tensor, fused: bool | None = None
    ) -> None:
        self.w = weights  # (P, N), updated in place
        self.lr = lr.reshape(-1).to(weights)  # (P,)
        self.wd = weight_decay.reshape(-1).to(weights).contiguous()  # (P,)
        fusable = weights.device.type == "cpu" and weights.dtype == torch.float32
        if fused is None:
            fused = fusable and weights.numel() >= self.FUSED_MIN_ELEMENTS
        self.fused = fused
        if self.fused and not fusable:
            raise ValueError("fused population optimizers need float32 CPU weights")
        self.steps = 0

    @torch.no_grad()
    def step(self, grad: Tensor | Sequence[Tensor], lr_factor: float, active: Tensor) -> None:
        """One update; ``active`` (P,) bool freezes the other rows (diverged models).

        ``grad``: (P, N), or the gradients of consecutive slices of the flat rows in order, each
        (P, *shape) (one per parameter of the layout: no gather into one matrix needed)."""
        self.steps += 1
        parts = [grad] if isinstance(grad, Tensor) else list(grad)
        scale = (self.lr * (-lr_factor) * active.to(self.w)).contiguous()  # (P,)
        if not self.fused:
            g = parts[0] if len(parts) == 1 else torch.cat([q.flatten(1) for q in parts], dim=1)
            g = torch.addcmul(g, self.wd[:, None], self.w)  # grad + wd * w: torch.optim's L2
            self.w.addcmul_(scale[:, None], self._direction(g))  # (P, N)
            return
        covered = sum(q[0].numel() for q in parts)
        if covered != self.w.shape[1]:
            raise ValueError(f"gradients cover {covered} of {self.w.shape[1]} parameters per row")
        start = 0
        act = active.to(device="cpu", dtype=torch.bool).contiguous()
        for part in parts:
            q = part.reshape(len(self.w), -1)  # (P, n) this slice's gradient
            cols = slice(start, start + q.shape[1])
            self._fused_step(cols, q.contiguous(), scale, act)
            start = cols.stop

    @abstractmethod
    def _direction(self, g: Tensor) -> Tensor:
        """(P, N) decayed gradient -> (P, N) update direction (torch ops; may update state)."""

    @abstractmethod
    def _fused_step(self, cols: slice, grad: Tensor, scale: Tensor, active: Tensor) -> None:
        """Update the columns ``cols`` of every row from their gradient (P, n), in one pass."""


class SGD(PopulationOptimizer):
    def __init__(
        self, weights: Tensor, lr: Tensor, weight_decay: Tensor, momentum: float = 0.9,
        fused: bool | None = None,
    ) -> None:  # fmt: skip
        super().__init__(weights, lr, weight_decay, fused)
        self.momentum = momentum
        # zeros: buf = 0.9 * 0 + g equals torch.optim's first-step copy of g exactly
        self.buf = torch.zeros_like(weights) if momentum != 0 else None

    def _direction(self, g: Tensor) -> Tensor:
        if self.buf is None:
            return g
        return self.buf.mul_(self.momentum).add_(g)

    def _fused_step(self, cols: slice, grad: Tensor, scale: Tensor, active: Tensor) -> None:
        buf = None if self.buf is None else self.buf[:, cols]
        sgd_step(self.w[:, cols], grad, buf, self.wd, scale, self.momentum, active)


class Adam(PopulationOptimizer):
    def __init__(
        self, weights: Tensor, lr: Tensor, weight_decay: Tensor,
        betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, fused: bool | None = None,
    ) -> None:  # fmt: skip
        super().__init__(weights, lr, weight_decay, fused)
        self.b1, self.b2, self.eps = betas[0], betas[1], eps
        self.m = torch.zeros_like(weights)
        self.v = torch.zeros_like(weights)

    def _direction(self, g: Tensor) -> Tensor:
        self.m.lerp_(g, 1 - self.b1)
        self.v.mul_(self.b2).addcmul_(g, g, value=1 - self.b2)
        bc1, bc2 = self._corrections()
        d = torch.sqrt(self.v, out=g).div_(math.sqrt(bc2)).add_(self.eps)  # g is ours: reuse it
        return torch.div(self.m, d, out=d).div_(bc1)

    def _fused_step(self, cols: slice, grad: Tensor, scale: Tensor, active: Tensor) -> None:
        bc1, bc2 = self._corrections()
        adam_step(self.w[:, cols], grad, self.m[:, cols], self.v[:, cols], self.wd, scale,
                  (self.b1, self.b2), self.eps, bc1, bc2, active)  # fmt: skip

    def _corrections(self) -> tuple[float, float]:
        """Bias corrections 1 - beta^t of the first and second moments at this step."""
        return 1 - self.b1**self.steps, 1 - self.b2**self.steps


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
