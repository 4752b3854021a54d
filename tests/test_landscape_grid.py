"""Landscape metrics of a whole population: skipped models, one-seed cells, per-cell means."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo import MLP, TrainConfig
from zoo.landscape import BezierConfig, connectivity, fixed_batches, hessian_metrics, linear_cka
from zoo.landscape.grid import LandscapeConfig, measure_population
from zoo.tasks import TaskData, get_task
from zoo.training import Status, evaluate, train_population

FAST = LandscapeConfig(
    n_batches=2, batch_size=32, max_iterations=30, probes=2,
    bezier=BezierConfig(epochs=1, batch_size=128), curve_points=5, cka_samples=200,
)  # fmt: skip


@pytest.fixture(scope="module")
def moons() -> TaskData:
    return get_task("moons", seed=0)


@pytest.fixture(scope="module")
def population(moons: TaskData) -> tuple[MLP, torch.Tensor, np.ndarray]:
    """7 models: cell 0 has seeds 0-2, cell 1 seeds 0-1, cell 2 a single seed, cell 3 seeds 0-1."""
    arch = MLP(width=8, in_shape=(2,), num_outputs=2, depth=1)
    cells = np.array([0, 0, 0, 1, 1, 2, 3, 3])
    res = train_population(
        arch, moons, TrainConfig(epochs=2, checkpoints=(2,)), np.arange(8), np.full(8, 0.1),
        np.zeros(8), np.full(8, 64),
    )  # fmt: skip
    return arch, res.weights[:, -1], cells


def test_skips_untrained_and_diverged_models_and_reports_why(population, moons: TaskData) -> None:
    arch, w, cells = population
    status = np.full(8, Status.DONE, dtype=np.int8)
    status[1], status[4] = Status.DIVERGED, Status.PENDING
    w = w.clone()
    w[1] = float("nan")  # what a diverged model's checkpoint holds
    w[7] = float("nan")  # marked done but not finite: skipped too
    r = measure_population(arch, moons, w, cells, status, FAST)
    assert r.skipped == {1: "diverged", 4: "pending", 7: "non-finite weights"}
    assert r.models.measured.tolist() == [True, False, True, True, False, True, True, False]
    for f in ("hessian_top", "hessian_trace", "output_std"):
        v = getattr(r.models, f)
        assert np.isnan(v[[1, 4, 7]]).all() and np.isfinite(v[[0, 2, 3, 5, 6]]).all()
    c = r.cells
    assert c.cell.tolist() == [0, 1, 2, 3]
    assert c.models.tolist() == [2, 1, 1, 1] and c.pairs.tolist() == [1, 0, 0, 0]
    assert c.note[0] == ""
    assert c.note[1] == "only 1 of 2 models measured: no seed pairs"
    assert c.note[2] == "one seed: no pair metrics"
    assert np.isfinite(c["mc_bezier"][0]) and np.isnan(c["mc_bezier"][1:]).all()
    assert np.isfinite(c["train_loss"]).all()  # a lone trained model still has its loss


def test_cell_values_are_means_of_models_and_pairs(population, moons: TaskData) -> None:
    arch, w, cells = population
    r = measure_population(arch, moons, w, cells, None, FAST)
    h = hessian_metrics(
        arch, moons, w, fixed_batches(moons, 2, 32), 30, FAST.tol, FAST.probes, FAST.hessian_seed
    )
    assert np.allclose(r.models.hessian_trace, h.trace.numpy(), rtol=1e-5)
    assert r.cells["hessian_trace"][0] == pytest.approx(h.trace[:3].mean().item(), rel=1e-5)
    loss, acc = evaluate(arch, moons, w, "train")[0], evaluate(arch, moons, w, "test")[1]
    assert r.cells["train_loss"][1] == pytest.approx(loss[3:5].mean().item(), rel=1e-5)
    assert r.cells["test_acc"][3] == pytest.approx(acc[6:8].mean().item(), rel=1e-5)
    # cell 0 has 3 seeds: its first MAX_PAIRS_PER_CELL = 2 pairs (0,1), (0,2), as one batch
    pair = connectivity(arch, moons, w[[0, 0]], w[[1, 2]], FAST.bezier, FAST.curve_points)
    assert r.cells.pairs[0] == 2
    assert r.cells["l2"][0] == pytest.approx(pair.l2.mean().item(), rel=1e-5)
    assert r.cells["mc_linear"][0] == pytest.approx(
        pair.mc_linear.mean().item(), rel=1e-4, abs=1e-6
    )
    x = moons.x_test[: FAST.cka_samples]
    cka = linear_cka(arch.forward(w[3:4], x), arch.forward(w[4:5], x))
    assert r.cells["cka"][1] == pytest.approx(cka.item(), rel=1e-5)
    assert r.cells["output_std"][0] == pytest.approx(r.models.output_std[:3].max(), rel=1e-6)


def test_known_losses_are_used_and_lengths_checked(population, moons: TaskData) -> None:
    arch, w, cells = population
    tl, ta = np.arange(8, dtype=np.float32), np.linspace(0, 1, 8).astype(np.float32)
    r = measure_population(arch, moons, w, cells, None, FAST, tl, ta)
    assert r.cells["train_loss"][0] == pytest.approx(1.0)  # mean of 0, 1, 2
    with pytest.raises(ValueError, match="8 models but 3 cell ids"):
        measure_population(arch, moons, w, cells[:3], None, FAST)


def test_nothing_trained_gives_nan_cells_not_a_crash(population, moons: TaskData) -> None:
    arch, w, cells = population
    status = np.full(8, Status.PENDING, dtype=np.int8)
    r = measure_population(arch, moons, w, cells, status, FAST)
    assert len(r.skipped) == 8 and not r.models.measured.any()
    assert np.isnan(r.cells["train_loss"]).all() and (r.cells.pairs == 0).all()
