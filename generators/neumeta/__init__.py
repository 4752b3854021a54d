"""NeuMeta: one implicit weight field over coordinates that gives a net of any width."""

from generators.neumeta.config import (
    NeuMetaConfig,
    NeuMetaLossConfig,
    NeuMetaModelConfig,
    NeuMetaSamplingConfig,
)
from generators.neumeta.coordinates import LayoutCoordinates, decode_positions, encode
from generators.neumeta.field import WeightField
from generators.neumeta.generator import NeuMetaGenerator

__all__ = [
    "NeuMetaGenerator", "NeuMetaConfig", "NeuMetaModelConfig", "NeuMetaLossConfig",
    "NeuMetaSamplingConfig", "LayoutCoordinates", "encode", "decode_positions", "WeightField",
]  # fmt: skip
