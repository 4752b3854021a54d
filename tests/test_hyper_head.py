"""Hyper generator head: fan-aware scales, the residual around theta_0, chunking."""

from __future__ import annotations

import math

import torch

from generators.hyper import ChunkedHead, fan_in_scale
from zoo.architectures import CNN, MLP, Transformer


def test_fan_in_scale_per_family() -> None:
    mlp = MLP(width=5, in_shape=(3,), num_outputs=2, depth=1)
    s = mlp.layout.unflatten(fan_in_scale(mlp.layout))
    torch.testing.assert_close(s["hidden.0.weight"], torch.full((5, 3), 1 / math.sqrt(3)))
    torch.testing.assert_close(s["hidden.0.bias"], torch.full((5,), 1 / math.sqrt(3)))
    torch.testing.assert_close(s["out.weight"], torch.full((2, 5), 1 / math.sqrt(5)))
    torch.testing.assert_close(s["out.bias"], torch.full((2,), 1 / math.sqrt(5)))
    cnn = CNN(width=4, in_shape=(1, 8, 8), num_outputs=3, depth=2)
    s = cnn.layout.unflatten(fan_in_scale(cnn.layout))
    torch.testing.assert_close(s["convs.1.weight"], torch.full((8, 4, 3, 3), 1 / math.sqrt(36)))
    torch.testing.assert_close(s["convs.1.bias"], torch.full((8,), 1 / math.sqrt(36)))
    tr = Transformer(width=8, vocab=7, seq_len=3, num_outputs=7, heads=2)
    s = tr.layout.unflatten(fan_in_scale(tr.layout))
    torch.testing.assert_close(s["blocks.0.ln1.weight"], torch.ones(8))  # norm gains: 1
    torch.testing.assert_close(s["blocks.0.fc2.bias"], torch.full((8,), 1 / math.sqrt(16)))
    torch.testing.assert_close(s["embed.weight"], torch.full((7, 8), 1 / math.sqrt(8)))


def _head(delta_init: float, dim: int = 300, chunk: int = 64) -> ChunkedHead:
    torch.manual_seed(0)
    theta0 = torch.randn(2, dim)
    scale = torch.rand(2, dim) + 0.5
    return ChunkedHead(theta0, scale, 16, 32, chunk, 8, delta_init)


def test_residual_starts_at_theta0() -> None:
    head = _head(0.0)
    assert head.num_chunks == math.ceil(300 / 64)
    cond, width = torch.randn(5, 16), torch.tensor([0, 1, 1, 0, 1])
    torch.testing.assert_close(head(cond, width), head.theta0[width], rtol=0, atol=0)


def test_delta_is_scaled_per_coordinate_by_the_fan_aware_scale() -> None:
    head = _head(1.0)
    cond, width = torch.randn(7, 16), torch.tensor([0, 1, 0, 1, 0, 1, 1])
    theta = head(cond, width)
    delta = head.delta(cond)
    assert delta.shape == (7, 300) and delta.abs().sum() > 0
    torch.testing.assert_close(theta, head.theta0[width] + head.scale[width] * delta)


def test_chunks_share_one_head() -> None:
    """Chunk k of the output is the shared head applied to (cond, chunk embedding k)."""
    head = _head(1.0)
    cond = torch.randn(3, 16)
    delta = head.delta(cond)
    k = 2
    h = head.cond_in(cond) + head.chunk_in(head.chunks[k])
    ref = head.out(torch.nn.functional.gelu(head.mid(torch.nn.functional.gelu(h))))
    torch.testing.assert_close(delta[:, k * 64 : (k + 1) * 64], ref)
