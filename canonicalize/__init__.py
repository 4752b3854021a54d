"""Permutation symmetry: Git Re-Basin weight matching, TransFusion for attention, NeuMeta
smoothing order, and aligning a whole population to a reference."""

from canonicalize.methods import (
    METHOD_NAMES,
    Canonicalizer,
    Smoothing,
    TransFusion,
    WeightMatching,
    method_from_name,
)
from canonicalize.permutation import Permutation
from canonicalize.population import (
    REFERENCES,
    AlignedPopulation,
    align_population,
    mean_pairwise_distance,
    median_pairwise_distance,
    medoid_index,
)
from canonicalize.smoothing import smooth, total_variation
from canonicalize.transfusion import transfusion
from canonicalize.weight_matching import weight_matching

__all__ = [
    "Permutation", "weight_matching", "transfusion", "smooth", "total_variation",
    "AlignedPopulation", "align_population", "mean_pairwise_distance", "median_pairwise_distance",
    "medoid_index",
    "REFERENCES", "METHOD_NAMES", "Canonicalizer", "WeightMatching", "TransFusion",
    "Smoothing", "method_from_name",
]  # fmt: skip
