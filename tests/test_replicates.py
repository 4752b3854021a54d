"""Replicates: real nets trained alike but for the seed, the zoo's own seed-to-seed reference
for how often two nets differ (``WeightDataset.recipe``, ``replicate_disagreement``)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from zoo_fixtures import built_tiny_zoo, moons_populations

from generators import DataConfig, WeightDataset
from pipelines.evaluate import replicate_disagreement


def pairs_loop(p: torch.Tensor, recipe: list[int]) -> float:
    """The reference: mean over unordered pairs i < j with equal, known recipes."""
    d = [float((p[i] != p[j]).float().mean())
         for i in range(len(p)) for j in range(i + 1, len(p))
         if recipe[i] == recipe[j] >= 0]  # fmt: skip
    return float(np.mean(d)) if d else float("nan")


@pytest.mark.parametrize("m,b,cells", [(2, 5, 1), (6, 17, 2), (9, 40, 3), (12, 33, 5)])
@pytest.mark.parametrize("seed", [0, 1])
def test_replicate_disagreement_is_the_mean_over_same_recipe_pairs(
    m: int, b: int, cells: int, seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    p = torch.randint(0, 3, (m, b), generator=g)  # (M, B) predicted labels
    recipe = torch.randint(-1, cells, (m,), generator=g)  # -1: unknown, never a replicate
    want = pairs_loop(p, recipe.tolist())
    got = replicate_disagreement(p, recipe)
    assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-6)


def test_no_replicates_is_nan() -> None:
    p = torch.tensor([[0, 1], [1, 1], [0, 0]])
    assert math.isnan(replicate_disagreement(p, torch.tensor([0, 1, 2])))
    assert math.isnan(replicate_disagreement(p, torch.tensor([-1, -1, -1])))
    assert replicate_disagreement(p, torch.tensor([0, 1, 0])) == pytest.approx(0.5)


def test_stored_models_share_a_recipe_exactly_when_only_their_seed_differs(store: str) -> None:
    from zoo import open_zoo

    ds = WeightDataset.from_zoo(
        store, config=DataConfig(canonical=False, property="", exclude_phases=[])
    )
    pops = open_zoo(store).populations
    for a in range(len(ds)):
        for b in range(len(ds)):
            (na, ra), (nb, rb) = ds.origin[a], ds.origin[b]
            ha, hb = pops[na].hparams, pops[nb].hparams
            alike = na == nb and all(ha[k][ra] == hb[k][rb] for k in ha if k != "seed")
            assert bool(ds.recipe[a] == ds.recipe[b]) == alike
    assert int(ds.recipe.min()) >= 0
    # the tiny spec: 2 learning rates x 2 seeds per width -> 2 recipes of 2 models each
    _, counts = ds.recipe.unique(return_counts=True)
    assert counts.tolist() == [2] * (len(ds) // 2)
    kept = ds.with_split(ds.origin[::2])  # a restored split keeps the recipes
    assert torch.equal(kept.recipe, ds.recipe)


def test_in_memory_populations_have_unknown_recipes() -> None:
    ds = WeightDataset.from_populations(moons_populations(models=4), DataConfig(property=""))
    assert torch.equal(ds.recipe, torch.full((len(ds),), -1))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    return built_tiny_zoo(tmp_path_factory.mktemp("replicates"))


def test_recipe_keys_are_json_of_the_hyperparameters_but_the_seed(store: str) -> None:
    from generators.dataset import training_recipes
    from zoo import open_zoo

    pop = next(iter(open_zoo(store).populations.values()))
    keys = training_recipes(pop, torch.arange(len(pop)))
    for i, key in enumerate(keys):
        hp = json.loads(key)
        assert "seed" not in hp
        assert hp["learning_rate"] == pytest.approx(float(pop.hparams["learning_rate"][i]))


def test_task_pairs_are_every_pair_of_real_nets_across_widths() -> None:
    """Two widths of one task: the mean over all pairs of the dataset's nets, training and
    held-out, predicting the test split, whatever the split, re-implemented with a loop."""
    from pipelines.evaluate import predictions, task_pair_disagreement
    from zoo import get_task

    ds = WeightDataset.from_populations(moons_populations((3, 5), models=4), DataConfig())
    task = get_task("moons")
    # training nets first, then held-out ones: another order than the function's
    p = torch.cat([predictions(grp.arch, task, torch.cat([ds.group_weights(g, True),
                                                          ds.group_weights(g, False)]))
                   for g, grp in enumerate(ds.groups)])  # fmt: skip
    assert len(p) == len(ds) == 8
    want = pairs_loop(p, [0] * len(p))
    got = task_pair_disagreement(ds, {"moons": task})
    assert got == pytest.approx(want, abs=1e-6)
    assert task_pair_disagreement(ds.with_split(ds.origin[1::2]), {"moons": task}) == got
