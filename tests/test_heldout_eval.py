"""``zoo evaluate``'s held-out tasks: generated nets against the real nets of tasks a
generator never trained on (pipelines/heldout_tasks.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from zoo_fixtures import tiny_spec_dict

from generators.config import DataConfig
from pipelines.build import build_zoo
from pipelines.heldout_tasks import (
    heldout_task_rows,
    heldout_task_summary,
    pool_heldout_task_rows,
)
from zoo.population import Population
from zoo.spec import ZooSpec
from zoo.store import Zoo


@dataclass
class _Info:
    data: DataConfig


class _Mirror:
    """A stand-in generator whose draws for a held-out population are that population's own
    real nets (so every ratio is exactly 1), refusing one task as a kind without unseen-task
    sampling does."""

    def __init__(self, zoo: Zoo, data: DataConfig, refuse: str) -> None:
        self.zoo, self.data, self.refuse = zoo, data, refuse

    def require_info(self) -> _Info:
        return _Info(self.data)

    def sample(self, n: int, task: str, width: int, seed: int = 0, **options) -> Population:
        if task == self.refuse:
            raise ValueError(f"unknown task {task!r} for this generator")
        pop = next(p for p in self.zoo.populations.values()
                   if p.task == task and p.arch.width == width)  # fmt: skip
        return Population(pop.arch, pop.weights(), task)


def _zoo(tmp_path: Path, tasks: list[str], heldout: list[str], **over: object) -> Zoo:
    spec = ZooSpec.from_dict(
        tiny_spec_dict(tasks=tasks, heldout_tasks=heldout, epochs=1, checkpoints=[0, 1], **over)
    )
    return build_zoo(spec, tmp_path / "zoo.zarr", workers=0, metrics=False)


def test_heldout_rows_and_ratios_classification(tmp_path: Path) -> None:
    z = _zoo(tmp_path, ["moons", "blobs", "blobs:centers=3"], ["blobs", "blobs:centers=3"])
    data = DataConfig(canonical=False, property="", heldout_tasks=["blobs", "blobs:centers=3"])
    rows = heldout_task_rows(_Mirror(z, data, refuse="blobs:centers=3"), z, 4, 0, {})
    assert [(r["task"], r["width"]) for r in rows] == [
        ("blobs", 4), ("blobs", 8), ("blobs:centers=3", 4), ("blobs:centers=3", 8)
    ]  # fmt: skip
    for r in rows[:2]:
        pop = z.populations[r["population"]]
        real = float(pop.metrics["test_acc"][:, -1].mean())
        assert r["real_test_acc"] == pytest.approx(real, abs=1e-6)
        assert r["generated_test_acc"] == r["real_test_acc"]  # the mirror draws the real nets
    assert all(r["generated_models"] == 0 and "unknown task" in r["refused"] for r in rows[2:])
    s = heldout_task_summary(rows, 2)
    assert s["heldout_task_acc_ratio"] == 1.0 and math.isnan(s["heldout_task_loss_ratio"])
    assert (s["heldout_task_count"], s["heldout_task_generated_count"]) == (2, 1)


def test_heldout_loss_ratio_regression(tmp_path: Path) -> None:
    tasks = ["sinusoid:amplitude=1,phase=0", "sinusoid:amplitude=2,phase=0"]
    lrs = {"axis": "learning_rate", "values": [0.01, 0.02]}
    z = _zoo(tmp_path, tasks, tasks[1:], temperature=lrs, load={"axis": "width", "values": [4]})
    data = DataConfig(canonical=False, property="", heldout_tasks=tasks[1:])
    rows = heldout_task_rows(_Mirror(z, data, refuse=""), z, 4, 0, {})
    assert {r["task"] for r in rows} == {tasks[1]} and rows[0]["params"]["amplitude"] == 2.0
    s = heldout_task_summary(rows, len(tasks[1:]))
    assert s["heldout_task_loss_ratio"] == 1.0 and math.isnan(s["heldout_task_acc_ratio"])
    # the formula: mean generated loss over mean real loss, pooled over populations
    rows[0]["generated_test_loss"] *= 3.0
    expected = (sum(r["generated_test_loss"] for r in rows) / len(rows)) / (
        sum(r["real_test_loss"] for r in rows) / len(rows)
    )
    assert heldout_task_summary(rows, len(tasks[1:]))["heldout_task_loss_ratio"] == pytest.approx(
        expected
    )
    assert torch.isfinite(torch.tensor(expected)) and expected > 1


def test_heldout_task_rows_pool_over_folds() -> None:
    """Real figures are the folds' common ones; generated ones are averaged over the folds that
    generated, their counts summed; a refusal stays only where no fold generated."""
    real = {"population": "p", "task": "t", "width": 8, "kind": "classification",
            "real_models": 3, "real_test_acc": 0.9, "real_test_loss": 0.3}  # fmt: skip
    made = [{**real, "generated_models": 4, "generated_test_acc": a, "generated_test_loss": 1 - a}
            for a in (0.6, 0.8)]  # fmt: skip
    refused = {**real, "population": "q", "generated_models": 0, "refused": "unknown task"}
    pooled = pool_heldout_task_rows([[made[0], refused], [made[1], refused]])
    assert pooled[0]["generated_models"] == 8
    assert pooled[0]["generated_test_acc"] == pytest.approx(0.7)
    assert pooled[0]["generated_test_loss"] == pytest.approx(0.3)
    assert pooled[0]["real_test_acc"] == 0.9
    assert pooled[1]["generated_models"] == 0 and pooled[1]["refused"] == "unknown task"
    s = heldout_task_summary(pooled, 1)
    assert s["heldout_task_acc_ratio"] == pytest.approx(0.7 / 0.9)
    with pytest.raises(ValueError):  # folds with other populations do not pool
        pool_heldout_task_rows([[made[0]], [made[1], refused]])
