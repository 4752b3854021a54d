"""Flow matching: ODE solvers, OT pairing, the loss, a Gaussian toy target, PCA projection."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from zoo_fixtures import trained_moons

from generators import DataConfig, FlowConfig, FlowGenerator, WeightDataset
from generators.flow import GroupPCA, flow_matching_loss, integrate, ot_pair
from generators.flow.generator import pca_code
from generators.flow.projection import loo_residual
from generators.flow.velocity import VelocityNet
from zoo import MLP, Population


@pytest.mark.parametrize("solver,steps,tol", [("euler", 200, 5e-3), ("heun", 20, 1e-3),
                                              ("rk4", 8, 2e-5)])  # fmt: skip
def test_ode_solvers_integrate_linear_field(solver: str, steps: int, tol: float) -> None:
    """dx/dt = -x + t: x(t) = (x0 + 1) e^-t + t - 1, so x(1) = (x0 + 1) / e."""
    x0 = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = integrate(lambda x, t: -x + t.unsqueeze(-1), x0, steps, solver)
    exact = (x0 + 1) * math.exp(-1)
    assert (out - exact).abs().max() < tol


def test_solver_orders() -> None:
    x0 = torch.ones(1, 1, dtype=torch.float64)
    err = {
        s: float((integrate(lambda x, t: x, x0, 10, s) - math.e).abs())
        for s in ("euler", "heun", "rk4")
    }
    assert err["euler"] > 10 * err["heun"] > 100 * err["rk4"]
    with pytest.raises(ValueError, match="unknown ODE solver"):
        integrate(lambda x, t: x, x0, 3, "midpoint")


def test_ot_pairing_is_the_optimal_permutation() -> None:
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    paired = ot_pair(x0, x1)
    assert sorted(map(tuple, paired.tolist())) == sorted(map(tuple, x0.tolist()))
    best = min(sum(float((x0[p[i]] - x1[i]).pow(2).sum()) for i in range(6))
               for p in itertools.permutations(range(6)))  # fmt: skip
    assert math.isclose(float((paired - x1).pow(2).sum()), best, rel_tol=1e-6)


@pytest.mark.parametrize("ot", [False, True])
def test_loss_of_a_zero_field_is_the_mean_squared_displacement(ot: bool) -> None:
    x1 = torch.randn(8, 5)
    mask = torch.ones(8, 5)
    mask[:3, 4] = 0
    loss = flow_matching_loss(lambda x, t: torch.zeros_like(x), x1, mask,
                              torch.Generator().manual_seed(3), source_std=0.5, ot=ot)  # fmt: skip
    g = torch.Generator().manual_seed(3)  # the same draws, re-implemented
    x0 = torch.randn(8, 5, generator=g) * 0.5 * mask
    if ot:
        x0 = ot_pair(x0, x1) * mask
    ref = ((x1 - x0) ** 2 * mask).sum() / mask.sum()
    assert torch.allclose(loss, ref)


def test_flow_recovers_a_gaussian_target() -> None:
    """400 'models' with weights ~ N(mu, Sigma) in 5-D: the samples' mean is within 0.15 std and
    their covariance within 20% (relative Frobenius) of the target."""
    arch = MLP(width=1, in_shape=(2,), num_outputs=1, depth=1)  # 5 parameters
    g = torch.Generator().manual_seed(0)
    a = torch.randn(5, 5, generator=g) * 0.5
    cov = a @ a.T + 0.2 * torch.eye(5)
    mu = torch.tensor([1.0, -2.0, 0.5, 3.0, 0.0])
    w = mu + torch.randn(400, 5, generator=g) @ torch.linalg.cholesky(cov).T
    ds = WeightDataset.from_populations([Population(arch, w, "moons", "gauss")],
                                        DataConfig(heldout=0.0, property=""))  # fmt: skip
    cfg = FlowConfig().with_overrides({
        "training.max_steps": 600, "training.batch_size": 256, "training.learning_rate": 3e-3,
        "model.hidden": 64, "model.cond_dim": 16, "model.pca": 0, "model.source_std": 1.0,
        "sampling.steps": 20,
    })  # fmt: skip
    gen = FlowGenerator(cfg)
    gen.fit(ds)
    s = gen.sample(4000, seed=1).weights().double()
    std = cov.diag().sqrt().double()
    assert ((s.mean(0) - mu) / std).abs().max() < 0.15
    rel = torch.linalg.norm(torch.cov(s.T) - cov.double()) / torch.linalg.norm(cov.double())
    assert rel < 0.2


def test_group_pca_round_trip_and_complement_noise() -> None:
    g = torch.Generator().manual_seed(0)
    masks = torch.ones(2, 12, dtype=torch.bool)
    masks[1, 8:] = False
    z = torch.randn(10, 12, generator=g) * masks[torch.tensor([0] * 5 + [1] * 5)]
    group = torch.tensor([0] * 5 + [1] * 5)
    for gi in (0, 1):
        z[group == gi] -= z[group == gi].mean(0)
    pca = GroupPCA.fit(z, group, masks, components=8)
    assert pca.components == 4  # at most (models per group - 1)
    for gi in (0, 1):
        zg = z[group == gi]
        assert torch.allclose(pca.decode(pca.encode(zg, gi), gi), zg, atol=1e-5)
        noise = pca.complement_noise(50, gi, masks[gi].float(), g)
        assert (noise @ pca.basis[gi].T).abs().max() < 1e-4  # orthogonal to the span
        assert torch.equal(noise[:, ~masks[gi]], torch.zeros(50, int((~masks[gi]).sum())))
        assert pca.residual[gi] > 0


def test_group_pca_with_ranks_keeps_the_leading_directions() -> None:
    g = torch.Generator().manual_seed(1)
    masks = torch.ones(2, 10, dtype=torch.bool)
    group = torch.tensor([0] * 7 + [1] * 7)
    z = torch.randn(14, 10, generator=g)
    for gi in (0, 1):
        z[group == gi] -= z[group == gi].mean(0)
    full = GroupPCA.fit(z, group, masks, components=5, whiten="component")
    cut = GroupPCA.fit(z, group, masks, components=5, whiten="component",
                       ranks=torch.tensor([2, 5]))  # fmt: skip
    assert cut.component_mask.sum(dim=1).tolist() == [2, 5]
    assert torch.allclose(cut.basis[0, :2], full.basis[0, :2])
    assert torch.equal(cut.basis[0, 2:], torch.zeros(3, 10))
    assert torch.allclose(cut.basis[1], full.basis[1])
    zg = z[group == 0].double()
    assert cut.residual[0] == pytest.approx(loo_residual(zg, 2, 10), rel=1e-5)  # of 2 comps


@pytest.fixture(scope="module")
def two_widths() -> WeightDataset:
    """Trained moons MLPs of widths 3 and 6, 8 models each."""
    pops = [
        Population(*trained_moons(w, 8, epochs=3, seed_offset=100 * w, batch_size=32), "moons",
                   f"moons-w{w}")
        for w in (3, 6)
    ]  # fmt: skip
    return WeightDataset.from_populations(pops, DataConfig(heldout=0.0))


@pytest.mark.parametrize("max_drop", [-1.0, 0.0, 0.02, 0.1, 1.0])
def test_ranks_are_the_fewest_components_within_the_accuracy_drop(two_widths, max_drop) -> None:
    from generators.dataset import measure_property
    from generators.flow.rank import choose_ranks

    ds = two_widths
    rows = ds.train_index
    space = GroupPCA.fit(ds.normalized[rows], ds.group[rows], ds.padded.masks, components=7)
    ranks = choose_ranks(ds, space, max_drop)
    for g, grp in enumerate(ds.groups):
        r = ds.group_rows(g, True)
        w0 = ds.padded.crop(ds.weights[r], g)
        base = float(measure_property("val_acc", grp.arch, "moons", w0).mean())
        drops = []  # reference: rebuild every truncation by hand, from the SVD of the group
        zg = ds.normalized[r].double()
        _, _, vh = torch.linalg.svd(zg - zg.mean(0), full_matrices=False)
        for k in range(1, 7):
            rec = (zg @ vh[:k].T) @ vh[:k]
            w = ds.padded.crop(ds.normalizer.denormalize(rec.float(), torch.full((len(r),), g)), g)
            drops.append(base - float(measure_property("val_acc", grp.arch, "moons", w).mean()))
        ok = [k for k, d in enumerate(drops, start=1) if d <= max_drop + 1e-6]
        assert int(ranks[g]) == (ok[0] if ok else 7)
    if max_drop >= 1.0:
        assert ranks.tolist() == [1, 1]  # an accuracy drop is never above 1
    if max_drop < 0:
        assert ranks.tolist() == [7, 7]  # never satisfied: every group keeps all components


def test_flow_with_pca_max_drop_trains_and_samples(two_widths, tmp_path) -> None:
    from generators import load_generator

    cfg = FlowConfig().with_overrides({"training.max_steps": 5, "model.hidden": 16,
                                       "model.cond_dim": 8, "model.pca": 7,
                                       "model.pca_max_drop": 0.02})  # fmt: skip
    gen = FlowGenerator(cfg)
    gen.fit(two_widths)
    assert (gen.space.component_mask.sum(dim=1) <= 7).all()
    gen.save(tmp_path / "run")
    back = load_generator(tmp_path / "run")
    assert torch.equal(back.space.scale, gen.space.scale)
    assert torch.equal(
        back.sample(4, width=3, seed=0).weights(), gen.sample(4, width=3, seed=0).weights()
    )
    with pytest.raises(ValueError, match=r"model.pca_max_drop needs model.pca > 0"):
        FlowConfig().with_overrides({"model.pca": 0, "model.pca_max_drop": 0.1})


def test_fused_decode_equals_decode_then_destandardize(two_widths) -> None:
    """Sampling folds the PCA decode and the de-standardization into one matrix per group; it
    must give the two-step result (to float rounding) in every group's own layout."""
    cfg = FlowConfig().with_overrides({"training.max_steps": 2, "model.hidden": 16,
                                       "model.cond_dim": 8, "model.pca": 5})  # fmt: skip
    gen = FlowGenerator(cfg)
    gen.fit(two_widths)
    info = gen.require_info()
    coef = torch.randn(9, gen.space.components, generator=torch.Generator().manual_seed(0))
    for g in range(len(info.groups)):
        index = info.padded.indices[g]
        two_step = info.normalizer.denormalize_layout(gen.space.decode(coef, g), g, index)
        fused = pca_code(gen.space, info.normalizer, g, index).decode(coef * gen.space.scale[g])
        assert fused.shape == (9, info.groups[g].arch.num_params)
        torch.testing.assert_close(fused, two_step, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("batch", "dim", "hidden"), [(1, 3, 8), (7, 11, 32), (64, 16, 64)])
@pytest.mark.parametrize("times", ["shared", "per-row"])
def test_conditioned_velocity_equals_forward(batch: int, dim: int, hidden: int, times: str) -> None:
    """The ODE's field with the conditioning projected once is the training-time forward."""
    torch.manual_seed(0)
    net = VelocityNet(dim, hidden, cond_dim=8, dropout=0.0)
    for p in net.parameters():  # the output layer starts at zero: make every term count
        torch.nn.init.normal_(p, std=0.3)
    x, c = torch.randn(batch, dim), torch.randn(batch, 8)
    t = torch.full((batch,), 0.375) if times == "shared" else torch.rand(batch)
    with torch.no_grad():
        expected = net(x, t, c)
        torch.testing.assert_close(net.conditioned(c)(x, t), expected, rtol=1e-5, atol=1e-5)
