"""Weight-space interpolation augmentation (``[augment]``): synthetic nets between real ones."""

from __future__ import annotations

import pytest
import torch
from zoo_fixtures import tiny_flow, trained_moons

from generators import AugmentConfig, DataConfig, FlowConfig, FlowGenerator, WeightDataset
from generators.augmentation import interpolate_models, worse_than_parents
from zoo import Population, get_task
from zoo.training import evaluate

TINY = tiny_flow(3, hidden=16, **{"model.pca": 0})


@pytest.fixture(scope="module")
def pops() -> list[Population]:
    """Two trained moons populations (widths 3 and 5) of 5 models, and one of a single model."""
    out = []
    for w, m in ((3, 5), (5, 5), (4, 1)):
        arch, weights = trained_moons(w, m, seed_offset=10 * w)
        out.append(Population(arch, weights, "moons", f"w{w}"))
    return out


@pytest.mark.parametrize("k,t_min", [(1, 0.0), (3, 0.25), (2, 0.5)])
def test_children_lie_on_segments_between_distinct_training_nets(pops, k: int, t_min: float):
    ds = WeightDataset.from_populations(pops, DataConfig(heldout=0.2, property="val_acc"))
    aug = interpolate_models(ds, AugmentConfig(interpolations=k, t_min=t_min), seed=0)
    counts = {g: len(ds.group_rows(g, True)) for g in range(len(ds.groups))}
    expected = sum(k * m for m in counts.values() if m >= 2)  # the one-model group has no pair
    assert len(aug) == expected
    assert set(aug.group.tolist()) == {g for g, m in counts.items() if m >= 2}
    a, b = aug.parents.unbind(1)
    assert bool((a != b).all())
    assert bool(ds.train[a].all() and ds.train[b].all()), "held-out models must never be parents"
    assert bool((ds.group[a] == aug.group).all() and (ds.group[b] == aug.group).all())
    assert bool(((aug.t >= t_min) & (aug.t <= 1 - t_min)).all())
    ref = (1 - aug.t[:, None]) * ds.weights[a] + aug.t[:, None] * ds.weights[b]
    torch.testing.assert_close(aug.weights, ref)
    for g in aug.group.unique().tolist():  # the property is measured on each synthetic net
        sel = aug.group == g
        grp = ds.groups[g]
        _, acc = evaluate(grp.arch, get_task("moons"), ds.padded.crop(aug.weights[sel], g), "val")
        torch.testing.assert_close(aug.prop[sel], acc)


@pytest.mark.parametrize("max_drop", [0.0, 0.05])
def test_max_drop_keeps_only_children_near_their_worse_parent(pops, max_drop: float) -> None:
    ds = WeightDataset.from_populations(pops, DataConfig(property="val_acc"))
    every = interpolate_models(ds, AugmentConfig(interpolations=6), seed=0)
    kept = interpolate_models(ds, AugmentConfig(interpolations=6, max_drop=max_drop), seed=0)
    floor = torch.minimum(ds.prop[every.parents[:, 0]], ds.prop[every.parents[:, 1]]) - max_drop
    good = every.prop >= floor
    assert 0 < len(kept) == int(good.sum()) < len(every)
    torch.testing.assert_close(kept.weights, every.weights[good])
    assert len(interpolate_models(ds, AugmentConfig(interpolations=6, max_drop=-1.0), 0)) == 0


def test_worse_than_parents_follows_the_property_direction() -> None:
    child, pa, pb = (
        torch.tensor([0.5, 0.7, 0.9]),
        torch.tensor([0.6, 0.6, 0.6]),
        torch.tensor([0.8, 0.8, float("nan")]),
    )
    assert worse_than_parents(child, pa, pb, "val_acc", 0.0).tolist() == [True, False, False]
    assert worse_than_parents(child, pa, pb, "val_acc", 0.15).tolist() == [False, False, False]
    # losses: higher is worse, so the child is compared with the higher parent loss
    assert worse_than_parents(child, pa, pb, "val_loss", 0.0).tolist() == [False, False, False]
    assert worse_than_parents(child, pa, pb, "val_loss", -0.15).tolist() == [False, True, False]


def test_interpolation_is_seeded(pops) -> None:
    ds = WeightDataset.from_populations(pops, DataConfig(property=""))
    one, two = (interpolate_models(ds, AugmentConfig(interpolations=2), seed=s) for s in (0, 0))
    other = interpolate_models(ds, AugmentConfig(interpolations=2), seed=1)
    assert torch.equal(one.weights, two.weights) and torch.isnan(one.prop).all()
    assert not torch.equal(one.weights, other.weights)


def test_flow_trains_on_real_plus_synthetic_rows(pops) -> None:
    ds = WeightDataset.from_populations(pops, DataConfig(property="val_acc"))
    cfg = FlowConfig().with_overrides({**TINY, "augment.interpolations": 2})
    gen = FlowGenerator(cfg)
    gen.fit(ds)
    n_syn = len(interpolate_models(ds, cfg.augment, cfg.training.seed))
    assert gen.num_train == len(ds.train_index)
    assert gen.num_examples == gen.num_train + n_syn > gen.num_train
    assert gen.sample(4, task="moons", width=3, seed=0).weights().shape == (
        4,
        pops[0].arch.num_params,
    )
    plain = FlowGenerator(FlowConfig().with_overrides(TINY))
    plain.fit(ds)
    assert plain.num_examples == plain.num_train


def test_config_and_property_errors(pops) -> None:
    with pytest.raises(ValueError, match="augment.interpolations must be >= 0"):
        AugmentConfig(interpolations=-1)
    with pytest.raises(ValueError, match=r"augment.t_min must be in \[0, 0.5\]"):
        FlowConfig().with_overrides({"augment.t_min": 0.7})
    named = [Population(p.arch, p.weights(), p.task, p.name, {"lr": torch.ones(len(p))})
             for p in pops]  # fmt: skip
    ds = WeightDataset.from_populations(named, DataConfig(property="lr"))
    with pytest.raises(ValueError, match="needs a property measurable from the weights"):
        interpolate_models(ds, AugmentConfig(interpolations=1), seed=0)
