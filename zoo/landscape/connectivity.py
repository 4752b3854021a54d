"""Mode connectivity between seed pairs: linear paths and trained quadratic Bezier curves.

For a pair of models (a, b) and a path phi(t) with phi(0) = a, phi(1) = b, the train loss (or
error) v(t) is measured at a few t in [0, 1] and summarised as (Yang et al. 2021)

    mc = (v(0) + v(1)) / 2 - v(t*),   t* = argmax_{0 < t < 1} |v(t) - (v(0) + v(1)) / 2|.

mc < 0: a barrier between the two (poorly connected); mc > 0: the path is better than its ends
(under-trained ends); mc ~ 0: well connected. t* is taken over interior points only: at the
ends |v - mean| is just half the endpoints' gap, which says nothing about the path.

The Bezier curve ``(1-t)^2 a + 2 t (1-t) theta + t^2 b`` (Garipov et al. 2018) keeps its ends
fixed and trains its middle point theta to minimise the loss along the curve (t ~ U(0, 1) per
pair and step). Q pairs train as one batched computation over a ``(Q, N)`` matrix of thetas.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from zoo.architectures import Architecture
from zoo.optim import Adam, lr_factor
from zoo.tasks import TaskData
from zoo.training import evaluate, task_loss

CURVE_POINTS = 9  # t in linspace(0, 1, CURVE_POINTS), ends included


@dataclass(frozen=True)
class BezierConfig:
    """Training of the curves' middle points: Adam on the expected loss along the curve, with
    the learning rate following ``schedule`` (see :func:`zoo.optim.lr_factor`)."""

    epochs: int = 6
    batch_size: int = 64
    learning_rate: float = 2e-2
    schedule: str = "cosine"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError(f"bad Bezier training settings: {self}")


@dataclass
class Connectivity:
    """Connectivity of Q model pairs along two paths, measured on the training split.

    ts: (T,) path positions; linear_loss, linear_error, bezier_loss, bezier_error: (Q, T)
    (error = 1 - accuracy, NaN for regression); mc_linear, mc_bezier: (Q,) mode connectivity of
    the loss; mc_linear_error, mc_bezier_error: (Q,) of the error; l2: (Q,) ||a - b||.
    """

    ts: Tensor
    linear_loss: Tensor
    linear_error: Tensor
    bezier_loss: Tensor
    bezier_error: Tensor
    mc_linear: Tensor
    mc_bezier: Tensor
    mc_linear_error: Tensor
    mc_bezier_error: Tensor
    l2: Tensor


def mode_connectivity(values: Tensor) -> Tensor:
    """values (..., T) along a path, ends first and last (T >= 3) -> mc (...). See module doc."""
    if values.shape[-1] < 3:
        raise ValueError(f"mode connectivity needs >= 3 points on the path, got {values.shape[-1]}")
    mean_ends = (values[..., 0] + values[..., -1]) / 2  # (...)
    inner = values[..., 1:-1]
    star = (inner - mean_ends.unsqueeze(-1)).abs().argmax(dim=-1, keepdim=True)
    return mean_ends - inner.gather(-1, star).squeeze(-1)


def linear_point(w_a: Tensor, w_b: Tensor, t: Tensor | float) -> Tensor:
    """(Q, N) ends, t scalar or (Q,) -> (Q, N) points (1 - t) a + t b."""
    t = torch.as_tensor(t, dtype=w_a.dtype, device=w_a.device).reshape(-1, 1)
    return (1 - t) * w_a + t * w_b


def bezier_point(w_a: Tensor, theta: Tensor, w_b: Tensor, t: Tensor | float) -> Tensor:
    """(Q, N) ends and middles, t scalar or (Q,) -> (Q, N) points on the quadratic Bezier curve."""
    t = torch.as_tensor(t, dtype=w_a.dtype, device=w_a.device).reshape(-1, 1)
    return (1 - t) ** 2 * w_a + 2 * t * (1 - t) * theta + t**2 * w_b


def train_bezier(
    arch: Architecture,
    task: TaskData,
    w_a: Tensor,
    w_b: Tensor,
    config: BezierConfig = BezierConfig(),
    curve_seeds: list[int] | None = None,
) -> Tensor:
    """Middle points (Q, N) of Bezier curves from w_a to w_b (Q, N), trained as one batch.

    Starts from the linear midpoint (the curve is then the straight line). The ends are
    constants: only theta receives gradients, so the curve keeps its ends exactly. All curves
    see the same batches (from ``config.seed``); curve q draws its t from its own generator,
    seeded by ``curve_seeds[q]`` (default q), so a curve trains the same alone or in a batch.
    """
    w_a, w_b = w_a.detach(), w_b.detach()
    theta = ((w_a + w_b) / 2).clone()  # (Q, N), updated in place
    q = len(theta)
    zeros = torch.zeros(q)
    opt = Adam(theta, torch.full((q,), config.learning_rate), zeros)
    active = torch.ones(q, dtype=torch.bool)
    gen = torch.Generator().manual_seed(config.seed)
    seeds = list(range(q)) if curve_seeds is None else [int(c) for c in curve_seeds]
    if len(seeds) != q:
        raise ValueError(f"{len(seeds)} curve seeds for {q} curves")
    t_gens = [torch.Generator().manual_seed(config.seed + 7919 * (c + 1)) for c in seeds]
    x, y = task.x_train, task.y_train
    total = config.epochs * -(-len(x) // config.batch_size)
    step = 0
    for _ in range(config.epochs):
        order = torch.randperm(len(x), generator=gen)
        for a in range(0, len(x), config.batch_size):
            idx = order[a : a + config.batch_size]
            t = torch.cat([torch.rand(1, generator=g) for g in t_gens]).to(theta)  # (Q,)
            th = theta.detach().requires_grad_(True)
            point = bezier_point(w_a, th, w_b, t)  # (Q, N)
            losses = task_loss(task, arch.forward(point, x[idx]), y[idx])  # (Q,)
            ok = torch.isfinite(losses.detach())
            active &= ok
            (g,) = torch.autograd.grad(torch.where(active, losses, 0.0).sum(), th)
            opt.step(torch.nan_to_num(g), lr_factor(config.schedule, step, total), active)
            step += 1
    return theta


def path_values(arch: Architecture, task: TaskData, points: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Train loss and error at T points, each (Q, N) -> loss (Q, T), error (Q, T)."""
    losses, errors = [], []
    for w in points:
        loss, acc = evaluate(arch, task, w, "train")
        losses.append(loss)
        errors.append(1 - acc)
    return torch.stack(losses, dim=1), torch.stack(errors, dim=1)


def connectivity(
    arch: Architecture,
    task: TaskData,
    w_a: Tensor,
    w_b: Tensor,
    config: BezierConfig = BezierConfig(),
    points: int = CURVE_POINTS,
) -> Connectivity:
    """Linear and Bezier mode connectivity plus L2 distance of Q pairs: w_a, w_b (Q, N)."""
    if w_a.shape != w_b.shape or w_a.dim() != 2:
        raise ValueError(
            f"pair ends must both be (Q, N), got {tuple(w_a.shape)}, {tuple(w_b.shape)}"
        )
    ts = torch.linspace(0, 1, points)
    lin_loss, lin_err = path_values(arch, task, [linear_point(w_a, w_b, t) for t in ts])
    theta = train_bezier(arch, task, w_a, w_b, config)
    bez_loss, bez_err = path_values(arch, task, [bezier_point(w_a, theta, w_b, t) for t in ts])
    return Connectivity(
        ts=ts,
        linear_loss=lin_loss,
        linear_error=lin_err,
        bezier_loss=bez_loss,
        bezier_error=bez_err,
        mc_linear=mode_connectivity(lin_loss),
        mc_bezier=mode_connectivity(bez_loss),
        mc_linear_error=mode_connectivity(lin_err),
        mc_bezier_error=mode_connectivity(bez_err),
        l2=(w_a - w_b).norm(dim=1),
    )
