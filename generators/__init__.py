"""Weight generators behind one interface: fit on a WeightDataset, sample Populations, save/load.

>>> from generators import load_generator, sample, calibrated_sampling
>>> gen = load_generator("demo/flow")
>>> pop = gen.sample(256, task="digits", seed=0)  # plain draws
>>> best = sample(gen, 256, seed=0, **calibrated_sampling(gen))  # calibrated best of 16
>>> probs = pop.ensemble()(x)
"""

from generators.augmentation import Interpolated, interpolate_models
from generators.base import ExtraNets, WeightGenerator
from generators.best_of_k import BestOfK
from generators.calibration import (
    Calibration,
    calibrate,
    calibrate_weight,
    calibrated_sampling,
    calibration_of,
)
from generators.coded_draws import CodedDraws
from generators.conditioning import Conditioner
from generators.conditions import Conditions, Request, Resolved
from generators.config import (
    AugmentConfig,
    CalibrateConfig,
    DataConfig,
    GeneratorConfig,
    TrainingConfig,
)
from generators.dataset import Group, WeightBatch, WeightDataset
from generators.flow import FlowConfig, FlowGenerator, FlowModelConfig, FlowSamplingConfig
from generators.gaussian import GaussianConfig, GaussianGenerator
from generators.hyper import HyperConfig, HyperGenerator
from generators.info import DatasetInfo
from generators.neumeta import NeuMetaConfig, NeuMetaGenerator
from generators.normalization import Normalizer
from generators.padding import PaddedLayout
from generators.population_io import load_population, save_population
from generators.registry import GENERATORS, generator_class, load_generator, make_generator
from generators.sampling import sample
from generators.selection import PromptSelection, Selected, TrainingNets
from generators.training_rounds import fit_rounds

__all__ = [
    "WeightGenerator", "GeneratorConfig", "DataConfig", "TrainingConfig", "AugmentConfig",
    "Interpolated", "interpolate_models",
    "WeightDataset", "WeightBatch", "Group", "DatasetInfo", "Normalizer", "PaddedLayout",
    "Conditioner", "FlowGenerator", "FlowConfig", "FlowModelConfig", "FlowSamplingConfig",
    "GENERATORS", "generator_class", "make_generator", "load_generator",
    "save_population", "load_population", "PromptSelection", "Selected", "TrainingNets",
    "CalibrateConfig", "Calibration", "calibrate_weight", "calibrate", "calibration_of",
    "calibrated_sampling", "Conditions", "Request", "Resolved", "ExtraNets", "CodedDraws",
    "BestOfK", "sample", "fit_rounds", "GaussianConfig", "GaussianGenerator",
    "HyperConfig", "HyperGenerator", "NeuMetaConfig", "NeuMetaGenerator",
]  # fmt: skip
