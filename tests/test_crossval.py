"""Cross-validated evaluation: fold splits hold out every model once; pooling counts each once."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from zoo_fixtures import built_tiny_zoo, tiny_flow

from generators import DataConfig, FlowConfig, FlowGenerator, WeightDataset
from generators.dataset import split_models
from pipelines.crossval import cross_validate, pool_tradeoff
from pipelines.evaluate import EvalSettings, dataset_for

TINY = tiny_flow(5, hidden=16, **{"model.pca": 0})


@pytest.mark.parametrize("sizes,folds", [((13, 7, 2), 5), ((4, 4), 2), ((10,), 3), ((1, 5), 4)])
def test_folds_hold_out_every_model_once(sizes: tuple[int, ...], folds: int) -> None:
    group = torch.cat([torch.full((m,), g) for g, m in enumerate(sizes)])
    held = torch.stack([~split_models(group, 0.0, 3, folds, f) for f in range(folds)])  # (K, M)
    for g, m in enumerate(sizes):
        sel = group == g
        per_fold = held[:, sel].sum(1)
        assert bool((held[:, sel].sum(0) <= 1).all())
        if m > 1:  # a lone model can never be held out: it must train
            assert int(per_fold.sum()) == m
            assert int(per_fold.max() - per_fold.min()) <= 1  # folds as even as they can be
        assert bool((~held[:, sel]).any(1).all()), "a group always keeps a training model"
    again = split_models(group, 0.0, 3, folds, 0)
    assert torch.equal(again, split_models(group, 0.0, 3, folds, 0))


def test_fold_config_errors() -> None:
    with pytest.raises(ValueError, match="data.folds must be 0 .off. or >= 2, got 1"):
        DataConfig(folds=1)
    with pytest.raises(ValueError, match=r"data.fold must be in \[0, 3\), got 3"):
        DataConfig(folds=3, fold=3)


def test_pooled_tradeoff_recomputes_the_ratio() -> None:
    a = [{"temperature": 1.0, "generated_acc": 0.8, "heldout_acc": 0.9, "acc_ratio": 0.8 / 0.9,
          "nn_disagreement": 0.2}]  # fmt: skip
    b = [{"temperature": 1.0, "generated_acc": 0.6, "heldout_acc": 0.5, "acc_ratio": 1.2,
          "nn_disagreement": 0.4}]  # fmt: skip
    (row,) = pool_tradeoff([a, b])
    # the ratio of the mean accuracies (0.7 / 0.7), not the mean of the ratios (1.044)
    assert row["acc_ratio"] == pytest.approx(1.0)
    assert row["nn_disagreement"] == pytest.approx(0.3)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return built_tiny_zoo(tmp_path_factory.mktemp("zoo"), seeds=3)


def test_cross_validation_pools_every_real_model_once(store: str, tmp_path: Path) -> None:
    cfg = FlowConfig(data=DataConfig(canonical=False)).with_overrides(TINY)
    n, folds = 6, 3
    report = cross_validate(lambda: FlowGenerator(cfg), store, folds, tmp_path,
                            EvalSettings(n=n, sweep=(0.5, 1.0)))  # fmt: skip
    assert len(report["folds"]) == folds and len(report["train_seconds"]) == folds
    for f in range(folds):
        assert (tmp_path / f"fold-{f}" / "generator.json").is_file()
    assert (tmp_path / "evaluation.json").is_file() and all(Path(p).is_file()
                                                            for p in report["plots"])  # fmt: skip
    for g in report["groups"]:
        # the held-out accuracies over the folds are the accuracies of all real models, once each
        assert sorted(g["heldout_acc"]) == pytest.approx(sorted(g["real_acc"]))
        assert g["heldout_models"] == len(g["real_acc"])
        assert len(g["generated_acc"]) == folds * n
        assert g["real_nn_disagreement"] == pytest.approx(np.mean(g["heldout_nn_disagreement"]))
    # the per-group breakdown, recomputed from the pooled per-net figures
    assert [r["group"] for r in report["per_group"]] == [g["group"] for g in report["groups"]]
    for row, g in zip(report["per_group"], report["groups"], strict=True):
        gen, held = np.mean(g["generated_acc"]), np.mean(g["heldout_acc"])
        assert row["generated_acc"] == pytest.approx(gen)
        assert row["heldout_acc"] == pytest.approx(held)
        assert row["acc_ratio"] == pytest.approx(gen / held)
        assert row["real_nn_disagreement"] == pytest.approx(np.mean(g["heldout_nn_disagreement"]))
        assert row["nn_disagreement"] == g["novelty"]["nn_disagreement"]
        assert row["real_pair_disagreement"] == g["real_pair_disagreement"]
        # 3 seeds of each (width, learning rate): every group has replicates
        assert 0 <= row["real_replicate_disagreement"] == g["real_replicate_disagreement"] <= 1
    assert (tmp_path / "per_group.png").is_file()
    s = report["summary"]
    reps = [g["real_replicate_disagreement"] for g in report["groups"]]
    assert s["real_replicate_disagreement"] == pytest.approx(np.mean(reps))
    all_real = [a for g in report["groups"] for a in g["real_acc"]]
    assert s["heldout_acc"] == pytest.approx(np.mean(all_real))
    # all real nets, whatever the fold: every fold has the same value, and the pool keeps it
    task_pairs = {f["real_task_pair_disagreement"] for f in report["folds"]}
    assert task_pairs == {s["real_task_pair_disagreement"]}
    assert [r["temperature"] for r in report["tradeoff"]] == [0.5, 1.0]
    with pytest.raises(ValueError, match="needs folds >= 2"):
        cross_validate(lambda: FlowGenerator(cfg), store, 1, tmp_path)


def _same_dataset(a: WeightDataset, b: WeightDataset) -> None:
    assert torch.equal(a.train, b.train) and a.config == b.config and a.origin == b.origin
    assert torch.equal(a.weights, b.weights) and torch.allclose(
        a.prop, b.prop, rtol=0, atol=0, equal_nan=True
    )
    assert torch.equal(a.normalizer.mean, b.normalizer.mean)
    assert torch.equal(a.normalizer.std, b.normalizer.std)
    assert (a.prop_mean, a.prop_std) == (b.prop_mean, b.prop_std)


def test_a_fold_re_split_equals_the_zoo_read_again(store: str) -> None:
    """with_fold and dataset_for(read=...) give what reading the zoo with that fold gives, so
    the folds of one run read it once; a config that keeps other models is read again."""
    base = DataConfig(canonical=False, folds=3)
    first = WeightDataset.from_zoo(store, None, base)
    for f in range(3):
        again = WeightDataset.from_zoo(store, None, replace(base, fold=f))
        _same_dataset(first.with_fold(3, f), again)
        gen = FlowGenerator(FlowConfig(data=replace(base, fold=f)).with_overrides(TINY))
        gen.prepare(again)
        _same_dataset(dataset_for(gen, store, first), dataset_for(gen, store))
    assert first.reads_like(replace(base, fold=2))
    assert not first.reads_like(replace(base, fold=2, heldout=0.3))
    other = FlowGenerator(FlowConfig(data=replace(base, min_val_acc=0.86)).with_overrides(TINY))
    other.prepare(WeightDataset.from_zoo(store, None, other.config.data))
    assert len(dataset_for(other, store, first)) < len(first)  # read again, with its filter
