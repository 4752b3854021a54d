"""Generator run dirs are not trusted: a table of bad run dirs, each refused in one line before
a tensor is read; checkpoints only read when they are safetensors; resume only of the same run;
a generator refuses another zoo; sampling options must be finite; ``zoo sample`` streams."""

from __future__ import annotations

import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from zoo_fixtures import built_tiny_zoo, tiny_flow, trained_moons

from generators import FlowConfig, FlowGenerator, WeightDataset, load_population
from generators.info import DatasetInfo
from generators.population_io import chunk_seed, stream_population
from generators.run_dir import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    check_tensors,
    read_run_dir,
    safetensors_header,
    write_run_dir,
)
from pipelines.cli import main
from pipelines.evaluate import dataset_for
from pipelines.generator_training import train_generator
from pipelines.safetensors_checkpoint import SafetensorsCheckpointIO
from zoo import Population
from zoo.integrity import row_checksums

TINY = tiny_flow(10)


@pytest.fixture(scope="module")
def dataset() -> WeightDataset:
    pops = [Population(*trained_moons(w, 6), "moons", f"w{w}") for w in (3, 5)]
    return WeightDataset.from_populations(pops)


@pytest.fixture(scope="module")
def saved(dataset: WeightDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    gen = FlowGenerator(FlowConfig().with_overrides(TINY))
    gen.fit(dataset)
    return gen.save(tmp_path_factory.mktemp("gen") / "run")


def edit_json(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        meta = json.loads((run / CONFIG_FILE).read_text())
        change(meta)
        (run / CONFIG_FILE).write_text(json.dumps(meta))

    return apply


def set_weights(data: bytes | Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        f = run / WEIGHTS_FILE
        f.write_bytes(data(f.read_bytes()) if callable(data) else data)

    return apply


def setitem(path: str, value: object) -> Callable[[dict], None]:
    def change(meta: dict) -> None:
        *parents, last = path.split(".")
        node = meta
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        node[last] = value

    return change


BAD_RUN_DIRS = [
    ("garbage weights", set_weights(np.random.default_rng(0).bytes(4096)),
     "is not a valid safetensors file"),
    ("truncated weights", set_weights(lambda b: b[: len(b) // 2]), "truncated"),
    ("empty weights", set_weights(b""), "empty or 0 bytes"),
    ("a pickle as weights", set_weights(pickle.dumps({"net.w": [1.0, 2.0]})),
     "is not a valid safetensors file"),
    ("garbled JSON", lambda run: (run / CONFIG_FILE).write_text("{ not json"),
     "is not valid JSON"),
    ("foreign JSON", edit_json(lambda m: m.pop("format")), "not a weightzoo generator file"),
    ("hidden set huge", edit_json(setitem("config.model.hidden", 10**9)),
     "model.hidden = 1e+09 is over its limit"),
    ("steps set huge", edit_json(setitem("config.training.max_steps", 1e30)),
     "training.max_steps = 1e+30 is over its limit"),
    ("a width set huge", edit_json(setitem("dataset.groups.0.arch.width", 10**9)),
     "has width 1000000000"),
    ("another width", edit_json(setitem("dataset.groups.0.arch.width", 7)),
     "group 0's training nets have shape [5, 17], but its architecture has 37 parameters"),
    ("a string for a number", edit_json(setitem("dataset.prop_mean", "x")),
     "dataset.prop_mean has the wrong type (str)"),
    ("a string in the config", edit_json(setitem("config.training.learning_rate", "x")),
     "training.learning_rate must be a number"),
    ("a missing key", edit_json(lambda m: m["dataset"].pop("groups")), "dataset.groups is missing"),
    ("an unknown kind", edit_json(setitem("kind", "gan")), "unknown generator kind 'gan'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("what", "damage", "message"), BAD_RUN_DIRS, ids=[b[0] for b in BAD_RUN_DIRS]
)
def test_bad_run_dir_refused_in_one_line(
    saved: Path, tmp_path: Path, capsys, what: str, damage: Callable[[Path], None], message: str
) -> None:
    run = tmp_path / "run"
    shutil.copytree(saved, run)
    damage(run)
    code = main(["sample", str(run), "--n", "3", "--out", str(tmp_path / "s.zarr")])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error: ") and "\n" not in err and message in err, err
    assert not (tmp_path / "s.zarr").exists()


def test_the_run_dir_as_saved_reads(saved: Path) -> None:
    meta, tensors = read_run_dir(saved)
    header = safetensors_header(saved / WEIGHTS_FILE)
    assert set(header) == set(tensors)
    for k, t in tensors.items():
        assert header[k]["shape"] == tuple(t.shape)


def test_swapped_weights_file_is_refused(saved: Path, tmp_path: Path) -> None:
    """Run dirs written by write_run_dir record their weights file's SHA-256."""
    meta, tensors = read_run_dir(saved)
    a = write_run_dir(tmp_path / "a", meta, tensors)
    other = {k: v + 1 if v.is_floating_point() else v for k, v in tensors.items()}
    b = write_run_dir(tmp_path / "b", meta, other)
    assert torch.equal(read_run_dir(a)[1]["net.velocity.out.weight"],
                       tensors["net.velocity.out.weight"])  # fmt: skip
    shutil.copy(b / WEIGHTS_FILE, a / WEIGHTS_FILE)
    with pytest.raises(ValueError, match="is not the weights file saved with generator.json"):
        read_run_dir(a)


def test_check_tensors_against_a_meta_built_network(saved: Path) -> None:
    """The check the base's load runs: the config's network built on the meta device (no
    memory) against the saved tensors."""
    meta, tensors = read_run_dir(saved)

    def network_state(hidden: int) -> dict[str, torch.Tensor]:
        cfg = FlowConfig.from_dict(meta["config"]).with_overrides({"model.hidden": hidden})
        gen = FlowGenerator(cfg)
        gen.info = DatasetInfo.from_dict(meta["dataset"], tensors)
        with torch.device("meta"):
            gen._restore(tensors)
        return gen.network.state_dict()

    check_tensors(network_state(meta["config"]["model"]["hidden"]), tensors, saved)
    with pytest.raises(ValueError, match=r"tensor '.*' is \(.*\) torch.float32, its config's"):
        check_tensors(network_state(48), tensors, saved)
    fewer = {k: v for k, v in tensors.items() if not k.endswith("out.bias")}
    with pytest.raises(ValueError, match="does not match its config's network .missing"):
        check_tensors(network_state(meta["config"]["model"]["hidden"]), fewer, saved)


def test_a_pickle_is_never_read_as_a_checkpoint(tmp_path: Path) -> None:
    ckpt = tmp_path / "last.ckpt"
    ckpt.write_bytes(pickle.dumps({"global_step": 5}))
    with pytest.raises(ValueError, match="is not a valid safetensors file"):
        SafetensorsCheckpointIO().load_checkpoint(ckpt)


def test_resume_only_the_same_run(dataset: WeightDataset, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = FlowConfig().with_overrides(TINY)
    train_generator(FlowGenerator(cfg), dataset, run, progress=False)
    again = train_generator(FlowGenerator(cfg), dataset, run, progress=False)
    assert again.resumed_from == 10
    other = FlowGenerator(cfg.with_overrides({"training.seed": 7, "training.learning_rate": 1e-3}))
    with pytest.raises(ValueError, match="another training.learning_rate, training.seed; use"):
        train_generator(other, dataset, run, progress=False)
    fewer = WeightDataset.from_populations([Population(*trained_moons(3, 6), "moons", "w3")])
    with pytest.raises(ValueError, match="trained with another training data"):
        train_generator(FlowGenerator(cfg), fewer, run, progress=False)
    (run / "checkpoints" / "run.json").unlink()
    with pytest.raises(ValueError, match="without a record of what they were trained with"):
        train_generator(FlowGenerator(cfg), dataset, run, progress=False)
    fresh = train_generator(other, dataset, run, progress=False, resume=False)
    assert fresh.resumed_from == 0


def test_generator_refuses_another_zoo(tmp_path: Path) -> None:
    store = built_tiny_zoo(tmp_path)
    cfg = FlowConfig().with_overrides({**TINY, "data.canonical": False, "data.heldout": 0.25})
    ds = WeightDataset.from_zoo(store, config=cfg.data)
    assert len(ds.zoo_fingerprint) == 16
    gen = FlowGenerator(cfg)
    gen.fit(ds)
    loaded = FlowGenerator.load(gen.save(tmp_path / "run"))
    assert loaded.info.zoo_fingerprint == ds.zoo_fingerprint
    dataset_for(loaded, store)  # its own zoo
    other = tmp_path / "other.zarr"
    shutil.copytree(store, other)
    g = zarr.open_group(str(other), mode="r+")["moons-mlp-w4"]
    w = g["weights"][0] * 1.5
    g["weights"][0] = w
    g["checksums"][0] = row_checksums(w)
    with pytest.raises(ValueError, match="is not the zoo this generator was trained on"):
        dataset_for(loaded, str(other))


@pytest.mark.parametrize(
    ("option", "value"), [("--target", "nan"), ("--guidance", "inf"), ("--temperature", "-inf")]
)
def test_non_finite_sampling_options_refused(
    saved: Path, tmp_path: Path, capsys, option: str, value: str
) -> None:
    out = tmp_path / "s.zarr"
    assert main(["sample", str(saved), "--n", "3", option, value, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {option} must be a finite number, got {float(value)}"
    assert not out.exists()


def test_streamed_sample_equals_chunked_draws(saved: Path, tmp_path: Path) -> None:
    gen = FlowGenerator.load(saved)

    def draw(count: int, index: int) -> Population:
        return gen.sample(count, seed=chunk_seed(3, index), target=0.9)

    stream_population(tmp_path / "s.zarr", 5, draw, rows=2)
    got = load_population(tmp_path / "s.zarr")
    want = torch.cat([gen.sample(c, seed=chunk_seed(3, i), target=0.9).weights()
                      for i, c in enumerate((2, 2, 1))])  # fmt: skip
    assert torch.equal(got.weights(), want)
    assert torch.equal(got.conditioning["target"], torch.full((5,), 0.9))
    assert chunk_seed(3, 0) == 3 and len({chunk_seed(3, i) for i in range(100)}) == 100


def test_cli_sample_streams_and_equals_one_draw(saved: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.zarr"
    assert main(["sample", str(saved), "--n", "7", "--seed", "2", "--out", str(out)]) == 0
    want = FlowGenerator.load(saved).sample(7, seed=2).weights()
    assert torch.equal(load_population(out).weights(), want)


def test_output_larger_than_free_disk_refused(
    saved: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    import shutil as sh

    monkeypatch.setattr(sh, "disk_usage", lambda p: sh._ntuple_diskusage(10**12, 10**12, 10**6))
    out = tmp_path / "s.zarr"
    assert main(["sample", str(saved), "--n", "100000", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "GiB but only 0.00 GiB are free" in err and "\n" not in err
    assert not out.exists()
