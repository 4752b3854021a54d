"""Architectures: functional population forward == standalone modules, symmetries, init, errors."""

from __future__ import annotations

import pytest
import torch

from zoo.architectures import CNN, MLP, Architecture, Transformer, architecture_from_dict
from zoo.permutation import apply_permutation

P, B = 3, 5

ARCHS: dict[str, Architecture] = {
    "mlp-vector": MLP(width=16, in_shape=(40,), depth=3),
    "mlp-image": MLP(width=8, in_shape=(1, 8, 8), depth=1),
    "cnn-8": CNN(width=4, in_shape=(1, 8, 8)),
    "cnn-28": CNN(width=3, in_shape=(1, 28, 28), depth=2),
    "cnn-32": CNN(width=3, in_shape=(3, 32, 32), depth=3),
    "transformer": Transformer(width=8, heads=2, layers=2, vocab=12, seq_len=3, num_outputs=11),
}


def _inputs(arch: Architecture, *lead: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if arch.input_dtype == torch.long:
        return torch.randint(0, arch.vocab, (*lead, *arch.input_shape), generator=g)
    return torch.randn(*lead, *arch.input_shape, generator=g)


def _outputs(arch: Architecture) -> int:
    return arch.num_outputs


@pytest.fixture(params=list(ARCHS), scope="module")
def arch(request: pytest.FixtureRequest) -> Architecture:
    return ARCHS[request.param]


def test_module_equals_functional_forward_shared_inputs(arch: Architecture) -> None:
    w = arch.init_weights([0, 1, 2])  # (P, N)
    x = _inputs(arch, B)
    out = arch.forward(w, x)
    assert out.shape == (P, B, _outputs(arch))
    for i in range(P):
        with torch.no_grad():
            ref = arch.module(w[i])(x)
        torch.testing.assert_close(out[i], ref, rtol=0, atol=1e-6)


def test_module_equals_functional_forward_per_model_inputs(arch: Architecture) -> None:
    w = arch.init_weights([3, 4, 5])
    x = _inputs(arch, P, B, seed=1)
    out = arch.forward(w, x)
    assert out.shape == (P, B, _outputs(arch))
    for i in range(P):
        with torch.no_grad():
            ref = arch.module(w[i])(x[i])
        torch.testing.assert_close(out[i], ref, rtol=0, atol=1e-6)


def test_forward_params_equals_forward(arch: Architecture) -> None:
    w = arch.init_weights([7, 8])
    x = _inputs(arch, B)
    assert torch.equal(arch.forward_params(arch.layout.unflatten(w), x), arch.forward(w, x))


def test_module_holds_row_weights(arch: Architecture) -> None:
    w = arch.init_weights([11])[0]
    m = arch.module(w)
    assert not m.training
    assert torch.equal(arch.layout.flatten(dict(m.named_parameters())), w)


def test_layout_names_follow_module(arch: Architecture) -> None:
    names = [n for n, _ in arch.build().named_parameters()]
    assert arch.layout.names == names
    assert arch.num_params == sum(p.numel() for p in arch.build().parameters())


def test_permutation_spec_fits_layout(arch: Architecture) -> None:
    spec = arch.permutation_spec()
    spec.check(arch.layout)
    # every permuted axis of every group is listed, and every group acts somewhere
    assert all(spec.group_axes[g] for g in spec.groups)


def test_random_permutation_keeps_function(arch: Architecture) -> None:
    spec = arch.permutation_spec()
    w = arch.init_weights([0, 1])
    x = _inputs(arch, 16, seed=2)
    perms = spec.random(torch.Generator().manual_seed(0))
    wp = apply_permutation(arch.layout, spec, perms, w)
    assert not torch.equal(wp, w)  # the weights moved ...
    torch.testing.assert_close(arch.forward(wp, x), arch.forward(w, x), rtol=0, atol=1e-5)
    # ... and they are a reordering of the same values
    assert torch.equal(wp.sort(dim=1).values, w.sort(dim=1).values)


def test_random_permutation_is_seeded(arch: Architecture) -> None:
    spec = arch.permutation_spec()
    a = spec.random(torch.Generator().manual_seed(3))
    b = spec.random(torch.Generator().manual_seed(3))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for g, perm in a.items():
        assert torch.equal(perm.sort().values, torch.arange(spec.groups[g].size))


def test_cross_head_permutation_changes_transformer() -> None:
    """Guard for the head structure: swapping q/k dims across heads is not a symmetry."""
    arch = ARCHS["transformer"]
    spec = arch.permutation_spec()
    w = arch.init_weights([0])
    x = _inputs(arch, 16)
    d, hd = arch.width, arch.width // arch.heads
    swap = torch.arange(d)
    swap[[0, hd]] = swap[[hd, 0]]  # dim 0 of head 0 <-> dim 0 of head 1, qk only
    wp = apply_permutation(arch.layout, spec, {"b0.qk": swap}, w)
    assert (arch.forward(wp, x) - arch.forward(w, x)).abs().max() > 1e-4


@pytest.mark.parametrize("seed", [0, 123])
def test_init_weights_reproducible_and_equal_to_build(arch: Architecture, seed: int) -> None:
    a = arch.init_weights([seed])
    b = arch.init_weights(torch.tensor([seed]))
    assert a.shape == (1, arch.num_params) and a.dtype == torch.float32
    assert torch.equal(a, b)
    torch.manual_seed(seed)
    ref = arch.layout.flatten(dict(arch.build().named_parameters())).detach()
    assert torch.equal(a[0], ref)


def test_init_weights_rows_differ_and_leave_global_rng(arch: Architecture) -> None:
    torch.manual_seed(99)
    before = torch.rand(3)
    torch.manual_seed(99)
    w = arch.init_weights([0, 1, 0])
    assert torch.equal(torch.rand(3), before)  # global RNG untouched
    assert torch.equal(w[0], w[2]) and not torch.equal(w[0], w[1])


def test_dict_round_trip(arch: Architecture) -> None:
    d = arch.to_dict()
    assert d["family"] == arch.family
    assert architecture_from_dict(d) == arch
    assert architecture_from_dict(d).layout == arch.layout


def test_with_width_changes_layout() -> None:
    a = MLP(width=8)
    b = a.with_width(16)
    assert b.width == 16 and b.depth == a.depth
    assert b.layout.by_name["hidden.0.weight"].shape == (16, 64)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: MLP(width=0), "mlp width and depth must be positive"),
        (lambda: MLP(width=-4), "mlp width and depth must be positive"),
        (lambda: MLP(width=8, depth=0), "mlp width and depth must be positive"),
        (lambda: CNN(width=0), "cnn width and depth must be positive"),
        (lambda: CNN(width=4, in_shape=(8, 8)), r"cnn needs \(channels, height, width\)"),
        (lambda: Transformer(width=0), "transformer width, layers, heads must be positive"),
        (lambda: Transformer(width=10, heads=4), "width 10 is not divisible by heads 4"),
        (
            lambda: architecture_from_dict({"family": "rnn", "width": 4}),
            "unknown architecture 'rnn'",
        ),
        (lambda: architecture_from_dict({"family": "mlp", "width": 4, "depthh": 2}), "bad mlp"),
    ],
)
def test_invalid_configs(make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("name", ["mlp-vector", "mlp-image"])
@pytest.mark.parametrize("shared", [True, False], ids=["shared inputs", "per-model inputs"])
def test_mlp_batched_matmul_forward_equals_generic_path(name: str, shared: bool) -> None:
    """The MLP's explicit baddbmm forward computes the generic vmap(functional_call) function,
    with the same gradients and Hessian-vector products (double backward runs through it), and
    hands the optimizer contiguous weight gradients."""
    arch = ARCHS[name]
    w = arch.init_weights(list(range(P))).requires_grad_(True)
    x = _inputs(arch, B) if shared else _inputs(arch, P, B)
    results = []
    for forward in (arch.forward_params, lambda p, xb: Architecture.forward_params(arch, p, xb)):
        params = arch.layout.unflatten(w)
        out = forward(params, x)
        grads = torch.autograd.grad(out.pow(2).sum(), list(params.values()), create_graph=True)
        hvp = torch.autograd.grad(sum(g.sum() for g in grads), list(params.values()))
        results.append((out, grads, hvp))
    (out, grads, hvp), (ref_out, ref_grads, ref_hvp) = results
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-6)
    for g, rg, h, rh in zip(grads, ref_grads, hvp, ref_hvp):
        torch.testing.assert_close(g, rg, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(h, rh, rtol=1e-4, atol=1e-5)
        assert g.is_contiguous()
