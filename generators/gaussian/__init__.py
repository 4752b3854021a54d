"""The Gaussian baseline: a full-covariance Gaussian over each group's PCA codes."""

from generators.gaussian.config import GaussianConfig, GaussianModelConfig, GaussianSamplingConfig
from generators.gaussian.generator import GaussianGenerator, shrunk_covariance

__all__ = [
    "GaussianConfig", "GaussianModelConfig", "GaussianSamplingConfig", "GaussianGenerator",
    "shrunk_covariance",
]  # fmt: skip
