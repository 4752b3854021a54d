"""Self-distillation (``[distill]``): training again on the trained generator's best samples."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from zoo_fixtures import tiny_flow, trained_moons

from generators import DataConfig, FlowConfig, FlowGenerator, WeightDataset, load_generator
from generators.distillation import distill_nets
from generators.sampling import sample
from generators.selection import nearest_disagreement
from generators.training_rounds import distill, fit_rounds
from pipelines.generator_training import round_dir, train_generator
from zoo import Population, get_task
from zoo.training import evaluate

DISTILL = {"distill.per_net": 2, "distill.candidates": 3, "distill.disagreement_weight": 0.5}
TINY = tiny_flow(30, **{"augment.interpolations": 1})


@pytest.fixture(scope="module")
def dataset() -> WeightDataset:
    pops = [Population(*trained_moons(w, 6, seed_offset=w), "moons", f"w{w}") for w in (3, 5)]
    return WeightDataset.from_populations(pops)


@pytest.fixture(scope="module")
def first(dataset: WeightDataset) -> FlowGenerator:
    gen = FlowGenerator(FlowConfig().with_overrides(TINY))
    gen.fit(dataset)
    return gen


def state(gen: FlowGenerator) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in gen.network.state_dict().items()}


def test_distilled_nets_are_the_weighted_choices_with_their_measured_accuracy(
    dataset: WeightDataset, first: FlowGenerator
) -> None:
    cfg = FlowConfig().with_overrides(DISTILL).distill
    d = distill_nets(first, dataset, cfg, seed=7)
    for g, grp in enumerate(dataset.groups):
        rows = d.group == g
        m = len(dataset.group_rows(g, True))
        assert int(rows.sum()) == 2 * m  # per_net x training nets
        ref = sample(first, 2 * m, task=grp.task, width=grp.width, seed=7 + g, candidates=3,
                           select="weighted", disagreement_weight=0.5)  # fmt: skip
        w = dataset.padded.crop(d.weights[rows], g)
        assert torch.equal(w, ref.weights())
        assert not d.weights[rows][:, ~dataset.padded.masks[g]].any()  # padding stays zero
        _, acc = evaluate(grp.arch, get_task("moons"), w, "val")
        torch.testing.assert_close(d.prop[rows], acc)
        train = first.info.training_nets(g)
        torch.testing.assert_close(
            d.novelty[rows], nearest_disagreement(grp.arch, "moons", w, train)
        )


def test_second_round_trains_afresh_on_real_interpolated_and_distilled_nets(
    dataset: WeightDataset,
) -> None:
    gen = FlowGenerator(FlowConfig().with_overrides({**TINY, **DISTILL}))
    losses = fit_rounds(gen, dataset)
    plain = FlowGenerator(FlowConfig().with_overrides(TINY))
    assert len(losses) == 2 * 30 and losses[:30] == plain.fit(dataset), "round one: the plain one"
    assert len(distill(plain, dataset)) == 0, "the plain config distils nothing"
    extra = distill_nets(plain, dataset, gen.config.distill, gen.config.training.seed)
    assert len(extra) == 2 * len(dataset.train_index)
    assert gen.num_examples == plain.num_examples + len(extra)
    manual = FlowGenerator(FlowConfig().with_overrides({**TINY, **DISTILL}))
    manual.prepare(dataset, extra)
    manual._train_loop(None)
    for k, v in state(gen).items():
        assert torch.equal(v, state(manual)[k]), k
    assert any(not torch.equal(v, state(plain)[k]) for k, v in state(gen).items())


def test_lightning_runs_both_rounds_and_resumes(dataset: WeightDataset, tmp_path: Path) -> None:
    gen = FlowGenerator(FlowConfig().with_overrides({**TINY, **DISTILL}))
    s = train_generator(gen, dataset, tmp_path / "run", progress=False)
    plain = FlowGenerator(FlowConfig().with_overrides({**TINY, **DISTILL}))
    fit_rounds(plain, dataset)
    for k, v in state(gen).items():
        assert torch.equal(v, state(plain)[k]), k
    assert s.steps == 30 and s.seconds > 0
    first = load_generator(tmp_path / "run" / round_dir(0))  # the first round, kept
    assert first.num_examples < gen.num_examples
    again = FlowGenerator(FlowConfig().with_overrides({**TINY, **DISTILL}))
    s2 = train_generator(again, dataset, tmp_path / "run", progress=False)
    assert s2.resumed_from > 0, "both rounds resume from their own checkpoints"
    for k, v in state(gen).items():
        assert torch.equal(v, state(again)[k]), k
    assert torch.equal(
        sample(load_generator(tmp_path / "run"), 4, seed=2).weights(),
        sample(gen, 4, seed=2).weights(),
    )


def test_each_round_trains_on_the_previous_rounds_draws(
    dataset: WeightDataset, tmp_path: Path
) -> None:
    two = {**TINY, **DISTILL, "distill.rounds": 2}
    gen = FlowGenerator(FlowConfig().with_overrides(two))
    losses = fit_rounds(gen, dataset)
    once = FlowGenerator(FlowConfig().with_overrides({**TINY, **DISTILL}))
    assert len(losses) == 3 * 30 and losses[:60] == fit_rounds(once, dataset)
    manual = FlowGenerator(FlowConfig().with_overrides(two))
    manual.prepare(dataset, distill(once, dataset))  # only the last round's draws
    manual._train_loop(None)
    for k, v in state(gen).items():
        assert torch.equal(v, state(manual)[k]), k
    lit = FlowGenerator(FlowConfig().with_overrides(two))
    train_generator(lit, dataset, tmp_path / "run", progress=False)
    assert sorted(p.name for p in (tmp_path / "run").glob("round-*")) == ["round-0", "round-1"]
    for k, v in state(gen).items():
        assert torch.equal(v, state(lit)[k]), k
    middle = load_generator(tmp_path / "run" / round_dir(1))  # the once-distilled generator
    assert torch.equal(sample(middle, 3, seed=1).weights(), sample(once, 3, seed=1).weights())


@pytest.mark.parametrize(
    "override,message",
    [
        ({"distill.rounds": 0}, "distill.rounds must be >= 1"),
        ({"distill.per_net": -1}, "distill.per_net must be >= 0"),
        ({"distill.candidates": 0}, "distill.candidates must be >= 1"),
        ({"distill.disagreement_weight": -0.1}, "distill.disagreement_weight must be a finite"),
        ({"distill.disagreement_weight": float("inf")}, "distill.disagreement_weight must be"),
    ],
)
def test_invalid_distill_settings_raise(override: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FlowConfig().with_overrides(override)


@pytest.mark.parametrize(
    "prop,message", [("", "conditioned on a property"), ("val_loss", "condition it on val_acc")]
)
def test_distillation_needs_an_accuracy_property_before_training(prop: str, message: str) -> None:
    pops = [Population(*trained_moons(3, 4), "moons", "w3")]
    ds = WeightDataset.from_populations(pops, DataConfig(property=prop))
    gen = FlowGenerator(FlowConfig().with_overrides({**TINY, **DISTILL}))
    with pytest.raises(ValueError, match=message):
        fit_rounds(gen, ds)
    assert gen.info is None, "refused before anything was trained"
