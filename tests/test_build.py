"""``zoo build``: resume, survival of SIGKILL, one build per store, Dask workers in other processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from zoo_fixtures import tiny_spec_dict

from pipelines.build import build_zoo, pending_chunks
from zoo import open_zoo, register_task
from zoo.spec import ZooSpec
from zoo.store import StoreError
from zoo.store_lock import BuildLock
from zoo.tasks import get_task
from zoo.training import Status

KILL_SPEC = tiny_spec_dict(
    load={"axis": "width", "values": [4, 8, 16]},
    temperature={"axis": "learning_rate", "values": [0.02, 0.05, 0.1, 0.2]},
    epochs=15,
    checkpoints=[0, 15],
)  # 3 populations x 8 models, 12 chunks of 2

BUILD_SCRIPT = """
import json, sys
from pipelines.build import build_zoo
from zoo.spec import ZooSpec
build_zoo(ZooSpec.from_dict(json.loads(sys.argv[1])), sys.argv[2], workers=0, metrics=False)
"""


def done_mask(store: str) -> dict[str, np.ndarray]:
    return {n: p.status == Status.DONE for n, p in open_zoo(store).populations.items()}


def test_rerun_trains_nothing_and_changes_nothing(tmp_path: Path) -> None:
    store = str(tmp_path / "zoo.zarr")
    spec = ZooSpec.from_dict(tiny_spec_dict())
    first = build_zoo(spec, store, workers=0, metrics=False)
    weights = {n: p.weights().clone() for n, p in first.populations.items()}
    mtimes = {p: p.stat().st_mtime_ns for p in Path(store).rglob("c/*")}
    assert pending_chunks(store) == []
    again = build_zoo(spec, store, workers=0, metrics=False)
    for n, p in again.populations.items():
        assert torch.equal(p.weights(), weights[n])
    assert {p: p.stat().st_mtime_ns for p in Path(store).rglob("c/*")} == mtimes


def test_sigkill_mid_build_then_resume(tmp_path: Path) -> None:
    store = str(tmp_path / "zoo.zarr")
    proc = subprocess.Popen(
        [sys.executable, "-c", BUILD_SCRIPT, json.dumps(KILL_SPEC), store],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            time.sleep(0.05)
            if not (Path(store) / "zarr.json").exists():
                continue
            try:
                masks = done_mask(store)
            except (StoreError, KeyError, ValueError):
                continue  # the store is still being created
            if sum(m.sum() for m in masks.values()) >= 2:
                break
        assert proc.poll() is None, "the build finished before it could be killed"
        # a second build of the same store is refused while the first holds the lock
        with pytest.raises(StoreError, match="being built by pid"):
            build_zoo(ZooSpec.from_dict(KILL_SPEC), store, workers=0, metrics=False)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    zoo = open_zoo(store)
    masks = done_mask(store)
    n_done = sum(int(m.sum()) for m in masks.values())
    assert 2 <= n_done < 24, f"expected a partial build, {n_done} of 24 done"
    before = {n: p.weights(checkpoint=-1)[masks[n]].clone() for n, p in zoo.populations.items()}
    before_metrics = {n: p.metrics["test_acc"][masks[n]] for n, p in zoo.populations.items()}

    resumed = build_zoo(ZooSpec.from_dict(KILL_SPEC), store, workers=0, metrics=False)
    for name, pop in resumed.populations.items():
        assert (pop.status == Status.DONE).all()
        assert torch.equal(pop.weights(checkpoint=-1)[masks[name]], before[name])  # bitwise
        np.testing.assert_array_equal(pop.metrics["test_acc"][masks[name]], before_metrics[name])
        assert torch.isfinite(pop.weights()).all()


def test_lock_refuses_second_build(tmp_path: Path) -> None:
    store = str(tmp_path / "zoo.zarr")
    spec = ZooSpec.from_dict(tiny_spec_dict())
    build_zoo(spec, store, workers=0, metrics=False)
    with BuildLock(store), pytest.raises(StoreError, match="being built"):
        build_zoo(spec, store, workers=0, metrics=False)
    with BuildLock(store):  # released after the failed attempt and after the with-block
        pass


def test_url_lock_refuses_second_build() -> None:
    store = "memory://wz-lock-test"
    spec = ZooSpec.from_dict(tiny_spec_dict())
    build_zoo(spec, store, workers=0, metrics=False)
    with BuildLock(store), pytest.raises(StoreError, match="being built by pid"):
        build_zoo(spec, store, workers=0, metrics=False)


def test_dask_workers_in_other_processes_with_registered_task(tmp_path: Path) -> None:
    """A user task registered in this process trains on worker processes of a Dask cluster
    joined by address, into a ``file://`` store."""
    from distributed import LocalCluster

    base = get_task("blobs")
    register_task(
        "my-blobs", base.x_train, base.y_train, base.x_test, base.y_test, val_fraction=0.2
    )
    spec = ZooSpec.from_dict(tiny_spec_dict(tasks=["my-blobs"]))
    store = f"file://{tmp_path}/zoo.zarr"
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cl:
        zoo = build_zoo(spec, store, scheduler=cl.scheduler_address, metrics=False)
    pops = zoo.populations
    assert list(pops) == ["my-blobs-mlp-w4", "my-blobs-mlp-w8"]
    for p in pops.values():
        assert (p.status == Status.DONE).all()
        assert p.metrics["test_acc"][:, -1].mean() > 0.5
    inline = build_zoo(spec, tmp_path / "inline.zarr", workers=0, metrics=False)
    for name, p in pops.items():
        assert torch.equal(p.weights(), inline.populations[name].weights())


def test_diverged_models_are_marked_and_do_not_block_resume(tmp_path: Path) -> None:
    spec = ZooSpec.from_dict(
        tiny_spec_dict(temperature={"axis": "learning_rate", "values": [0.05, 1e6]})
    )
    zoo = build_zoo(spec, tmp_path / "zoo.zarr", workers=0, metrics=False)
    pop = zoo.populations["moons-mlp-w8"]
    lr = pop.hparams["learning_rate"]
    assert (pop.status[lr > 1] == Status.DIVERGED).all()
    assert (pop.status[lr < 1] == Status.DONE).all()
    assert torch.isnan(pop.weights()[lr > 1]).all()
    assert pending_chunks(tmp_path / "zoo.zarr") == []
