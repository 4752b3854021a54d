"""Batched population optimizers == per-row ``torch.optim`` runs; learning-rate schedules."""

from __future__ import annotations

import math

import pytest
import torch

import zoo.optim_kernels
from zoo.optim import OPTIMIZERS, SGD, Adam, lr_factor
from zoo.training import TrainConfig

P, N, STEPS = 4, 37, 9
LR = torch.tensor([0.1, 0.01, 0.5, 0.003])
WD = torch.tensor([0.0, 1e-4, 5e-3, 0.1])
# float32 rounding only: the batched update groups its multiplications differently (a few ulp)
TOL = {"rtol": 1e-6, "atol": 1e-6}

CASES = {
    "sgd": (SGD, torch.optim.SGD, {"momentum": 0.0}),
    "sgd-momentum": (SGD, torch.optim.SGD, {"momentum": 0.9}),
    "adam": (Adam, torch.optim.Adam, {}),
    "adam-betas": (Adam, torch.optim.Adam, {"betas": (0.8, 0.99), "eps": 1e-6}),
}


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(P, N, generator=g), torch.randn(STEPS, P, N, generator=g)


def _reference(ref_cls, w0: torch.Tensor, grads: torch.Tensor, lr: float, wd: float, kw: dict,
               schedule: str) -> list[torch.Tensor]:  # fmt: skip
    """One row with torch.optim and LambdaLR; the weights after every step."""
    p = torch.nn.Parameter(w0.clone())
    opt = ref_cls([p], lr=lr, weight_decay=wd, **kw)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(schedule, s, STEPS))
    out = []
    for g in grads:
        p.grad = g.clone()
        opt.step()
        sched.step()
        out.append(p.detach().clone())
    return out


@pytest.mark.parametrize("fused", [True, False], ids=["fused kernel", "torch ops"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("schedule", ["constant", "cosine", "onecycle"])
def test_matches_torch_optim_per_row(case: str, schedule: str, fused: bool) -> None:
    cls, ref_cls, kw = CASES[case]
    w0, grads = _data()
    w = w0.clone()
    opt = cls(w, LR, WD, fused=fused, **kw)
    active = torch.ones(P, dtype=torch.bool)
    refs = [
        _reference(ref_cls, w0[p], grads[:, p], float(LR[p]), float(WD[p]), kw, schedule)
        for p in range(P)
    ]
    for t in range(STEPS):
        opt.step(grads[t], lr_factor(schedule, t, STEPS), active)
        for p in range(P):
            torch.testing.assert_close(w[p], refs[p][t], **TOL)
    assert opt.steps == STEPS


@pytest.mark.parametrize("fused", [True, False], ids=["fused kernel", "torch ops"])
@pytest.mark.parametrize("case", list(CASES))
def test_inactive_rows_are_frozen(case: str, fused: bool) -> None:
    cls, _, kw = CASES[case]
    w0, grads = _data(1)
    w_all, w_some = w0.clone(), w0.clone()
    opt_all = cls(w_all, LR, WD, fused=fused, **kw)
    opt_some = cls(w_some, LR, WD, fused=fused, **kw)
    active = torch.tensor([True, False, True, True])
    for t in range(STEPS):
        opt_all.step(grads[t], 1.0, torch.ones(P, dtype=torch.bool))
        opt_some.step(grads[t], 1.0, active)
    assert torch.equal(w_some[1], w0[1])
    assert torch.equal(w_some[active], w_all[active])  # rows never interact


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("threads", [1, 3])
def test_per_parameter_gradients_equal_one_flat_gradient(case: str, threads: int) -> None:
    """Slices of the rows updated from their own gradients, on 1 or 3 threads of rows, equal
    the flat update; and the fused kernel equals the torch-op path."""
    cls, _, kw = CASES[case]
    w0, grads = _data(2)
    w_flat, w_parts, w_ops = w0.clone(), w0.clone(), w0.clone()
    flat = cls(w_flat, LR, WD, fused=True, **kw)
    parts = cls(w_parts, LR, WD, fused=True, **kw)
    ops = cls(w_ops, LR, WD, fused=False, **kw)
    active = torch.tensor([True, True, False, True])
    cuts = [0, 5, 6, 30, N]  # e.g. a (5,) bias, a (1,) scalar, a (4, 6) matrix, the rest
    before, per_thread = torch.get_num_threads(), zoo.optim_kernels.ELEMENTS_PER_THREAD
    torch.set_num_threads(threads)
    zoo.optim_kernels.ELEMENTS_PER_THREAD = 1  # split even these small slices
    try:
        for t in range(STEPS):
            g = grads[t]
            pieces = [g[:, a:b] for a, b in zip(cuts, cuts[1:])]
            pieces[2] = pieces[2].reshape(P, 4, 6)
            flat.step(g, 0.7, active)
            parts.step(pieces, 0.7, active)
            ops.step(pieces, 0.7, active)
    finally:
        torch.set_num_threads(before)
        zoo.optim_kernels.ELEMENTS_PER_THREAD = per_thread
    assert torch.equal(w_parts, w_flat)
    torch.testing.assert_close(w_ops, w_flat, **TOL)


def test_fused_step_refuses_gradients_that_do_not_tile_the_rows() -> None:
    w = torch.zeros(2, 6)
    opt = SGD(w, torch.ones(2), torch.zeros(2), fused=True)
    with pytest.raises(ValueError, match="gradients cover 4 of 6 parameters"):
        opt.step([torch.ones(2, 4)], 1.0, torch.ones(2, dtype=torch.bool))
    with pytest.raises(ValueError, match="float32 CPU weights"):
        SGD(torch.zeros(2, 6, dtype=torch.float64), torch.ones(2), torch.zeros(2), fused=True)


def test_weights_updated_in_place() -> None:
    w = torch.zeros(2, 3)
    SGD(w, torch.ones(2), torch.zeros(2), momentum=0.0).step(
        torch.ones(2, 3), 0.5, torch.ones(2, dtype=torch.bool)
    )
    assert torch.equal(w, torch.full((2, 3), -0.5))


@pytest.mark.parametrize("total", [1, 7, 100])
def test_schedules_follow_formulas(total: int) -> None:
    for s in range(total + 1):
        frac = s / total
        assert lr_factor("constant", s, total) == 1.0
        assert lr_factor("cosine", s, total) == pytest.approx(0.5 * (1 + math.cos(math.pi * frac)))
        if frac < 0.3:
            want = 1 / 25 + (24 / 25) * frac / 0.3
        else:
            want = 0.5 * (1 + math.cos(math.pi * (frac - 0.3) / 0.7))
        assert lr_factor("onecycle", s, total) == pytest.approx(want)
    assert lr_factor("cosine", 0, total) == 1.0
    assert lr_factor("cosine", total, total) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor("onecycle", 0, total) == pytest.approx(1 / 25)
    assert lr_factor("onecycle", total, total) == pytest.approx(0.0, abs=1e-12)


def test_cosine_equals_torch_cosine_annealing() -> None:
    total = 50
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    for s in range(total):
        assert opt.param_groups[0]["lr"] == pytest.approx(0.3 * lr_factor("cosine", s, total))
        opt.step()
        sched.step()


def test_onecycle_shape() -> None:
    f = [lr_factor("onecycle", s, 100) for s in range(101)]
    peak = max(range(101), key=f.__getitem__)
    assert peak == 30 and f[peak] == pytest.approx(1.0)
    assert all(a < b for a, b in zip(f[:30], f[1:31]))
    assert all(a >= b for a, b in zip(f[30:], f[31:]))


def test_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown schedule 'step'"):
        lr_factor("step", 0, 10)
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        TrainConfig(epochs=1, checkpoints=(1,), optimizer="rmsprop")
    with pytest.raises(ValueError, match="unknown schedule 'linear'"):
        TrainConfig(epochs=1, checkpoints=(1,), schedule="linear")
    assert set(OPTIMIZERS) == {"sgd", "adam"}
