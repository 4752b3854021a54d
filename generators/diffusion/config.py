"""Config of the latent-diffusion generator: autoencoder, task encoder, denoiser, sampling."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from generators.config import GeneratorConfig
from generators.diffusion.schedule import BETA_SCHEDULES, SAMPLERS


@dataclass
class AutoencoderConfig:
    """The first stage, trained before the denoiser (in ``prepare``, its own seeded draws).

    max_tokens: the chunk size is the smallest power of two that cuts the padded weight vector
    into at most this many chunks (each layer cut on its own, so a few more tokens in all);
    compression: values per latent value (latent per token = chunk size / compression, at
    least 1); hidden: width of the per-token layers; steps, batch_size, learning_rate: its
    training; kl_weight: weight of the KL term against the L1 reconstruction (D2NWG: 1e-6).
    """

    max_tokens: int = 16
    compression: int = 32
    hidden: int = 128
    steps: int = 100
    batch_size: int = 32
    learning_rate: float = 3e-4
    kl_weight: float = 1e-6

    def __post_init__(self) -> None:
        for name in ("max_tokens", "compression", "hidden", "steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"autoencoder.{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0 or self.kl_weight < 0:
            raise ValueError("autoencoder.learning_rate must be > 0 and kl_weight >= 0")


@dataclass
class TaskEncoderConfig:
    """examples: (x, y) pairs of a task the encoder reads (drawn from its training split for a
    task of the zoo); hidden, heads: its attention blocks; contrastive_weight: weight of the
    CLIP-style loss aligning task embeddings with the nets' latents (used when a batch holds
    two tasks or more); contrastive_temperature: its logit temperature."""

    examples: int = 100
    hidden: int = 64
    heads: int = 4
    contrastive_weight: float = 0.1
    contrastive_temperature: float = 0.1

    def __post_init__(self) -> None:
        if self.examples < 1 or self.hidden < 1 or self.heads < 1 or self.hidden % self.heads:
            raise ValueError(
                "task_encoder.examples, hidden, heads must be >= 1, hidden % heads == 0"
            )
        if self.contrastive_weight < 0 or self.contrastive_temperature <= 0:
            raise ValueError("task_encoder.contrastive_weight >= 0, contrastive_temperature > 0")


@dataclass
class DenoiserConfig:
    """dim, depth, heads: the transformer over latent tokens; timesteps, beta_schedule: the DDPM
    training schedule; cfg_dropout: share of training rows whose task and property are dropped
    (classifier-free guidance)."""

    dim: int = 64
    depth: int = 2
    heads: int = 4
    timesteps: int = 1000
    beta_schedule: str = "linear"
    cfg_dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.dim < 2 or self.depth < 1 or self.heads < 1 or self.dim % self.heads:
            raise ValueError("denoiser.dim >= 2, depth >= 1, heads >= 1, dim % heads == 0")
        if self.timesteps < 2:
            raise ValueError(f"denoiser.timesteps must be >= 2, got {self.timesteps}")
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(f"denoiser.beta_schedule must be one of {', '.join(BETA_SCHEDULES)}")
        if not 0 <= self.cfg_dropout < 1:
            raise ValueError(f"denoiser.cfg_dropout must be in [0, 1), got {self.cfg_dropout}")


@dataclass
class DiffusionSamplingConfig:
    """Sampling defaults, each overridable per ``sample`` call: sampler (``dpm``: DPM-Solver++
    2nd order, ``ddim``) and its steps; guidance: classifier-free guidance weight (1: plain
    conditional; other values cost a second denoiser pass per step); temperature: scale of the
    starting noise; eta: DDIM's fresh noise per step (0: deterministic); project: put each draw
    on the span of its width's training latents (:mod:`generators.diffusion.span`);
    project_steps: also project the denoiser's predicted clean latents at every step (the
    trajectory stays on the span; needs ``project``); data_guidance, data_guidance_steps: moves
    of every step's predicted net against the loss on the task's (x, y) examples, each that many
    latent std long, that many per step (0: off; :mod:`generators.diffusion.data_guidance`)."""

    sampler: str = "dpm"
    steps: int = 10
    guidance: float = 1.0
    temperature: float = 1.0
    eta: float = 0.0
    project: bool = True
    project_steps: bool = False
    data_guidance: float = 0.0
    data_guidance_steps: int = 1

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampling.sampler must be one of {', '.join(SAMPLERS)}")
        if self.steps < 1:
            raise ValueError(f"sampling.steps must be >= 1, got {self.steps}")
        if self.temperature < 0 or self.eta < 0 or self.data_guidance < 0:
            raise ValueError("sampling.temperature, eta and data_guidance must be >= 0")
        if self.data_guidance_steps < 1:
            raise ValueError(
                f"sampling.data_guidance_steps must be >= 1, got {self.data_guidance_steps}"
            )


@dataclass
class DiffusionConfig(GeneratorConfig):
    kind: ClassVar[str] = "diffusion"
    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    task_encoder: TaskEncoderConfig = field(default_factory=TaskEncoderConfig)
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    sampling: DiffusionSamplingConfig = field(default_factory=DiffusionSamplingConfig)
