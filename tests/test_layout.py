"""Layout: flatten / unflatten round trips over a grid of shapes, and clear errors."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.layout import Layout, ParamSpec

SHAPES = [
    [(3,)],
    [(4, 5), (5,)],
    [(2, 3, 4), (1,), (7, 1)],
    [(8, 1, 3, 3), (8,), (10, 8), (10,)],
    [(1, 1, 1, 1), (6, 2)],
]


def _layout(shapes: list[tuple[int, ...]]) -> Layout:
    return Layout(tuple(ParamSpec(f"p{i}.weight", s) for i, s in enumerate(shapes)))


@pytest.mark.parametrize("shapes", SHAPES)
@pytest.mark.parametrize("lead", [(), (3,), (2, 4)])
def test_round_trip(shapes: list[tuple[int, ...]], lead: tuple[int, ...]) -> None:
    layout = _layout(shapes)
    n = sum(math.prod(s) for s in shapes)
    assert layout.num_params == n
    flat = torch.randn(*lead, n)
    parts = layout.unflatten(flat)
    assert list(parts) == layout.names
    for spec in layout.params:
        assert parts[spec.name].shape == (*lead, *spec.shape)
    assert torch.equal(layout.flatten(parts), flat)
    # the other direction: tensors -> flat -> the same tensors
    tensors = {p.name: torch.randn(*lead, *p.shape) for p in layout.params}
    back = layout.unflatten(layout.flatten(tensors))
    assert all(torch.equal(back[k], tensors[k]) for k in tensors)


@pytest.mark.parametrize("shapes", SHAPES)
def test_offsets_follow_order(shapes: list[tuple[int, ...]]) -> None:
    layout = _layout(shapes)
    flat = torch.arange(float(layout.num_params))
    pos = 0
    for spec in layout.params:
        a, b = layout.offsets[spec.name]
        assert (a, b) == (pos, pos + spec.size)
        assert torch.equal(layout.unflatten(flat)[spec.name].flatten(), flat[a:b])
        pos = b


def test_unflatten_returns_views() -> None:
    layout = _layout(SHAPES[1])
    flat = torch.zeros(2, layout.num_params)
    layout.unflatten(flat)["p0.weight"].fill_(1.0)
    assert flat[:, :20].eq(1).all() and flat[:, 20:].eq(0).all()


def test_dict_round_trip_and_from_module() -> None:
    layout = _layout(SHAPES[3])
    assert Layout.from_dict(layout.to_dict()) == layout
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    lm = Layout.from_module(m)
    assert lm.names == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert [p.shape for p in lm.params] == [(4, 3), (4,), (2, 4), (2,)]


def test_wrong_flat_size() -> None:
    layout = _layout(SHAPES[1])
    with pytest.raises(ValueError, match="24 entries.*expects 25"):
        layout.unflatten(torch.zeros(3, 24))


def test_missing_name() -> None:
    layout = _layout(SHAPES[1])
    with pytest.raises(ValueError, match=r"missing parameters.*p1\.weight"):
        layout.flatten({"p0.weight": torch.zeros(4, 5)})


def test_wrong_shape() -> None:
    layout = _layout(SHAPES[1])
    with pytest.raises(ValueError, match=r"p0\.weight.*does not end in \(4, 5\)"):
        layout.flatten({"p0.weight": torch.zeros(5, 4), "p1.weight": torch.zeros(5)})
