"""Sampling with the strategies composed over any generator kind: plain draws, or best-of-k
(:class:`generators.best_of_k.BestOfK`) whose weighted rule defaults to the generator's calibrated
weight (:mod:`generators.calibration`).

>>> from generators import load_generator, sample, calibrated_sampling
>>> gen = load_generator("demo/flow")
>>> pop = sample(gen, 100, seed=0, **calibrated_sampling(gen))
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from generators.base import WeightGenerator
from generators.best_of_k import BestOfK
from generators.calibration import calibration_of
from generators.selection import DISAGREEMENT_WEIGHT, check_rule
from zoo.population import Population


def sample(
    generator: WeightGenerator, n: int, task: str | None = None, width: int | None = None,
    seed: int = 0, target: float | None = None, candidates: int = 1, select: str = "closest",
    disagreement_weight: float | None = None, task_data: tuple[Tensor, Tensor] | None = None,
    task_params: dict[str, float] | None = None, **options: Any,
) -> Population:  # fmt: skip
    """``n`` nets from ``generator``: plain draws (``candidates=1``, ``generator.sample``), or
    each the kept one of ``candidates`` draws by rule ``select`` (closest, at-least, novel,
    weighted: :mod:`generators.selection`); ``disagreement_weight`` (the weighted rule only)
    defaults to the generator's calibrated weight, else ``DISAGREEMENT_WEIGHT``. Further
    options are the kind's own (flow: steps, solver, guidance, ...)."""
    check_rule(select)
    if disagreement_weight is not None and select != "weighted":
        raise ValueError(
            f"disagreement_weight applies to select='weighted' only (select={select!r})"
        )
    if candidates == 1:
        return generator.sample(
            n, task=task, width=width, seed=seed, target=target, task_data=task_data,
            task_params=task_params, **options,
        )  # fmt: skip
    if task_data is not None or task_params is not None:
        raise ValueError("best-of-k draws for the generator's own tasks: drop task_data / params")
    if disagreement_weight is None:
        calibration = calibration_of(generator)
        disagreement_weight = (
            DISAGREEMENT_WEIGHT if calibration is None else calibration.disagreement_weight
        )
    strategy = BestOfK(candidates, select, disagreement_weight)
    return strategy.sample(generator, n, task, width, seed, target, **options)
