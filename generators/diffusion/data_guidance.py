"""Guidance from a task's data: pull each denoising step's predicted net toward a lower loss on
the (x, y) examples the sample is conditioned on.

The task embedding tells the denoiser *which* task; for a task the zoo never trained on, read from
100 examples against a dozen training tasks, that is a coarse hint. The same examples can also be
used as a differentiable objective, as in loss-guided diffusion ("universal guidance"): at every
sampler step the predicted clean latents x0 = sqrt(abar) x_t - sqrt(1 - abar) v are decoded to
weights (autoencoder decoder, de-standardization), run on the examples by the architecture's
functional forward, and moved ``steps`` times against the gradient of the task loss, each move
``scale`` latent standard deviations long (the gradient normalized per net, so the step size does
not depend on the loss's units); the velocity is then recomputed from the moved x0. ``scale = 0``
is plain sampling. It costs ``steps`` forward and backward passes per sampler step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from zoo.architectures import Architecture
from zoo.training import kind_loss

Decode = Callable[[Tensor], Tensor]  # latents (n, T, l) -> weights (n, N) of the architecture


@dataclass(frozen=True)
class DataGuidance:
    """The examples x (S, ...), y (S,) and the architecture whose nets are being sampled;
    ``scale``: length of each move in latent std; ``steps``: moves per sampler step."""

    arch: Architecture
    x: Tensor
    y: Tensor
    scale: float
    steps: int

    def __post_init__(self) -> None:
        if not self.scale >= 0 or self.steps < 1:
            raise ValueError(
                f"data guidance needs scale >= 0 and steps >= 1, got {self.scale}, {self.steps}"
            )

    @property
    def kind(self) -> str:
        return "regression" if torch.is_floating_point(self.y) else "classification"

    def loss(self, weights: Tensor) -> Tensor:
        """(n, N) weights -> (n,) mean loss of every net on the examples."""
        return kind_loss(self.kind, self.arch.forward(weights, self.x), self.y)

    def move(self, x0: Tensor, decode: Decode, mask: Tensor) -> Tensor:
        """x0 (n, T, l) predicted clean latents -> the latents after ``steps`` normalized
        gradient steps on the loss of ``decode(x0)``; ``mask`` (T, 1) keeps padding tokens 0."""
        if self.scale == 0:
            return x0
        z = x0.detach()
        real = mask.sum() * x0.shape[-1]
        for _ in range(self.steps):
            with torch.enable_grad():
                z = z.requires_grad_(True)
                (grad,) = torch.autograd.grad(self.loss(decode(z)).sum(), z)
            grad = grad * mask
            rms = (grad.pow(2).flatten(1).sum(1) / real).sqrt().clamp_min(1e-12)  # (n,)
            z = (z - self.scale * grad / rms.reshape(-1, 1, 1)).detach()
        return z
