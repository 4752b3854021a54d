"""Config of the hypernetwork generator: conditioning, chunked head, objective, sampling."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from generators.config import GeneratorConfig

CONDITIONINGS = ("auto", "params", "embedding")
THETA0 = ("mean", "init")


@dataclass
class HyperModelConfig:
    """The hypernetwork.

    conditioning: what tells tasks apart: ``params`` (the task's parameters, e.g. a sinusoid's
    amplitude and phase, scaled to [0, 1] over the training tasks: held-out tasks work),
    ``embedding`` (a learned vector per training task: seen tasks only, for tasks without
    parameters), ``auto`` (params where every training task has them, else embedding);
    mip: the magnitude-invariant parametrization of Ortiz et al. (2024): every scalar input z in
    [0, 1] enters as [cos(pi z / 2), sin(pi z / 2)], so the input norm is constant;
    cond_dim / hidden: widths of the conditioning encoder and of the shared head;
    chunk_size: weights the head emits per chunk; chunk_dim: size of each chunk's learned
    embedding; noise_dim: the noise input (uniform in [0, 1]) that makes draws differ (0: one
    net per task); theta0: the residual's base, per width: ``mean`` (the mean of the zoo's
    training weights of that width, canonical by default) or ``init`` (an ordinary PyTorch
    initialization, seed 0); delta_init: std of the residual at initialization in units of each
    parameter's fan-in scale 1/sqrt(fan_in) (0: the generated weights start at theta0 exactly).
    """

    conditioning: str = "auto"
    mip: bool = False
    cond_dim: int = 128
    hidden: int = 256
    chunk_size: int = 128
    chunk_dim: int = 32
    noise_dim: int = 4
    theta0: str = "mean"
    delta_init: float = 0.0

    def __post_init__(self) -> None:
        if self.conditioning not in CONDITIONINGS:
            raise ValueError(f"model.conditioning must be one of {', '.join(CONDITIONINGS)}")
        if self.theta0 not in THETA0:
            raise ValueError(f"model.theta0 must be one of {', '.join(THETA0)}")
        for name in ("cond_dim", "hidden", "chunk_size", "chunk_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.noise_dim < 0:
            raise ValueError(f"model.noise_dim must be >= 0, got {self.noise_dim}")
        if self.delta_init < 0:
            raise ValueError(f"model.delta_init must be >= 0, got {self.delta_init}")


@dataclass
class HyperObjectiveConfig:
    """The training loss: the target task's loss of the generated nets on ``examples`` training
    examples per net and step, plus ``recon_weight`` x the mean squared distance (in the zoo's
    per-coordinate normalized units) to the training row's own weights (0: off)."""

    examples: int = 64
    recon_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.examples < 1:
            raise ValueError(f"objective.examples must be >= 1, got {self.examples}")
        if self.recon_weight < 0:
            raise ValueError(f"objective.recon_weight must be >= 0, got {self.recon_weight}")


@dataclass
class HyperSamplingConfig:
    """Sampling defaults. temperature: spread of the noise input around its centre 0.5 (1: the
    training distribution U[0, 1]; 0: every draw for a task is the same net; above 1 reaches
    noise values training never saw)."""

    temperature: float = 1.0

    def __post_init__(self) -> None:
        if not (0.0 <= self.temperature < float("inf")):
            raise ValueError(f"sampling.temperature must be >= 0, got {self.temperature}")


@dataclass
class HyperConfig(GeneratorConfig):
    kind: ClassVar[str] = "hyper"
    model: HyperModelConfig = field(default_factory=HyperModelConfig)
    objective: HyperObjectiveConfig = field(default_factory=HyperObjectiveConfig)
    sampling: HyperSamplingConfig = field(default_factory=HyperSamplingConfig)
