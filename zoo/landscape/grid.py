"""All landscape metrics of one population: per model (Hessian) and per grid cell (seed pairs).

Works on plain tensors and arrays (weights, cell ids, status), so it runs the same in a Dask
worker reading a store and in a test on a freshly trained population. Only models whose status
is ``done`` are measured; the rest are skipped and reported with their reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from itertools import combinations

import numpy as np
import torch
from torch import Tensor

from zoo.architectures import Architecture
from zoo.finite import finite_rows
from zoo.landscape.cka import linear_cka
from zoo.landscape.connectivity import CURVE_POINTS, BezierConfig, connectivity
from zoo.landscape.features import has_features, penultimate_features
from zoo.landscape.hessian import (
    HESSIAN_SEED,
    HUTCHINSON_PROBES,
    MAX_ITERATIONS,
    TOLERANCE,
    hessian_metrics,
)
from zoo.landscape.samples import BATCH_SIZE, N_BATCHES, SAMPLE_SEED, fixed_batches
from zoo.tasks import TaskData
from zoo.training import Status, evaluate

MAX_PAIRS_PER_CELL = 2  # seed pairs measured per cell (the first ones in seed order)
CKA_SAMPLES = 1000  # test inputs on which outputs and features are compared

CELL_FIELDS = (
    "train_loss", "test_acc", "hessian_top", "hessian_trace", "mc_linear", "mc_bezier",
    "mc_linear_error", "mc_bezier_error", "cka", "cka_features", "l2", "output_std",
)  # fmt: skip


@dataclass(frozen=True)
class LandscapeConfig:
    """Every setting of the measurement; stored with the zoo so results can be reproduced."""

    n_batches: int = N_BATCHES
    batch_size: int = BATCH_SIZE
    sample_seed: int = SAMPLE_SEED
    max_iterations: int = MAX_ITERATIONS
    tol: float = TOLERANCE
    probes: int = HUTCHINSON_PROBES
    hessian_seed: int = HESSIAN_SEED
    bezier: BezierConfig = field(default_factory=BezierConfig)
    curve_points: int = CURVE_POINTS
    max_pairs_per_cell: int = MAX_PAIRS_PER_CELL
    cka_samples: int = CKA_SAMPLES

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ModelMetrics:
    """Per-model metrics of a population of M models (NaN where a model was skipped).

    hessian_top, hessian_trace, hessian_trace_stderr: (M,) float32; hessian_iterations: (M,)
    int64 (0 if skipped); hessian_converged: (M,) bool; output_std: (M,) float32 mean over
    outputs of the std over test inputs (0 for a net that predicts a constant); measured: (M,)
    bool.
    """

    hessian_top: np.ndarray
    hessian_trace: np.ndarray
    hessian_trace_stderr: np.ndarray
    hessian_iterations: np.ndarray
    hessian_converged: np.ndarray
    output_std: np.ndarray
    measured: np.ndarray


@dataclass
class CellMetrics:
    """Per-cell metrics of the C cells of a population (NaN where not measurable).

    cell: (C,) int64 cell ids (sorted); models, pairs: (C,) int64 counts of measured models and
    seed pairs; values: name -> (C,) float32: train_loss, test_acc, hessian_top, hessian_trace
    are means over the cell's measured models, output_std their maximum; mc_*, cka,
    cka_features, l2 are means over its seed pairs; note: (C,) why a cell lacks pair metrics
    ("" when it has them).
    """

    cell: np.ndarray
    models: np.ndarray
    pairs: np.ndarray
    values: dict[str, np.ndarray]
    note: list[str]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[name]


@dataclass
class PopulationLandscape:
    """models: per-model metrics; cells: per-cell metrics; skipped: model index -> reason."""

    models: ModelMetrics
    cells: CellMetrics
    skipped: dict[int, str]


def _usable(status: np.ndarray, weights: Tensor) -> tuple[np.ndarray, dict[int, str]]:
    finite = finite_rows(weights).numpy()
    skipped: dict[int, str] = {}
    for i, s in enumerate(status):
        if s != Status.DONE:
            skipped[i] = Status.NAMES.get(int(s), f"status {int(s)}")
        elif not finite[i]:
            skipped[i] = "non-finite weights"
    ok = np.array([i not in skipped for i in range(len(status))], dtype=bool)
    return ok, skipped


def measure_population(
    arch: Architecture,
    task: TaskData,
    weights: Tensor,
    cells: np.ndarray,
    status: np.ndarray | None = None,
    config: LandscapeConfig = LandscapeConfig(),
    train_loss: np.ndarray | None = None,
    test_acc: np.ndarray | None = None,
) -> PopulationLandscape:
    """Landscape metrics of M models: weights (M, N), cells (M,) grid-cell ids, status (M,).

    train_loss, test_acc: (M,) already known values at these weights (the store keeps them);
    evaluated here when not given.

    Every measured model's Hessian in one batched computation; every seed pair of every cell
    in one batched Bezier training and one batched CKA.
    """
    m = len(weights)
    cells = np.asarray(cells)
    status = np.full(m, Status.DONE, dtype=np.int8) if status is None else np.asarray(status)
    if len(cells) != m or len(status) != m:
        raise ValueError(f"{m} models but {len(cells)} cell ids and {len(status)} status codes")
    ok, skipped = _usable(status, weights)
    idx = np.flatnonzero(ok)
    w = weights[torch.as_tensor(idx)].to(torch.float32)  # (M', N)

    nan = np.full(m, np.nan, dtype=np.float32)
    models = ModelMetrics(
        nan.copy(), nan.copy(), nan.copy(), np.zeros(m, np.int64), np.zeros(m, bool),
        nan.copy(), ok,
    )  # fmt: skip
    known = train_loss is not None and test_acc is not None
    train_loss = np.where(ok, train_loss, np.nan).astype(np.float32) if known else nan.copy()
    test_acc = np.where(ok, test_acc, np.nan).astype(np.float32) if known else nan.copy()
    if len(idx):
        batches = fixed_batches(task, config.n_batches, config.batch_size, config.sample_seed)
        h = hessian_metrics(
            arch, task, w, batches, config.max_iterations, config.tol, config.probes,
            config.hessian_seed,
        )  # fmt: skip
        models.hessian_top[idx] = h.top_eigenvalue.numpy()
        models.hessian_trace[idx] = h.trace.numpy()
        models.hessian_trace_stderr[idx] = h.trace_stderr.numpy()
        models.hessian_iterations[idx] = h.iterations.numpy()
        models.hessian_converged[idx] = h.converged.numpy()
        if not known:
            train_loss[idx] = evaluate(arch, task, w, "train")[0].numpy()
            test_acc[idx] = evaluate(arch, task, w, "test")[1].numpy()
        with torch.no_grad():
            out = arch.forward(w, task.x_test[: config.cka_samples])  # (M', B, K)
        models.output_std[idx] = out.std(dim=1).mean(dim=1).numpy()

    per_model = {
        "train_loss": train_loss, "test_acc": test_acc,
        "hessian_top": models.hessian_top, "hessian_trace": models.hessian_trace,
        "output_std": models.output_std,
    }  # fmt: skip
    cell_ids = np.unique(cells)
    return PopulationLandscape(
        models, _cell_metrics(arch, task, weights, cells, ok, cell_ids, per_model, config), skipped
    )


def _cell_metrics(
    arch: Architecture, task: TaskData, weights: Tensor, cells: np.ndarray, ok: np.ndarray,
    cell_ids: np.ndarray, per_model: dict[str, np.ndarray], config: LandscapeConfig,
) -> CellMetrics:  # fmt: skip
    c = len(cell_ids)
    values = {f: np.full(c, np.nan, dtype=np.float32) for f in CELL_FIELDS}
    n_models, n_pairs = np.zeros(c, np.int64), np.zeros(c, np.int64)
    notes = [""] * c
    pairs: list[tuple[int, int, int]] = []  # (cell position, model a, model b)
    for k, cid in enumerate(cell_ids):
        members = np.flatnonzero((cells == cid) & ok)
        n_models[k] = len(members)
        for f, v in per_model.items():
            vals = v[members][np.isfinite(v[members])]
            if len(vals):
                values[f][k] = vals.max() if f == "output_std" else vals.mean()
        total = int((cells == cid).sum())
        if len(members) < 2:
            notes[k] = (
                f"only {len(members)} of {total} models measured: no seed pairs"
                if total >= 2
                else "one seed: no pair metrics"
            )
            continue
        chosen = list(combinations(members.tolist(), 2))[: config.max_pairs_per_cell]
        pairs.extend((k, a, b) for a, b in chosen)
        n_pairs[k] = len(chosen)
    if not pairs:
        return CellMetrics(cell_ids.astype(np.int64), n_models, n_pairs, values, notes)

    pos = np.array([p[0] for p in pairs])
    a = weights[torch.as_tensor([p[1] for p in pairs])].to(torch.float32)  # (Q, N)
    b = weights[torch.as_tensor([p[2] for p in pairs])].to(torch.float32)  # (Q, N)
    conn = connectivity(arch, task, a, b, config.bezier, config.curve_points)
    per_pair = {
        "mc_linear": conn.mc_linear, "mc_bezier": conn.mc_bezier,
        "mc_linear_error": conn.mc_linear_error, "mc_bezier_error": conn.mc_bezier_error,
        "l2": conn.l2,
    }  # fmt: skip
    per_pair.update(_pair_cka(arch, task, a, b, config.cka_samples))
    for f, v in per_pair.items():
        v = v.numpy().astype(np.float64)
        for k in np.unique(pos):
            vals = v[pos == k]
            vals = vals[np.isfinite(vals)]
            values[f][k] = vals.mean() if len(vals) else np.nan
    return CellMetrics(cell_ids.astype(np.int64), n_models, n_pairs, values, notes)


@torch.no_grad()
def _pair_cka(
    arch: Architecture, task: TaskData, a: Tensor, b: Tensor, samples: int
) -> dict[str, Tensor]:
    """Linear CKA of each pair's logits and penultimate features on test inputs -> (Q,) each."""
    x = task.x_test[:samples]
    out = {"cka": linear_cka(arch.forward(a, x), arch.forward(b, x))}
    if has_features(arch):
        out["cka_features"] = linear_cka(
            penultimate_features(arch, a, x), penultimate_features(arch, b, x)
        )
    else:
        out["cka_features"] = torch.full((len(a),), float("nan"))
    return out
