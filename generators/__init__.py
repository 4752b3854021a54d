"""Weight generators behind one interface: fit on a WeightDataset, sample Populations, save/load.

>>> from generators import load_generator
>>> gen = load_generator("runs/flow")
>>> pop = gen.sample(256, task="digits", seed=0)
>>> probs = pop.ensemble()(x)
"""

from generators.augmentation import Interpolated, interpolate_models
from generators.base import WeightGenerator
from generators.calibration import Calibration, calibrate_weight
from generators.conditioning import Conditioner
from generators.config import (
    AugmentConfig,
    CalibrateConfig,
    DataConfig,
    GeneratorConfig,
    TrainingConfig,
)
from generators.dataset import Group, WeightBatch, WeightDataset
from generators.flow import FlowConfig, FlowGenerator, FlowModelConfig, FlowSamplingConfig
from generators.info import DatasetInfo
from generators.normalization import Normalizer
from generators.padding import PaddedLayout
from generators.population_io import load_population, save_population
from generators.registry import GENERATORS, generator_class, load_generator, make_generator
from generators.selection import PromptSelection, Selected, TrainingNets

__all__ = [
    "WeightGenerator", "GeneratorConfig", "DataConfig", "TrainingConfig", "AugmentConfig",
    "Interpolated", "interpolate_models",
    "WeightDataset", "WeightBatch", "Group", "DatasetInfo", "Normalizer", "PaddedLayout",
    "Conditioner", "FlowGenerator", "FlowConfig", "FlowModelConfig", "FlowSamplingConfig",
    "GENERATORS", "generator_class", "make_generator", "load_generator",
    "save_population", "load_population", "PromptSelection", "Selected", "TrainingNets",
    "CalibrateConfig", "Calibration", "calibrate_weight",
]  # fmt: skip
