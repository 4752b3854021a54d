"""The neumeta kind on a tiny smooth-ordered moons zoo (widths 4 and 8): layouts, unseen widths,
save/load, refusals."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from zoo_fixtures import built_tiny_zoo

from generators import WeightDataset, load_generator
from generators.neumeta import NeuMetaConfig, NeuMetaGenerator
from generators.neumeta.coordinates import LayoutCoordinates, encode, positions
from generators.neumeta.field import with_one
from generators.neumeta.scale import scale_of
from pipelines.canonicalize_stage import canonicalize_zoo

TINY = {
    "data.property": "", "training.max_steps": 6, "training.batch_size": 4,
    "model.hidden": 16, "model.blocks": 1, "model.frequencies": 3, "model.embed": 4,
    "model.latent": 3, "model.grid_channels": 2, "model.grid_max": 16, "loss.recon_coords": 8, "loss.task_nets": 2, "loss.task_batch": 16,
}  # fmt: skip


@pytest.fixture(scope="module")
def raw_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny moons zoo (widths 4 and 8), trained for one epoch, not canonicalized."""
    return built_tiny_zoo(tmp_path_factory.mktemp("neumeta"), epochs=1, checkpoints=[0, 1])


def copied(store: str, directory: Path) -> str:
    shutil.copytree(store, directory / "zoo.zarr")
    return str(directory / "zoo.zarr")


@pytest.fixture(scope="module")
def smooth_store(raw_store: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    store = copied(raw_store, tmp_path_factory.mktemp("smooth"))
    canonicalize_zoo(store, method="smooth", workers=0)
    return store


@pytest.fixture(scope="module")
def trained(smooth_store: str) -> NeuMetaGenerator:
    cfg = NeuMetaConfig().with_overrides(TINY)
    gen = NeuMetaGenerator(cfg)
    gen.fit(WeightDataset.from_zoo(smooth_store, None, cfg.data))
    return gen


def test_zoo_width_has_the_zoo_layout_and_modules_match(trained: NeuMetaGenerator) -> None:
    pop = trained.sample(5, width=8, seed=1)
    zoo_arch = next(g.arch for g in trained.require_info().groups if g.width == 8)
    assert pop.arch == zoo_arch and pop.weights().shape == (5, zoo_arch.num_params)
    x = torch.randn(7, *zoo_arch.input_shape)
    batched = zoo_arch.forward(pop.weights(), x)  # (5, 7, outputs)
    for m, module in enumerate(pop.to_modules()):
        assert torch.allclose(module(x), batched[m], atol=1e-5)
    assert len(torch.unique(pop.weights(), dim=0)) == 5  # n different nets


def test_weights_are_the_field_at_the_layout_coordinates(trained: NeuMetaGenerator) -> None:
    """Every generated weight is scale x basis(its own coordinate row) . [z, 1], recomputed one
    coordinate at a time, in shuffled order (nothing depends on the other rows)."""
    gen = trained
    pop = gen.sample(3, width=6, seed=4)
    codes = gen.draw_codes(3, 0, torch.Generator().manual_seed(4), 1.0)
    coords = LayoutCoordinates(pop.arch)
    layers = gen.layer_ids(coords)
    order = torch.randperm(len(coords.table), generator=torch.Generator().manual_seed(0))
    ref = torch.empty_like(pop.weights())
    with torch.no_grad():
        for chunk in order.split(17):
            table = coords.table[chunk]
            feats = encode(table, gen.config.model.frequencies)
            basis = gen.network.basis(feats, positions(table), layers[table[:, 0]], 0)
            scale = scale_of(gen.scale, 0, layers, 6)[table[:, 0]]
            ref[:, coords.flat_index(table)] = (with_one(codes) @ basis.T) * scale
    assert torch.allclose(pop.weights(), ref, atol=1e-5)


def test_unseen_width_runs(trained: NeuMetaGenerator) -> None:
    pop = trained.sample(4, width=6, seed=0)
    assert pop.arch.width == 6 and pop.arch.num_params == pop.arch.with_width(6).num_params
    out = pop.arch.forward(pop.weights(), torch.randn(10, *pop.arch.input_shape))
    assert out.shape == (4, 10, 2) and torch.isfinite(out).all()
    assert pop.evaluate().shape == (4,)


def test_widths_outside_the_range_are_refused(trained: NeuMetaGenerator) -> None:
    for width in (3, 9):
        with pytest.raises(
            ValueError, match=rf"width {width} is outside the trained range \[4, 8\]"
        ):
            trained.sample(2, width=width)
    with pytest.raises(ValueError, match="unknown task 'digits'"):
        trained.sample(2, task="digits", width=6)
    with pytest.raises(ValueError, match="unknown sampling option"):
        trained.sample(2, width=6, steps=3)


def test_save_load_reproduces_samples_bit_for_bit(
    trained: NeuMetaGenerator, tmp_path: Path
) -> None:
    trained.save(tmp_path / "run")
    again = load_generator(tmp_path / "run")
    assert isinstance(again, NeuMetaGenerator)
    for width in (4, 7):
        a = trained.sample(6, width=width, seed=3).weights()
        b = again.sample(6, width=width, seed=3).weights()
        assert torch.equal(a, b)


def test_training_changes_the_field_and_the_cache_follows(smooth_store: str) -> None:
    cfg = NeuMetaConfig().with_overrides(TINY)
    gen = NeuMetaGenerator(cfg)
    ds = WeightDataset.from_zoo(smooth_store, None, cfg.data)
    gen.prepare(ds)
    before = gen.sample(2, width=5, seed=0).weights().clone()
    gen._train_loop()
    after = gen.sample(2, width=5, seed=0).weights()
    assert not torch.equal(before, after)  # a cached layout code of the old field is not reused


def test_store_without_smooth_order_is_refused(raw_store: str, tmp_path: Path) -> None:
    store = copied(raw_store, tmp_path)
    canonicalize_zoo(store, workers=0)  # weight matching, not smoothing
    cfg = NeuMetaConfig().with_overrides(TINY)
    ds = WeightDataset.from_zoo(store, None, cfg.data)
    with pytest.raises(ValueError, match=r"weight-matching canonical weights: run `zoo "
                       r"canonicalize STORE --method smooth --overwrite`"):  # fmt: skip
        NeuMetaGenerator(cfg).fit(ds)
    raw = WeightDataset.from_zoo(store, None, cfg.with_overrides({"data.canonical": False}).data)
    with pytest.raises(ValueError, match="not raw ones"):
        NeuMetaGenerator(cfg).fit(raw)


def test_in_memory_populations_are_refused() -> None:
    from zoo import MLP

    arch = MLP(width=3, in_shape=(2,), num_outputs=2, depth=1)
    ds = WeightDataset.from_populations([(arch, arch.init_weights([0, 1, 2]), "moons")],
                                        NeuMetaConfig().with_overrides(TINY).data)  # fmt: skip
    with pytest.raises(ValueError, match="no recorded canonical weights"):
        NeuMetaGenerator(NeuMetaConfig().with_overrides(TINY)).fit(ds)


def test_cli_sample_and_evaluate_widths(
    trained: NeuMetaGenerator, smooth_store: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from generators import load_population
    from pipelines.cli import main

    run = trained.save(tmp_path / "run")
    assert main(["sample", str(run), "--out", str(tmp_path / "w6.safetensors"), "--n", "3",
                 "--width", "6"]) == 0  # fmt: skip
    pop = load_population(tmp_path / "w6.safetensors")
    assert pop.arch.width == 6 and len(pop.weights()) == 3
    out = tmp_path / "eval"
    code = main(["evaluate", str(run), "--zoo", smooth_store, "--widths", "4,6,8", "--n", "4",
                 "--out", str(out)])  # fmt: skip
    assert code == 0
    report = json.loads((out / "widths.json").read_text())
    rows = {r["width"]: r for r in report["widths"]}
    assert rows[4]["seen"] and rows[8]["seen"] and not rows[6]["seen"]
    assert rows[6]["neighbours"] == [4, 8]
    a4, a8 = rows[6]["neighbour_means"]  # log-linear interpolation, re-derived
    ref = a4 + (math.log(6) - math.log(4)) / (math.log(8) - math.log(4)) * (a8 - a4)
    assert rows[6]["real_mean"] == pytest.approx(ref)
    assert rows[6]["ratio"] == pytest.approx(rows[6]["generated_mean"] / ref)
    capsys.readouterr()
    assert main(["evaluate", str(run), "--zoo", smooth_store, "--widths", "6,16"]) == 2
    assert "width 16 is outside the trained range [4, 8]" in capsys.readouterr().err
