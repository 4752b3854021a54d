"""Aligning populations: medoid / barycenter references, smoothing, trained digits MLPs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from canonicalize import (
    Permutation,
    align_population,
    mean_pairwise_distance,
    median_pairwise_distance,
    medoid_index,
    total_variation,
    weight_matching,
)
from canonicalize.methods import TransFusion, method_from_name
from zoo import MLP, TrainConfig, Transformer, train_population
from zoo.tasks import TaskData
from zoo.training import evaluate


@pytest.fixture(scope="module")
def trained(digits: TaskData) -> tuple[MLP, torch.Tensor]:
    """Six digits MLPs (64-128-128-10), independently seeded, 5 epochs: (arch, (6, N))."""
    arch = MLP(width=128, depth=2, in_shape=(1, 8, 8))
    p = 6
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module fixtures run before the per-test thread setting
    res = train_population(
        arch, digits, TrainConfig(epochs=5, checkpoints=(5,)), np.arange(p),
        np.full(p, 0.05), np.full(p, 1e-4), np.full(p, 32),
    )  # fmt: skip
    torch.set_num_threads(threads)
    assert (res.status == 1).all()
    return arch, res.weights[:, -1]


def permuted_copies(arch, w: torch.Tensor, m: int, noise: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    rows = [
        Permutation(arch, arch.permutation_spec().random(g)).apply(w)
        + noise * torch.randn(len(w), generator=g)
        for _ in range(m)
    ]
    return torch.stack(rows)


def test_medoid_and_mean_distance_match_their_definitions() -> None:
    w = torch.randn(7, 5, generator=torch.Generator().manual_seed(0))
    sums = [sum(float((w[i] - w[j]).norm()) for j in range(7)) for i in range(7)]
    assert medoid_index(w) == int(np.argmin(sums))
    pairs = [float((w[i] - w[j]).norm()) for i in range(7) for j in range(i + 1, 7)]
    assert mean_pairwise_distance(w) == pytest.approx(np.mean(pairs), rel=1e-6)
    assert mean_pairwise_distance(w[:1]) == 0.0


@pytest.mark.parametrize("reference", ["medoid", "barycenter"])
def test_permuted_copies_collapse_onto_one_point(reference: str) -> None:
    arch = MLP(width=16, depth=2, in_shape=(6,))
    pop = permuted_copies(arch, arch.init_weights([1])[0], 5)
    out = align_population(arch, pop, reference=reference)
    assert out.distance_before > 1
    assert out.distance_after == 0
    assert out.reference_index == medoid_index(pop)
    assert out.perms["h0"].shape == (5, 16) and out.perms["h0"].dtype == torch.long
    for m in range(5):  # the stored permutations reproduce the aligned rows
        perm = Permutation(arch, {g: p[m] for g, p in out.perms.items()})
        assert torch.equal(perm.apply(pop[m]), out.weights[m])


def test_transformer_population_aligns_with_transfusion() -> None:
    arch = Transformer(width=16, heads=4, vocab=11, num_outputs=11)
    w = arch.init_weights([1])[0]
    g = torch.Generator().manual_seed(3)
    rows = []
    for _ in range(4):
        perms = arch.permutation_spec().random(g)
        perms["residual"] = torch.arange(arch.width)  # TransFusion keeps the residual stream
        rows.append(Permutation(arch, perms).apply(w))
    out = align_population(arch, torch.stack(rows), method="transfusion")
    assert out.distance_after == 0 < out.distance_before


def test_trained_population_gets_closer_and_keeps_its_functions(trained, digits) -> None:
    arch, w = trained
    for reference in ("medoid", "barycenter"):
        out = align_population(arch, w, reference=reference, seed=0)
        assert out.distance_after < 0.9 * out.distance_before, reference
        assert out.weights[out.reference_index].equal(w[out.reference_index]) or (
            reference == "barycenter"
        )
        loss_before, acc_before = evaluate(arch, digits, w, "test")
        loss_after, acc_after = evaluate(arch, digits, out.weights, "test")
        assert torch.allclose(loss_before, loss_after, atol=1e-5)
        assert torch.equal(acc_before, acc_after)
    bary = align_population(arch, w, reference="barycenter")
    assert bary.rounds >= 2 and bary.reference is not None
    again = align_population(arch, w, reference="barycenter")
    assert torch.equal(again.weights, bary.weights)  # deterministic


def interpolation_barrier(arch, task: TaskData, a: torch.Tensor, b: torch.Tensor) -> float:
    """max over t of train loss((1-t) a + t b) minus the mean of the endpoint losses."""
    ts = torch.linspace(0, 1, 11)
    path = torch.stack([(1 - t) * a + t * b for t in ts])
    loss, _ = evaluate(arch, task, path, "train")
    return float((loss - (loss[0] + loss[-1]) / 2).max())


def test_matching_removes_most_of_the_loss_barrier(trained, digits) -> None:
    arch, w = trained
    w_a, w_b = w[0], w[1]
    before = interpolation_barrier(arch, digits, w_a, w_b)
    after = interpolation_barrier(arch, digits, w_a, weight_matching(arch, w_a, w_b).apply(w_b))
    assert before > 0.2
    assert after < 0.3 * before


def test_smooth_method_orders_each_model(trained) -> None:
    arch, w = trained
    out = align_population(arch, w[:3], method="smooth")
    assert out.reference_index == -1 and out.reference is None
    assert (total_variation(arch, out.weights) < total_variation(arch, w[:3])).all()


def test_bad_populations_are_refused(trained) -> None:
    arch, w = trained
    with pytest.raises(ValueError, match="parameters per model"):
        align_population(arch, w[:, :-1])
    bad = w.clone()
    bad[2] = float("nan")
    with pytest.raises(ValueError, match=r"rows \[2\] contain NaN"):
        align_population(arch, bad)
    with pytest.raises(ValueError, match="unknown reference 'mean'"):
        align_population(arch, w, reference="mean")
    with pytest.raises(ValueError, match="unknown canonicalization method 'rebasin'"):
        align_population(arch, w, method="rebasin")
    with pytest.raises(ValueError, match="non-empty"):
        align_population(arch, w[:0])
    assert isinstance(method_from_name("transfusion", seed=2), TransFusion)


def test_pairwise_distance_summaries_match_hand_computed_values() -> None:
    w = torch.tensor([[0.0, 0.0], [3.0, 0.0], [3.0, 4.0], [300.0, 400.0]])  # last: blown up
    pairs = [3.0, 5.0, 500.0, 4.0, 297.0**2 + 400.0**2, 495.0]
    pairs[4] = pairs[4] ** 0.5
    assert mean_pairwise_distance(w) == pytest.approx(sum(pairs) / 6)
    # torch's median of an even count is the lower of the two middle values
    assert median_pairwise_distance(w) == pytest.approx(sorted(pairs)[2])
    assert median_pairwise_distance(w[:1]) == mean_pairwise_distance(w[:1]) == 0.0
