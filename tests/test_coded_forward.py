"""Nets given as codes of an affine code run forward with their input layer's response taken
from the code (:class:`CodedForward`): the same outputs as the decoded weights' forward, the
same choices in best-of-k sampling, and only the kept candidates decoded."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor
from zoo_fixtures import moons_populations, tiny_flow

import generators.best_of_k
from generators import FlowConfig, FlowGenerator, WeightDataset
from generators.affine_code import AffineCode
from generators.best_of_k import group_request
from generators.coded_forward import CodedForward
from generators.sampling import sample
from generators.selection import PromptSelection, TrainingNets
from zoo import CNN, MLP, get_task
from zoo.training import eval_batch, evaluate, split_scores


def random_code(arch: MLP, k: int, seed: int) -> AffineCode:
    g = torch.Generator().manual_seed(seed)
    n = arch.num_params
    return AffineCode(0.3 * torch.randn(n, generator=g), 0.1 * torch.randn(k, n, generator=g))


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("per_model", [False, True])
def test_the_mlp_input_response_is_the_reference_formula_and_linear(
    depth: int, per_model: bool
) -> None:
    """W x + b per model, feature-major, linear in (W, b) jointly; the rest of the forward on
    it gives the forward."""
    arch = MLP(width=6, in_shape=(2, 3), num_outputs=4, depth=depth)
    g = torch.Generator().manual_seed(depth)
    p, q = torch.randn(2, 5, arch.num_params, generator=g)  # (P, N) each
    x = torch.randn(5, 7, 2, 3, generator=g) if per_model else torch.randn(7, 2, 3, generator=g)
    params = arch.layout.unflatten(p)
    w, b = params["hidden.0.weight"], params["hidden.0.bias"]  # (P, 6, 6), (P, 6)
    flat_x = x.reshape(*x.shape[:-2], 6)  # (P, B, 6) or (B, 6)
    spec = "poi,pbi->pob" if per_model else "poi,bi->pob"
    expect = torch.einsum(spec, w, flat_x) + b[:, :, None]  # (P, width, B)
    response = arch.input_response(params, x)
    torch.testing.assert_close(response, expect)
    mixed = arch.input_response(arch.layout.unflatten(2.0 * p - 0.5 * q), x)
    torch.testing.assert_close(
        mixed, 2.0 * response - 0.5 * arch.input_response(arch.layout.unflatten(q), x)
    )
    assert arch.input_layer == ("hidden.0.weight", "hidden.0.bias")
    modules = torch.stack([arch.module(p[i])(x[i] if per_model else x) for i in range(5)])
    torch.testing.assert_close(arch.forward_from_response(response, params), modules)


@pytest.mark.parametrize(
    "width,depth,k,m,models", [(4, 1, 1, 1, 1), (8, 2, 5, 9, 9), (16, 2, 12, 40, 4096)]
)
def test_coded_outputs_equal_the_forward_of_the_decoded_nets(
    width: int, depth: int, k: int, m: int, models: int
) -> None:
    """Over a grid of shapes and chunkings of the points (4,096 nets of width 16: chunks of 32),
    and with the scratch buffer reused by a smaller and a larger call."""
    x = get_task("digits").split("val")[0]  # (B, 1, 8, 8)
    arch = MLP(width=width, in_shape=tuple(x.shape[1:]), num_outputs=10, depth=depth)
    code = random_code(arch, k, width + depth)
    forward = CodedForward(arch, code, x, models)
    for rows in (m, max(m // 2, 1), m + 3):
        codes = torch.randn(rows, k, generator=torch.Generator().manual_seed(rows))
        chunks = list(forward.outputs(codes))
        batch = eval_batch(arch, models)  # the chunks split_outputs makes for ``models`` nets
        assert [c.shape[1] for c in chunks] == [
            len(x[a : a + batch]) for a in range(0, len(x), batch)
        ]
        got = torch.cat(chunks, dim=1)  # (rows, B, 10)
        torch.testing.assert_close(got, arch.forward(code.decode(codes), x), rtol=1e-4, atol=1e-5)


def test_coded_forward_errors() -> None:
    cnn = CNN(width=2, depth=1)
    with pytest.raises(ValueError, match="CNN does not factor out its input layer"):
        CodedForward(cnn, AffineCode(torch.zeros(cnn.num_params), torch.zeros(1, cnn.num_params)),
                     torch.zeros(3, 1, 8, 8), 1)  # fmt: skip
    arch = MLP(width=3, in_shape=(2,), num_outputs=2, depth=1)
    with pytest.raises(ValueError, match=f"the code decodes 5 weights, .* has {arch.num_params}"):
        CodedForward(arch, AffineCode(torch.zeros(5), torch.zeros(1, 5)), torch.zeros(3, 2), 1)
    with pytest.raises(NotImplementedError, match="CNN does not factor"):
        cnn.input_response({}, torch.zeros(1, 1, 8, 8))


@pytest.mark.parametrize("task", ["digits", "sinusoid"])
def test_split_scores_is_the_reference_loss_and_accuracy(task: str) -> None:
    """Accumulated over chunks of the points: the mean loss and accuracy over the whole split."""
    data = get_task(task)
    x, y = data.split("val")
    out_dim = 10 if task == "digits" else 1
    arch = MLP(width=5, in_shape=tuple(x.shape[1:]), num_outputs=out_dim, depth=1)
    w = torch.randn(7, arch.num_params, generator=torch.Generator().manual_seed(3))
    out = arch.forward(w, x)  # (7, B, out): the whole split at once
    scores = split_scores(data, y, [out[:, :50], out[:, 50:]], predicted=True)
    if task == "digits":
        loss = F.cross_entropy(out.transpose(1, 2), y.expand(7, -1), reduction="none").mean(1)
        torch.testing.assert_close(scores.acc, (out.argmax(-1) == y).float().mean(1))
        assert torch.equal(scores.predicted, out.argmax(-1))
    else:
        loss = ((out - y.expand(out.shape)) ** 2).flatten(1).mean(1)
        assert scores.acc.isnan().all() and scores.predicted is None
    torch.testing.assert_close(scores.loss, loss)
    torch.testing.assert_close(torch.stack(evaluate(arch, data, w, "val")),
                               torch.stack([scores.loss, scores.acc]), equal_nan=True)  # fmt: skip
    with pytest.raises(ValueError, match=f"outputs cover 50 of the split's {len(y)} points"):
        split_scores(data, y, [out[:, :50]])


@pytest.fixture(scope="module")
def trained() -> FlowGenerator:
    gen = FlowGenerator(FlowConfig().with_overrides({**tiny_flow(30), "sampling.temperature": 2.0}))
    gen.fit(WeightDataset.from_populations(moons_populations((3, 5))))
    return gen


def decoded_round(gen: FlowGenerator, m: int, g: int, seed: int) -> tuple[Tensor, Tensor]:
    """(codes (m, K), weights (m, N)) of one round of draws: the codes decode to the draws."""
    codes = gen.sample_codes(m, group_request(gen, g, None), torch.Generator().manual_seed(seed))
    weights = gen._sample(m, group_request(gen, g, None), torch.Generator().manual_seed(seed))
    torch.testing.assert_close(
        gen.affine_code(group_request(gen, g, None)).decode(codes), weights, rtol=0, atol=1e-6
    )
    return codes, weights


@pytest.mark.parametrize("rule", ["closest", "at-least", "novel", "weighted"])
@pytest.mark.parametrize("prop", ["val_acc", "val_loss"])
def test_coded_selection_makes_the_choices_of_the_decoded_one(
    trained: FlowGenerator, rule: str, prop: str
) -> None:
    if rule == "weighted" and prop == "val_loss":
        return  # weighted adds accuracies (a ValueError, tested in test_selection)
    n, k = 6, 4
    g = trained.info.resolve(None, 5)
    arch = trained.info.groups[g].arch
    code = trained.affine_code(group_request(trained, g, None))
    codes, weights = decoded_round(trained, n * k, g, seed=7)
    prompts = torch.linspace(0.7, 0.9, n) if prop == "val_acc" else torch.linspace(0.3, 0.5, n)
    reference = TrainingNets.of(arch, "moons", trained.info.training_nets(g), code)
    selection = PromptSelection(k, prop, rule)
    on_weights = selection.select(weights, prompts, arch, "moons", reference, codes)
    forward = CodedForward(arch, code, get_task("moons").split("val")[0], n * k)
    on_codes = selection.select_coded(codes, prompts, forward, "moons", reference)
    assert torch.equal(on_codes.index, on_weights.index)
    torch.testing.assert_close(on_codes.measured, on_weights.measured)
    torch.testing.assert_close(on_codes.weights, on_weights.weights, rtol=0, atol=1e-6)
    if rule in ("novel", "weighted"):
        assert torch.equal(on_codes.novelty, on_weights.novelty)


def test_coded_selection_errors(trained: FlowGenerator) -> None:
    g = trained.info.resolve(None, 3)
    arch = trained.info.groups[g].arch
    forward = CodedForward(
        arch,
        trained.affine_code(group_request(trained, g, None)),
        get_task("moons").split("val")[0],
        4,
    )
    codes = torch.zeros(4, trained.affine_code(group_request(trained, g, None)).dim)
    with pytest.raises(ValueError, match="measure the validation split, not train_acc"):
        PromptSelection(2, "train_acc").select_coded(codes, torch.zeros(2), forward, "moons")
    with pytest.raises(ValueError, match=r"expected 6 candidates \(3 prompts x 2\), got 4"):
        PromptSelection(2, "val_acc").select_coded(codes, torch.zeros(3), forward, "moons")
    with pytest.raises(ValueError, match="rule 'novel' needs the training nets"):
        PromptSelection(2, "val_acc", "novel").select_coded(codes, torch.zeros(2), forward, "moons")
    with pytest.raises(ValueError, match="these draws have no code"):
        trained.sample_codes(3, group_request(trained, g, None), torch.Generator(), novelty=0.5)


def test_best_of_k_decodes_only_the_kept_candidates(
    trained: FlowGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a code and a factoring architecture, sample(candidates=k) never decodes a round of
    candidates: the code decodes n rows in all (the kept nets), not n * k."""
    decoded: list[int] = []
    original = AffineCode.decode

    def counting(self: AffineCode, codes: Tensor, out: Tensor | None = None) -> Tensor:
        if self.basis.shape[1] == trained.info.groups[1].arch.num_params:  # whole nets only
            decoded.append(len(codes))
        return original(self, codes, out)

    monkeypatch.setattr(AffineCode, "decode", counting)
    monkeypatch.setattr(generators.best_of_k, "SELECT_CANDIDATES", 12)  # rounds of 3 prompts x 4
    pop = sample(trained, 7, width=5, seed=1, candidates=4, select="weighted")
    assert sum(decoded) == 7 and len(pop.weights()) == 7
    assert torch.equal(pop.conditioning["measured_val_acc"], pop.evaluate(split="val"))
