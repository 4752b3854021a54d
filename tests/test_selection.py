"""Best-of-k sampling (``sample(..., candidates=k)``): the kept net is the closest candidate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor
from zoo_fixtures import moons_mlp, moons_populations, tiny_flow

import generators.best_of_k
from generators import DataConfig, FlowConfig, FlowGenerator, WeightDataset, load_generator
from generators.best_of_k import group_request
from generators.dataset import measure_property
from generators.sampling import sample
from generators.selection import PromptSelection, nearest_disagreement
from zoo import MLP, Population, get_task

TINY = tiny_flow(30)


@pytest.fixture(scope="module")
def pops() -> list[Population]:
    return moons_populations((3, 5))


@pytest.fixture(scope="module")
def trained(pops: list[Population]) -> FlowGenerator:
    gen = FlowGenerator(FlowConfig().with_overrides({**TINY, "sampling.temperature": 2.0}))
    gen.fit(WeightDataset.from_populations(pops))
    return gen


@pytest.mark.parametrize("n,k", [(1, 1), (1, 5), (7, 2), (16, 8)])
def test_choose_is_the_first_closest_candidate(n: int, k: int) -> None:
    g = torch.Generator().manual_seed(n * 31 + k)
    measured = torch.randint(0, 5, (n, k), generator=g).float() / 4  # ties on purpose
    measured[measured == 0.5] = float("nan")  # diverged candidates
    prompts = torch.randint(0, 5, (n,), generator=g).float() / 4
    chosen = PromptSelection(k, "val_acc").choose(measured, prompts)
    for i in range(n):
        errs = [abs(float(m) - float(prompts[i])) for m in measured[i]]
        finite = [e for e in errs if e == e]
        expect = errs.index(min(finite)) if finite else 0
        assert int(chosen[i]) == expect


@pytest.mark.parametrize("n,k", [(1, 1), (1, 5), (7, 2), (16, 8)])
@pytest.mark.parametrize("prop", ["val_acc", "val_loss"])
def test_at_least_keeps_the_closest_candidate_no_worse_than_the_prompt(
    n: int, k: int, prop: str
) -> None:
    g = torch.Generator().manual_seed(n * 17 + k)
    measured = torch.randint(0, 5, (n, k), generator=g).float() / 4  # ties on purpose
    measured[measured == 0.5] = float("nan")  # diverged candidates
    prompts = torch.randint(0, 5, (n,), generator=g).float() / 4
    chosen = PromptSelection(k, prop, "at-least").choose(measured, prompts)
    better = 1.0 if prop == "val_acc" else -1.0  # accuracy: higher is better; loss: lower
    for i in range(n):
        gains = [better * (float(m) - float(prompts[i])) for m in measured[i]]
        ok = [gn for gn in gains if gn == gn and gn >= 0]
        finite = [gn for gn in gains if gn == gn]
        if ok:  # the first of the smallest non-negative gains: just good enough
            expect = gains.index(min(ok))
        else:  # none is good enough: the best one (all diverged: the first)
            expect = gains.index(max(finite)) if finite else 0
        assert int(chosen[i]) == expect


@pytest.mark.parametrize("n,k", [(1, 1), (1, 5), (7, 2), (16, 8)])
def test_novel_keeps_the_most_novel_candidate_no_worse_than_the_prompt(n: int, k: int) -> None:
    g = torch.Generator().manual_seed(n * 13 + k)
    measured = torch.randint(0, 5, (n, k), generator=g).float() / 4
    measured[measured == 0.5] = float("nan")
    prompts = torch.randint(0, 5, (n,), generator=g).float() / 4
    novelty = torch.randint(0, 4, (n, k), generator=g).float() / 3  # ties on purpose
    chosen = PromptSelection(k, "val_acc", "novel").choose(measured, prompts, novelty)
    for i in range(n):
        ok = [j for j in range(k) if float(measured[i, j]) >= float(prompts[i])]  # NaN: never
        finite = [j for j in range(k) if measured[i, j] == measured[i, j]]
        if ok:  # the first of the most novel among those meeting the floor
            expect = max(ok, key=lambda j: (float(novelty[i, j]), -j))
        else:  # none meets it: the most accurate (all diverged: the first)
            expect = max(finite, key=lambda j: (float(measured[i, j]), -j)) if finite else 0
        assert int(chosen[i]) == expect


@pytest.mark.parametrize("m,r", [(1, 1), (5, 3), (12, 7)])
def test_nearest_disagreement_against_a_loop(m: int, r: int) -> None:
    arch = moons_mlp(4)
    g = torch.Generator().manual_seed(m + 100 * r)
    w, ref = (
        torch.randn(m, arch.num_params, generator=g),
        torch.randn(r, arch.num_params, generator=g),
    )
    x, _ = get_task("moons").split("val")
    got = nearest_disagreement(arch, "moons", w, ref)
    for i in range(m):
        j = min(range(r), key=lambda j: float((w[i] - ref[j]).norm()))
        mine = arch.module(w[i])(x).argmax(-1)
        theirs = arch.module(ref[j])(x).argmax(-1)
        assert float(got[i]) == pytest.approx(float((mine != theirs).float().mean()), abs=1e-6)
    assert float(nearest_disagreement(arch, "moons", ref, ref).max()) == 0.0  # itself: no novelty


def same_nets(kept: Tensor, drawn: Tensor) -> None:
    """Kept candidates are decoded from their codes on their own (the others never are): the
    rows of the decoded round up to float rounding, a million times closer than two draws."""
    torch.testing.assert_close(kept, drawn, rtol=0, atol=1e-6)


def reference(gen: FlowGenerator, n: int, k: int, width: int, seed: int, target: float | None,
              chunk: int) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Best-of-k re-implemented from the generator's own draws: (weights (n, N), measured (n,))."""
    info = gen.info
    g = info.resolve(None, width)
    arch = info.groups[g].arch
    rng = torch.Generator().manual_seed(seed)
    pool = torch.tensor(info.group_props[g])
    props = (torch.full((n,), target) if target is not None
             else pool[torch.randint(len(pool), (n,), generator=rng)])  # fmt: skip
    kept, measured = [], []
    for a in range(0, n, chunk):
        p = props[a : a + chunk]
        drawn = gen._sample(
            len(p) * k, group_request(gen, g, p.repeat_interleave(k)), rng
        )  # (m * k, N)
        acc = measure_property("val_acc", arch, "moons", drawn).view(len(p), k)
        best = (acc - p[:, None]).abs().argmin(dim=1)
        kept.append(drawn.view(len(p), k, -1)[torch.arange(len(p)), best])
        measured.append(acc[torch.arange(len(p)), best])
    return torch.cat(kept), torch.cat(measured)


@pytest.mark.parametrize("target", [None, 0.8])
def test_sample_keeps_the_candidate_closest_to_its_prompt(
    trained: FlowGenerator, tmp_path: Path, target: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        generators.best_of_k, "SELECT_CANDIDATES", 12
    )  # 7 prompts: rounds of 3, 3, 1
    pop = sample(trained, 7, width=5, seed=4, target=target, candidates=4)
    w, measured = reference(trained, 7, 4, 5, 4, target, chunk=3)
    same_nets(pop.weights(), w)
    assert torch.equal(pop.conditioning["measured_val_acc"], measured)
    assert torch.equal(pop.conditioning["measured_val_acc"], pop.evaluate(split="val"))
    trained.save(tmp_path / "run")  # reproducible from the saved generator
    again = sample(
        load_generator(tmp_path / "run"), 7, width=5, seed=4, target=target, candidates=4
    )
    assert torch.equal(again.weights(), pop.weights())


def test_selection_meets_the_prompt_better_than_one_draw(trained: FlowGenerator) -> None:
    """At a hot temperature one draw scatters; the best of 8 lands closer to the prompt."""
    one = sample(trained, 64, width=3, seed=0, target=0.85).evaluate(split="val")
    best = sample(trained, 64, width=3, seed=0, target=0.85, candidates=8)
    err_one = (one - 0.85).abs().mean()
    err_best = (best.conditioning["measured_val_acc"] - 0.85).abs().mean()
    assert err_best < err_one
    floor = sample(trained, 64, width=3, seed=0, target=0.85, candidates=8, select="at-least")
    kept = floor.conditioning["measured_val_acc"]
    assert torch.equal(kept, floor.evaluate(split="val"))
    # as often at or above the prompt as any rule can be: whenever one candidate was, it is kept
    assert (kept >= 0.85).float().mean() >= (
        best.conditioning["measured_val_acc"] >= 0.85
    ).float().mean()
    assert torch.equal(sample(trained, 5, seed=2, candidates=1).weights(),
                       sample(trained, 5, seed=2).weights())  # fmt: skip


def redrawn(
    trained: FlowGenerator, n: int, k: int, width: int, seed: int
) -> tuple[int, Tensor, Tensor, Tensor, Tensor]:
    """The candidates that ``sample(n, width, seed, candidates=k)`` draws in its one round,
    re-drawn: group index, prompts (n,), candidates (n * k, N), and their validation accuracy
    and disagreement with the nearest training net, (n, k) each."""
    info = trained.info
    g = info.resolve(None, width)
    arch = info.groups[g].arch
    rng = torch.Generator().manual_seed(seed)
    pool = torch.tensor(info.group_props[g])
    props = pool[torch.randint(len(pool), (n,), generator=rng)]
    drawn = trained._sample(
        n * k, group_request(trained, g, props.repeat_interleave(k)), rng
    )  # one round
    acc = measure_property("val_acc", arch, "moons", drawn).view(n, k)
    nov = nearest_disagreement(arch, "moons", drawn, info.training_nets(g)).view(n, k)
    return g, props, drawn, acc, nov


def test_novel_sampling_keeps_the_most_novel_of_the_good_enough(
    trained: FlowGenerator, tmp_path: Path
) -> None:
    """Re-implemented from the generator's own draws and its saved training nets."""
    n, k, width, seed = 6, 4, 3, 5
    pop = sample(trained, n, width=width, seed=seed, candidates=k, select="novel")
    g, props, drawn, acc, nov = redrawn(trained, n, k, width, seed)
    train_w = trained.info.training_nets(g)
    for i in range(n):
        ok = [j for j in range(k) if acc[i, j] >= props[i]]
        j = (max(ok, key=lambda j: (float(nov[i, j]), -j)) if ok
             else max(range(k), key=lambda j: (float(acc[i, j]), -j)))  # fmt: skip
        same_nets(pop.weights()[i], drawn[i * k + j])
        assert float(pop.conditioning["nearest_train_disagreement"][i]) == float(nov[i, j])
    assert torch.equal(pop.conditioning["measured_val_acc"], pop.evaluate(split="val"))
    # the training nets travel with the generator, bit for bit
    ds = WeightDataset.from_populations(moons_populations((3, 5)))
    assert torch.equal(train_w, ds.group_weights(g, True))
    trained.save(tmp_path / "run")
    again = load_generator(tmp_path / "run")
    assert torch.equal(again.info.training_nets(g), train_w)
    assert torch.equal(sample(again, n, width=width, seed=seed, candidates=k,
                                    select="novel").weights(), pop.weights())  # fmt: skip


@pytest.mark.parametrize("weight", [0.0, 0.45, 3.0])
def test_weighted_sampling_keeps_the_highest_accuracy_plus_weighted_novelty(
    trained: FlowGenerator, weight: float
) -> None:
    """Re-implemented from the generator's own draws: the prompt steers the draws only."""
    n, k, width, seed = 6, 4, 3, 5
    pop = sample(trained, n, width=width, seed=seed, candidates=k, select="weighted",
                         disagreement_weight=weight)  # fmt: skip
    _, _, drawn, acc, nov = redrawn(trained, n, k, width, seed)
    for i in range(n):
        j = max(range(k), key=lambda j: (float(acc[i, j]) + weight * float(nov[i, j]), -j))
        same_nets(pop.weights()[i], drawn[i * k + j])
        assert float(pop.conditioning["nearest_train_disagreement"][i]) == float(nov[i, j])
    assert torch.equal(pop.conditioning["measured_val_acc"], pop.evaluate(split="val"))


@pytest.mark.parametrize("n,k", [(1, 1), (1, 5), (7, 2), (16, 8)])
@pytest.mark.parametrize("weight", [0.0, 0.45, 2.0])
def test_weighted_choice_is_the_reference_formula(n: int, k: int, weight: float) -> None:
    g = torch.Generator().manual_seed(n * 13 + k)
    measured = torch.randint(0, 5, (n, k), generator=g).float() / 4  # ties on purpose
    measured[measured == 0.5] = float("nan")  # diverged candidates
    novelty = torch.randint(0, 5, (n, k), generator=g).float() / 4
    rule = PromptSelection(k, "val_acc", "weighted", weight)
    chosen = rule.choose(measured, torch.zeros(n), novelty)
    for i in range(n):
        scores = [float(m) + weight * float(v) for m, v in zip(measured[i], novelty[i])]
        finite = [sc for sc in scores if sc == sc]
        assert int(chosen[i]) == (scores.index(max(finite)) if finite else 0)
    # the prompts do not enter the choice
    assert torch.equal(rule.choose(measured, torch.rand(n, generator=g), novelty), chosen)


def test_novel_needs_the_training_nets_and_classes(trained: FlowGenerator, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    run = trained.save(tmp_path / "old")
    tensors = {k: v for k, v in load_file(run / "generator.safetensors").items()
               if not k.startswith("train_weights.")}  # fmt: skip
    save_file(tensors, run / "generator.safetensors")  # as saved before the nets were kept
    meta = json.loads((run / "generator.json").read_text())
    meta.pop("weights_sha256")  # ... and before run dirs recorded their weights' digest
    (run / "generator.json").write_text(json.dumps(meta))
    old = load_generator(run)
    assert sample(old, 3, seed=1, candidates=2).weights().shape[0] == 3  # other rules still work
    with pytest.raises(ValueError, match="saved without its training nets"):
        sample(old, 3, candidates=2, select="novel")
    sine = MLP(width=4, in_shape=(1,), num_outputs=1, depth=1)
    with pytest.raises(ValueError, match="'sinusoid' is a regression task"):
        nearest_disagreement(sine, "sinusoid", torch.zeros(2, sine.num_params),
                             torch.zeros(1, sine.num_params))  # fmt: skip
    with pytest.raises(ValueError, match="needs the training nets to compare with"):
        PromptSelection(2, "val_acc", "novel").select(torch.zeros(4, 3), torch.zeros(2), None, "x")
    with pytest.raises(ValueError, match="rule 'weighted' needs the training nets"):
        PromptSelection(2, "val_acc", "weighted").select(
            torch.zeros(4, 3), torch.zeros(2), None, "x"
        )
    with pytest.raises(ValueError, match="saved without its training nets"):
        sample(old, 3, candidates=2, select="weighted")


def test_selection_errors(trained: FlowGenerator, pops: list[Population]) -> None:
    with pytest.raises(ValueError, match="candidates must be >= 1, got 0"):
        sample(trained, 2, candidates=0)
    with pytest.raises(ValueError, match="candidates must be an integer"):
        sample(trained, 2, candidates=2.5)
    with pytest.raises(ValueError, match="would select on the test split"):
        PromptSelection(4, "test_acc")
    with pytest.raises(ValueError, match="measurable from the weights"):
        PromptSelection(4, "hessian_top")
    plain = FlowGenerator(FlowConfig().with_overrides({**TINY, "training.max_steps": 2}))
    plain.fit(WeightDataset.from_populations(pops, DataConfig(property="")))
    with pytest.raises(ValueError, match="needs a generator conditioned on a property"):
        sample(plain, 2, candidates=3)
    with pytest.raises(ValueError, match="unknown selection rule 'atleast'; choose one of clo"):
        sample(trained, 2, candidates=3, select="atleast")
    with pytest.raises(ValueError, match="unknown selection rule 'best'"):
        sample(trained, 2, select="best")  # refused even with one candidate
    with pytest.raises(ValueError, match="disagreement_weight must be a finite number >= 0"):
        PromptSelection(4, "val_acc", "weighted", -0.1)
    with pytest.raises(ValueError, match="disagreement_weight must be a finite number >= 0"):
        sample(trained, 2, candidates=3, select="weighted", disagreement_weight=float("inf"))
    with pytest.raises(ValueError, match="conditioned on 'val_loss': condition it on val_acc"):
        PromptSelection(4, "val_loss", "weighted")
    with pytest.raises(ValueError, match="applies to select='weighted' only"):
        sample(trained, 2, candidates=3, select="novel", disagreement_weight=0.5)
    with pytest.raises(ValueError, match="rule 'weighted' needs the candidates' novelty"):
        PromptSelection(2, "val_acc", "weighted").choose(torch.zeros(1, 2), torch.zeros(1))
    with pytest.raises(ValueError, match=r"expected 6 candidates \(3 prompts x 2\), got 5"):
        PromptSelection(2, "val_acc").select(torch.zeros(5, 3), torch.zeros(3), None, "moons")


def test_cli_help_states_the_default_weight() -> None:
    """The CLI spells the default out (it imports no torch at startup): it must stay the same."""
    from generators.selection import DISAGREEMENT_WEIGHT
    from pipelines.commands.generators import WeightOpt

    assert f"else {DISAGREEMENT_WEIGHT})" in WeightOpt.help


def test_sample_into_a_given_buffer(trained: FlowGenerator) -> None:
    """``_sample(out=...)`` writes the same draws into the caller's buffer (best-of-k reuses one
    per round) and refuses a buffer of the wrong shape."""
    info = trained.info
    g = info.resolve(None, 3)
    fresh = trained._sample(
        5, group_request(trained, g, None), torch.Generator().manual_seed(2)
    )  # (5, N)
    buffer = torch.full((5, fresh.shape[1]), float("nan"))
    got = trained._sample(
        5, group_request(trained, g, None), torch.Generator().manual_seed(2), out=buffer
    )
    assert got.data_ptr() == buffer.data_ptr()
    assert torch.equal(buffer, fresh)
    with pytest.raises(ValueError, match=r"out must have shape \(5, \d+\), got \(4, \d+\)"):
        trained._sample(5, group_request(trained, g, None), torch.Generator(), out=buffer[:4])
