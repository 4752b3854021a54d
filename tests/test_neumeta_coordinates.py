"""NeuMeta's per-weight coordinates: exact, invertible, encoded reversibly, for every family."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from torch import nn

from generators.neumeta.coordinates import (
    LayoutCoordinates,
    decode_positions,
    encode,
    fourier,
)
from zoo.architectures import CNN, MLP, Architecture, Transformer
from zoo.permutation import PermutationSpec

ARCHS = [
    MLP(width=5, in_shape=(1, 8, 8), depth=2),
    MLP(width=128, in_shape=(64,), depth=2),
    CNN(width=3, in_shape=(1, 8, 8), depth=3),
    Transformer(width=8, heads=2, vocab=11, seq_len=3, num_outputs=11, layers=2),
]


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: f"{a.family}{a.width}")
def test_table_is_exact_and_invertible(arch: Architecture) -> None:
    coords = LayoutCoordinates(arch)
    table = coords.table
    assert table.shape == (arch.num_params, 7)
    assert torch.equal(coords.flat_index(table), torch.arange(arch.num_params))
    assert len(torch.unique(table, dim=0)) == arch.num_params  # no two weights alike
    # every row's indices against the tensor it names, re-derived from the module itself
    params = dict(arch.build().named_parameters())
    for layer, name in enumerate(coords.names):
        rows = table[table[:, 0] == layer]
        shape = params[name].shape
        assert int(rows[0, 3]) == len(coords.names)
        assert int(rows[0, 5]) == shape[0]
        assert int(rows[0, 4]) == (shape[1] if len(shape) > 1 else 1)
        flat = torch.arange(math.prod(shape)).reshape(shape)
        k = rows[:, 6] // shape[3] if len(shape) == 4 else None
        if len(shape) == 4:
            got = flat[rows[:, 2], rows[:, 1], k, rows[:, 6] % shape[3]]
        elif len(shape) == 2:
            got = flat[rows[:, 2], rows[:, 1]]
        else:
            got = flat[rows[:, 2]]
        assert torch.equal(got, torch.arange(math.prod(shape)))


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: f"{a.family}{a.width}")
def test_encoding_decodes_back_to_the_table(arch: Architecture) -> None:
    coords = LayoutCoordinates(arch)
    for freq in (1, 8):
        feats = encode(coords.table, freq)
        back = decode_positions(feats, coords.table[:, 0], len(coords.names), freq)
        assert torch.equal(back, coords.table)


def test_positions_are_relative_and_fourier_matches_formula() -> None:
    a, b = LayoutCoordinates(MLP(width=4)), LayoutCoordinates(MLP(width=8))
    # unit 1 of 4 and unit 3 of 8 sit at 3/8 and 7/16: relative places, (i + 1/2) / size
    fa, fb = encode(a.table, 3), encode(b.table, 3)
    row_a = torch.nonzero((a.table[:, 0] == 1) & (a.table[:, 2] == 1))[0, 0]
    row_b = torch.nonzero((b.table[:, 0] == 1) & (b.table[:, 2] == 3))[0, 0]
    u_a, u_b = 1.5 / 4, 3.5 / 8
    ref = [math.sin(math.pi * 2**k * u_a) for k in range(3)]
    assert torch.allclose(fa[row_a, 6:9], torch.tensor(ref), atol=1e-6)  # out axis, sin part
    ref_b = [math.cos(math.pi * 2**k * u_b) for k in range(3)]
    assert torch.allclose(fb[row_b, 9:12], torch.tensor(ref_b), atol=1e-6)
    assert torch.allclose(fourier(torch.tensor([0.25]), 1), torch.tensor([[2**-0.5, 2**-0.5]]))


def test_flat_index_refuses_foreign_rows() -> None:
    coords = LayoutCoordinates(MLP(width=4))
    bad = coords.table[:1].clone()
    bad[0, 2] = 99
    with pytest.raises(ValueError, match="do not fit"):
        coords.flat_index(bad)


@dataclass(frozen=True)
class Recurrent(Architecture):
    family: ClassVar[str] = "rnn"

    def build(self) -> nn.Module:
        return nn.RNN(2, self.width)

    def permutation_spec(self) -> PermutationSpec:
        return PermutationSpec({}, {})

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (2,)


def test_unsupported_family_is_refused() -> None:
    with pytest.raises(ValueError, match="neumeta has coordinates for the mlp, cnn, transformer"):
        LayoutCoordinates(Recurrent(width=3))


def test_large_kernels_are_refused() -> None:
    big = CNN(width=2)  # a CNN whose template module has a 5 x 5 convolution
    object.__setattr__(big, "_template", nn.Sequential(nn.Conv2d(1, 2, 5)))
    with pytest.raises(ValueError, match="kernels of at most 9 elements, 0.weight has 5 x 5"):
        LayoutCoordinates(big)
