"""The training strategies composed over any kind's plain training: self-distillation rounds
(:mod:`generators.distillation`) and the calibrated best-of-k weight
(:mod:`generators.calibration`), both set in the generator's config (``distill``,
``calibrate``). :func:`fit_rounds` runs them in a plain loop; ``pipelines.generator_training``
runs the same rounds under Lightning.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from generators.base import WeightGenerator
from generators.calibration import calibrate
from generators.dataset import WeightDataset
from generators.distillation import Distilled, distill_nets
from generators.selection import PromptSelection
from zoo.tasks import get_task


def distill_rounds(generator: WeightGenerator) -> int:
    """Trainings after the first, each on the previous one's best samples (0: off)."""
    dc = generator.config.distill
    return dc.rounds if dc.per_net > 0 else 0


def check_strategies(generator: WeightGenerator, dataset: WeightDataset) -> None:
    """Before any training (the strategies come after the first): turn distillation and
    calibration off, with a note on stderr, where the dataset cannot serve them at all (they
    keep draws by a measured accuracy and predicted classes: a regression zoo has neither), so
    a preset still trains on it and its saved config says what ran; then a ValueError where the
    config's settings could not run on this dataset."""
    dc, cc = generator.config.distill, generator.config.calibrate
    kinds = {t: get_task(t).kind for t in dataset.tasks}
    unclassed = [t for t, kind in kinds.items() if kind != "classification"]
    if unclassed and (dc.per_net > 0 or cc.candidates > 0):
        print(f"self-distillation and calibration off: they compare predicted classes and "
              f"task {unclassed[0]!r} is a {kinds[unclassed[0]]} task", file=sys.stderr)  # fmt: skip
        generator.config = generator.config.with_overrides(
            {"distill.per_net": 0, "calibrate.candidates": 0}
        )
        dc, cc = generator.config.distill, generator.config.calibrate
    prop = dataset.config.property
    if dc.per_net > 0:
        PromptSelection(dc.candidates, prop, "weighted", dc.disagreement_weight)
    if cc.candidates > 0:
        PromptSelection(cc.candidates, prop, "weighted")
        generator.check_sample_options(cc.options)


def distill(generator: WeightGenerator, dataset: WeightDataset) -> Distilled:
    """The trained generator's best samples by ``config.distill``, to train the next round on."""
    return distill_nets(
        generator, dataset, generator.config.distill, generator.config.training.seed
    )


def fit_rounds(
    generator: WeightGenerator, dataset: WeightDataset, max_steps: int | None = None,
    callback: Callable[[int, float], None] | None = None,
) -> list[float]:  # fmt: skip
    """Train ``generator`` on ``dataset`` with its strategies, in a plain loop: train, then for
    every distillation round draw its best samples and train a fresh network on them too, then
    calibrate. Returns the loss of every step of every round."""
    if max_steps is not None:
        generator.config = generator.config.with_overrides({"training.max_steps": int(max_steps)})
    check_strategies(generator, dataset)
    losses = generator.fit(dataset, callback=callback)
    for _ in range(distill_rounds(generator)):
        losses += generator.fit(dataset, callback=callback, extra=distill(generator, dataset))
    calibrate(generator)
    return losses
