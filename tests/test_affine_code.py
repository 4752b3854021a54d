"""Affine codes: draws decoded as ``offset + code @ basis`` let the nearest-training-net search
run on the codes; it must find the same nets as the search on the weights."""

from __future__ import annotations

import pytest
import torch
from zoo_fixtures import moons_mlp, moons_populations, tiny_flow

from generators import FlowConfig, FlowGenerator, WeightDataset
from generators.affine_code import AffineCode
from generators.best_of_k import group_request
from generators.selection import TrainingNets
from zoo import get_task


@pytest.mark.parametrize("m,k,n,r", [(1, 1, 3, 1), (7, 4, 30, 5), (33, 16, 200, 12)])
def test_decode_and_dots_are_the_reference_formulas(m: int, k: int, n: int, r: int) -> None:
    g = torch.Generator().manual_seed(m * k + n)
    offset, basis = torch.randn(n, generator=g), torch.randn(k, n, generator=g)
    codes, ref = torch.randn(m, k, generator=g), torch.randn(r, n, generator=g)
    code = AffineCode(offset, basis)
    w = code.decode(codes)
    torch.testing.assert_close(w, offset[None, :] + codes @ basis)
    offset_dots, basis_dots = code.dots(ref)
    torch.testing.assert_close(offset_dots + codes @ basis_dots, w @ ref.T, rtol=1e-4, atol=1e-4)
    out = torch.empty(m, n)
    assert code.decode(codes, out=out).data_ptr() == out.data_ptr() and code.dim == k


def test_affine_code_errors() -> None:
    with pytest.raises(ValueError, match=r"an \(N,\) offset and a \(K, N\) basis"):
        AffineCode(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="offset has 4 weights, basis rows 3"):
        AffineCode(torch.zeros(4), torch.zeros(2, 3))


@pytest.mark.parametrize("m,k,r", [(5, 2, 3), (40, 6, 9)])
def test_the_search_on_codes_finds_the_same_nearest_nets(m: int, k: int, r: int) -> None:
    arch = moons_mlp(4)
    g = torch.Generator().manual_seed(m + k)
    code = AffineCode(torch.randn(arch.num_params, generator=g),
                      torch.randn(k, arch.num_params, generator=g))  # fmt: skip
    codes = torch.randn(m, k, generator=g)
    w = code.decode(codes)
    ref = code.decode(torch.randn(r, k, generator=g)) + 0.3 * torch.randn(
        r, arch.num_params, generator=g
    )  # training nets, off the code's span
    labels = arch.forward(w, get_task("moons").split("val")[0]).argmax(-1)
    on_weights = TrainingNets.of(arch, "moons", ref).disagreement(w, labels)
    on_codes = TrainingNets.of(arch, "moons", ref, code).disagreement(w, labels, codes)
    assert torch.equal(on_codes, on_weights)
    with pytest.raises(ValueError, match="set up without a code"):
        TrainingNets.of(arch, "moons", ref).disagreement(w, labels, codes)


@pytest.fixture(scope="module")
def dataset() -> WeightDataset:
    return WeightDataset.from_populations(moons_populations((3, 5)))


def test_flow_draws_decode_from_their_codes(dataset: WeightDataset) -> None:
    """A PCA flow writes each draw's code, and the code decodes to that draw; a flow on the full
    vector, or with novelty noise, has no code and refuses a codes buffer."""
    gen = FlowGenerator(FlowConfig().with_overrides(tiny_flow(5)))
    gen.fit(dataset)
    g = gen.info.resolve(None, 5)
    code = gen.affine_code(group_request(gen, g, None))
    codes = torch.full((6, code.dim), float("nan"))
    w = gen.sample_coded(
        6, group_request(gen, g, None), torch.Generator().manual_seed(1), None, codes
    )
    torch.testing.assert_close(code.decode(codes), w)
    assert torch.equal(
        w, gen._sample(6, group_request(gen, g, None), torch.Generator().manual_seed(1))
    )
    assert gen.affine_code(group_request(gen, g, None), novelty=0.5) is None
    with pytest.raises(ValueError, match=r"codes must be an \(6, K\) tensor"):
        gen.sample_coded(
            6, group_request(gen, g, None), torch.Generator(), None, codes, novelty=0.5
        )
    full = FlowGenerator(FlowConfig().with_overrides(tiny_flow(5, **{"model.pca": 0})))
    full.fit(dataset)
    assert full.affine_code(group_request(full, g, None)) is None
    with pytest.raises(ValueError, match=r"codes must be an \(6, K\) tensor"):
        full.sample_coded(6, group_request(full, g, None), torch.Generator(), None, codes)
