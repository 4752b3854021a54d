"""Config of the Gaussian baseline: the flow's per-group PCA codes, a shrunk Gaussian over them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from generators.config import GeneratorConfig


@dataclass
class GaussianModelConfig:
    """pca / pca_max_drop: the per-group principal components, chosen exactly as the flow's
    (:class:`generators.flow.FlowModelConfig`); shrinkage: the covariance is (1 - a) S + a x
    (mean variance) x I over a group's components, S the training codes' sample covariance
    (a in [0, 1]; with a dozen nets per group and up to 16 components, S alone is singular)."""

    pca: int = 16
    pca_max_drop: float | None = 0.075
    shrinkage: float = 0.1

    def __post_init__(self) -> None:
        if self.pca < 1:
            raise ValueError(f"model.pca must be >= 1, got {self.pca}")
        if not 0.0 <= self.shrinkage <= 1.0:
            raise ValueError(f"model.shrinkage must be in [0, 1], got {self.shrinkage}")


@dataclass
class GaussianSamplingConfig:
    """temperature: scale of the draws' spread around the group mean (1: the fitted Gaussian)."""

    temperature: float = 1.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            raise ValueError(f"sampling.temperature must be a finite number >= 0, got "
                             f"{self.temperature}")  # fmt: skip


@dataclass
class GaussianConfig(GeneratorConfig):
    kind: ClassVar[str] = "gaussian"
    model: GaussianModelConfig = field(default_factory=GaussianModelConfig)
    sampling: GaussianSamplingConfig = field(default_factory=GaussianSamplingConfig)
