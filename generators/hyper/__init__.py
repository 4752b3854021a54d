"""Hypernetwork generator: a task's conditioning -> the full weights of a target net, through a
chunked residual head, optionally with the magnitude-invariant parametrization (MIP)."""

from generators.hyper.config import (
    HyperConfig,
    HyperModelConfig,
    HyperObjectiveConfig,
    HyperSamplingConfig,
)
from generators.hyper.encoding import ParamScaler, TaskEncoder, mip_encode
from generators.hyper.generator import HyperGenerator
from generators.hyper.head import ChunkedHead, fan_in_scale
from generators.hyper.network import HyperNetwork

__all__ = [
    "HyperConfig", "HyperModelConfig", "HyperObjectiveConfig", "HyperSamplingConfig",
    "HyperGenerator", "HyperNetwork", "ChunkedHead", "fan_in_scale", "ParamScaler",
    "TaskEncoder", "mip_encode",
]  # fmt: skip
