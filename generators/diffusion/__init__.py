"""Latent diffusion over weight tokens (D2NWG-style) on diffusers, conditioned on a task's data."""

from generators.diffusion.autoencoder import WeightAutoencoder, latent_scale, train_autoencoder
from generators.diffusion.config import (
    AutoencoderConfig,
    DenoiserConfig,
    DiffusionConfig,
    DiffusionSamplingConfig,
    TaskEncoderConfig,
)
from generators.diffusion.denoiser import Conditioning, Denoiser
from generators.diffusion.generator import DiffusionGenerator
from generators.diffusion.schedule import SAMPLERS, denoise, diffusion_loss, training_scheduler
from generators.diffusion.task_encoder import SetFeatures, TaskEncoder
from generators.diffusion.tokens import TokenLayout, chunk_size

__all__ = [
    "AutoencoderConfig", "DenoiserConfig", "DiffusionConfig", "DiffusionSamplingConfig",
    "TaskEncoderConfig", "DiffusionGenerator", "WeightAutoencoder", "latent_scale",
    "train_autoencoder", "Conditioning", "Denoiser", "SAMPLERS", "denoise", "diffusion_loss",
    "training_scheduler", "SetFeatures", "TaskEncoder", "TokenLayout", "chunk_size",
]  # fmt: skip
