"""Calibrating the ``weighted`` rule's disagreement weight at training time, on validation data.

Best-of-k sampling with ``select="weighted"`` keeps the candidate with the highest validation
accuracy + w x its validation disagreement with its nearest training net
(:mod:`generators.selection`). The weight w sets where the kept nets sit on the accuracy /
novelty frontier, and a weight read off one zoo's test figures carries over badly to another
(on the 6-seed zoo, the default zoo's best weight costs 4 points of accuracy). Here each trained
generator picks its own, from what it was trained on and nothing else:

* the **target**: how often a real net predicts unlike its nearest other training net, on the
  validation split (leave-one-out over each group's training nets, the training-set stand-in
  for ``zoo evaluate``'s "held-out net vs its nearest training net"), averaged over groups;
* the **curve**: ``per_net`` prompts per training net of every group, ``candidates`` draws each;
  for every weight on a grid, the kept candidates' disagreement and accuracy, *cross-fitted*:
  chosen on one half of the validation split and measured on the other, both ways, averaged.
  Measuring on the points that chose them would overstate the kept nets' novelty (they were
  kept for differing there), and the weight would come out too small;
* the **weight**: the smallest on the grid whose cross-fitted disagreement reaches the target
  (plus ``margin``).

Held-out models and the test split are never read. On the default zoo, 5-fold, best of 16
from the distilled generators: see the README ("Calibrated weight").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from generators.base import WeightGenerator
from generators.best_of_k import draw_predictions, training_reference
from generators.config import CalibrateConfig
from generators.selection import check_classes
from zoo.tasks import get_task
from zoo.training import prediction_disagreement

HALVES_SEED = 7  # the fixed split of the validation points into the two halves
RECORD = "calibration"  # its key in a generator's records (saved in generator.json)


@dataclass(frozen=True)
class Calibration:
    """A generator's calibrated ``weighted`` rule, saved with it.

    disagreement_weight: the calibrated weight; target: the disagreement it aims at (the
    training nets' leave-one-out disagreement, mean over groups, plus the margin); reached:
    the cross-fitted disagreement of the kept nets at that weight (below ``target`` only where
    even the largest weight falls short); accuracy: their cross-fitted validation accuracy;
    candidates / options: the best-of-k settings it holds for; group_targets: each group's
    leave-one-out disagreement; curve_weight / curve_disagreement / curve_accuracy: (W,) the
    whole cross-fitted curve, mean over groups."""

    disagreement_weight: float
    target: float
    reached: float
    accuracy: float
    candidates: int
    options: dict[str, Any]
    group_targets: dict[str, float]
    curve_weight: list[float]
    curve_disagreement: list[float]
    curve_accuracy: list[float]

    def sampling(self) -> dict[str, Any]:
        """``sample`` keyword arguments of the calibrated best-of-k."""
        return {"candidates": self.candidates, "select": "weighted",
                "disagreement_weight": self.disagreement_weight, **self.options}  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        try:
            return cls(**d)
        except TypeError as e:
            raise ValueError(f"not a calibration record: {e}") from None


def leave_one_out_disagreement(weights: Tensor, labels: Tensor) -> Tensor:
    """(R,) share of the points on which each of R nets (weights (R, N), predicted classes
    labels (R, V)) predicts unlike its nearest (L2) other net; R >= 2."""
    if len(weights) < 2:
        raise ValueError(f"leave-one-out needs at least 2 nets, got {len(weights)}")
    d = torch.cdist(weights.double(), weights.double())  # (R, R)
    d.fill_diagonal_(float("inf"))
    return prediction_disagreement(labels, labels[d.argmin(dim=1)])


def crossfit_curve(
    correct: Tensor, differs: Tensor, candidates: int, weights: Tensor,
    halves: tuple[Tensor, Tensor],
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """(accuracy (W,), disagreement (W,)) of the candidates kept by the ``weighted`` rule at
    each of weights (W,), cross-fitted: correct / differs (n * k, V) whether each candidate
    (the k of prompt i in rows i*k .. i*k + k - 1) is right / differs from its nearest training
    net at each validation point; halves: two disjoint index sets of the points. Kept on one
    half (ties: the first drawn, as :meth:`PromptSelection.choose`), scored on the other, the
    two directions averaged."""
    if len(correct) % candidates:
        raise ValueError(f"{len(correct)} candidates are not a multiple of k = {candidates}")
    n = len(correct) // candidates
    acc, dis = [], []
    for choose_on, score_on in (halves, halves[::-1]):

        def share(x: Tensor, points: Tensor) -> Tensor:
            return x[:, points].float().mean(dim=1).view(n, candidates)  # (n, k)

        score = (
            share(correct, choose_on)[None]
            + weights[:, None, None] * share(differs, choose_on)[None]
        )  # (W, n, k)
        kept = score.argmax(dim=2, keepdim=True)  # (W, n, 1)
        for out, x in ((acc, correct), (dis, differs)):
            on_other = share(x, score_on)[None].expand(len(weights), n, candidates)
            out.append(on_other.gather(2, kept).squeeze(2).mean(dim=1))  # (W,)
    return torch.stack(acc).mean(dim=0), torch.stack(dis).mean(dim=0)


def smallest_reaching(curve: Tensor, weights: Tensor, target: float) -> int:
    """Index of the smallest weight whose curve value reaches ``target``; the largest weight
    where none does."""
    reached = (curve >= target).nonzero()
    return int(reached[0, 0]) if len(reached) else len(weights) - 1


@torch.no_grad()
def calibrate_weight(generator: WeightGenerator, cfg: CalibrateConfig, seed: int) -> Calibration:
    """The :class:`Calibration` of a trained ``generator`` by ``cfg`` (module docstring); group g
    draws with seed ``seed + g``. Reads only what the generator keeps: its training nets and
    the validation split."""
    info = generator.require_info()
    weights = torch.arange(0.0, cfg.max_weight + cfg.step / 2, cfg.step)  # (W,)
    targets: dict[str, float] = {}
    curves: list[tuple[Tensor, Tensor]] = []
    for g, grp in enumerate(info.groups):
        train_w = info.training_nets(g)  # (R, N_g)
        if len(train_w) < 2:  # no neighbour to leave out: nothing to aim at
            continue
        check_classes(grp.task)
        reference = training_reference(generator, g, **cfg.options)
        targets[grp.key] = float(leave_one_out_disagreement(train_w, reference.labels).mean())
        rng = torch.Generator().manual_seed(seed + g)
        prompts = info.draw_prompts(g, cfg.per_net * len(train_w), rng)  # (n,)
        predicted, nearest = draw_predictions(
            generator, prompts.repeat_interleave(cfg.candidates), g, rng, reference, **cfg.options
        )  # (n * k, V), (n * k,)
        y_val = get_task(grp.task).split("val")[1]
        points = torch.randperm(len(y_val), generator=torch.Generator().manual_seed(HALVES_SEED))
        halves = points[: len(points) // 2], points[len(points) // 2 :]
        correct = predicted.eq(y_val)
        differs = predicted.ne(reference.labels[nearest])
        curves.append(crossfit_curve(correct, differs, cfg.candidates, weights, halves))
    if not curves:
        raise ValueError("calibration needs a group with at least 2 training nets")
    accuracy = torch.stack([a for a, _ in curves]).mean(dim=0)  # (W,)
    disagreement = torch.stack([d for _, d in curves]).mean(dim=0)  # (W,)
    target = sum(targets.values()) / len(targets) + cfg.margin
    i = smallest_reaching(disagreement, weights, target)
    return Calibration(
        disagreement_weight=round(float(weights[i]), 6), target=target,
        reached=float(disagreement[i]), accuracy=float(accuracy[i]),
        candidates=cfg.candidates, options=dict(cfg.options), group_targets=targets,
        curve_weight=[round(float(w), 6) for w in weights],
        curve_disagreement=[float(d) for d in disagreement],
        curve_accuracy=[float(a) for a in accuracy],
    )  # fmt: skip


def calibrate(generator: WeightGenerator) -> Calibration | None:
    """Calibrate a trained ``generator``'s ``weighted`` rule by its ``config.calibrate`` (None
    where that is off) and keep the result in its records, saved with it; best-of-k sampling
    (:func:`generators.sampling.sample`) then takes it as its default weight."""
    cfg = generator.config.calibrate
    generator.records.pop(RECORD, None)
    if not cfg.candidates:
        return None
    calibration = calibrate_weight(generator, cfg, generator.config.training.seed)
    generator.records[RECORD] = calibration.to_dict()
    return calibration


def calibration_of(generator: WeightGenerator) -> Calibration | None:
    """The calibration a trained generator keeps (None: not calibrated)."""
    record = generator.records.get(RECORD)
    return None if record is None else Calibration.from_dict(record)


def calibrated_sampling(generator: WeightGenerator) -> dict[str, Any]:
    """Keyword arguments of :func:`generators.sampling.sample` for the calibrated best-of-k
    (candidates, the weighted rule, its calibrated weight and the sampling options it was
    calibrated with); a ValueError for a generator without a calibration."""
    calibration = calibration_of(generator)
    if calibration is None:
        raise ValueError(
            "this generator has no calibrated weight: train it with "
            "calibrate.candidates > 0 (the shipped flow preset does)"
        )
    return calibration.sampling()
