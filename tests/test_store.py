"""The Zarr store: layout, reads, round trips, fsspec URLs, refusing what it must refuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from zoo_fixtures import built_tiny_zoo, tiny_spec_dict

from pipelines.build import build_zoo
from zoo import open_zoo
from zoo.spec import ZooSpec
from zoo.store import ATTR_KEY, StoreError, create_or_check
from zoo.tasks import get_task
from zoo.training import METRIC_NAMES, Status, TrainConfig, train_population


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> str:
    return built_tiny_zoo(tmp_path_factory.mktemp("zoo"))


def test_layout_of_the_store(built: str) -> None:
    z = open_zoo(built)
    assert list(z.populations) == ["moons-mlp-w4", "moons-mlp-w8"]
    pop = z.populations["moons-mlp-w8"]
    g = zarr.open_group(built, mode="r")["moons-mlp-w8"]
    m, n = 4, pop.arch.num_params
    assert g["weights"].shape == (m, 3, n) and g["weights"].dtype == np.float32
    assert g["weights"].chunks == (1, 1, n) and g["weights"].shards == (2, 3, n)
    assert g["status"].chunks == (2,) and g["metrics"]["test_acc"].chunks == (2, 3)
    assert set(g["metrics"].array_keys()) == set(METRIC_NAMES)
    attrs = z.attrs
    assert attrs["spec"]["name"] == "tiny" and "torch" in attrs["versions"]
    assert g.attrs["layout"] == pop.layout.to_dict()


def test_population_reads(built: str) -> None:
    pop = open_zoo(built).populations["moons-mlp-w8"]
    assert (pop.status == Status.DONE).all()
    w = pop.weights(checkpoint=-1)
    assert w.shape == (4, pop.arch.num_params) and w.dtype == torch.float32
    assert torch.equal(pop.weights(checkpoint=0), pop.arch.init_weights(pop.hparams["seed"]))
    assert torch.equal(pop.trajectory(3)[-1], w[3])
    assert pop.checkpoints == [0, 1, 2]
    assert list(pop.hparams["learning_rate"]) == [0.05, 0.05, 0.5, 0.5]
    metrics = pop.metrics
    assert metrics["test_acc"].shape == (4, 3) and np.isfinite(metrics["test_acc"]).all()
    frame = pop.frame()
    assert len(frame) == 4 and set(frame["status"]) == {"done"}


def test_model_equals_functional_forward(built: str) -> None:
    pop = open_zoo(built).populations["moons-mlp-w4"]
    x = get_task("moons").x_test
    functional = pop.arch.forward(pop.weights(), x)  # (M, B, K)
    for i in range(len(pop)):
        torch.testing.assert_close(pop.model(i)(x), functional[i], rtol=0, atol=1e-6)
    with pytest.raises(IndexError, match="out of range"):
        pop.model(99)
    with pytest.raises(IndexError, match="checkpoint index 5"):
        pop.weights(checkpoint=5)


def test_store_matches_direct_training(built: str) -> None:
    """What the pipeline stored equals training the same chunk directly."""
    pop = open_zoo(built).populations["moons-mlp-w8"]
    hp = pop.hparams
    spec = open_zoo(built).spec
    r = train_population(
        pop.arch, get_task("moons"), spec.train_config(), hp["seed"][:2],
        hp["learning_rate"][:2], hp["weight_decay"][:2], hp["batch_size"][:2],
    )  # fmt: skip
    assert torch.equal(r.weights[:, -1], pop.weights()[:2])
    assert isinstance(spec.train_config(), TrainConfig)


def test_memory_url_store() -> None:
    z = build_zoo(ZooSpec.from_dict(tiny_spec_dict()), "memory://wz-test", workers=0, metrics=False)
    assert (z.populations["moons-mlp-w4"].status == Status.DONE).all()
    again = open_zoo("memory://wz-test")
    assert torch.equal(
        again.populations["moons-mlp-w4"].weights(), z.populations["moons-mlp-w4"].weights()
    )


def test_different_spec_is_refused_and_nothing_changes(built: str) -> None:
    before = open_zoo(built).populations["moons-mlp-w4"].weights().clone()
    other = ZooSpec.from_dict(tiny_spec_dict(epochs=3, checkpoints=[0, 3]))
    with pytest.raises(StoreError, match=r"different spec \(differs in: epochs, checkpoints\)"):
        build_zoo(other, built, workers=0, metrics=False)
    assert torch.equal(open_zoo(built).populations["moons-mlp-w4"].weights(), before)


def test_a_store_from_before_shared_init_reads_as_shared_and_refuses_per_model_seeds(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "old.zarr")
    build_zoo(ZooSpec.from_dict(tiny_spec_dict(shared_init=True)), path, workers=0, metrics=False)
    root = zarr.open_group(path, mode="r+")
    attrs = dict(root.attrs[ATTR_KEY])
    attrs["spec"] = {k: v for k, v in attrs["spec"].items() if k != "shared_init"}  # old record
    root.attrs[ATTR_KEY] = attrs
    before = open_zoo(path).populations["moons-mlp-w4"].weights().clone()
    assert open_zoo(path).spec.shared_init
    with pytest.raises(StoreError, match=r"different spec \(differs in: shared_init\)"):
        build_zoo(ZooSpec.from_dict(tiny_spec_dict()), path, workers=0, metrics=False)
    build_zoo(ZooSpec.from_dict(tiny_spec_dict(shared_init=True)), path, workers=0, metrics=False)
    assert torch.equal(open_zoo(path).populations["moons-mlp-w4"].weights(), before)


def test_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(StoreError, match="not a weightzoo store"):
        open_zoo(tmp_path)
    with pytest.raises(StoreError, match="not empty and not a weightzoo store"):
        create_or_check(tmp_path, ZooSpec.from_dict(tiny_spec_dict()))
    assert (tmp_path / "notes.txt").read_text() == "hello"
    plain = zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    plain.create_array("x", shape=(2,), dtype="f4")
    with pytest.raises(StoreError, match="Zarr group but not a weightzoo store"):
        create_or_check(tmp_path / "plain.zarr", ZooSpec.from_dict(tiny_spec_dict()))


def test_unwritable_location(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PermissionError, match="is not a directory"):
        build_zoo(
            ZooSpec.from_dict(tiny_spec_dict()), blocker / "zoo.zarr", workers=0, metrics=False
        )
