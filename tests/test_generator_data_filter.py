"""The generator's data filter: ``data.exclude_phases``, ``data.min_val_acc`` and
``data.max_norm_ratio``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from zoo_fixtures import built_tiny_zoo, tiny_flow, trained_moons

from generators import DataConfig, FlowConfig, FlowGenerator, WeightDataset, load_generator
from zoo import MLP, Population
from zoo.landscape.phases import PHASE_CODES
from zoo.store import open_group, open_zoo
from zoo.training import Status

TINY = tiny_flow(5, hidden=16)
PRESET = Path(__file__).resolve().parents[1] / "data" / "generators" / "flow.toml"
C = PHASE_CODES  # phase name -> code


@pytest.fixture(scope="module")
def moons() -> list[tuple[MLP, torch.Tensor]]:
    """(arch, weights) of two tiny trained moons populations (widths 3 and 5), 6 models each."""
    return [trained_moons(w, 6, seed_offset=10 * w) for w in (3, 5)]


CODES = {  # per-model phase codes of the two populations
    "a": [C["collapsed"], C["I"], C["IV-B"], C["collapsed"], C["II"], C["IV-A"]],
    "b": [C["IV-B"], C["unlabelled"], C["collapsed"], C["III"], C["IV-B"], C["II"]],
}


def labelled(moons: list[tuple[MLP, torch.Tensor]]) -> list[Population]:
    return [
        Population(arch, w, "moons", name, {"phase": torch.tensor(CODES[name])})
        for (arch, w), name in zip(moons, CODES, strict=True)
    ]


@pytest.mark.parametrize(
    "excluded", [[], ["collapsed"], ["collapsed", "unlabelled"], ["I", "II", "III"]]
)
def test_exclude_phases_keeps_exactly_the_other_models(moons, excluded: list[str]) -> None:
    cfg = DataConfig(heldout=0.25, property="", exclude_phases=excluded)
    ds = WeightDataset.from_populations(labelled(moons), cfg)
    bad = {C[p] for p in excluded}
    want = [(n, i) for n, codes in CODES.items() for i, c in enumerate(codes) if c not in bad]
    assert ds.origin == want
    assert ds.filtered == {n: sum(c in bad for c in codes) for n, codes in CODES.items()}
    w = dict(zip(CODES, (w for _, w in moons), strict=True))
    for m, (name, row) in enumerate(ds.origin):  # the weights are those of the kept rows
        g = int(ds.group[m])
        assert torch.equal(ds.padded.crop(ds.weights[m : m + 1], g)[0], w[name][row])
    for g in range(len(ds.groups)):  # the split runs on the kept models: both sides non-empty
        assert len(ds.group_rows(g, True)) >= 1 and len(ds.group_rows(g, False)) >= 1


def test_min_val_acc_keeps_models_at_or_above_the_threshold(moons) -> None:
    arch, w = moons[1]
    acc = Population(arch, w, "moons").evaluate(split="val")
    threshold = float(acc.median())
    pop = Population(arch, w, "moons", "b", {"phase": torch.tensor(CODES["b"])})
    ds = WeightDataset.from_populations([pop], DataConfig(property="val_acc",
                                                          min_val_acc=threshold))  # fmt: skip
    assert [r for _, r in ds.origin] == [i for i, a in enumerate(acc.tolist()) if a >= threshold]
    assert torch.allclose(ds.prop, acc[acc >= threshold])
    both = WeightDataset.from_populations(
        [pop], DataConfig(min_val_acc=threshold, exclude_phases=["IV-B"])
    )
    assert [r for _, r in both.origin] == [
        i for i, a in enumerate(acc.tolist()) if a >= threshold and CODES["b"][i] != C["IV-B"]
    ]


@pytest.mark.parametrize("ratio", [1.5, 4.0])
def test_max_norm_ratio_drops_exactly_the_blown_up_models(moons, ratio: float) -> None:
    arch, w = moons[0]
    w = w.clone()
    w[2] *= 50.0  # a run that blew up without collapsing
    w[4] *= 3.0
    norm = w.double().norm(dim=1)
    expected = [i for i in range(len(w)) if norm[i] <= ratio * norm.median()]
    assert 2 not in expected and len(expected) < len(w)
    ds = WeightDataset.from_populations(
        [Population(arch, w, "moons", "a")], DataConfig(property="", max_norm_ratio=ratio)
    )
    assert [r for _, r in ds.origin] == expected
    assert len(WeightDataset.from_populations([Population(arch, w, "moons", "a")])) == len(w)


def test_filter_round_trips_through_config_files_and_saved_generators(moons, tmp_path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[data]\nexclude_phases = ["collapsed", "I"]\nmin_val_acc = 0.25\n')
    cfg = FlowConfig.load(p)
    assert (cfg.data.exclude_phases, cfg.data.min_val_acc) == (["collapsed", "I"], 0.25)
    cfg.save(tmp_path / "c.json")
    assert FlowConfig.load(tmp_path / "c.json") == cfg
    assert cfg.with_overrides({"data.exclude_phases": ["III"]}).data.exclude_phases == ["III"]
    assert FlowConfig.load(PRESET).data.exclude_phases == ["collapsed"]  # the default preset

    gen = FlowGenerator(
        FlowConfig().with_overrides({**TINY, "data.exclude_phases": ["collapsed", "II"]})
    )
    gen.fit(WeightDataset.from_populations(labelled(moons), gen.config.data))
    gen.save(tmp_path / "run")
    back = load_generator(tmp_path / "run")
    assert back.config.data.exclude_phases == ["collapsed", "II"]
    assert back.info.data.exclude_phases == ["collapsed", "II"]
    kept = back.info.train_origin + back.info.heldout_origin
    assert all(CODES[n][r] not in (C["collapsed"], C["II"]) for n, r in kept)


def test_config_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown phase\(s\) 'IV'.*known: I, II, III, IV-A"):
        DataConfig(exclude_phases=["collapsed", "IV"])
    with pytest.raises(ValueError, match="must be a list of phase names"):
        DataConfig(exclude_phases="collapsed")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"data.min_val_acc must be in \[0, 1\]"):
        DataConfig(min_val_acc=1.5)
    with pytest.raises(ValueError, match=r"data.max_norm_ratio must be 0 \(off\) or > 1, got 0.5"):
        DataConfig(max_norm_ratio=0.5)
    with pytest.raises(ValueError, match="unknown phase"):
        FlowConfig().with_overrides({"data.exclude_phases": ["colapsed"]})
    with pytest.raises(ValueError, match=r"data.exclude_phases\[0\] must be a string"):
        FlowConfig.from_dict({"data": {"exclude_phases": [5]}})


def test_filter_errors(moons) -> None:
    (arch, w), _ = moons
    unlabelled = Population(arch, w, "moons", "plain")
    with pytest.raises(
        ValueError, match="needs phase labels.*population plain has none.*zoo metrics"
    ):
        WeightDataset.from_populations([unlabelled], DataConfig(exclude_phases=["collapsed"]))
    assert len(WeightDataset.from_populations([unlabelled])) == 6  # no filter, no labels needed
    short = Population(arch, w, "moons", "short", {"phase": torch.zeros(4)})
    with pytest.raises(ValueError, match="4 phase labels for 6 models"):
        WeightDataset.from_populations([short], DataConfig(exclude_phases=["I"]))
    pops = labelled(moons)
    everything = ["I", "II", "III", "IV-A", "IV-B", "collapsed", "unlabelled"]
    with pytest.raises(ValueError, match="leaves no models of population a .*width 3"):
        WeightDataset.from_populations(pops, DataConfig(exclude_phases=everything))
    with pytest.raises(ValueError, match="leaves no models of population b "):
        WeightDataset.from_populations(pops, DataConfig(exclude_phases=everything[1:]))
    constant = Population(arch, torch.zeros_like(w), "moons", "zeros")  # predicts one class
    with pytest.raises(
        ValueError,
        match=r"min_val_acc=0.9, max_norm_ratio=0.0\) leaves no models of population zeros",
    ):
        WeightDataset.from_populations([constant], DataConfig(min_val_acc=0.9))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny zoo (2 widths x 2 learning rates x 2 seeds on moons) without landscape metrics."""
    return built_tiny_zoo(tmp_path_factory.mktemp("zoo"))


def test_stored_phase_labels_select_models(store: str, tmp_path: Path) -> None:
    import shutil

    from pipelines.evaluate import dataset_for

    cfg = DataConfig(canonical=False, property="val_acc", exclude_phases=["collapsed"])
    with pytest.raises(ValueError, match="needs phase labels.*run `zoo metrics STORE`"):
        WeightDataset.from_zoo(store, None, cfg)
    labelled_store = str(tmp_path / "z.zarr")
    shutil.copytree(store, labelled_store, ignore=shutil.ignore_patterns(".build.lock"))
    root = open_group(labelled_store, mode="r+")
    names = list(open_zoo(labelled_store).populations)
    codes = {}
    for k, name in enumerate(names):  # the landscape stage's per-model array, known codes
        m = int(root[name]["status"].shape[0])
        codes[name] = np.array([C["collapsed"] if (i + k) % 3 == 0 else C["IV-B"]
                                for i in range(m)], dtype=np.int8)  # fmt: skip
        root[name].create_array("phase", data=codes[name])
    done = {n: root[n]["status"][:] == Status.DONE for n in names}  # only trained models count
    # a lone net that predicts a constant (its own output std) in a cell labelled IV-B
    lone = next(i for i, c in enumerate(codes[names[0]]) if c == C["IV-B"] and done[names[0]][i])
    output_std = np.ones(len(codes[names[0]]), dtype=np.float32)
    output_std[lone] = 0.0
    root[names[0]]["metrics"].create_array("output_std", data=output_std)
    ds = WeightDataset.from_zoo(labelled_store, None, cfg)
    want = [(n, i) for n in names for i, c in enumerate(codes[n])
            if c != C["collapsed"] and done[n][i] and (n, i) != (names[0], lone)]  # fmt: skip
    assert sorted(ds.origin) == sorted(want)
    gen = FlowGenerator(FlowConfig(data=cfg).with_overrides(TINY))
    gen.fit(ds)
    again = dataset_for(gen, labelled_store)  # evaluation re-reads the same filtered models
    assert again.origin == ds.origin and torch.equal(again.train, ds.train)
