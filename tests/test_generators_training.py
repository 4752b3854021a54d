"""Lightning training of generators (equals the plain loop, resumes exactly) and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from zoo_fixtures import built_tiny_zoo, tiny_flow, trained_moons

from generators import FlowConfig, FlowGenerator, WeightDataset, load_generator, load_population
from generators.calibration import calibration_of
from generators.sampling import sample
from pipelines.cli import main
from pipelines.evaluate import WEIGHT_SWEEP
from pipelines.generator_training import train_generator
from pipelines.safetensors_checkpoint import SafetensorsCheckpointIO
from zoo import MLP, Population, TrainConfig, get_task, train_population

TINY = tiny_flow(40)


@pytest.fixture(scope="module")
def dataset() -> WeightDataset:
    pops = [Population(*trained_moons(w, 6), "moons", f"w{w}") for w in (3, 5)]
    return WeightDataset.from_populations(pops)


def state(gen: FlowGenerator) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in gen.network.state_dict().items()}


def test_lightning_equals_plain_loop(dataset: WeightDataset, tmp_path: Path) -> None:
    a = FlowGenerator(FlowConfig().with_overrides(TINY))
    s = train_generator(a, dataset, tmp_path / "run", progress=False)
    b = FlowGenerator(FlowConfig().with_overrides(TINY))
    b.fit(dataset)
    assert s.steps == 40
    for k, v in state(a).items():
        assert torch.equal(v, state(b)[k]), k
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "run" / "logs" / "version_0" / "metrics.csv").is_file()
    assert torch.equal(sample(load_generator(tmp_path / "run"), 3, seed=1).weights(),
                       sample(a, 3, seed=1).weights())  # fmt: skip


class StopAt(L.Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:  # noqa: ANN002
        if trainer.global_step >= self.step:
            trainer.should_stop = True


def test_resume_continues_exactly(dataset: WeightDataset, tmp_path: Path) -> None:
    full = FlowGenerator(FlowConfig().with_overrides(TINY))
    train_generator(full, dataset, tmp_path / "full", progress=False)
    part = FlowGenerator(FlowConfig().with_overrides(TINY))
    s1 = train_generator(part, dataset, tmp_path / "part", progress=False, callbacks=[StopAt(20)])
    assert s1.steps == 20
    again = FlowGenerator(FlowConfig().with_overrides(TINY))
    s2 = train_generator(again, dataset, tmp_path / "part", progress=False)
    assert (s2.resumed_from, s2.steps) == (20, 40)
    for k, v in state(full).items():
        assert torch.equal(v, state(again)[k]), k


def test_last_checkpoint_is_the_final_step(dataset: WeightDataset, tmp_path: Path) -> None:
    """30 steps, checkpoints every 7: last.ckpt still holds step 30, and resuming the finished
    run retrains nothing and changes nothing."""
    cfg = FlowConfig().with_overrides({**TINY, "training.max_steps": 30})
    gen = FlowGenerator(cfg)
    train_generator(gen, dataset, tmp_path / "run", progress=False, checkpoints=4)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert SafetensorsCheckpointIO().load_checkpoint(last)["global_step"] == 30
    again = FlowGenerator(cfg)
    s = train_generator(again, dataset, tmp_path / "run", progress=False, checkpoints=4)
    assert (s.resumed_from, s.steps) == (30, 30)
    for k, v in state(gen).items():
        assert torch.equal(v, state(again)[k]), k


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    from pipelines.canonicalize_stage import canonicalize_zoo

    path = built_tiny_zoo(
        tmp_path_factory.mktemp("zoo"), seeds=3,
        temperature={"axis": "learning_rate", "values": [0.05, 0.2]},
    )  # fmt: skip
    canonicalize_zoo(path, workers=0)
    return path


def test_cli_train_sample_evaluate(store: str, tmp_path: Path, capsys) -> None:
    cfg = tmp_path / "tiny.toml"
    cfg.write_text("[model]\nhidden = 32\ncond_dim = 16\n[training]\nbatch_size = 16\n")
    run = tmp_path / "run"
    args = ["train-generator", "flow", "--zoo", store, "--out", str(run), "--config", str(cfg),
            "--max-steps", "20"]  # fmt: skip
    assert main(args) == 0
    assert "digits" not in capsys.readouterr().out
    assert (
        main(["sample", str(run), "--n", "7", "--width", "4", "--out", str(tmp_path / "s.zarr")])
        == 0
    )
    pop = load_population(tmp_path / "s.zarr")
    assert pop.weights().shape == (7, pop.arch.num_params) and pop.arch.width == 4
    best = tmp_path / "best.safetensors"  # best of 3 per prompt: measured values come along
    assert main(["sample", str(run), "--n", "5", "--candidates", "3", "--out", str(best)]) == 0
    assert load_population(best).conditioning["measured_val_acc"].shape == (5,)
    assert "best of 3 (closest): val_acc" in capsys.readouterr().out
    floor = tmp_path / "floor.safetensors"  # the prompt as a floor, at another temperature
    assert main(["sample", str(run), "--n", "5", "--candidates", "3", "--select", "at-least",
                 "--temperature", "0.75", "--out", str(floor)]) == 0  # fmt: skip
    assert "best of 3 (at-least): val_acc" in capsys.readouterr().out
    assert torch.equal(
        load_population(floor).weights(),
        sample(load_generator(run), 5, candidates=3, select="at-least", temperature=0.75).weights(),
    )
    assert main(["sample", str(run), "--n", "5", "--candidates", "3", "--select", "novel",
                 "--out", str(floor)]) == 0  # fmt: skip
    assert "disagreement with the nearest training net" in capsys.readouterr().out
    assert load_population(floor).conditioning["nearest_train_disagreement"].shape == (5,)
    assert main(["sample", str(run), "--n", "5", "--candidates", "3", "--select", "weighted",
                 "--disagreement-weight", "0.3", "--out", str(floor)]) == 0  # fmt: skip
    assert "disagreement with the nearest training net" in capsys.readouterr().out
    assert torch.equal(
        load_population(floor).weights(),
        sample(load_generator(run), 5, candidates=3, select="weighted",
                                   disagreement_weight=0.3).weights(),
    )  # fmt: skip
    assert main(["sample", str(run), "--n", "5", "--candidates", "3", "--disagreement-weight",
                 "0.3", "--out", str(floor)]) == 2  # fmt: skip
    assert "disagreement_weight applies to select='weighted' only" in capsys.readouterr().err
    assert main(["sample", str(run), "--n", "5", "--candidates", "3", "--select", "above",
                 "--out", str(floor)]) == 2  # fmt: skip
    assert "unknown selection rule 'above'" in capsys.readouterr().err
    assert main(["sample", str(run), "--n", "5", "--candidates", "0", "--out", str(best)]) == 2
    assert "candidates must be >= 1, got 0" in capsys.readouterr().err
    assert load_population(best).conditioning["measured_val_acc"].shape == (5,)  # kept
    assert main(["evaluate", str(run), "--zoo", store, "--n", "6"]) == 0
    assert "moons/w8" in capsys.readouterr().out  # the per-group table
    report = json.loads((run / "evaluation" / "evaluation.json").read_text())
    assert {g["group"] for g in report["groups"]} == {"moons/w4", "moons/w8"}
    assert (run / "evaluation" / "accuracy_hist.png").is_file()
    assert (run / "evaluation" / "tradeoff.png").is_file()
    assert (run / "evaluation" / "per_group.png").is_file()
    assert [r["group"] for r in report["per_group"]] == ["moons/w4", "moons/w8"]
    assert 0 <= report["summary"]["generated_acc_free"] <= 1
    # a kind's own sampling options, as for zoo sample
    opt_out = tmp_path / "eval-steps"
    assert main(["evaluate", str(run), "--zoo", store, "--n", "4", "--out", str(opt_out),
                 "--option", "steps=2"]) == 0  # fmt: skip
    stepped = json.loads((opt_out / "evaluation.json").read_text())
    assert stepped["settings"]["sample_options"] == {"steps": 2}
    capsys.readouterr()
    assert main(["evaluate", str(run), "--zoo", store, "--out", str(opt_out),
                 "--option", "nope=1"]) == 2  # fmt: skip
    assert "unknown sampling option(s) ['nope']" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--zoo", store, "--out", str(opt_out), "--temperature",
                 "0.5", "--option", "temperature=1.0"]) == 2  # fmt: skip
    assert "--option temperature repeats an option given by its own flag" in (
        capsys.readouterr().err
    )
    assert json.loads((opt_out / "evaluation.json").read_text()) == stepped  # nothing lost
    raw = tmp_path / "raw"
    assert main(args[:5] + [str(raw), "--raw", "--max-steps", "5", "--config", str(cfg)]) == 0
    assert load_generator(raw).config.data.canonical is False
    # without --raw/--canonical the config's data.canonical holds; the flag overrides it
    raw_cfg = tmp_path / "raw.toml"
    raw_cfg.write_text(cfg.read_text() + "[data]\ncanonical = false\n")
    from_cfg, flag = tmp_path / "raw-from-config", tmp_path / "canonical-by-flag"
    assert main(args[:5] + [str(from_cfg), "--max-steps", "5", "--config", str(raw_cfg)]) == 0
    assert load_generator(from_cfg).config.data.canonical is False
    assert "weights: raw" in capsys.readouterr().out
    assert main(args[:5] + [str(flag), "--canonical", "--max-steps", "5",
                            "--config", str(raw_cfg)]) == 0  # fmt: skip
    assert load_generator(flag).config.data.canonical is True
    cv = tmp_path / "cv"  # --folds: one generator per fold, pooled evaluation
    cv_args = args[:5] + [str(cv), "--config", str(cfg), "--max-steps", "5", "--folds", "2"]
    assert main(cv_args) == 0
    assert "2-fold" in capsys.readouterr().out
    pooled = json.loads((cv / "evaluation.json").read_text())
    assert [load_generator(cv / f"fold-{f}").config.data.fold for f in (0, 1)] == [0, 1]
    assert sum(g["heldout_models"] for g in pooled["groups"]) == sum(
        len(g["real_acc"]) for g in pooled["groups"]
    )
    # a cross-validated run dir evaluates fold by fold, pooled, here with best-of-2 sampling
    assert main(["evaluate", str(cv), "--zoo", store, "--n", "4", "--candidates", "2",
                 "--select", "at-least", "--temperature", "0.75"]) == 0  # fmt: skip
    again = json.loads((cv / "evaluation" / "evaluation.json").read_text())
    assert again["settings"]["folds"] == 2
    assert again["settings"]["sample_options"] == {
        "candidates": 2,
        "select": "at-least",
        "temperature": 0.75,
    }
    assert sorted(a for g in again["groups"] for a in g["heldout_acc"]) == pytest.approx(
        sorted(a for g in pooled["groups"] for a in g["heldout_acc"])
    )
    # the trade-off curve over the weight of select=weighted
    assert main(["evaluate", str(cv), "--zoo", store, "--n", "4", "--candidates", "2",
                 "--select", "weighted", "--knob", "disagreement_weight"]) == 0  # fmt: skip
    weighted = json.loads((cv / "evaluation" / "evaluation.json").read_text())
    assert [r["disagreement_weight"] for r in weighted["tradeoff"]] == list(WEIGHT_SWEEP)
    assert weighted["settings"]["sample_options"] == {"candidates": 2, "select": "weighted"}
    assert main(["evaluate", str(cv), "--zoo", store, "--n", "4", "--candidates", "2",
                 "--knob", "disagreement_weight"]) == 2  # fmt: skip
    assert "knob disagreement_weight sweeps --select weighted" in capsys.readouterr().err
    assert main(cv_args[:-1] + ["1"]) == 2
    assert "needs folds >= 2" in capsys.readouterr().err


def test_cli_calibrated_training_and_evaluation(store: str, tmp_path: Path, capsys) -> None:
    """A config with [calibrate] calibrates every fold's generator (saved and plotted beside
    it); ``zoo evaluate --calibrated`` samples each with its own weight."""
    cfg = tmp_path / "tiny.toml"
    cfg.write_text("[model]\nhidden = 32\ncond_dim = 16\n[training]\nbatch_size = 16\n"
                   "[calibrate]\ncandidates = 2\nper_net = 1\noptions = { steps = 2 }\n")  # fmt: skip
    cv = tmp_path / "cv"
    assert main(["train-generator", "flow", "--zoo", store, "--out", str(cv), "--config",
                 str(cfg), "--max-steps", "5", "--folds", "2"]) == 0  # fmt: skip
    capsys.readouterr()
    gens = [load_generator(cv / f"fold-{f}") for f in (0, 1)]
    assert all(calibration_of(g) is not None and calibration_of(g).candidates == 2 for g in gens)
    assert all((cv / f"fold-{f}" / "calibration.png").is_file() for f in (0, 1))
    assert main(["evaluate", str(cv), "--zoo", store, "--n", "4", "--calibrated"]) == 0
    report = json.loads((cv / "evaluation" / "evaluation.json").read_text())
    assert report["settings"]["sample_options"] == {"candidates": 2, "select": "weighted",
                                                    "steps": 2}  # fmt: skip
    assert main(["evaluate", str(cv), "--zoo", store, "--calibrated", "--candidates", "3"]) == 2
    assert "--calibrated sets the sampling options itself; drop --candidates" in (
        capsys.readouterr().err
    )
    run = tmp_path / "one"
    assert main(["train-generator", "flow", "--zoo", store, "--out", str(run), "--config",
                 str(cfg), "--max-steps", "5"]) == 0  # fmt: skip
    assert "calibrated: best of 2 keeps" in capsys.readouterr().out


def test_cli_errors(store: str, tmp_path: Path, capsys) -> None:
    assert (
        main(["sample", str(tmp_path), "--n", "3", "--out", str(tmp_path / "x.safetensors")]) == 2
    )
    assert "is not a weightzoo generator" in capsys.readouterr().err
    args = ["train-generator", "flow", "--zoo", store, "--out", str(tmp_path / "r"),
            "--population", "nope"]  # fmt: skip
    assert main(args) == 2
    assert "no population 'nope'" in capsys.readouterr().err
    # without --config the shipped preset applies, which leaves out collapsed nets: it needs the
    # phase labels that this store (built with metrics=False) does not have
    assert main(["train-generator", "flow", "--zoo", store, "--out", str(tmp_path / "p")]) == 2
    assert "needs phase labels" in capsys.readouterr().err
    # only registered kinds are offered: a usage error, exit status 2, no traceback
    rc = main(["train-generator", "nosuchkind", "--zoo", store, "--out", str(tmp_path)])
    assert rc == 2
    assert "is not one of 'flow'" in capsys.readouterr().err


def test_conditioning_fidelity_across_tasks() -> None:
    """Two tasks with opposite labels: nets generated for a task score on it, not on the other."""
    from pipelines.evaluate import EvalSettings, evaluate_generator
    from zoo.tasks import register_task

    m = get_task("moons")
    register_task("moons-flipped", m.x_train, 1 - m.y_train, m.x_test, 1 - m.y_test)
    arch = MLP(width=6, in_shape=(2,), num_outputs=2, depth=1)
    pops = []
    for name in ("moons", "moons-flipped"):
        r = train_population(arch, get_task(name), TrainConfig(epochs=8, checkpoints=(8,)),
                             np.arange(8), np.full(8, 0.1), np.zeros(8), np.full(8, 32))  # fmt: skip
        pops.append(Population(arch, r.weights[:, -1], name, name))
    ds = WeightDataset.from_populations(pops)
    gen = FlowGenerator(FlowConfig().with_overrides({**TINY, "training.max_steps": 150}))
    gen.fit(ds)
    report = evaluate_generator(
        gen, ds, EvalSettings(n=16, sweep=(), sample_options={"temperature": 0.5})
    )
    for g in report["groups"]:
        own, other = g["task"], "moons" if g["task"] == "moons-flipped" else "moons-flipped"
        assert set(g["fidelity"]) == {"moons", "moons-flipped"}
        assert g["fidelity"][own] > 0.7 > 0.3 > g["fidelity"][other]
