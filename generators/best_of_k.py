"""Best-of-k sampling as a strategy over any generator kind.

Every requested net is drawn k times with the same prompt and one candidate is kept by a
:class:`~generators.selection.PromptSelection` rule, measured on the validation split. Where the
kind offers :class:`~generators.coded_draws.CodedDraws` (draws affine in a short code), the
candidates are measured from their codes and only the kept nets are decoded; the nearest
training net is searched on the codes too. Same draws, same kept nets either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from generators.affine_code import AffineCode
from generators.base import WeightGenerator
from generators.coded_draws import CodedDraws, affine_code_of
from generators.coded_forward import CodedForward
from generators.conditions import Request
from generators.selection import (
    DISAGREEMENT_WEIGHT,
    NOVELTY_RULES,
    SELECT_CANDIDATES,
    PromptSelection,
    TrainingNets,
    check_rule,
)
from zoo.population import Population
from zoo.tasks import get_task
from zoo.training import predicted_class, split_outputs


@dataclass(frozen=True)
class BestOfK:
    """Keep one of ``candidates`` draws per requested net by rule ``select`` (``closest``,
    ``at-least``, ``novel``, ``weighted``; see :mod:`generators.selection`), the weighted rule
    with ``disagreement_weight``."""

    candidates: int
    select: str = "closest"
    disagreement_weight: float = DISAGREEMENT_WEIGHT

    def __post_init__(self) -> None:
        check_rule(self.select)

    @torch.no_grad()
    def sample(
        self, generator: WeightGenerator, n: int, task: str | None = None,
        width: int | None = None, seed: int = 0, target: float | None = None, **options: Any,
    ) -> Population:  # fmt: skip
        """``n`` nets, each the kept one of its prompt's candidates; the kept nets' measured
        property comes back as ``conditioning["measured_<property>"]``, and for the novelty
        rules their validation disagreement with the nearest training net as
        ``conditioning["nearest_train_disagreement"]``."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        generator.check_sample_options(options)
        info = generator.require_info()
        cond = generator.conditions(task=task, width=width, target=target)
        rng = torch.Generator().manual_seed(int(seed))
        request = generator.request(n, cond, rng)
        props = request.target
        generator.network.eval()
        k = self.candidates
        selection = PromptSelection(
            k, info.data.property if props is not None else "", self.select,
            self.disagreement_weight,
        )  # fmt: skip
        per_round = max(1, SELECT_CANDIDATES // k)  # prompts whose candidates fit a round
        code = affine_code_of(generator, request, **options)  # the draws' code, if they have one
        reference = None
        if self.select in NOVELTY_RULES:  # the nearest-net search runs on the codes, if any
            reference = training_nets(generator, request, code)
        forward = None  # the candidates' validation outputs from their codes, if it can
        if selection.property.startswith("val_"):
            forward = coded_forward(request, code, min(n, per_round) * k)
        measured, novelty = [], []
        size = request.arch.num_params
        # one (a round's candidates, N) buffer for every round, and the kept nets written in
        # place: no (n, N) concatenation at the end, which would hold the kept nets twice
        dtype = info.normalizer.mean.dtype
        buffer = codes = None
        if forward is None:
            buffer = torch.empty(min(n, per_round) * k, size, dtype=dtype)
            codes = None if code is None else torch.empty(len(buffer), code.dim)  # (.., K)
        kept = torch.empty(n, size, dtype=dtype)  # (n, N)
        for a in range(0, n, per_round):
            p = props[a : a + per_round]
            m = len(p) * k
            sub = request.subset(p.repeat_interleave(k))  # (m,) prompts
            if forward is not None:  # only the kept candidates are decoded
                c = generator.sample_codes(m, sub, rng, **options)  # (m, K)
                chosen = selection.select_coded(c, p, forward, request.task, reference)
            else:
                c = None if codes is None else codes[:m]
                drawn = draw(generator, m, sub, rng, buffer[:m], c, **options)
                chosen = selection.select(drawn, p, request.arch, request.task, reference, c)
            kept[a : a + len(p)] = chosen.weights
            measured.append(chosen.measured)
            if chosen.novelty is not None:
                novelty.append(chosen.novelty)
        extra = {f"measured_{info.data.property}": torch.cat(measured)}
        if novelty:
            extra["nearest_train_disagreement"] = torch.cat(novelty)
        return generator.population(request, kept, **extra)


def draw(
    generator: WeightGenerator, n: int, request: Request, rng: torch.Generator,
    out: Tensor | None, codes: Tensor | None, **options: Any,
) -> Tensor:  # fmt: skip
    """(n, N) plain draws, writing their codes into ``codes`` where given (a kind with
    :class:`CodedDraws` only)."""
    if codes is None:
        return generator._sample(n, request, rng, out=out, **options)
    if not isinstance(generator, CodedDraws):
        raise ValueError(f"the {generator.kind} generator draws no codes")
    return generator.sample_coded(n, request, rng, out, codes, **options)


def training_nets(
    generator: WeightGenerator, request: Request, code: AffineCode | None
) -> TrainingNets:
    """The training nets of ``request``'s group and their validation predictions, set up for
    draws decoded by ``code`` (None: no code); a ValueError for a draw outside the groups."""
    info = generator.require_info()
    g = request.group
    if g is None:
        raise ValueError(
            "the novelty rules compare with the training nets of the requested task and width; "
            f"this generator has none for {request.task!r} at width {request.arch.width}"
        )
    return TrainingNets.of(request.arch, request.task, info.training_nets(g), code)


def group_request(generator: WeightGenerator, group: int, target: Tensor | None) -> Request:
    """A request for training group ``group`` with (n,) prompts ``target``."""
    grp = generator.require_info().groups[group]
    cond = generator.conditions(task=grp.task, width=grp.width)
    return Request(generator.resolve(cond), target, cond)


def training_reference(generator: WeightGenerator, group: int, **options: Any) -> TrainingNets:
    """Group ``group``'s training nets and their validation predictions, set up for draws with
    these sampling options (their nearest-net search runs on the draws' codes, where they have
    one)."""
    request = group_request(generator, group, None)
    return training_nets(generator, request, affine_code_of(generator, request, **options))


def coded_forward(request: Request, code: AffineCode | None, models: int) -> CodedForward | None:
    """The validation outputs of ``request``'s draws from their codes (``code``), ``models`` at
    a time, where they have one and the architecture an input layer to factor out."""
    if code is None or not request.arch.input_layer:
        return None
    return CodedForward(request.arch, code, get_task(request.task).split("val")[0], models)


@torch.no_grad()
def draw_predictions(
    generator: WeightGenerator, prompts: Tensor, group: int, rng: torch.Generator,
    reference: TrainingNets, **options: Any,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """One draw of ``group`` per prompt (prompts: (m,) property values), not kept: (m, V) the
    class each predicts at every validation point, and (m,) the index of its nearest training
    net in ``reference`` (:func:`training_reference` with the same options). In rounds of
    ``SELECT_CANDIDATES``, from the draws' codes where they have one, as :class:`BestOfK`
    measures its candidates (the calibration reads them point by point)."""
    generator.network.eval()
    request = group_request(generator, group, prompts)
    code = affine_code_of(generator, request, **options)
    forward = coded_forward(request, code, min(len(prompts), SELECT_CANDIDATES))
    x_val = get_task(request.task).split("val")[0]
    predicted, nearest = [], []
    for a in range(0, len(prompts), SELECT_CANDIDATES):
        sub = request.subset(prompts[a : a + SELECT_CANDIDATES])
        m = len(sub.target)
        w = None
        if forward is not None:
            codes = generator.sample_codes(m, sub, rng, **options)  # (m, K)
            outputs = forward.outputs(codes)
        else:
            codes = None if code is None else torch.empty(m, code.dim)
            w = draw(generator, m, sub, rng, None, codes, **options)  # (m, N_g)
            outputs = split_outputs(request.arch, w, x_val)
        predicted.append(torch.cat([predicted_class(o) for o in outputs], dim=1))
        nearest.append(reference.nearest(w, codes))
    return torch.cat(predicted), torch.cat(nearest)
