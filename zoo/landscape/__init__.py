"""Loss-landscape metrics of model populations and the phase labels of a zoo's grid cells.

Per model: Hessian top eigenvalue and trace from batched Hessian-vector products. Per pair of
seeds: mode connectivity along linear paths and trained Bezier curves, linear CKA of outputs and
penultimate features, L2 distance. Per grid cell: a phase (Yang et al. 2021) from those.
"""

from zoo.landscape.cka import linear_cka
from zoo.landscape.connectivity import (
    BezierConfig,
    Connectivity,
    bezier_point,
    connectivity,
    linear_point,
    mode_connectivity,
    train_bezier,
)
from zoo.landscape.features import has_features, penultimate_features
from zoo.landscape.grid import (
    CellMetrics,
    LandscapeConfig,
    ModelMetrics,
    PopulationLandscape,
    measure_population,
)
from zoo.landscape.hessian import (
    HessianMetrics,
    PopulationHessian,
    hessian_metrics,
    hutchinson_trace,
    top_eigenvalue,
)
from zoo.landscape.phases import (
    PHASES,
    CellInputs,
    PhaseLabels,
    PhaseThresholds,
    label_phases,
    resolve_thresholds,
)
from zoo.landscape.samples import FixedBatches, fixed_batches

__all__ = [
    "FixedBatches", "fixed_batches",
    "HessianMetrics", "PopulationHessian", "hessian_metrics", "hutchinson_trace", "top_eigenvalue",
    "linear_cka", "has_features", "penultimate_features",
    "BezierConfig", "Connectivity", "bezier_point", "connectivity", "linear_point",
    "mode_connectivity", "train_bezier",
    "LandscapeConfig", "ModelMetrics", "CellMetrics", "PopulationLandscape", "measure_population",
    "PHASES", "CellInputs", "PhaseLabels", "PhaseThresholds", "label_phases", "resolve_thresholds",
]  # fmt: skip
