"""The hyper kind through the framework: Lightning trains what fit() trains, and the CLI trains,
samples and evaluates it."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from hyper_fixtures import SINUSOIDS, dataset, family_zoo, trained
from zoo_fixtures import built_tiny_zoo

from generators import load_generator
from generators.hyper import HyperConfig, HyperGenerator
from pipelines.cli import main
from pipelines.generator_training import train_generator

TINY = {"training.batch_size": 6, "objective.examples": 8, "model.cond_dim": 16,
        "model.hidden": 32, "model.chunk_size": 32, "model.chunk_dim": 8}  # fmt: skip


def test_lightning_trains_the_same_weights_as_fit(tmp_path: Path) -> None:
    archs, _ = family_zoo("mlp")
    ds = dataset(archs, SINUSOIDS)
    gen, _ = trained(ds, steps=3)
    lit = HyperGenerator(gen.config)
    train_generator(lit, ds, tmp_path / "run", progress=False)
    for (name, a), b in zip(gen.network.state_dict().items(), lit.network.state_dict().values(),
                            strict=True):  # fmt: skip
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_preset_loads() -> None:
    cfg = HyperConfig.load(Path(__file__).resolve().parents[1] / "data/generators/hyper.toml")
    assert cfg.model.conditioning == "auto" and cfg.data.property == ""


def test_cli_trains_samples_and_evaluates_a_hyper_generator(tmp_path: Path, capsys) -> None:
    store = built_tiny_zoo(tmp_path / "zoo")
    assert main(["canonicalize", store, "--workers", "0"]) == 0
    run, cfg = tmp_path / "hyper", tmp_path / "hyper.json"
    HyperConfig().with_overrides({"data.property": "", **TINY}).save(cfg)
    assert main(["train-generator", "hyper", "--zoo", store, "--out", str(run), "--config",
                 str(cfg), "--max-steps", "3"]) == 0  # fmt: skip
    assert json.loads((run / "generator.json").read_text())["kind"] == "hyper"
    gen = load_generator(run)
    assert isinstance(gen, HyperGenerator)
    assert main(["sample", str(run), "--n", "3", "--out", str(tmp_path / "s.safetensors")]) == 0
    assert main(["evaluate", str(run), "--zoo", store, "--n", "4"]) == 0
    out = json.loads((run / "evaluation" / "evaluation.json").read_text())
    assert out["groups"]
    capsys.readouterr()
