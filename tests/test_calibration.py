"""The weighted rule's calibrated weight (:mod:`generators.calibration`): the leave-one-out target
and the cross-fitted curve against their reference formulas, the choice of the weight, what a
calibrated generator saves and samples with, and the errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor
from zoo_fixtures import moons_populations, tiny_flow

from generators import FlowConfig, FlowGenerator, WeightDataset, load_generator
from generators.best_of_k import draw_predictions, group_request, training_reference
from generators.calibration import (
    Calibration,
    calibrate,
    calibrated_sampling,
    calibration_of,
    crossfit_curve,
    leave_one_out_disagreement,
    smallest_reaching,
)
from generators.config import CalibrateConfig
from generators.sampling import sample
from generators.selection import DISAGREEMENT_WEIGHT
from generators.training_rounds import fit_rounds
from zoo import get_task
from zoo.tasks import TaskData
from zoo.training import split_predictions

CALIBRATE = {"calibrate.candidates": 4, "calibrate.per_net": 3,
             "calibrate.options": {"temperature": 1.0, "steps": 4}}  # fmt: skip


@pytest.mark.parametrize("r,n,v", [(2, 3, 5), (5, 7, 11), (9, 40, 64)])
def test_leave_one_out_is_the_reference_formula(r: int, n: int, v: int) -> None:
    g = torch.Generator().manual_seed(r)
    w = torch.randn(r, n, generator=g)
    labels = torch.randint(3, (r, v), generator=g)
    expect = []
    for i in range(r):
        dist = [float((w[i] - w[j]).norm()) if j != i else float("inf") for j in range(r)]
        j = min(range(r), key=dist.__getitem__)
        expect.append(sum(int(labels[i, p] != labels[j, p]) for p in range(v)) / v)
    torch.testing.assert_close(leave_one_out_disagreement(w, labels), torch.tensor(expect))


def test_leave_one_out_needs_two_nets() -> None:
    with pytest.raises(ValueError, match="leave-one-out needs at least 2 nets, got 1"):
        leave_one_out_disagreement(torch.zeros(1, 3), torch.zeros(1, 4, dtype=torch.long))


def reference_curve(
    correct: Tensor, differs: Tensor, k: int, weights: Tensor, halves: tuple[Tensor, Tensor]
) -> tuple[Tensor, Tensor]:
    """crossfit_curve by loops: per weight, per direction, per prompt."""
    n = len(correct) // k
    acc, dis = [], []
    for w in weights.tolist():
        a_sum = d_sum = 0.0
        for choose_on, score_on in (halves, halves[::-1]):
            for i in range(n):
                rows = range(i * k, i * k + k)
                # float32 like the curve's: a tie in exact arithmetic is decided by the same rounding
                scores = torch.stack([correct[r, choose_on].float().mean()
                                      + torch.tensor(w) * differs[r, choose_on].float().mean()
                                      for r in rows])  # fmt: skip
                best = int(scores.argmax())  # ties: the first drawn
                kept = i * k + best
                a_sum += float(correct[kept, score_on].float().mean())
                d_sum += float(differs[kept, score_on].float().mean())
        acc.append(a_sum / (2 * n))
        dis.append(d_sum / (2 * n))
    return torch.tensor(acc), torch.tensor(dis)


@pytest.mark.parametrize("n,k,v", [(1, 2, 4), (3, 4, 10), (7, 5, 31)])
def test_crossfit_curve_is_the_reference_formula(n: int, k: int, v: int) -> None:
    g = torch.Generator().manual_seed(n * k)
    correct = torch.rand(n * k, v, generator=g) < 0.7
    differs = torch.rand(n * k, v, generator=g) < 0.3
    points = torch.randperm(v, generator=g)
    halves = points[: v // 2], points[v // 2 :]
    weights = torch.arange(0.0, 2.01, 0.25)
    acc, dis = crossfit_curve(correct, differs, k, weights, halves)
    ref_acc, ref_dis = reference_curve(correct, differs, k, weights, halves)
    torch.testing.assert_close(acc, ref_acc)
    torch.testing.assert_close(dis, ref_dis)


def test_crossfit_measures_on_the_other_half() -> None:
    """A candidate that differs only on the half that chose it is kept at a high weight, but
    scores no disagreement: the curve does not credit what chose it."""
    correct = torch.ones(2, 4, dtype=torch.bool)
    differs = torch.tensor([[False, False, False, False], [True, True, False, False]])
    halves = torch.tensor([0, 1]), torch.tensor([2, 3])
    acc, dis = crossfit_curve(correct, differs, 2, torch.tensor([0.0, 1.0]), halves)
    # weight 0: a tie, the first (never differing) is kept both ways; weight 1: chosen on half
    # 0 the second, which does not differ on half 1; chosen on half 1, a tie: the first
    assert torch.equal(dis, torch.zeros(2)) and torch.equal(acc, torch.ones(2))
    # measured where it was chosen, the second would have counted 1 in that direction
    assert float(differs[1, halves[0]].float().mean()) == 1.0
    with pytest.raises(ValueError, match="3 candidates are not a multiple of k = 2"):
        crossfit_curve(correct[:1].repeat(3, 1), differs[:1].repeat(3, 1), 2, acc, halves)


def test_smallest_reaching() -> None:
    weights = torch.tensor([0.0, 0.5, 1.0])
    curve = torch.tensor([0.1, 0.3, 0.3])
    assert smallest_reaching(curve, weights, 0.3) == 1
    assert smallest_reaching(curve, weights, 0.05) == 0
    assert smallest_reaching(curve, weights, 0.4) == 2  # none reaches: the largest


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("candidates", 1, "calibrate.candidates must be 0 \\(off\\) or >= 2, got 1"),
        ("candidates", -2, "calibrate.candidates must be 0 \\(off\\) or >= 2, got -2"),
        ("per_net", 0, "calibrate.per_net must be >= 1, got 0"),
        ("margin", 1.0, "calibrate.margin must be a share in \\(-1, 1\\), got 1.0"),
        ("max_weight", 0.0, "calibrate.max_weight must be > 0, got 0.0"),
        ("step", 0.0, "calibrate.step must be in \\(0, max_weight = 2.0\\], got 0.0"),
        ("step", 3.0, "calibrate.step must be in \\(0, max_weight = 2.0\\], got 3.0"),
        ("options", {"steps": [4]}, "calibrate.options must be numbers, strings or booleans"),
        ("options", 3, "config field calibrate.options must be a table, got 3"),
    ],
)
def test_invalid_calibrate_settings_raise(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FlowConfig().with_overrides({f"calibrate.{field}": value})


def test_calibrate_options_read_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "flow.toml"
    path.write_text("[calibrate]\ncandidates = 8\noptions = { temperature = 0.8, steps = 6 }\n")
    cfg = FlowConfig.load(path).calibrate
    assert cfg == CalibrateConfig(candidates=8, options={"temperature": 0.8, "steps": 6})
    assert isinstance(cfg.options["steps"], int)


@pytest.fixture(scope="module")
def dataset() -> WeightDataset:
    return WeightDataset.from_populations(moons_populations((3, 5)))


@pytest.fixture(scope="module")
def calibrated(dataset: WeightDataset) -> FlowGenerator:
    gen = FlowGenerator(FlowConfig().with_overrides({**tiny_flow(30), **CALIBRATE}))
    fit_rounds(gen, dataset)
    return gen


def test_unknown_calibration_options_fail_before_training(dataset: WeightDataset) -> None:
    gen = FlowGenerator(FlowConfig().with_overrides({
        **tiny_flow(30), **CALIBRATE, "calibrate.options": {"bogus": 1.0},
    }))  # fmt: skip
    with pytest.raises(ValueError, match=r"unknown sampling option\(s\) \['bogus'\]"):
        fit_rounds(gen, dataset)
    assert gen.info is None, "refused before anything was trained"
    loss_gen = FlowGenerator(FlowConfig().with_overrides({**tiny_flow(30), **CALIBRATE}))
    on_loss = WeightDataset.from_populations(
        moons_populations((3, 5)), type(dataset.config)(property="val_loss")
    )
    with pytest.raises(ValueError, match="rule 'weighted' adds an accuracy and a disagreement"):
        fit_rounds(loss_gen, on_loss)


def test_the_calibration_is_its_curve_and_target(calibrated: FlowGenerator) -> None:
    """The target is the groups' leave-one-out mean (validation split) plus the margin; the
    weight is the smallest on the grid whose curve reaches it."""
    c = calibration_of(calibrated)
    info = calibrated.info
    val = get_task("moons")
    for g, grp in enumerate(info.groups):
        w = info.training_nets(g)
        labels = split_predictions(grp.arch, val, w, "val")
        loo = leave_one_out_disagreement(w, labels).mean()
        assert c.group_targets[grp.key] == pytest.approx(float(loo))
    assert c.target == pytest.approx(sum(c.group_targets.values()) / len(c.group_targets))
    weights = torch.tensor(c.curve_weight)
    torch.testing.assert_close(weights, torch.arange(0.0, 2.005, 0.01), atol=1e-6, rtol=0)
    i = c.curve_weight.index(c.disagreement_weight)
    assert i == smallest_reaching(torch.tensor(c.curve_disagreement), weights, c.target)
    assert c.reached == c.curve_disagreement[i] and c.accuracy == c.curve_accuracy[i]
    assert c.candidates == 4 and c.options == {"temperature": 1.0, "steps": 4}
    assert calibrated_sampling(calibrated) == {
        "candidates": 4, "select": "weighted", "disagreement_weight": c.disagreement_weight,
        "temperature": 1.0, "steps": 4,
    }  # fmt: skip


def test_a_margin_raises_the_target_on_the_same_draws(calibrated: FlowGenerator) -> None:
    base = calibration_of(calibrated)
    calibrated.config = calibrated.config.with_overrides({"calibrate.margin": 0.05})
    try:
        raised = calibrate(calibrated)
    finally:
        calibrated.config = calibrated.config.with_overrides({"calibrate.margin": 0.0})
        calibrated.records["calibration"] = base.to_dict()
    assert raised.target == pytest.approx(base.target + 0.05)
    assert raised.curve_disagreement == base.curve_disagreement  # the same draws
    assert raised.disagreement_weight >= base.disagreement_weight


def test_calibration_reads_no_test_split(
    calibrated: FlowGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    splits: list[str] = []
    original = TaskData.split

    def recording(self: TaskData, name: str) -> tuple[Tensor, Tensor]:
        splits.append(name)
        return original(self, name)

    base = calibration_of(calibrated)
    monkeypatch.setattr(TaskData, "split", recording)
    try:
        again = calibrate(calibrated)
    finally:
        calibrated.records["calibration"] = base.to_dict()
    assert again == base  # deterministic: seeded by the training seed
    assert splits and set(splits) == {"val"}


def test_coded_and_decoded_draws_predict_alike(
    calibrated: FlowGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    g = calibrated.info.resolve(None, 5)
    opts = {"temperature": 1.0, "steps": 4}
    reference = training_reference(calibrated, g, **opts)
    prompts = torch.linspace(0.6, 0.9, 20)

    def draws() -> tuple[Tensor, Tensor]:
        rng = torch.Generator().manual_seed(3)
        return draw_predictions(calibrated, prompts, g, rng, reference, **opts)

    coded = draws()
    arch_class = type(calibrated.info.groups[g].arch)
    monkeypatch.setattr(arch_class, "input_layer", property(lambda self: ()))
    decoded = draws()
    assert torch.equal(coded[1], decoded[1])
    assert (coded[0] != decoded[0]).float().mean() < 0.01  # float rounding at the boundary
    arch = calibrated.info.groups[g].arch
    weights = calibrated._sample(
        20, group_request(calibrated, g, prompts), torch.Generator().manual_seed(3), **opts
    )
    assert torch.equal(decoded[0], split_predictions(arch, get_task("moons"), weights, "val"))


def test_a_calibrated_generator_saves_and_samples_with_its_weight(
    calibrated: FlowGenerator, tmp_path: Path
) -> None:
    loaded = load_generator(calibrated.save(tmp_path / "gen"))
    assert calibration_of(loaded) == calibration_of(calibrated)
    meta = json.loads((tmp_path / "gen" / "generator.json").read_text())
    assert Calibration.from_dict(meta["calibration"]) == calibration_of(calibrated)
    w = calibration_of(calibrated).disagreement_weight
    by_default = sample(loaded, 5, width=5, seed=2, candidates=4, select="weighted")
    explicit = sample(loaded, 5, width=5, seed=2, candidates=4, select="weighted",
                             disagreement_weight=w)  # fmt: skip
    assert torch.equal(by_default.weights(), explicit.weights())
    calibrated_pop = sample(loaded, 5, width=5, seed=2, **calibrated_sampling(loaded))
    assert len(calibrated_pop) == 5


def test_an_uncalibrated_generator_keeps_the_default_weight(dataset: WeightDataset) -> None:
    gen = FlowGenerator(FlowConfig().with_overrides(tiny_flow(20)))
    gen.fit(dataset)
    assert calibration_of(gen) is None
    with pytest.raises(ValueError, match="this generator has no calibrated weight"):
        calibrated_sampling(gen)
    opts = {"width": 5, "seed": 1, "candidates": 3, "select": "weighted"}
    assert torch.equal(sample(gen, 4, **opts).weights(),
                       sample(gen, 4, disagreement_weight=DISAGREEMENT_WEIGHT, **opts).weights())  # fmt: skip


def test_preparing_again_voids_the_calibration(
    calibrated: FlowGenerator, dataset: WeightDataset
) -> None:
    gen = FlowGenerator(calibrated.config)
    gen.records["calibration"] = calibration_of(calibrated).to_dict()
    gen.prepare(dataset)
    assert calibration_of(gen) is None


def test_zoo_sample_calibrated(
    calibrated: FlowGenerator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipelines.cli import main

    run = str(calibrated.save(tmp_path / "gen"))
    out = tmp_path / "nets.safetensors"
    assert main(["sample", run, "--n", "3", "--width", "5", "--calibrated", "--out", str(out)]) == 0
    assert out.is_file()
    assert f"best of {calibration_of(calibrated).candidates} (weighted)" in capsys.readouterr().out
    code = main(["sample", run, "--calibrated", "--candidates", "8", "--steps", "2",
                 "--out", str(out)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "--calibrated sets the sampling options itself; drop --steps, --candidates" in err
