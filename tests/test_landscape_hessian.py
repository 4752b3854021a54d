"""Batched Hessian metrics: HVPs, power iteration and Hutchinson against exact references."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from torch import nn
from torch.autograd.functional import hessian

from zoo import CNN, MLP, Architecture, PermutationSpec, Transformer
from zoo.landscape import (
    FixedBatches,
    PopulationHessian,
    fixed_batches,
    hessian_metrics,
    hutchinson_trace,
    top_eigenvalue,
)
from zoo.tasks import TaskData
from zoo.training import task_loss


def regression_task(x: torch.Tensor, y: torch.Tensor) -> TaskData:
    return TaskData("toy", "regression", y.shape[1], x, y, x[:1], y[:1], x[:1], y[:1])


def exact_hessian(arch, task: TaskData, w: torch.Tensor, batches: FixedBatches) -> torch.Tensor:
    """(N, N) Hessian of one model's mean loss on the batches, by torch.autograd.functional."""
    x, y = batches.flat()
    return hessian(lambda v: task_loss(task, arch.forward(v[None], x), y)[0], w)


def test_fixed_batches_are_reproducible_and_disjoint(digits: TaskData) -> None:
    a, b = fixed_batches(digits, 10, 64, seed=3), fixed_batches(digits, 10, 64, seed=3)
    assert a.x.shape == (10, 64, 1, 8, 8) and a.num_samples == 640
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    order = torch.randperm(len(digits.x_train), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.flat()[0], digits.x_train[order[:640]])  # drawn without replacement
    small = fixed_batches(digits, 100, 64)
    assert small.x.shape[0] == len(digits.x_train) // 64  # shrinks to what the split holds
    with pytest.raises(ValueError, match="n_batches >= 1"):
        fixed_batches(digits, 0, 64)


@dataclass(frozen=True)
class LinearModel(Architecture):
    """A linear map: with squared loss its loss is an exact quadratic in the weights."""

    family: ClassVar[str] = "linear-test"
    in_features: int = 4
    num_outputs: int = 2

    def build(self) -> nn.Module:
        return nn.Linear(self.in_features, self.num_outputs)

    def permutation_spec(self) -> PermutationSpec:
        return PermutationSpec({}, {"weight": (None, None), "bias": (None,)})

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.in_features,)


@pytest.mark.parametrize("dims", [(6, 3), (10, 2), (3, 1)])
def test_power_iteration_finds_top_eigenvalue_of_quadratic(dims: tuple[int, int]) -> None:
    """Mean squared loss of a linear model over S samples and K outputs: the Hessian is the
    constant (2 / (S K)) A^T A (x) I_K with A = [X, 1], so its top eigenvalue is known."""
    d, k = dims
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(256, d, generator=gen) * torch.linspace(0.5, 3.0, d)  # spread spectrum
    y = torch.randn(256, k, generator=gen)
    arch = LinearModel(width=1, in_features=d, num_outputs=k)
    task = regression_task(x, y)
    batches = fixed_batches(task, 4, 64, seed=0)
    xs = batches.flat()[0].double()
    a = torch.cat([xs, torch.ones(len(xs), 1, dtype=torch.float64)], dim=1)
    truth = torch.linalg.eigvalsh(2 / (len(xs) * k) * a.T @ a).max().item()
    assert math.isclose(  # the reference formula agrees with autograd's dense Hessian
        torch.linalg.eigvalsh(exact_hessian(arch, task, arch.init_weights([0])[0], batches)).max().item(),
        truth, rel_tol=1e-4,
    )  # fmt: skip
    w = arch.init_weights([0, 1, 2])
    eig, iters, conv = top_eigenvalue(PopulationHessian(arch, task, w, batches))
    assert conv.all() and (iters <= 100).all()
    for e in eig.tolist():
        assert abs(e - truth) <= 0.01 * truth


def test_power_iteration_on_nonlinear_net_matches_dense_eigenvalue(digits: TaskData) -> None:
    arch = MLP(width=4, in_shape=(1, 8, 8), depth=1)
    batches = fixed_batches(digits, 2, 32)
    w = arch.init_weights([0, 1])
    eig, _, conv = top_eigenvalue(
        PopulationHessian(arch, digits, w, batches), max_iterations=500, tol=1e-6
    )
    for i in range(2):
        ev = torch.linalg.eigvalsh(exact_hessian(arch, digits, w[i], batches).double())
        dominant = ev[ev.abs().argmax()]
        assert abs(eig[i].item() - dominant.item()) <= 0.01 * abs(dominant.item())


def test_hutchinson_trace_within_four_standard_errors_of_exact(digits: TaskData) -> None:
    """Rademacher probes: Var[z^T H z] = 2 (||H||_F^2 - sum_i H_ii^2); with K probes the mean is
    within 4 standard errors of the exact trace (and, here, within 15%)."""
    arch = MLP(width=5, in_shape=(1, 8, 8), depth=1)
    batches = fixed_batches(digits, 2, 32)
    w = arch.init_weights([0, 1, 2])
    probes = 200
    trace, stderr = hutchinson_trace(PopulationHessian(arch, digits, w, batches), probes=probes)
    for i in range(3):
        h = exact_hessian(arch, digits, w[i], batches).double()
        exact = torch.trace(h).item()
        se = math.sqrt(2 * (h.square().sum() - h.diagonal().square().sum()).item() / probes)
        assert abs(trace[i].item() - exact) <= 4 * se
        assert abs(trace[i].item() - exact) <= 0.15 * abs(exact)
        assert 0.5 * se <= stderr[i].item() <= 2 * se


@pytest.mark.parametrize(
    "arch",
    [
        MLP(width=8, in_shape=(1, 8, 8)),
        CNN(width=2, in_shape=(1, 8, 8), depth=2),
    ],
    ids=["mlp", "cnn"],
)
def test_batched_hvp_equals_per_model_hvp(arch, digits: TaskData) -> None:
    batches = fixed_batches(digits, 2, 16)
    w = arch.init_weights([0, 1, 2, 3])
    v = torch.randn(w.shape, generator=torch.Generator().manual_seed(1))
    batched = PopulationHessian(arch, digits, w, batches).hvp(v)
    for i in range(4):
        single = PopulationHessian(arch, digits, w[i : i + 1], batches).hvp(v[i : i + 1])
        assert torch.allclose(batched[i], single[0], atol=1e-6, rtol=1e-5)
    h0 = exact_hessian(arch, digits, w[0], batches)
    assert torch.allclose(batched[0], h0 @ v[0], atol=1e-5, rtol=1e-4)


def test_hvp_rows_select_and_repeat_models(digits: TaskData) -> None:
    arch = MLP(width=6, in_shape=(1, 8, 8))
    batches = fixed_batches(digits, 2, 16)
    w = arch.init_weights([0, 1, 2])
    h = PopulationHessian(arch, digits, w, batches)
    v = torch.randn(3, arch.num_params, generator=torch.Generator().manual_seed(2))
    full = h.hvp(v)
    rows = torch.tensor([2, 0, 2])
    sub = h.hvp(v[rows], rows)
    assert torch.allclose(sub, full[rows], atol=1e-6)
    with pytest.raises(ValueError, match="directions have shape"):
        h.hvp(v[:2])


def test_transformer_hvp_matches_exact(modadd: TaskData) -> None:
    arch = Transformer(width=4, heads=2, vocab=12, num_outputs=11, mlp_ratio=1)
    batches = fixed_batches(modadd, 1, 16)
    w = arch.init_weights([0, 1])
    v = torch.randn(w.shape, generator=torch.Generator().manual_seed(3))
    hv = PopulationHessian(arch, modadd, w, batches).hvp(v)
    h1 = exact_hessian(arch, modadd, w[1], batches)
    assert torch.allclose(hv[1], h1 @ v[1], atol=1e-5, rtol=1e-4)


def test_hessian_metrics_shapes_and_determinism(digits: TaskData) -> None:
    arch = MLP(width=4, in_shape=(1, 8, 8))
    batches = fixed_batches(digits, 2, 32)
    w = arch.init_weights([0, 1, 2])
    a = hessian_metrics(arch, digits, w, batches, probes=4)
    b = hessian_metrics(arch, digits, w, batches, probes=4)
    for f in ("top_eigenvalue", "trace", "trace_stderr", "iterations", "converged"):
        assert getattr(a, f).shape == (3,)
        assert torch.equal(getattr(a, f), getattr(b, f))
    assert (a.top_eigenvalue > 0).all() and (a.trace > 0).all()
