"""Flow matching over weights (DeepWeightFlow-style), with conditioning and PCA projection."""

from generators.flow.config import FlowConfig, FlowModelConfig, FlowSamplingConfig
from generators.flow.generator import FlowGenerator
from generators.flow.matching import flow_matching_loss, ot_pair
from generators.flow.ode import SOLVERS, integrate
from generators.flow.projection import FullSpace, GroupPCA

__all__ = [
    "FlowConfig", "FlowModelConfig", "FlowSamplingConfig", "FlowGenerator",
    "flow_matching_loss", "ot_pair", "SOLVERS", "integrate", "FullSpace", "GroupPCA",
]  # fmt: skip
