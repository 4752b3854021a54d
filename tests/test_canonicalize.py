"""Weight matching and TransFusion: exact invariance, self-recovery, fixed points, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from canonicalize import Permutation, transfusion, weight_matching
from canonicalize.descent import coordinate_descent
from canonicalize.solvers import FreeAssignment, ScipyAssignment, max_assignment
from canonicalize.weight_matching import free_solvers
from zoo import CNN, MLP, Transformer
from zoo.architectures import Architecture
from zoo.permutation import GroupKind

ARCHS = {
    "mlp": MLP(width=24, depth=3, in_shape=(1, 8, 8)),
    "cnn": CNN(width=4, depth=3),
    "transformer": Transformer(width=16, heads=4, layers=2, vocab=11, num_outputs=11),
}


def inputs(arch: Architecture, n: int = 7) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    if arch.family == "transformer":
        return torch.randint(0, arch.vocab, (n, arch.seq_len), generator=g)
    return torch.randn(n, *arch.input_shape, generator=g)


def two_models(arch: Architecture) -> tuple[torch.Tensor, torch.Tensor]:
    w = arch.init_weights([3, 4])
    return w[0], w[1]


@pytest.mark.parametrize("family", list(ARCHS))
@pytest.mark.parametrize("method", ["weight_matching", "transfusion", "wm_residual"])
def test_permuted_model_computes_the_same_function(family: str, method: str) -> None:
    arch = ARCHS[family]
    w_a, w_b = two_models(arch)
    if method == "weight_matching":
        perm = weight_matching(arch, w_a, w_b, seed=0)
    elif method == "transfusion":
        perm = transfusion(arch, w_a, w_b, seed=0)
    else:
        perm = weight_matching(arch, w_a, w_b, seed=0, residual=True)
    assert not perm.is_identity()
    x = inputs(arch)
    out_b = arch.forward(w_b[None], x)
    out_p = arch.forward(perm.apply(w_b)[None], x)
    assert (out_b - out_p).abs().max() <= 1e-5


def random_symmetry(arch: Architecture, keep: set[GroupKind], seed: int = 5) -> dict:
    """spec.random, with every group whose kind is not in ``keep`` set to identity."""
    spec = arch.permutation_spec()
    perms = spec.random(torch.Generator().manual_seed(seed))
    return {g: p if spec.groups[g].kind in keep else torch.arange(len(p)) for g, p in perms.items()}


UNITS = {GroupKind.UNITS}
ATTN = {GroupKind.UNITS, GroupKind.ATTENTION_QK, GroupKind.ATTENTION_VO}
ALL = {*ATTN, GroupKind.RESIDUAL}
CASES = [
    ("mlp", weight_matching, {}, UNITS),
    ("cnn", weight_matching, {}, UNITS),
    ("mlp", transfusion, {}, UNITS),
    ("transformer", weight_matching, {}, UNITS),
    ("transformer", weight_matching, {"residual": True}, {*UNITS, GroupKind.RESIDUAL}),
    ("transformer", transfusion, {}, ATTN),
    ("transformer", transfusion, {"residual": True}, ALL),
]


@pytest.mark.parametrize(("family", "fn", "kwargs", "kinds"), CASES)
def test_matching_a_permuted_copy_recovers_it(family, fn, kwargs, kinds) -> None:
    arch = ARCHS[family]
    w = arch.init_weights([7])[0]
    w_perm = Permutation(arch, random_symmetry(arch, kinds)).apply(w)
    assert (w_perm - w).norm() > 1
    perm = fn(arch, w, w_perm, seed=0, **kwargs)
    assert (perm.apply(w_perm) - w).abs().max() == 0


def test_plain_weight_matching_leaves_attention_and_residual_alone() -> None:
    arch = ARCHS["transformer"]
    perm = weight_matching(arch, *two_models(arch))
    spec = arch.permutation_spec()
    for g, p in perm.perms.items():
        moved = not torch.equal(p, torch.arange(len(p)))
        assert moved == (spec.groups[g].kind == GroupKind.UNITS), g
    perm_r = weight_matching(arch, *two_models(arch), residual=True)
    assert not torch.equal(perm_r.perms["residual"], torch.arange(arch.width))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_transfusion_never_mixes_dims_across_heads(seed: int) -> None:
    arch = Transformer(width=24, heads=4, layers=2, vocab=11, num_outputs=11)
    w_a, w_b = arch.init_weights([10 + seed, 20 + seed])
    perm = transfusion(arch, w_a, w_b, seed=seed, residual=seed == 2)
    spec = arch.permutation_spec()
    hd = arch.width // arch.heads
    orders = {}
    for g in spec.groups.values():
        if g.kind not in (GroupKind.ATTENTION_QK, GroupKind.ATTENTION_VO):
            continue
        src_heads = (perm.perms[g.name] // hd).reshape(arch.heads, hd)  # old head of each dim
        assert (src_heads == src_heads[:, :1]).all(), "a new head takes dims of two old heads"
        order = src_heads[:, 0]
        assert sorted(order.tolist()) == list(range(arch.heads))
        orders[g.name] = order
    for g in spec.groups.values():
        if g.partner:
            assert torch.equal(orders[g.name], orders[g.partner])


def naive_cost(arch: Architecture, w_a, w_b, perms: dict, group: str) -> np.ndarray:
    """The weight-matching similarity of one group, straight from the definition."""
    spec = arch.permutation_spec()
    pa = arch.layout.unflatten(w_a.double())
    pb = arch.layout.unflatten(
        Permutation(arch, {g: p for g, p in perms.items() if g != group}).apply(w_b).double()
    )
    n = spec.groups[group].size
    c = np.zeros((n, n))
    for pname, axis in spec.group_axes[group]:
        a = pa[pname].movedim(axis, 0).reshape(n, -1).numpy()
        b = pb[pname].movedim(axis, 0).reshape(n, -1).numpy()
        for i in range(n):
            for j in range(n):
                c[i, j] += float(np.dot(a[i], b[j]))
    return c


@pytest.mark.parametrize(
    "arch",
    [MLP(width=w, depth=d, in_shape=(5,)) for w, d in [(6, 1), (9, 2), (16, 3)]]
    + [CNN(width=3, depth=2), Transformer(width=8, heads=2, vocab=7, num_outputs=7)],
    ids=str,
)
def test_result_is_a_coordinate_wise_optimum(arch: Architecture) -> None:
    """No single group can be improved: the stopping rule of coordinate descent, re-checked
    with similarity matrices computed from the definition."""
    w_a, w_b = two_models(arch)
    perm = weight_matching(arch, w_a, w_b, seed=3, residual=True)
    spec = arch.permutation_spec()
    for g in spec.groups.values():
        if g.kind not in (GroupKind.UNITS, GroupKind.RESIDUAL):
            continue
        c = naive_cost(arch, w_a, w_b, perm.perms, g.name)
        rows, cols = linear_sum_assignment(c, maximize=True)
        best = c[rows, cols].sum()
        now = c[np.arange(g.size), perm.perms[g.name].numpy()].sum()
        assert best - now <= 1e-5 * abs(best), g.name


def test_matching_brings_models_closer_and_is_deterministic() -> None:
    arch = ARCHS["mlp"]
    w_a, w_b = two_models(arch)
    p1 = weight_matching(arch, w_a, w_b, seed=4)
    p2 = weight_matching(arch, w_a, w_b, seed=4)
    assert all(torch.equal(p1.perms[g], p2.perms[g]) for g in p1.perms)
    assert (p1.apply(w_b) - w_a).norm() < (w_b - w_a).norm()


def test_permutation_apply_batches_and_inverts() -> None:
    arch = ARCHS["cnn"]
    w = arch.init_weights([1, 2, 3])
    perm = Permutation(arch, arch.permutation_spec().random(torch.Generator().manual_seed(0)))
    batched = perm.apply(w)
    assert torch.equal(batched, torch.stack([perm.apply(row) for row in w]))
    assert torch.equal(perm.inverse().apply(batched), w)
    other = Permutation(arch, arch.permutation_spec().random(torch.Generator().manual_seed(1)))
    assert torch.equal(perm.then(other).apply(w), other.apply(perm.apply(w)))
    assert perm.then(perm.inverse()).is_identity()


def test_bad_inputs_are_refused_with_a_clear_error() -> None:
    arch = ARCHS["mlp"]
    w_a, w_b = two_models(arch)
    other = MLP(width=25, depth=3, in_shape=(1, 8, 8)).init_weights([0])[0]
    with pytest.raises(ValueError, match="w_b has .* entries.*different layouts"):
        weight_matching(arch, w_a, other)
    with pytest.raises(ValueError, match="w_a has .* entries"):
        transfusion(arch, w_a[:-1], w_b)
    with pytest.raises(ValueError, match="one flat weight vector"):
        weight_matching(arch, w_a[None], w_b)
    with pytest.raises(ValueError, match="NaN"):
        weight_matching(arch, w_a, torch.full_like(w_b, float("nan")))
    with pytest.raises(ValueError, match="unknown permutation group"):
        Permutation(arch, {"nope": torch.arange(3)})


def scipy_best(cost: np.ndarray) -> float:
    """The reference optimum: scipy's assignment, in float64."""
    rows, cols = linear_sum_assignment(cost.astype(np.float64), maximize=True)
    return float(cost.astype(np.float64)[rows, cols].sum())


def total(cost: np.ndarray, perm: np.ndarray) -> float:
    assert sorted(perm.tolist()) == list(range(len(cost)))
    return float(cost.astype(np.float64)[np.arange(len(cost)), perm].sum())


@pytest.mark.parametrize("n", [1, 2, 7, 64, 200])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_assignment_is_exact_whatever_the_start(n: int, dtype: type) -> None:
    """Duals and a starting permutation change only the work: the optimum is scipy's."""
    rng = np.random.default_rng(n)
    cost = rng.standard_normal((n, n)).astype(dtype)
    best = scipy_best(cost)
    solved = np.zeros(n)
    max_assignment(cost, solved)  # solved: the optimal duals of cost
    starts = [
        (None, None),
        (3 * rng.standard_normal(n), None),
        (None, rng.permutation(n)),
        (3 * rng.standard_normal(n), rng.permutation(n)),
        (solved.copy(), rng.permutation(n)),
    ]
    for duals, current in starts:
        perm = max_assignment(cost, duals, current)
        assert abs(total(cost, perm) - best) <= 1e-9 * max(1.0, abs(best))


@pytest.mark.parametrize("n", [3, 32, 128])
@pytest.mark.parametrize("kind", ["gaussian", "integer ties", "low rank"])
def test_warm_restarts_along_a_drifting_matrix_stay_exact(n: int, kind: str) -> None:
    """As in coordinate descent: one solver, many slowly changing matrices, each solved exactly.

    Integer costs have many tied optima (the duals must still certify one of them); low-rank
    updates are how a neighbouring permutation changes a group's similarity matrix."""
    rng = np.random.default_rng(n)
    if kind == "integer ties":
        cost = rng.integers(0, 4, (n, n)).astype(np.float64)
    else:
        cost = rng.standard_normal((n, n)).astype(np.float32)
    solver = FreeAssignment()
    current = solver.initial(n)
    for step in range(12):
        if kind == "integer ties":
            flip = rng.random((n, n)) < 0.05
            cost = np.where(flip, rng.integers(0, 4, (n, n)), cost).astype(np.float64)
        elif kind == "low rank":
            a, b = rng.standard_normal((n, 2)), rng.standard_normal((2, n))
            cost = (cost + 0.3 * (a @ b)).astype(np.float32)
        else:
            cost = (cost + 0.1 * rng.standard_normal((n, n))).astype(np.float32)
        current = solver.solve(cost, current)
        best = scipy_best(cost)
        assert abs(total(cost, current) - best) <= 1e-9 * max(1.0, abs(best)), step


@pytest.mark.parametrize("family", ["mlp", "cnn", "transformer"])
def test_descent_with_scipy_reaches_the_same_permutations(family: str) -> None:
    """The warm-started compiled solver is exact: descent takes the same steps as with scipy."""
    arch = ARCHS[family]
    w_a, w_b = two_models(arch)
    ours = free_solvers(arch, residual=True)
    reference = {g: ScipyAssignment() for g in ours}
    p1 = coordinate_descent(arch, w_a, w_b, ours, seed=5)
    p2 = coordinate_descent(arch, w_a, w_b, reference, seed=5)
    assert p1.passes == p2.passes
    assert all(torch.equal(p1.perms[g], p2.perms[g]) for g in p1.perms)


def test_assignment_refuses_bad_matrices() -> None:
    with pytest.raises(ValueError, match="square"):
        max_assignment(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="NaN or inf"):
        max_assignment(np.array([[0.0, np.nan], [1.0, 2.0]]))
    assert max_assignment(np.zeros((0, 0))).tolist() == []


def test_an_optimal_current_permutation_is_kept_without_a_solve() -> None:
    rng = np.random.default_rng(0)
    n = 50
    cost = rng.random((n, n)) + 10 * np.eye(n)  # identity is the unique optimum
    ident = np.arange(n)
    assert max_assignment(cost, None, current=ident) is ident
    assert max_assignment(cost, 5 * rng.random(n), current=ident).tolist() == ident.tolist()
    other = rng.permutation(n)
    assert max_assignment(cost, None, current=other).tolist() == ident.tolist()
    solver = FreeAssignment()
    assert solver.solve(cost, current=other).tolist() == ident.tolist()
    assert solver.solve(cost, current=ident).tolist() == ident.tolist()


@pytest.mark.parametrize("family", ["mlp", "cnn", "transformer"])
def test_overlap_on_two_threads_gives_the_same_permutation(family: str) -> None:
    arch = ARCHS[family]
    w_a, w_b = two_models(arch)
    threads = torch.get_num_threads()
    p1 = weight_matching(arch, w_a, w_b, seed=2, residual=True, overlap=False)
    p2 = weight_matching(arch, w_a, w_b, seed=2, residual=True, overlap=True)
    assert all(torch.equal(p1.perms[g], p2.perms[g]) for g in p1.perms)
    assert torch.get_num_threads() == threads  # restored after the descent


def test_tol_stops_descent_sooner_and_keeps_the_function() -> None:
    arch = MLP(width=96, depth=3, in_shape=(5,))
    w_a, w_b = two_models(arch)
    strict = coordinate_descent(arch, w_a, w_b, free_solvers(arch, residual=False), seed=1)
    loose = coordinate_descent(arch, w_a, w_b, free_solvers(arch, residual=False), seed=1, tol=0.01)
    assert loose.passes < strict.passes  # 4 < 9
    perm = weight_matching(arch, w_a, w_b, seed=1, tol=0.01)
    assert all(torch.equal(perm.perms[g], loose.perms[g]) for g in perm.perms)
    x = inputs(arch)
    assert (arch.forward(w_b[None], x) - arch.forward(perm.apply(w_b)[None], x)).abs().max() <= 1e-5
    with pytest.raises(ValueError, match="tol must be >= 0"):
        weight_matching(arch, w_a, w_b, tol=-1e-3)
