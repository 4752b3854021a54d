"""Pair metrics: linear CKA, penultimate features, mode connectivity, Bezier curves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zoo import CNN, MLP, TrainConfig, Transformer
from zoo.landscape import (
    BezierConfig,
    bezier_point,
    connectivity,
    linear_cka,
    linear_point,
    mode_connectivity,
    penultimate_features,
    train_bezier,
)
from zoo.tasks import TaskData
from zoo.training import train_population


def reference_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al.'s Gram form: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), K = X X^T."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = h @ x @ x.T @ h, h @ y @ y.T @ h
    return float((k * l_).sum() / np.sqrt((k * k).sum() * (l_ * l_).sum()))


@pytest.mark.parametrize("n,d1,d2", [(50, 3, 3), (80, 10, 4), (30, 2, 16)])
def test_cka_matches_gram_reference(n: int, d1: int, d2: int) -> None:
    gen = torch.Generator().manual_seed(n)
    x = torch.randn(n, d1, generator=gen, dtype=torch.float64)
    y = x[:, :1] * torch.randn(1, d2, generator=gen, dtype=torch.float64)
    y = y + 0.5 * torch.randn(n, d2, generator=gen, dtype=torch.float64)
    assert linear_cka(x, y).item() == pytest.approx(reference_cka(x.numpy(), y.numpy()), rel=1e-5)


def test_cka_identity_invariances_and_independence() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(500, 8, generator=gen)
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=gen))  # orthogonal
    assert linear_cka(x, x).item() == pytest.approx(1.0, abs=1e-6)
    assert linear_cka(x, x @ q).item() == pytest.approx(1.0, abs=1e-6)
    assert linear_cka(x, 7.5 * x).item() == pytest.approx(1.0, abs=1e-6)
    y = torch.randn(500, 8, generator=gen)
    assert linear_cka(x, y @ q * 3).item() == pytest.approx(linear_cka(x, y).item(), abs=1e-6)
    assert linear_cka(x, y).item() < 0.2  # independent: about d / n
    assert linear_cka(x + 4.0, x).item() == pytest.approx(1.0, abs=1e-6)  # centring


def test_cka_batched_over_leading_axes_and_bad_shapes() -> None:
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(3, 40, 5, generator=gen), torch.randn(3, 40, 6, generator=gen)
    batched = linear_cka(x, y)
    assert batched.shape == (3,)
    for i in range(3):
        assert batched[i].item() == pytest.approx(linear_cka(x[i], y[i]).item(), abs=1e-6)
    assert torch.isnan(linear_cka(x[0], torch.ones(40, 2)))  # constant: undefined
    with pytest.raises(ValueError, match="share leading and input axes"):
        linear_cka(x, y[:, :30])


@pytest.mark.parametrize(
    "arch,head",
    [
        (MLP(width=6, in_shape=(1, 8, 8)), "out"),
        (CNN(width=2, in_shape=(1, 8, 8), depth=2), "head"),
        (Transformer(width=4, heads=2, vocab=12, num_outputs=11, mlp_ratio=1), "head"),
    ],
    ids=["mlp", "cnn", "transformer"],
)
def test_penultimate_features_feed_the_head(arch, head: str) -> None:
    gen = torch.Generator().manual_seed(0)
    x = (
        torch.randint(0, 12, (7, 3), generator=gen)
        if isinstance(arch, Transformer)
        else torch.randn(7, 1, 8, 8, generator=gen)
    )
    w = arch.init_weights([0, 1])
    f = penultimate_features(arch, w, x)  # (2, 7, F)
    p = arch.layout.unflatten(w)
    logits = f @ p[f"{head}.weight"].transpose(1, 2) + p[f"{head}.bias"][:, None]
    assert torch.allclose(logits, arch.forward(w, x), atol=1e-5)
    assert torch.equal(arch.forward(w, x), arch.forward(w, x))  # the architecture is untouched


def test_mode_connectivity_hand_computed() -> None:
    v = torch.tensor(
        [
            [1.0, 1.5, 3.0, 2.0, 1.0],  # barrier: mean ends 1, worst 3 -> mc = -2
            [2.0, 1.0, 0.5, 1.5, 1.0],  # better inside: mean 1.5, furthest 0.5 -> mc = +1
            [1.0, 1.0, 1.0, 1.0, 1.0],  # flat: 0
            [0.0, 0.5, 1.0, 1.5, 2.0],  # straight line: mean 1, furthest interior 0.5/1.5 -> +0.5
            [1.0, 0.8, 1.6, 1.1, 1.0],  # |dev| 0.2 vs 0.6: the barrier wins -> -0.6
        ]
    )
    assert torch.allclose(mode_connectivity(v), torch.tensor([-2.0, 1.0, 0.0, 0.5, -0.6]))
    assert mode_connectivity(v[None]).shape == (1, 5)  # leading axes
    with pytest.raises(ValueError, match=">= 3 points"):
        mode_connectivity(v[:, :2])


def test_paths_have_the_right_ends_and_midpoints() -> None:
    gen = torch.Generator().manual_seed(0)
    a, b, th = (torch.randn(3, 10, generator=gen) for _ in range(3))
    assert torch.equal(linear_point(a, b, 0.0), a) and torch.equal(linear_point(a, b, 1.0), b)
    assert torch.equal(bezier_point(a, th, b, 0.0), a) and torch.equal(
        bezier_point(a, th, b, 1.0), b
    )
    assert torch.allclose(bezier_point(a, th, b, 0.5), 0.25 * a + 0.5 * th + 0.25 * b)
    t = torch.tensor([0.0, 0.5, 1.0])  # one t per pair
    pts = bezier_point(a, th, b, t)
    assert torch.equal(pts[0], a[0]) and torch.equal(pts[2], b[2])


@pytest.fixture(scope="module")
def trained_pairs(digits: TaskData) -> tuple[MLP, torch.Tensor]:
    arch = MLP(width=12, in_shape=(1, 8, 8), depth=1)
    res = train_population(
        arch, digits, TrainConfig(epochs=3, checkpoints=(3,)), np.arange(4), np.full(4, 0.05),
        np.zeros(4), np.full(4, 64),
    )  # fmt: skip
    return arch, res.weights[:, -1]


def test_bezier_training_keeps_ends_and_lowers_the_curve(trained_pairs, digits: TaskData) -> None:
    arch, w = trained_pairs
    a, b = w[0::2].clone(), w[1::2].clone()
    a0, b0 = a.clone(), b.clone()
    cfg = BezierConfig(epochs=2, batch_size=128, learning_rate=2e-2)
    theta = train_bezier(arch, digits, a, b, cfg)
    assert torch.equal(a, a0) and torch.equal(b, b0)  # inputs untouched
    assert not torch.equal(theta, (a + b) / 2)  # the middle moved
    assert torch.equal(bezier_point(a, theta, b, 0.0), a0)
    assert torch.equal(bezier_point(a, theta, b, 1.0), b0)
    c = connectivity(arch, digits, a, b, cfg, points=5)
    assert c.linear_loss.shape == c.bezier_loss.shape == (2, 5)
    assert torch.allclose(c.linear_loss[:, 0], c.bezier_loss[:, 0])  # same ends
    assert torch.allclose(c.linear_loss[:, -1], c.bezier_loss[:, -1])
    assert (c.bezier_loss[:, 2] < c.linear_loss[:, 2]).all()  # training lowered the middle
    assert (c.mc_bezier > c.mc_linear).all()
    assert torch.allclose(c.l2, (a - b).norm(dim=1))
    assert torch.allclose(c.mc_linear, mode_connectivity(c.linear_loss))
    assert ((c.linear_error >= 0) & (c.linear_error <= 1)).all()


def test_batched_bezier_equals_one_curve_at_a_time(trained_pairs, digits: TaskData) -> None:
    arch, w = trained_pairs
    cfg = BezierConfig(epochs=1, batch_size=256)
    both = train_bezier(arch, digits, w[0::2], w[1::2], cfg)
    for q in range(2):
        alone = train_bezier(arch, digits, w[2 * q : 2 * q + 1], w[2 * q + 1 : 2 * q + 2], cfg, [q])
        assert torch.allclose(alone[0], both[q], atol=1e-5)
    with pytest.raises(ValueError, match="1 curve seeds for 2 curves"):
        train_bezier(arch, digits, w[0::2], w[1::2], cfg, [0])
