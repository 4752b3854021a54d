"""zoo evaluate on a regression zoo: generated vs held-out real nets by test MSE, per group and
pooled (the reference formula re-computed here), with the held-out tasks' loss ratio."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from zoo_fixtures import tiny_spec_dict

from generators import GaussianConfig, WeightDataset, sample
from pipelines.build import build_zoo
from pipelines.cli import main
from pipelines.regression_evaluation import split_losses
from zoo import get_task
from zoo.spec import ZooSpec
from zoo.training import task_loss

TASKS = ["sinusoid:amplitude=1,phase=0", "sinusoid:amplitude=2,phase=0"]


def regression_zoo(tmp_path: Path, seeds: int) -> str:
    """A tiny sinusoids zoo (its second task held out), built in ``tmp_path``."""
    spec = ZooSpec.from_dict(tiny_spec_dict(
        tasks=TASKS, heldout_tasks=TASKS[1:], epochs=2, checkpoints=[0, 2], seeds=seeds,
        temperature={"axis": "learning_rate", "values": [0.01, 0.02]},
    ))  # fmt: skip
    return str(build_zoo(spec, tmp_path / "zoo.zarr", workers=0, metrics=False).location)


def test_regression_zoo_is_evaluated_by_test_loss(tmp_path: Path, capsys) -> None:
    store = regression_zoo(tmp_path, seeds=3)
    config = GaussianConfig().with_overrides({
        "data.canonical": False, "data.property": "", "data.exclude_phases": [],
        "data.heldout": 0.34, "model.pca_max_drop": None,
    })  # fmt: skip
    cfg = tmp_path / "gaussian.json"
    config.save(cfg)
    run = tmp_path / "run"
    assert main(["train-generator", "gaussian", "--zoo", store, "--out", str(run), "--raw",
                 "--config", str(cfg)]) == 0  # fmt: skip
    assert main(["evaluate", str(run), "--zoo", store, "--n", "6"]) == 0
    printed = " ".join(capsys.readouterr().out.split())  # unwrapped
    assert "test MSE" in printed and "pooled" in printed and "loss ratio" in printed
    report = json.loads((run / "evaluation" / "evaluation.json").read_text())
    assert report["task_kind"] == "regression"
    # the reference: the same draws and held-out nets, their mean test MSE and the ratio
    from generators import load_generator

    gen = load_generator(run)
    ds = WeightDataset.from_zoo(store, None, gen.config.data)
    assert ds.tasks == TASKS[:1], "the held-out task is left out of training"
    task = get_task(TASKS[0])
    (row,) = [r for r in report["per_group"] if r["width"] == 8]
    g = next(i for i, grp in enumerate(ds.groups) if grp.width == 8)
    w = sample(gen, 6, task=TASKS[0], width=8, seed=0).weights()
    x, y = task.split("test")
    expected_gen = float(task_loss(task, ds.groups[g].arch.forward(w, x), y).mean())
    held = ds.group_weights(g, False)
    expected_held = float(split_losses(ds.groups[g].arch, task, held).mean())
    assert row["generated_loss"] == pytest.approx(expected_gen, rel=1e-5)
    assert row["heldout_loss"] == pytest.approx(expected_held, rel=1e-5)
    assert row["loss_ratio"] == pytest.approx(expected_gen / expected_held, rel=1e-5)
    s = report["summary"]
    assert math.isfinite(s["loss_ratio"]) and "heldout_task_loss_ratio" in s
    assert torch.isfinite(torch.tensor(s["generated_loss"]))


def test_regression_zoo_cross_validates(tmp_path: Path, capsys) -> None:
    """``train-generator --folds`` on a regression zoo: a preset's self-distillation and
    calibration (they compare predicted classes) are turned off with a note before training,
    instead of failing after it, and the folds' loss rows pool with every held-out real model
    counted once."""
    store = regression_zoo(tmp_path, seeds=4)
    config = GaussianConfig().with_overrides({
        "data.canonical": False, "data.exclude_phases": [], "model.pca_max_drop": None,
        "calibrate.candidates": 2, "distill.per_net": 1,
    })  # fmt: skip
    cfg = tmp_path / "gaussian.json"
    config.save(cfg)
    cv = tmp_path / "cv"
    assert main(["train-generator", "gaussian", "--zoo", store, "--out", str(cv),
                 "--config", str(cfg), "--folds", "2"]) == 0  # fmt: skip
    out = capsys.readouterr()
    assert "self-distillation and calibration off: they compare predicted classes" in out.err
    assert "test MSE" in " ".join(out.out.split())
    report = json.loads((cv / "evaluation.json").read_text())
    assert report["task_kind"] == "regression" and len(report["folds"]) == 2
    from generators import load_generator

    saved = load_generator(cv / "fold-0").config
    assert saved.distill.per_net == 0 and saved.calibrate.candidates == 0  # what ran
    ds = WeightDataset.from_zoo(store, None, saved.data)
    task = get_task(TASKS[0])
    for row in report["per_group"]:
        g = next(i for i, grp in enumerate(ds.groups) if grp.width == row["width"])
        held = torch.cat([ds.with_fold(2, f).group_weights(g, False) for f in (0, 1)])
        assert (
            row["heldout_models"]
            == len(held)
            == len(ds.group_rows(g, True)) + len(ds.group_rows(g, False))
        )  # every real model of the group is held out by exactly one fold
        expected = float(split_losses(ds.groups[g].arch, task, held).mean())
        assert row["heldout_loss"] == pytest.approx(expected, rel=1e-5)
        assert row["loss_ratio"] == pytest.approx(row["generated_loss"] / expected, rel=1e-5)
    s = report["summary"]
    assert s["heldout_task_count"] == 1 and s["heldout_task_generated_count"] == 0  # refused
    assert {r["task"] for r in report["heldout_tasks"]} == set(TASKS[1:])
