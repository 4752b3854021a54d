"""The generator framework: padding, normalization, WeightDataset, configs, save/load, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from zoo_fixtures import moons_populations, tiny_flow

from generators import (
    DataConfig,
    FlowConfig,
    FlowGenerator,
    PaddedLayout,
    WeightDataset,
    load_generator,
    load_population,
    save_population,
)
from generators.normalization import STD_FLOOR, Normalizer
from zoo import MLP, Population

TINY = tiny_flow(30)


def mlp(width: int, depth: int = 1) -> MLP:
    return MLP(width=width, in_shape=(2,), num_outputs=2, depth=depth)


@pytest.fixture(scope="module")
def moons_pops() -> list[Population]:
    """Two tiny trained populations (widths 3 and 5) on moons, 6 models each."""
    return moons_populations((3, 5))


@pytest.fixture(scope="module")
def trained(moons_pops: list[Population]) -> FlowGenerator:
    gen = FlowGenerator(FlowConfig().with_overrides(TINY))
    gen.fit(WeightDataset.from_populations(moons_pops))
    return gen


@pytest.mark.parametrize("widths", [(3,), (3, 5), (5, 2, 7)])
@pytest.mark.parametrize("depth", [1, 2])
def test_padding_round_trip_and_masks(widths: tuple[int, ...], depth: int) -> None:
    archs = [mlp(w, depth) for w in widths]
    pad = PaddedLayout(tuple(a.layout for a in archs))
    assert pad.dim == mlp(max(widths), depth).num_params
    for i, a in enumerate(archs):
        w = torch.randn(4, a.num_params)
        padded = pad.pad(w, i)
        assert torch.equal(pad.crop(padded, i), w)
        assert int(pad.masks[i].sum()) == a.num_params
        assert torch.equal(padded[:, ~pad.masks[i]], torch.zeros(4, pad.dim - a.num_params))
        # corner embedding: every parameter tensor sits in the leading slice of the widest one
        big = pad.union.unflatten(padded)
        for name, t in a.layout.unflatten(w).items():
            sl = tuple(slice(0, s) for s in t.shape[1:])
            assert torch.equal(big[name][(slice(None), *sl)], t)


def test_padding_refuses_other_parameter_names() -> None:
    with pytest.raises(ValueError, match="share parameter names"):
        PaddedLayout((mlp(3, 1).layout, mlp(3, 2).layout))


@pytest.mark.parametrize("kind", ["coordinate", "tensor", "robust"])
def test_normalizer_round_trip_and_reference_statistics(kind: str) -> None:
    archs = [mlp(3), mlp(5)]
    pad = PaddedLayout(tuple(a.layout for a in archs))
    w = torch.cat([pad.pad(torch.randn(7, archs[0].num_params) * 3 + 1, 0),
                   pad.pad(torch.randn(5, archs[1].num_params), 1)])  # fmt: skip
    group = torch.tensor([0] * 7 + [1] * 5)
    norm = Normalizer.fit(w, group, pad.masks, pad.union, kind)
    z = norm.normalize(w, group)
    assert torch.allclose(norm.denormalize(z, group), w, atol=1e-5)
    for g, rows in ((0, slice(0, 7)), (1, slice(7, 12))):  # one group straight into its layout
        full = pad.crop(norm.denormalize(z[rows], group[rows]), g)
        assert torch.equal(norm.denormalize_layout(z[rows], g, pad.indices[g]), full)
    assert torch.equal(z[:, ~pad.masks[0]][:7], torch.zeros(7, int((~pad.masks[0]).sum())))
    if kind == "coordinate":  # reference formula: population mean/std, std floored per tensor
        rows = w[:7].double()
        a, b = pad.union.offsets["hidden.0.weight"]
        real = pad.masks[0, a:b]
        sub = rows[:, a:b][:, real]
        floor = STD_FLOOR * sub.std(unbiased=False)
        ref = torch.maximum(sub.std(dim=0, unbiased=False), floor)
        assert torch.allclose(norm.mean[0, a:b][real], sub.mean(dim=0).float())
        assert torch.allclose(norm.std[0, a:b][real], ref.float())


def test_dataset_groups_split_and_filtering(moons_pops: list[Population]) -> None:
    bad = moons_pops[0].final.clone()
    bad[1] = float("nan")
    pops = [Population(mlp(3), bad, "moons", "a"), (mlp(5), moons_pops[1].final, "moons")]
    ds = WeightDataset.from_populations(pops, DataConfig(heldout=0.34, property="val_acc"))
    assert [g.key for g in ds.groups] == ["moons/w3", "moons/w5"]
    assert len(ds) == 11 and ("a", 1) not in ds.origin  # the NaN model is dropped
    assert [len(ds.group_rows(g, False)) for g in range(2)] == [2, 2]
    assert ds.widths == [3, 5] and ds.tasks == ["moons"]
    ref = Population(mlp(5), moons_pops[1].final, "moons").evaluate(split="val")
    assert torch.allclose(ds.prop[ds.group == 1], ref)
    again = WeightDataset.from_populations(pops, DataConfig(heldout=0.34, split_seed=0))
    assert torch.equal(again.train, ds.train)  # the split is a function of the seed
    restored = again.with_split([o for o, t in zip(ds.origin, ds.train.tolist(), strict=True) if t])
    assert torch.equal(restored.train, ds.train)


def test_dataset_errors(moons_pops: list[Population]) -> None:
    with pytest.raises(ValueError, match="at least one population"):
        WeightDataset.from_populations([])
    empty = Population(mlp(3), torch.full((2, mlp(3).num_params), float("nan")), "moons", "e")
    with pytest.raises(ValueError, match="population e has no usable models"):
        WeightDataset.from_populations([empty])
    with pytest.raises(ValueError, match="do not match the layout"):
        WeightDataset.from_populations([(mlp(3), torch.zeros(2, 5), "moons")])
    with pytest.raises(ValueError, match="no property 'bogus'"):
        WeightDataset.from_populations(moons_pops, DataConfig(property="bogus"))
    with pytest.raises(ValueError, match="data.heldout"):
        DataConfig(heldout=1.0)


def test_config_files_and_errors(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text('[training]\nmax_steps = 7\n[model]\npca = 0\n[sampling]\nsolver = "rk4"\n')
    cfg = FlowConfig.load(p)
    assert (cfg.training.max_steps, cfg.model.pca, cfg.sampling.solver) == (7, 0, "rk4")
    j = tmp_path / "c.json"
    cfg.save(j)
    assert FlowConfig.load(j) == cfg
    preset = Path(__file__).resolve().parents[1] / "data" / "generators" / "flow.toml"
    assert FlowConfig.load(preset).kind == "flow"
    p.write_text("[training]\nmax_stepz = 7\n")
    with pytest.raises(ValueError, match="unknown config field.*training.max_stepz"):
        FlowConfig.load(p)
    p.write_text('[training]\nmax_steps = "many"\n')
    with pytest.raises(ValueError, match="training.max_steps must be an integer"):
        FlowConfig.load(p)
    with pytest.raises(ValueError, match="sampling.solver"):
        cfg.with_overrides({"sampling.solver": "leapfrog"})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        FlowConfig.load(tmp_path / "missing.toml")


def test_save_load_reproduces_samples_bitwise(trained: FlowGenerator, tmp_path: Path) -> None:
    trained.save(tmp_path / "run")
    again = load_generator(tmp_path / "run")
    for kw in ({"width": 3, "seed": 1}, {"width": 5, "seed": 2, "guidance": 2.0, "novelty": 0.5}):
        a, b = trained.sample(9, **kw), again.sample(9, **kw)
        assert torch.equal(a.weights(), b.weights())
        assert a.arch == b.arch and a.task == b.task == "moons"
    assert again.info.train_origin == trained.info.train_origin
    assert not list((tmp_path / "run").glob("*.pt")) and not list((tmp_path / "run").glob("*.pkl"))


def test_samples_are_populations_modules_and_ensembles(trained: FlowGenerator) -> None:
    pop = trained.sample(4, width=5, seed=0)
    assert pop.weights().shape == (4, mlp(5).num_params)
    x = torch.randn(16, 2)
    functional = pop.arch.forward(pop.weights(), x)  # (P, B, K)
    for m, module in enumerate(pop.to_modules()):
        with torch.no_grad():
            assert torch.allclose(module(x), functional[m], atol=1e-6)
    probs = torch.softmax(functional, dim=-1).mean(dim=0)
    assert torch.allclose(pop.ensemble()(x), probs, atol=1e-6)
    assert pop.evaluate().shape == (4,)


def test_sample_errors(trained: FlowGenerator, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown task 'digits'.*trained on: moons"):
        trained.sample(2, task="digits")
    with pytest.raises(ValueError, match="width 4 is not available.*trained widths: 3, 5"):
        trained.sample(2, width=4)
    with pytest.raises(ValueError, match="unknown sampling option"):
        trained.sample(2, stepz=3)
    with pytest.raises(ValueError, match="not trained yet"):
        FlowGenerator().sample(2)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_generator(tmp_path / "nope")
    (tmp_path / "other").mkdir()
    with pytest.raises(FileNotFoundError, match="is not a weightzoo generator"):
        load_generator(tmp_path / "other")
    (tmp_path / "other" / "generator.json").write_text(json.dumps({"hello": 1}))
    (tmp_path / "other" / "generator.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="not a weightzoo generator file"):
        load_generator(tmp_path / "other")


@pytest.mark.parametrize("suffix", [".safetensors", ".zarr"])
def test_population_files_round_trip(trained: FlowGenerator, tmp_path: Path, suffix: str) -> None:
    pop = trained.sample(3, width=3, seed=4)
    back = load_population(save_population(pop, tmp_path / f"pop{suffix}"))
    assert torch.equal(back.weights(), pop.weights())
    assert back.arch == pop.arch and back.task == pop.task
    assert torch.equal(back.conditioning["target"], pop.conditioning["target"])
    with pytest.raises(ValueError, match=r"must end in \.safetensors or \.zarr"):
        save_population(pop, tmp_path / "pop.npy")


def test_safetensors_checkpoint_round_trip(tmp_path: Path) -> None:
    from pipelines.safetensors_checkpoint import SafetensorsCheckpointIO

    ckpt = {"state_dict": {"a.w": torch.randn(2, 3)}, "step": 7, "lr": [1e-3, None],
            "opt": {"state": {0: {"exp_avg": torch.ones(3)}}, "betas": (0.9, 0.99)},
            "flag": True, "name": "x"}  # fmt: skip
    io = SafetensorsCheckpointIO()
    io.save_checkpoint(ckpt, tmp_path / "c.ckpt")
    back = io.load_checkpoint(tmp_path / "c.ckpt")
    assert torch.equal(back["state_dict"]["a.w"], ckpt["state_dict"]["a.w"])
    assert back["opt"]["state"][0]["exp_avg"].tolist() == [1.0, 1.0, 1.0]
    assert back["opt"]["betas"] == (0.9, 0.99)
    assert {k: back[k] for k in ("step", "lr", "flag", "name")} == {
        "step": 7, "lr": [1e-3, None], "flag": True, "name": "x"}  # fmt: skip
    with pytest.raises(TypeError, match="not storable"):
        io.save_checkpoint({"bad": object()}, tmp_path / "d.ckpt")


def test_one_network_serves_every_width(trained: FlowGenerator) -> None:
    sizes = {w: trained.sample(1, width=w).weights().shape[1] for w in (3, 5)}
    assert sizes == {3: mlp(3).num_params, 5: mlp(5).num_params}
    assert trained.info.widths == [3, 5] and trained.sample(1).arch.width == 5  # default: widest
