"""Config of the flow-matching generator: model, training objective and sampling defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from generators.config import GeneratorConfig
from generators.flow.ode import SOLVERS

WHITENING = ("group", "component")


@dataclass
class FlowModelConfig:
    """Velocity network and objective.

    pca: principal components per group the flow runs on (0: the full padded vector);
    pca_max_drop: if set, each group keeps only the fewest of those components whose decoded
    training nets lose at most this much mean validation accuracy (relative validation loss for
    regression), see :mod:`generators.flow.rank`; None: every group keeps ``pca``;
    whiten: ``group`` scales a group's coefficients by one std (keeps its geometry),
    ``component`` by each component's std; source_std: std of the source noise x0;
    path_sigma: noise added along the path; ot_pairing: minibatch optimal-transport pairs;
    cfg_dropout: share of training rows whose task and property are dropped (for guidance).
    """

    hidden: int = 512
    cond_dim: int = 128
    dropout: float = 0.0
    pca: int = 64
    pca_max_drop: float | None = None
    whiten: str = "group"
    source_std: float = 0.3
    path_sigma: float = 0.0
    ot_pairing: bool = True
    cfg_dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.hidden < 2 or self.cond_dim < 2:
            raise ValueError("model.hidden and model.cond_dim must be >= 2")
        if self.pca < 0:
            raise ValueError(f"model.pca must be >= 0 (0 = no projection), got {self.pca}")
        if self.pca_max_drop is not None and self.pca == 0:
            raise ValueError("model.pca_max_drop needs model.pca > 0 (it picks a rank per group)")
        if self.whiten not in WHITENING:
            raise ValueError(f"model.whiten must be one of {', '.join(WHITENING)}")
        if not 0 <= self.cfg_dropout < 1 or not 0 <= self.dropout < 1:
            raise ValueError("model.dropout and model.cfg_dropout must be in [0, 1)")
        if self.source_std <= 0:
            raise ValueError(f"model.source_std must be > 0, got {self.source_std}")


@dataclass
class FlowSamplingConfig:
    """Sampling defaults, each overridable per call of ``sample``.

    solver / steps: the ODE integrator and its number of steps; guidance: classifier-free
    guidance weight (1 = plain conditional); temperature: scale of the source noise (below 1
    concentrates samples on the modes); novelty: scale of the noise added orthogonally to the
    group's principal span, in units of the leave-one-out residual of real models (0 = stay in
    the span of the training models, the near-copy regime of DeepWeightFlow).
    """

    solver: str = "heun"
    steps: int = 16
    guidance: float = 1.0
    temperature: float = 1.0
    novelty: float = 0.0

    def __post_init__(self) -> None:
        if self.solver not in SOLVERS:
            raise ValueError(f"sampling.solver must be one of {', '.join(SOLVERS)}")
        if self.steps < 1:
            raise ValueError(f"sampling.steps must be >= 1, got {self.steps}")
        if self.temperature < 0 or self.novelty < 0:
            raise ValueError("sampling.temperature and sampling.novelty must be >= 0")


@dataclass
class FlowConfig(GeneratorConfig):
    kind: ClassVar[str] = "flow"
    model: FlowModelConfig = field(default_factory=FlowModelConfig)
    sampling: FlowSamplingConfig = field(default_factory=FlowSamplingConfig)
