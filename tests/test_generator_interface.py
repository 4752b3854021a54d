"""The generator interface alone is enough for a new kind: a few-line kind defined here registers,
trains (plain loop and Lightning), samples, evaluates, saves and loads, and the strategies
(best-of-k, calibration, self-distillation) compose over it. Plus the typed conditions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn
from zoo_fixtures import moons_populations

import generators.registry
from generators import (
    Conditions,
    ExtraNets,
    FlowConfig,
    FlowGenerator,
    GeneratorConfig,
    Request,
    WeightDataset,
    WeightGenerator,
    calibration_of,
    fit_rounds,
    load_generator,
    sample,
)
from generators.best_of_k import group_request
from generators.dataset import measure_property
from pipelines.evaluate import EvalSettings, evaluate_generator
from pipelines.generator_training import train_generator


class MeanNoiseConfig(GeneratorConfig):
    kind = "mean-noise"


class MeanNoise(WeightGenerator):
    """Each group's training mean plus Gaussian noise of one learned std (max likelihood)."""

    kind = "mean-noise"
    config_class = MeanNoiseConfig
    accepts = frozenset({"task", "width"})

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        super().__init__(config)
        self.net = nn.ParameterDict({"log_std": nn.Parameter(torch.zeros(()))})

    @property
    def network(self) -> nn.Module:
        return self.net

    def _prepare(self, dataset: WeightDataset, extra: ExtraNets | None = None) -> None:
        self.rows = dataset.normalized[dataset.train_index]  # (M, D), group mean 0
        if extra is not None:
            self.rows = torch.cat([self.rows, dataset.normalizer.normalize(extra.weights,
                                                                           extra.group)])  # fmt: skip
        self.net = nn.ParameterDict({"log_std": nn.Parameter(torch.ones(()))})  # std e

    def _restore(self, tensors: dict[str, Tensor]) -> None:
        pass

    def extra_tensors(self) -> dict[str, Tensor]:
        return {}

    @property
    def num_examples(self) -> int:
        return len(self.rows)

    def training_loss(self, index: Tensor, rng: torch.Generator) -> Tensor:
        s = self.net["log_std"]
        return (0.5 * self.rows[index].pow(2) * torch.exp(-2 * s) + s).mean()

    def _sample(
        self, n: int, request: Request, rng: torch.Generator, out: Tensor | None = None,
        **options: Any,
    ) -> Tensor:  # fmt: skip
        g = request.require_group()
        info = self.require_info()
        z = torch.randn(n, info.padded.dim, generator=rng) * self.net["log_std"].exp()
        return info.normalizer.denormalize_layout(z, g, info.padded.indices[g])


TINY = {"training.max_steps": 40, "training.batch_size": 16, "training.learning_rate": 0.05}


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> type[MeanNoise]:
    monkeypatch.setitem(generators.registry.GENERATORS, MeanNoise.kind, MeanNoise)
    return MeanNoise


@pytest.fixture(scope="module")
def dataset() -> WeightDataset:
    return WeightDataset.from_populations(moons_populations((3, 5), models=8))


def test_a_kind_from_a_test_file_trains_samples_evaluates_and_reloads(
    registered: type[MeanNoise], dataset: WeightDataset, tmp_path: Path
) -> None:
    gen = generators.make_generator("mean-noise", MeanNoiseConfig().with_overrides(TINY))
    losses = gen.fit(dataset)
    rms = float(gen.rows.pow(2).mean().sqrt())  # the max-likelihood std
    assert len(losses) == 40
    assert abs(float(gen.net["log_std"].detach().exp()) - rms) < 0.5 * abs(torch.e - rms), (
        "it learns"
    )
    lit = generators.make_generator("mean-noise", MeanNoiseConfig().with_overrides(TINY))
    train_generator(lit, dataset, tmp_path / "run", progress=False)
    torch.testing.assert_close(lit.net["log_std"], gen.net["log_std"])  # same steps, same seeds
    loaded = load_generator(tmp_path / "run")
    assert isinstance(loaded, MeanNoise)
    pop = loaded.sample(6, width=5, seed=1)
    assert torch.equal(pop.weights(), lit.sample(6, width=5, seed=1).weights())
    assert pop.weights().shape == (6, pop.arch.num_params) and pop.task == "moons"
    report = evaluate_generator(loaded, dataset, EvalSettings(n=8, sweep=()))
    assert report["kind"] == "mean-noise" and "acc_ratio_free" in report["summary"]


def test_strategies_compose_over_the_new_kind(
    registered: type[MeanNoise], dataset: WeightDataset
) -> None:
    """Best-of-k keeps, of each prompt's k draws, the one its rule picks; the calibration and
    distillation rounds run on a kind that has no code (candidates decoded)."""
    config = MeanNoiseConfig().with_overrides({
        **TINY, "calibrate.candidates": 3, "calibrate.per_net": 2, "distill.per_net": 1,
        "distill.candidates": 2,
    })  # fmt: skip
    gen = MeanNoise(config)
    losses = fit_rounds(gen, dataset)
    assert len(losses) == 80, "two rounds"
    assert gen.num_examples == 2 * len(dataset.train_index), "second round: real + distilled"
    assert calibration_of(gen) is not None
    best = sample(gen, 4, width=5, seed=0, candidates=3, select="closest")
    # the reference: the same rng draws 4 prompts, then 3 candidates per prompt, in one round
    g = gen.info.resolve(None, 5)
    rng = torch.Generator().manual_seed(0)
    prompts = gen.info.draw_prompts(g, 4, rng)
    drawn = gen._sample(12, group_request(gen, g, prompts.repeat_interleave(3)), rng)
    arch = gen.info.groups[g].arch
    measured = measure_property("val_acc", arch, "moons", drawn).view(4, 3)
    kept = (measured - prompts[:, None]).abs().argmin(dim=1)
    expected = drawn.view(4, 3, -1)[torch.arange(4), kept]
    torch.testing.assert_close(best.weights(), expected)
    torch.testing.assert_close(best.conditioning["measured_val_acc"],
                               measured[torch.arange(4), kept])  # fmt: skip


def test_conditions_are_typed_and_refused_by_name(dataset: WeightDataset) -> None:
    with pytest.raises(ValueError, match="width must be a positive integer"):
        Conditions(width=0)
    with pytest.raises(ValueError, match="target must be a finite number"):
        Conditions(target=float("nan"))
    with pytest.raises(ValueError, match="task_data needs as many labels as examples"):
        Conditions(task_data=(torch.zeros(3, 2), torch.zeros(2)))
    with pytest.raises(ValueError, match="task_params must be finite"):
        Conditions(task_params={"amplitude": float("inf")})
    assert Conditions(task="moons", width=3).given() == ["task", "width"]
    gen = FlowGenerator(FlowConfig().with_overrides({"training.max_steps": 2, "model.hidden": 8,
                                                     "model.pca": 2}))  # fmt: skip
    gen.fit(dataset)
    with pytest.raises(ValueError, match=r"flow generator does not take task_params \(it takes"):
        gen.sample(2, task_params={"amplitude": 1.0})
    with pytest.raises(ValueError, match="width 4 is not available for task 'moons'"):
        gen.sample(2, width=4)  # the default: no generation outside the training groups
    with pytest.raises(ValueError, match="unknown task 'blobs'"):
        gen.sample(2, task="blobs")
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        gen.sample(0)
