"""Tasks stored with a zoo: round trip, lookup in a "fresh process", refusal on mismatch,
file tasks from a spec, held-out tasks, and tasks carried by a saved generator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from zoo_fixtures import tiny_spec_dict

import zoo.tasks.base as task_registry
from pipelines.build import build_zoo
from zoo import open_zoo, register_task
from zoo.spec import SpecError, ZooSpec
from zoo.store import open_group
from zoo.task_store import (
    read_task,
    register_task_tensors,
    stored_tasks,
    task_key,
    task_tensors,
)
from zoo.tasks import get_task
from zoo.tasks.fingerprint import SPLITS


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch):
    """What a new process starts with: no registered and no store-read tasks. Returns a
    function that forgets them again (the next "process")."""

    def fresh() -> None:
        monkeypatch.setattr(task_registry, "_USER", {})
        monkeypatch.setattr(task_registry, "_STORED", {})

    fresh()
    return fresh


def _blobs_arrays(shift: float = 0.0) -> tuple[torch.Tensor, ...]:
    b = get_task("blobs")
    return b.x_train + shift, b.y_train, b.x_test + shift, b.y_test


def _tiny(tmp_path: Path, tasks: list[str], **over: object) -> ZooSpec:
    return ZooSpec.from_dict(tiny_spec_dict(tasks=tasks, epochs=1, checkpoints=[0, 1], **over))


def test_store_round_trip_and_lookup_in_a_fresh_process(tmp_path: Path, fresh_registry) -> None:
    register_task("ts-blobs", *_blobs_arrays(), val_fraction=0.2)
    mine = get_task("ts-blobs")
    store = str(tmp_path / "zoo.zarr")
    build_zoo(_tiny(tmp_path, ["ts-blobs", "moons"]), store, workers=0, metrics=False)
    root = open_group(store, mode="r")
    records = stored_tasks(root)
    assert list(records) == ["ts-blobs", "moons"]
    assert records["ts-blobs"]["source"] == "arrays" and records["moons"]["source"] == "builtin"
    assert records["ts-blobs"]["fingerprint"] == mine.fingerprint
    assert records["moons"]["fingerprint"] == get_task("moons").fingerprint
    assert "x_train" not in root["tasks"][task_key("moons")]  # built-ins: name + parameters
    # the arrays are stored compressed and read back bit for bit
    assert root["tasks"][task_key("ts-blobs")]["x_train"].metadata.codecs[-1].to_dict()["name"] in (
        "zstd", "gzip", "blosc")  # fmt: skip
    back = read_task(root, "ts-blobs")
    for split in SPLITS:
        assert torch.equal(getattr(back, split), getattr(mine, split))
    assert back.fingerprint == mine.fingerprint
    # a new process knows nothing of the task until it opens the zoo
    fresh_registry()
    with pytest.raises(ValueError, match="unknown task 'ts-blobs'"):
        get_task("ts-blobs")
    z = open_zoo(store)
    got = get_task("ts-blobs")
    assert got.fingerprint == mine.fingerprint and torch.equal(got.y_val, mine.y_val)
    pop = z.populations["ts-blobs-mlp-w8"]  # pop.evaluate() finds the task by name
    torch.testing.assert_close(pop.evaluate(), torch.as_tensor(pop.metrics["test_acc"][:, -1]))


def test_same_name_other_data_is_refused(tmp_path: Path, fresh_registry) -> None:
    register_task("ts-ref", *_blobs_arrays())
    register_task("ts-ref", *_blobs_arrays())  # the same data again: fine
    with pytest.raises(ValueError, match="already registered with other data"):
        register_task("ts-ref", *_blobs_arrays(shift=1.0))
    store = str(tmp_path / "zoo.zarr")
    build_zoo(_tiny(tmp_path, ["ts-ref"]), store, workers=0, metrics=False)
    before = open_zoo(store).populations["ts-ref-mlp-w4"].weights()
    stored_fp = get_task("ts-ref").fingerprint
    # "process 2" registers the name with other data: opening the zoo is refused...
    fresh_registry()
    register_task("ts-ref", *_blobs_arrays(shift=1.0))
    other_fp = get_task("ts-ref").fingerprint
    with pytest.raises(ValueError, match=f"'ts-ref'.*{other_fp}.*{stored_fp}"):
        open_zoo(store)
    # ...and so is resuming the build, before anything is written
    spec = _tiny(tmp_path, ["ts-ref"], seeds=3)
    with pytest.raises(ValueError, match=f"fingerprint {other_fp}.*fingerprint {stored_fp}"):
        build_zoo(spec, store, workers=0, metrics=False)
    # "process 3" opens the zoo first: registering other data afterwards is refused
    fresh_registry()
    open_zoo(store)
    with pytest.raises(ValueError, match=f"differ from the task stored in {store}"):
        register_task("ts-ref", *_blobs_arrays(shift=1.0))
    assert torch.equal(open_zoo(store).populations["ts-ref-mlp-w4"].weights(), before)


def test_file_task_from_a_spec(tmp_path: Path, fresh_registry) -> None:
    b = get_task("blobs")
    np.savez(tmp_path / "mine.npz", x_train=b.x_train.numpy(), y_train=b.y_train.numpy(),
             x_test=b.x_test.numpy(), y_test=b.y_test.numpy())  # fmt: skip
    (tmp_path / "spec.toml").write_text(
        'name = "filetask"\nseeds = 2\nepochs = 1\nmodels_per_chunk = 2\n'
        'heldout_tasks = ["moons"]\n'
        '[tasks.mine]\nfile = "mine.npz"\n[tasks.moons]\n'
        '[architecture]\nfamily = "mlp"\ndepth = 1\n'
        '[load]\naxis = "width"\nvalues = [4]\n'
        '[temperature]\naxis = "learning_rate"\nvalues = [0.05]\n'
    )
    spec = ZooSpec.from_toml(tmp_path / "spec.toml")
    assert spec.tasks == ("mine", "moons") and spec.heldout_tasks == ("moons",)
    assert spec.task_sources["mine"]["file"] == str((tmp_path / "mine.npz").resolve())
    store = str(tmp_path / "zoo.zarr")
    build_zoo(spec, store, workers=0, metrics=False)
    fp = get_task("mine").fingerprint
    fresh_registry()
    z = open_zoo(store)
    assert z.spec.heldout_tasks == ("moons",)
    assert get_task("mine").fingerprint == fp
    assert stored_tasks(z.root)["moons"]["heldout"] is True


def test_spec_task_table_errors(tmp_path: Path) -> None:
    base = tiny_spec_dict()
    with pytest.raises(SpecError, match="heldout_tasks names 'blobs'"):
        ZooSpec.from_dict({**base, "heldout_tasks": ["blobs"]})
    with pytest.raises(SpecError, match="every task is held out"):
        ZooSpec.from_dict({**base, "heldout_tasks": ["moons"]})
    with pytest.raises(SpecError, match=r"\[tasks.x\] has label but no file"):
        ZooSpec.from_dict({**base, "tasks": {"x": {"label": "y"}}})
    with pytest.raises(SpecError, match="unknown field\\(s\\) colour"):
        ZooSpec.from_dict({**base, "tasks": {"x": {"file": "a.npz", "colour": 1}}})
    with pytest.raises(SpecError, match="not found"):
        ZooSpec.from_dict({**base, "tasks": {"x": {"file": str(tmp_path / "no.npz")}}})
    spec = ZooSpec.from_dict({**base, "tasks": {"moons": {}, "blobs": {"heldout": True}}})
    assert spec.tasks == ("moons", "blobs") and spec.heldout_tasks == ("blobs",)


def test_heldout_tasks_are_left_out_of_a_generators_data(tmp_path: Path) -> None:
    from generators import WeightDataset
    from generators.config import DataConfig

    store = str(tmp_path / "zoo.zarr")
    spec = _tiny(tmp_path, ["moons", "blobs"], heldout_tasks=["blobs"])
    z = build_zoo(spec, store, workers=0, metrics=False)
    cfg = DataConfig(canonical=False, property="")
    ds = WeightDataset.from_zoo(z, config=cfg)  # default: the zoo's held-out tasks
    assert ds.tasks == ["moons"] and ds.config.heldout_tasks == ["blobs"]
    assert {o[0] for o in ds.origin} == {"moons-mlp-w4", "moons-mlp-w8"}
    every = WeightDataset.from_zoo(z, config=DataConfig(canonical=False, property="",
                                                        heldout_tasks=[]))  # fmt: skip
    assert every.tasks == ["blobs", "moons"]
    with pytest.raises(ValueError, match="leaves out every population"):
        WeightDataset.from_zoo(z, config=DataConfig(canonical=False, property="",
                                                     heldout_tasks=["moons", "blobs"]))  # fmt: skip


def test_generator_carries_its_tasks(fresh_registry) -> None:
    register_task("ts-carried", *_blobs_arrays())
    mine = get_task("ts-carried")
    records, tensors = task_tensors(["ts-carried", "moons"])
    assert [r["name"] for r in records] == ["ts-carried"]  # built-ins are rebuilt by name
    fresh_registry()
    register_task_tensors(records, tensors, "a saved generator")
    assert get_task("ts-carried").fingerprint == mine.fingerprint
    fresh_registry()
    register_task("ts-carried", *_blobs_arrays(shift=2.0))
    with pytest.raises(ValueError, match="differs from the one stored in a saved generator"):
        register_task_tensors(records, tensors, "a saved generator")


def test_store_written_before_tasks_were_stored_gets_no_fingerprints(tmp_path: Path) -> None:
    """Its nets were trained on splits that cannot be told from today's: resuming it records
    nothing after the fact (and reads as before)."""
    store = str(tmp_path / "zoo.zarr")
    spec = _tiny(tmp_path, ["moons"])
    build_zoo(spec, store, workers=0, metrics=False)
    root = open_group(store, mode="r+")
    del root["tasks"]
    build_zoo(spec, store, workers=0, metrics=False)
    assert stored_tasks(open_group(store, mode="r")) == {}
    assert "tasks" not in open_group(store, mode="r")
