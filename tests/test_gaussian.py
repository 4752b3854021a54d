"""The Gaussian baseline kind: closed-form fit over the flow's PCA codes, and the framework around
it (Lightning path, save/load, strategies, CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from zoo_fixtures import built_tiny_zoo, moons_populations

from generators import (
    GaussianConfig,
    GaussianGenerator,
    WeightDataset,
    calibrated_sampling,
    calibration_of,
    fit_rounds,
    load_generator,
    sample,
)
from generators.best_of_k import group_request
from generators.flow.projection import GroupPCA
from generators.gaussian import shrunk_covariance
from pipelines.cli import main
from pipelines.generator_training import train_generator

CALIBRATE = {"calibrate.candidates": 4, "calibrate.per_net": 2, "calibrate.options": {}}


@pytest.fixture(scope="module")
def dataset() -> WeightDataset:
    return WeightDataset.from_populations(moons_populations((3, 5), models=8))


@pytest.fixture(scope="module")
def fitted(dataset: WeightDataset) -> GaussianGenerator:
    gen = GaussianGenerator(GaussianConfig().with_overrides({"model.pca_max_drop": None}))
    assert gen.fit(dataset) == [], "fitted in closed form: no optimizer step"
    return gen


@pytest.mark.parametrize("m,k,a", [(2, 3, 0.0), (7, 4, 0.1), (12, 5, 1.0)])
def test_shrunk_covariance_is_the_reference_formula(m: int, k: int, a: float) -> None:
    x = torch.randn(m, k, generator=torch.Generator().manual_seed(m), dtype=torch.float64)
    s = torch.cov(x.T, correction=1)
    expected = (1 - a) * s + a * torch.trace(s) / k * torch.eye(k, dtype=torch.float64)
    torch.testing.assert_close(shrunk_covariance(x, a), expected)


def test_the_fit_is_the_mean_and_shrunk_covariance_of_the_training_codes(
    fitted: GaussianGenerator, dataset: WeightDataset
) -> None:
    rows = dataset.train_index
    z, group = dataset.normalized[rows], dataset.group[rows]
    space = GroupPCA.fit(z, group, dataset.padded.masks, 16, "group", residual=False)
    for g in range(len(dataset.groups)):
        active = space.component_mask[g]
        codes = space.encode(z[group == g], g)[:, active].double()
        net = fitted.network
        torch.testing.assert_close(net.mean[g, active].double(), codes.mean(dim=0), atol=1e-5,
                                   rtol=0)  # fmt: skip
        chol = net.chol[g][active][:, active].double()
        cov = shrunk_covariance(codes, 0.1) + 1e-9 * torch.eye(len(codes.T), dtype=torch.float64)
        torch.testing.assert_close(chol @ chol.T, cov, atol=1e-4, rtol=1e-4)


def test_draws_follow_the_fitted_gaussian(fitted: GaussianGenerator) -> None:
    """Many draws' codes have the fitted mean and covariance; temperature 0 gives the mean net."""
    request = group_request(fitted, 1, None)
    codes = fitted.sample_codes(20000, request, torch.Generator().manual_seed(0))
    g, scale = 1, fitted.space.scale[1]
    active = fitted.space.component_mask[g]
    x = (codes / scale.clamp_min(1e-12))[:, active]
    net = fitted.network
    torch.testing.assert_close(x.mean(dim=0), net.mean[g, active], atol=0.05, rtol=0)
    chol = net.chol[g][active][:, active]
    torch.testing.assert_close(torch.cov(x.T), chol @ chol.T, atol=0.05, rtol=0.05)
    cold = fitted.sample(3, width=5, temperature=0.0).weights()
    assert torch.equal(cold[0], cold[2])


def test_draws_decode_from_their_codes_and_respect_the_layout(fitted: GaussianGenerator) -> None:
    request = group_request(fitted, 0, None)
    codes = torch.empty(5, fitted.space.components)
    w = fitted.sample_coded(5, request, torch.Generator().manual_seed(1), None, codes)
    torch.testing.assert_close(fitted.affine_code(request).decode(codes), w)
    assert torch.equal(w, fitted._sample(5, request, torch.Generator().manual_seed(1)))
    pop = fitted.sample(4, width=3, seed=0)
    assert pop.weights().shape == (4, pop.arch.num_params)
    x = torch.randn(6, 2)
    torch.testing.assert_close(pop.to_modules()[1](x), pop.arch.forward(pop.weights()[1:2], x)[0])


def test_save_load_reproduces_samples_bit_for_bit(
    fitted: GaussianGenerator, tmp_path: Path
) -> None:
    loaded = load_generator(fitted.save(tmp_path / "g"))
    assert isinstance(loaded, GaussianGenerator)
    assert torch.equal(loaded.sample(6, width=5, seed=3).weights(),
                       fitted.sample(6, width=5, seed=3).weights())  # fmt: skip


def test_it_takes_no_target_and_no_flow_options(fitted: GaussianGenerator) -> None:
    with pytest.raises(ValueError, match="gaussian generator does not take target"):
        fitted.sample(2, target=0.9)
    with pytest.raises(ValueError, match=r"unknown sampling option\(s\) \['steps'\]"):
        fitted.sample(2, steps=4)
    with pytest.raises(ValueError, match="does not take task_data"):
        fitted.sample(2, task_data=(torch.zeros(3, 2), torch.zeros(3)))


def test_strategies_compose_over_the_gaussian(dataset: WeightDataset, tmp_path: Path) -> None:
    """Best-of-k, the calibration and Lightning training work on the Gaussian as on the flow:
    from the codes or decoded, the same kept nets; the calibrated weight saved and used."""
    gen = GaussianGenerator(GaussianConfig().with_overrides(CALIBRATE))
    fit_rounds(gen, dataset)
    c = calibration_of(gen)
    assert c is not None and c.candidates == 4
    best = sample(gen, 5, width=5, seed=2, candidates=4, select="weighted")
    assert best.conditioning["nearest_train_disagreement"].shape == (5,)
    hidden = GaussianGenerator(gen.config)
    hidden.info, hidden.space, hidden._net = gen.info, gen.space, gen._net
    hidden.records = gen.records
    hidden.affine_code = lambda *a, **k: None  # no code: candidates decoded, searched on weights
    again = sample(hidden, 5, width=5, seed=2, candidates=4, select="weighted")
    torch.testing.assert_close(again.weights(), best.weights(), atol=1e-5, rtol=0)
    lit = GaussianGenerator(GaussianConfig().with_overrides(CALIBRATE))
    s = train_generator(lit, dataset, tmp_path / "run", progress=False)
    assert s.steps == 0
    loaded = load_generator(tmp_path / "run")
    assert calibration_of(loaded) == c
    kept = sample(loaded, 5, width=5, seed=2, **calibrated_sampling(loaded))
    assert torch.equal(kept.weights(), sample(gen, 5, width=5, seed=2, **c.sampling()).weights())


def test_cli_trains_samples_and_evaluates_a_gaussian(tmp_path: Path, capsys) -> None:
    store = built_tiny_zoo(tmp_path / "zoo")
    assert main(["canonicalize", store, "--workers", "0"]) == 0
    run, cfg = tmp_path / "gauss", tmp_path / "gaussian.json"
    GaussianConfig().with_overrides({"data.exclude_phases": [], **CALIBRATE}).save(cfg)
    assert main(["train-generator", "gaussian", "--zoo", store, "--out", str(run), "--config",
                 str(cfg)]) == 0  # fmt: skip
    meta = json.loads((run / "generator.json").read_text())
    assert meta["kind"] == "gaussian" and "calibration" in meta
    assert main(["sample", str(run), "--n", "3", "--out", str(tmp_path / "s.safetensors"),
                 "--calibrated"]) == 0  # fmt: skip
    assert main(["evaluate", str(run), "--zoo", store, "--n", "4"]) == 0
    capsys.readouterr()
