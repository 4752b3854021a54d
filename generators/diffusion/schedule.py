"""diffusers' noise schedulers: DDPM for training, DDIM or DPM-Solver++ for few-step sampling.

Training noises clean latents x0 at a uniformly drawn timestep of ``DDPMScheduler`` (1,000
steps by default, D2NWG's linear betas) and regresses the velocity v = sqrt(abar) eps -
sqrt(1 - abar) x0 (v-prediction). With latents at unit std, v is uncorrelated with x_t, so an
untrained (zero) denoiser is already the best linear guess, and an error in v is an error of the
same size in the predicted x0 at every noise level; with epsilon prediction the same error at
the noisiest step is multiplied by 1 / sqrt(abar_T) (about 160 for linear betas), and a
denoiser trained for a few hundred steps on a few hundred nets sampled latents ~100x too large
(chance-level nets: p-diff's collapse). Sampling runs a fast scheduler built from the same betas,
for a chosen number of steps. diffusers is
imported on first use: it takes seconds to import, which every ``import generators`` would pay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

SAMPLERS = ("ddim", "dpm")
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")

ModelFn = Callable[[Tensor, Tensor], Tensor]  # (x_t (B, ...), t (B,) long) -> v (B, ...)
PREDICTION = "v_prediction"


def training_scheduler(timesteps: int, beta_schedule: str) -> DDPMScheduler:
    from diffusers import DDPMScheduler

    if beta_schedule not in BETA_SCHEDULES:
        raise ValueError(f"beta_schedule must be one of {', '.join(BETA_SCHEDULES)}")
    return DDPMScheduler(num_train_timesteps=timesteps, beta_schedule=beta_schedule,
                         prediction_type=PREDICTION, clip_sample=False)  # fmt: skip


def sampling_scheduler(
    train: DDPMScheduler, name: str
) -> DDIMScheduler | DPMSolverMultistepScheduler:
    """A fresh fast scheduler (they keep per-run state) with the training scheduler's betas."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    cfg = train.config
    common = dict(num_train_timesteps=cfg.num_train_timesteps, beta_schedule=cfg.beta_schedule,
                  prediction_type=PREDICTION)  # fmt: skip
    if name == "ddim":
        return DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=True)
    if name == "dpm":
        return DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=2)
    raise ValueError(f"unknown sampler {name!r} ({', '.join(SAMPLERS)})")


def diffusion_loss(
    model: ModelFn, x0: Tensor, mask: Tensor, train: DDPMScheduler, rng: torch.Generator
) -> Tensor:
    """Mean squared error of the predicted velocity on the real entries ``mask`` (broadcast to
    x0 (B, ...)), at timesteps drawn uniformly from the training schedule."""
    noise = torch.randn(x0.shape, generator=rng)
    t = torch.randint(train.config.num_train_timesteps, (len(x0),), generator=rng)
    xt = train.add_noise(x0, noise, t)
    target = train.get_velocity(x0, noise, t)
    mask = mask.expand_as(x0).float()
    return ((model(xt, t) - target).pow(2) * mask).sum() / mask.sum().clamp_min(1)


@torch.no_grad()
def denoise(
    model: ModelFn, x: Tensor, train: DDPMScheduler, sampler: str, steps: int,
    rng: torch.Generator | None = None, eta: float = 0.0,
) -> Tensor:  # fmt: skip
    """x0 from the pure noise x (B, ...) in ``steps`` steps of ``sampler`` (``eta``: DDIM's share
    of fresh noise per step, drawn from ``rng``; 0 is deterministic)."""
    if steps < 1:
        raise ValueError(f"sampling needs at least one step, got {steps}")
    sched = sampling_scheduler(train, sampler)
    sched.set_timesteps(steps)
    for t in sched.timesteps:
        e = model(x, t.expand(len(x)))
        if sampler == "ddim":
            x = sched.step(e, t, x, eta=eta, generator=rng).prev_sample
        else:
            x = sched.step(e, t, x).prev_sample
    return x
