"""NeuMeta smoothing order: lower total variation, same function; the path heuristic."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from canonicalize import Permutation, smooth, total_variation
from canonicalize.tsp import path_length, shortest_path_order, two_opt_path
from zoo import CNN, MLP, Transformer
from zoo.architectures import Architecture
from zoo.permutation import GroupKind

ARCHS = [
    MLP(width=32, depth=2, in_shape=(1, 8, 8)),
    CNN(width=6, depth=2),
    Transformer(width=16, heads=4, vocab=11, num_outputs=11),
]


def naive_tv(arch: Architecture, w: torch.Tensor) -> float:
    """Total variation along UNITS-permuted axes, with explicit loops over neighbours."""
    spec = arch.permutation_spec()
    params = arch.layout.unflatten(w.double())
    tv = 0.0
    for pname, per_axis in spec.axes.items():
        for ax, g in enumerate(per_axis):
            if g is not None and spec.groups[g].kind == GroupKind.UNITS:
                t = params[pname].movedim(ax, 0)
                tv += sum(float((t[i + 1] - t[i]).abs().sum()) for i in range(len(t) - 1))
    return tv


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: a.family)
def test_smoothing_lowers_total_variation_and_keeps_the_function(arch: Architecture) -> None:
    w = arch.init_weights([2])[0]
    perm = smooth(arch, w)
    ws = perm.apply(w)
    assert total_variation(arch, ws) < 0.95 * total_variation(arch, w)
    g = torch.Generator().manual_seed(0)
    x = (
        torch.randint(0, arch.vocab, (6, arch.seq_len), generator=g)
        if arch.family == "transformer"
        else torch.randn(6, *arch.input_shape, generator=g)
    )
    assert (arch.forward(w[None], x) - arch.forward(ws[None], x)).abs().max() <= 1e-5
    spec = arch.permutation_spec()
    for name, p in perm.perms.items():  # only hidden units / channels move
        if spec.groups[name].kind != GroupKind.UNITS:
            assert torch.equal(p, torch.arange(len(p)))


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: a.family)
def test_total_variation_matches_the_definition(arch: Architecture) -> None:
    w = arch.init_weights([0, 1])
    tv = total_variation(arch, w)
    assert tv.shape == (2,)
    for i in range(2):
        assert tv[i].item() == pytest.approx(naive_tv(arch, w[i]), rel=1e-5)
        assert total_variation(arch, w[i]).item() == pytest.approx(tv[i].item(), rel=1e-6)


def test_total_variation_is_the_path_length_of_the_units() -> None:
    """TV of a group = sum of L1 distances between consecutive units: what the path minimises."""
    from canonicalize.smoothing import unit_features

    arch = MLP(width=12, depth=1, in_shape=(5,))
    w = arch.init_weights([0])[0]
    x = unit_features(arch, w, "h0")
    d = torch.cdist(x, x, p=1).numpy()
    assert total_variation(arch, w).item() == pytest.approx(path_length(d, np.arange(12)), rel=1e-5)
    p = Permutation(arch, {"h0": torch.as_tensor(shortest_path_order(d))})
    order = p.perms["h0"].numpy()
    assert total_variation(arch, p.apply(w)).item() == pytest.approx(
        path_length(d, order), rel=1e-5
    )


def test_points_on_a_line_come_out_sorted() -> None:
    rng = np.random.default_rng(0)
    pts = rng.permutation(np.cumsum(rng.random(60) + 0.1))
    d = np.abs(pts[:, None] - pts[None, :])
    order = shortest_path_order(d)
    assert np.all(np.diff(pts[order]) > 0) or np.all(np.diff(pts[order]) < 0)


@pytest.mark.parametrize("n", [3, 5, 7, 40])
def test_path_is_a_two_opt_local_optimum_never_worse_than_identity(n: int) -> None:
    rng = np.random.default_rng(n)
    pts = rng.random((n, 3))
    d = np.abs(pts[:, None] - pts[None]).sum(-1)
    order = shortest_path_order(d)
    assert sorted(order.tolist()) == list(range(n))
    length = path_length(d, order)
    assert length <= path_length(d, np.arange(n)) + 1e-12
    for i, j in itertools.combinations(range(n), 2):  # no segment reversal shortens it
        cand = np.concatenate([order[:i], order[i : j + 1][::-1], order[j + 1 :]])
        assert path_length(d, cand) >= length - 1e-9
    assert np.array_equal(two_opt_path(d, order), order) or path_length(
        d, two_opt_path(d, order)
    ) == pytest.approx(length)
    if n <= 7:
        best = min(path_length(d, np.array(p)) for p in itertools.permutations(range(n)))
        assert length <= 1.1 * best


def test_smoothing_refuses_bad_weights() -> None:
    arch = ARCHS[0]
    with pytest.raises(ValueError, match="entries"):
        smooth(arch, torch.zeros(arch.num_params + 1))
