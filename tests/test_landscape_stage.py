"""The landscape stage on a store: written arrays, resume, skipped models, CLI and report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from zoo_fixtures import tiny_spec_dict

from pipelines.build import build_zoo
from pipelines.cli import main
from pipelines.metrics_stage import compute_metrics, is_measured
from zoo import open_zoo
from zoo.landscape import BezierConfig
from zoo.landscape.grid import CELL_FIELDS, LandscapeConfig
from zoo.landscape.phases import PHASES
from zoo.spec import ZooSpec
from zoo.store import open_group
from zoo.training import Status

FAST = LandscapeConfig(
    n_batches=2, batch_size=32, max_iterations=20, probes=2,
    bezier=BezierConfig(epochs=1, batch_size=128), curve_points=5, cka_samples=200,
)  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny zoo (2 widths x 2 learning rates x 2 seeds on moons), trained, no metrics yet."""
    store = tmp_path_factory.mktemp("zoo") / "zoo.zarr"
    build_zoo(ZooSpec.from_dict(tiny_spec_dict()), store, workers=0, metrics=False)
    return store


def copy_store(src: Path, dst: Path) -> str:
    import shutil

    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".build.lock"))
    return str(dst)


def test_stage_writes_models_cells_phases_and_thresholds(trained: Path, tmp_path: Path) -> None:
    store = copy_store(trained, tmp_path / "z.zarr")
    summary = compute_metrics(store, workers=0, config=FAST)
    assert {p.population for p in summary.populations} == {"moons-mlp-w4", "moons-mlp-w8"}
    assert all(p.measured == 4 and not p.skipped for p in summary.populations)
    zoo = open_zoo(store)
    root_info = zoo.root.attrs["landscape"]
    assert root_info["complete"] and set(root_info["thresholds"]) == {"moons"}
    assert {"loss", "sharpness", "cka_high"} <= set(root_info["thresholds"]["moons"])
    assert sum(summary.phases["moons"].values()) == 4  # 4 cells in all
    for pop in zoo.populations.values():
        m = pop.metrics
        assert m["hessian_top"].shape == (4,) and np.isfinite(m["hessian_trace"]).all()
        assert m["train_loss"].shape == (4, 3)  # training's own metrics are untouched
        cg = pop.group["cells"]
        assert cg["cell"].shape == (2,) and set(CELL_FIELDS) <= set(cg.array_keys())
        assert (cg["pairs"][:] == 1).all() and np.isfinite(cg["mc_bezier"][:]).all()
        phase = pop.group["phase"][:]
        assert phase.shape == (4,) and set(phase.tolist()) <= set(PHASES) | {-1}
        cell_phase = dict(zip(cg["cell"][:].tolist(), cg["phase"][:].tolist(), strict=True))
        assert phase.tolist() == [cell_phase[c] for c in pop.hparams["cell"].tolist()]
        info = pop.group.attrs["landscape"]
        assert info["done"] and info["thresholds"] == root_info["thresholds"]["moons"]
        assert info["config"]["probes"] == 2
        assert (cg["load_index"][:] == pop.hparams["load_index"][0]).all()


def test_rerun_resumes_and_changed_status_is_measured_again(trained: Path, tmp_path: Path) -> None:
    store = copy_store(trained, tmp_path / "z.zarr")
    compute_metrics(store, workers=0, config=FAST)
    before = open_zoo(store).populations["moons-mlp-w4"].metrics["hessian_top"]
    again = compute_metrics(store, workers=0, config=FAST)
    assert all(p.resumed and p.seconds == 0.0 for p in again.populations)
    assert np.array_equal(
        open_zoo(store).populations["moons-mlp-w4"].metrics["hessian_top"], before
    )

    g = open_group(store, mode="r+")["moons-mlp-w8"]
    status = g["status"][:]
    status[0] = Status.PENDING  # as if a build had been interrupted before this model
    g["status"][:] = status
    assert not is_measured(g)
    third = compute_metrics(store, workers=0, config=FAST)
    by_name = {p.population: p for p in third.populations}
    assert by_name["moons-mlp-w4"].resumed and not by_name["moons-mlp-w8"].resumed
    w8 = by_name["moons-mlp-w8"]
    assert w8.skipped == {0: "pending"} and w8.measured == 3
    cell0 = int(open_zoo(store).populations["moons-mlp-w8"].hparams["cell"][0])
    assert w8.cells_without_pairs[cell0] == "only 1 of 2 models measured: no seed pairs"
    pop = open_zoo(store).populations["moons-mlp-w8"]
    assert np.isnan(pop.metrics["hessian_top"][0])
    assert pop.group["phase"][0] == -1  # no pairs, no phase


def test_diverged_models_are_skipped_and_reported(tmp_path: Path, capsys) -> None:
    spec = ZooSpec.from_dict(
        tiny_spec_dict(
            load={"axis": "width", "values": [8]},
            temperature={"axis": "learning_rate", "values": [0.05, 1e6]},
        )
    )
    store = str(tmp_path / "zoo.zarr")
    build_zoo(spec, store, workers=0, metrics=False)
    summary = compute_metrics(store, workers=0, config=FAST)
    (pop,) = summary.populations
    assert pop.skipped and set(pop.skipped.values()) == {"diverged"}
    assert "skipped 2 model(s) (2 diverged)" in capsys.readouterr().err.replace("\n", " ")
    stored = open_zoo(store).populations["moons-mlp-w8"]
    lr = stored.hparams["learning_rate"]
    assert np.isnan(stored.metrics["hessian_top"][lr > 1]).all()
    assert np.isfinite(stored.metrics["hessian_top"][lr < 1]).all()


def test_dask_workers_give_the_same_metrics(trained: Path, tmp_path: Path) -> None:
    inline = copy_store(trained, tmp_path / "inline.zarr")
    dask = copy_store(trained, tmp_path / "dask.zarr")
    compute_metrics(inline, workers=0, config=FAST)
    compute_metrics(dask, workers=2, config=FAST)
    for name, pop in open_zoo(inline).populations.items():
        other = open_zoo(dask).populations[name]
        for f in ("hessian_top", "hessian_trace"):
            assert np.allclose(pop.metrics[f], other.metrics[f], rtol=1e-4)
        assert np.array_equal(pop.group["phase"][:], other.group["phase"][:])


def test_cli_metrics_then_report(trained: Path, tmp_path: Path, capsys) -> None:
    store = copy_store(trained, tmp_path / "z.zarr")
    assert main(["report", store, "--out", str(tmp_path / "empty")]) == 0  # before metrics
    assert "zoo metrics" in (tmp_path / "empty" / "index.html").read_text()
    compute_metrics(store, workers=0, config=FAST)
    capsys.readouterr()
    assert main(["metrics", store, "--workers", "0"]) == 0  # resumes: nothing left to measure
    assert "phases of moons cells" in capsys.readouterr().err
    out = tmp_path / "report"
    assert main(["report", store, "--out", str(out)]) == 0
    html = (out / "index.html").read_text()
    for png in ("moons_phase.png", "moons_test_acc.png", "moons_train_loss.png",
                "moons_hessian_trace.png", "moons_mc.png", "moons_cka.png",
                "accuracy_histograms.png"):  # fmt: skip
        assert (out / png).stat().st_size > 1000
        assert png in html
    assert "Phase thresholds" in html


def test_cli_errors_are_one_line(tmp_path: Path, capsys) -> None:
    assert main(["metrics", str(tmp_path / "nothing.zarr")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "not a weightzoo store" in err and "\n" not in err
    assert main(["report", str(tmp_path / "nothing.zarr"), "--out", str(tmp_path / "r")]) == 2
