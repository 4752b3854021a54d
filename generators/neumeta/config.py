"""Config of the NeuMeta generator: the implicit field, its training objective, sampling."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from generators.config import GeneratorConfig


@dataclass
class NeuMetaModelConfig:
    """The field (:mod:`generators.neumeta.field`) and its per-model latents.

    hidden / blocks: width and residual blocks of the coordinate trunk; frequencies: Fourier
    octaves per axis position (2^(F-1) pi resolves 1 / 2^F of an axis); embed: size of the layer
    and task embeddings; latent: length of each zoo model's auto-decoder code (the nets of one
    layout are an affine function of it: the trunk runs once per layout, a net costs a matmul);
    grid_channels / grid_max: channels and finest resolution of the multiresolution grids over
    (in, out) positions (8, 16, ..., grid_max cells a side, per tensor) beside the Fourier
    features; align: weight-match each width's smooth-ordered nets to that width's medoid first
    (:mod:`generators.neumeta.ordering`), so that their units correspond.
    """

    hidden: int = 64
    blocks: int = 2
    frequencies: int = 8
    embed: int = 32
    latent: int = 16
    grid_channels: int = 16
    grid_max: int = 128
    align: bool = True

    def __post_init__(self) -> None:
        for name in ("hidden", "blocks", "frequencies", "embed", "latent"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class NeuMetaLossConfig:
    """The training objective, per step.

    recon_coords: coordinates of each tensor sampled per group present in the batch for the
    magnitude-weighted reconstruction (0: every coordinate); magnitude: weight (1 + magnitude
    |w| / scale) of each reconstructed coordinate; task_weight: weight of the task loss of
    ``task_nets`` nets of one random width (log-uniform in the trained range) on ``task_batch``
    training examples, as one batched population forward; their codes are training codes plus
    ``code_noise`` x the codes' std of Gaussian noise (so that sampled codes make working nets
    too); l2: weight of the mean squared generated weight of those nets (NeuMeta: 1e-4);
    code_l2: the auto-decoder's prior on the codes; coord_noise: uniform noise on every
    position, in cells (1: +-1/2 cell; NeuMeta's noisy coordinates).
    """

    recon_coords: int = 256
    magnitude: float = 1.0
    task_weight: float = 0.5
    task_nets: int = 16
    task_batch: int = 256
    code_noise: float = 0.5
    l2: float = 1e-4
    code_l2: float = 1e-3
    coord_noise: float = 1.0

    def __post_init__(self) -> None:
        if self.recon_coords < 0 or self.task_nets < 1 or self.task_batch < 1:
            raise ValueError("loss.recon_coords must be >= 0, loss.task_nets and task_batch >= 1")
        for name in ("magnitude", "task_weight", "code_noise", "l2", "code_l2", "coord_noise"):
            if getattr(self, name) < 0:
                raise ValueError(f"loss.{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class NeuMetaSamplingConfig:
    """temperature: scale of the latent draws around the task's code mean (1: the fitted
    Gaussian of the training codes; 0: the mean code, one net per width)."""

    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"sampling.temperature must be >= 0, got {self.temperature}")


@dataclass
class NeuMetaConfig(GeneratorConfig):
    kind: ClassVar[str] = "neumeta"
    model: NeuMetaModelConfig = field(default_factory=NeuMetaModelConfig)
    loss: NeuMetaLossConfig = field(default_factory=NeuMetaLossConfig)
    sampling: NeuMetaSamplingConfig = field(default_factory=NeuMetaSamplingConfig)
