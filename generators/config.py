"""Typed generator configs: nested dataclasses read from TOML or JSON, written as JSON.

Every generator kind has one config dataclass (a subclass of :class:`GeneratorConfig`) with the
shared sections ``data`` and ``training`` plus its own. Loading checks every key and type, so a
typo in a preset is a one-line ``ValueError`` naming the field instead of a silent default.
"""

from __future__ import annotations

import json
import math
import tomllib
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from zoo.landscape.phases import PHASE_CODES

T = TypeVar("T")

NORMALIZATIONS = ("coordinate", "robust", "tensor")


@dataclass
class DataConfig:
    """What the generator learns from.

    canonical: canonical (permutation-aligned) weights, else raw ones; checkpoint: kept
    checkpoint index for raw weights (canonical weights are the final checkpoint's);
    heldout: share of each group's models kept out of training, for evaluation;
    folds / fold: cross-validation instead: with ``folds`` = K >= 2 every group's models are dealt
    (in seeded order) into K folds and fold ``fold`` is held out, so K generators, one per fold,
    hold out every model exactly once (``heldout`` is then unused; 0 = off);
    normalization: ``coordinate`` (mean/std of every weight over the group's training models) or
    ``tensor`` (one mean/std per parameter tensor); property: the per-model metric a generator may
    condition on (``val_acc`` by default, so that the test split stays untouched), or "" for none.

    Which trained models the generator learns from (applied before the split, so held-out models
    pass the same filter): exclude_phases: loss-landscape phase names (``I``, ``II``, ``III``,
    ``IV-A``, ``IV-B``, ``collapsed``, ``unlabelled``) whose models are left out, read from a
    store's per-model phase labels (``zoo metrics``; in memory, ``conditioning["phase"]``); a
    population without labels is an error, not silently kept. Excluding ``collapsed`` also leaves
    out single models that predict a constant in cells of another phase (by their own output
    std). min_val_acc: models with a lower validation accuracy (at the weights' checkpoint) are
    left out; 0 keeps every model. heldout_tasks: tasks whose populations are left out of the
    generator altogether (the held-out members of a task family: their real nets stay in the zoo
    as the yardstick of ``zoo evaluate``); unset (None), a generator read from a zoo leaves out
    the zoo's own held-out tasks (its spec's ``heldout_tasks``) and records that list.
    max_norm_ratio: models whose weight norm is more than this
    many times the median norm of their population's usable models are left out (runs that
    blew up without collapsing: one such net per group dominates the per-coordinate statistics
    and the principal directions a generator works in); 0 keeps every model.
    """

    canonical: bool = True
    checkpoint: int = -1
    heldout: float = 0.2
    split_seed: int = 0
    folds: int = 0
    fold: int = 0
    normalization: str = "coordinate"
    property: str = "val_acc"
    exclude_phases: list[str] = field(default_factory=list)
    min_val_acc: float = 0.0
    max_norm_ratio: float = 0.0
    heldout_tasks: list[str] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.heldout_tasks, str):
            raise ValueError(
                f"data.heldout_tasks must be a list of task names, got {self.heldout_tasks!r}"
            )
        if not 0.0 <= self.heldout < 1.0:
            raise ValueError(f"data.heldout must be in [0, 1), got {self.heldout}")
        if self.folds == 1 or self.folds < 0:
            raise ValueError(f"data.folds must be 0 (off) or >= 2, got {self.folds}")
        if self.folds and not 0 <= self.fold < self.folds:
            raise ValueError(f"data.fold must be in [0, {self.folds}), got {self.fold}")
        if isinstance(self.exclude_phases, str):
            raise ValueError(
                f"data.exclude_phases must be a list of phase names, got {self.exclude_phases!r}"
            )
        unknown = [p for p in self.exclude_phases if p not in PHASE_CODES]
        if unknown:
            raise ValueError(
                f"data.exclude_phases: unknown phase(s) {', '.join(map(repr, unknown))} "
                f"(known: {', '.join(PHASE_CODES)})"
            )
        if not 0.0 <= self.min_val_acc <= 1.0:
            raise ValueError(f"data.min_val_acc must be in [0, 1], got {self.min_val_acc}")
        if self.max_norm_ratio != 0 and not self.max_norm_ratio > 1:
            raise ValueError(
                f"data.max_norm_ratio must be 0 (off) or > 1, got {self.max_norm_ratio}"
            )
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"data.normalization must be one of {', '.join(NORMALIZATIONS)}, "
                f"got {self.normalization!r}"
            )


@dataclass
class TrainingConfig:
    """Optimisation shared by every generator kind (AdamW, cosine decay to ``final_lr``)."""

    max_steps: int = 1500
    batch_size: int = 128
    learning_rate: float = 2e-3
    final_lr: float = 1e-4
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"training.{name} must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"training.learning_rate must be > 0, got {self.learning_rate}")


@dataclass
class AugmentConfig:
    """Weight-space interpolation augmentation (:mod:`generators.augmentation`).

    interpolations: synthetic nets per training net of a group, each a point on the segment
    between two of the group's training nets (0: off); t_min: the point's position t is drawn
    uniformly from [t_min, 1 - t_min]. Each synthetic net's property is measured, not assumed.
    max_drop: keep only synthetic nets whose property is at most this much worse than their worse
    parent's (accuracies: lower, losses: higher), i.e. points on low-loss segments; a negative
    value keeps none, None keeps all. Meant for canonical weights, where such segments exist.
    """

    interpolations: int = 0
    t_min: float = 0.0
    max_drop: float | None = None

    def __post_init__(self) -> None:
        if self.interpolations < 0:
            raise ValueError(f"augment.interpolations must be >= 0, got {self.interpolations}")
        if not 0.0 <= self.t_min <= 0.5:
            raise ValueError(f"augment.t_min must be in [0, 0.5], got {self.t_min}")


@dataclass
class DistillConfig:
    """Self-distillation (:mod:`generators.distillation`): training again on the trained
    generator's best samples.

    per_net: after training, draw this many nets per training net of every group (0: off), each
    kept from ``candidates`` draws by the ``weighted`` rule (validation accuracy +
    ``disagreement_weight`` x its validation disagreement with its nearest training net), add
    them to the training data with their measured property, and train a fresh network on it
    (the same steps, twice the training time). rounds: how many times (each round draws from
    the last one's generator and trains a fresh one on the real, interpolated and newly drawn
    nets). The draws use the generator's own sampling defaults; only the validation split is
    used to choose them.
    """

    per_net: int = 0
    candidates: int = 32
    disagreement_weight: float = 0.6
    rounds: int = 1

    def __post_init__(self) -> None:
        if self.per_net < 0:
            raise ValueError(f"distill.per_net must be >= 0, got {self.per_net}")
        if self.rounds < 1:
            raise ValueError(f"distill.rounds must be >= 1, got {self.rounds}")
        if self.candidates < 1:
            raise ValueError(f"distill.candidates must be >= 1, got {self.candidates}")
        if not math.isfinite(self.disagreement_weight) or self.disagreement_weight < 0:
            raise ValueError(
                f"distill.disagreement_weight must be a finite number >= 0, "
                f"got {self.disagreement_weight}"
            )


@dataclass
class CalibrateConfig:
    """Calibrating the ``weighted`` rule's disagreement weight at training time
    (:mod:`generators.calibration`), on the validation split only.

    candidates: the best-of-k the weight is calibrated for (0: off); options: the sampling
    options it is calibrated with, as ``sample`` takes them (flow: ``temperature``, ``steps``,
    ...); per_net: prompts drawn per training net of every group; margin: how much more often
    than the training nets' own leave-one-out disagreement the kept nets should differ from
    their nearest training net (0: as often); max_weight: the largest weight tried (in steps of
    ``step``). The calibrated weight is the smallest that reaches the target.
    """

    candidates: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    per_net: int = 16
    margin: float = 0.0
    max_weight: float = 2.0
    step: float = 0.01

    def __post_init__(self) -> None:
        if self.candidates < 0 or self.candidates == 1:
            raise ValueError(f"calibrate.candidates must be 0 (off) or >= 2, got {self.candidates}")
        if self.per_net < 1:
            raise ValueError(f"calibrate.per_net must be >= 1, got {self.per_net}")
        if not math.isfinite(self.margin) or abs(self.margin) >= 1:
            raise ValueError(f"calibrate.margin must be a share in (-1, 1), got {self.margin}")
        if not (math.isfinite(self.max_weight) and self.max_weight > 0):
            raise ValueError(f"calibrate.max_weight must be > 0, got {self.max_weight}")
        if not 0 < self.step <= self.max_weight:
            raise ValueError(
                f"calibrate.step must be in (0, max_weight = {self.max_weight}], got {self.step}"
            )
        bad = {k: v for k, v in self.options.items() if not isinstance(v, bool | int | float | str)}
        if bad:
            raise ValueError(f"calibrate.options must be numbers, strings or booleans, got {bad}")


@dataclass
class GeneratorConfig:
    """Base of every generator's config; ``kind`` names the generator class (``flow``, ...)."""

    kind: ClassVar[str] = ""
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    calibrate: CalibrateConfig = field(default_factory=CalibrateConfig)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **asdict(self)}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls: type[T], d: dict[str, Any]) -> T:
        d = dict(d)
        kind = d.pop("kind", cls.kind)
        if kind != cls.kind:
            raise ValueError(f"config is for generator kind {kind!r}, not {cls.kind!r}")
        return build_dataclass(cls, d, "")

    @classmethod
    def load(cls: type[T], path: str | Path) -> T:
        """Read a ``.toml`` or ``.json`` config file."""
        return cls.from_dict(read_config_file(path))

    def with_overrides(self: T, overrides: dict[str, Any]) -> T:
        """A copy with dotted keys replaced, e.g. ``{"training.max_steps": 100}``."""
        d = asdict(self)
        for key, value in overrides.items():
            *path, last = key.split(".")
            node = d
            for part in path:
                if part not in node or not isinstance(node[part], dict):
                    raise ValueError(f"unknown config section {part!r} in {key!r}")
                node = node[part]
            if last not in node:
                raise ValueError(f"unknown config field {key!r}")
            node[last] = value
        return type(self).from_dict(d)


def with_options(settings: T, options: dict[str, Any], kind: str) -> T:
    """A kind's sampling ``settings`` (a dataclass of defaults) with per-call ``options``
    applied and checked by the dataclass; a one-line ValueError naming the unknown ones and the
    options the kind takes."""
    known = [f.name for f in fields(settings)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"unknown sampling option(s) {unknown} ({kind} takes: {', '.join(known)})")
    return replace(settings, **options)


def read_config_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file {p} does not exist")
    if p.suffix == ".toml":
        with p.open("rb") as f:
            return tomllib.load(f)
    if p.suffix == ".json":
        return json.loads(p.read_text())
    raise ValueError(f"config file {p} must be .toml or .json")


def build_dataclass(cls: type[T], d: dict[str, Any], where: str) -> T:
    """Instantiate dataclass ``cls`` from a plain dict, checking names and types recursively."""
    if not isinstance(d, dict):
        raise ValueError(f"config section {where or 'root'} must be a table, got {d!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls) if f.init}
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ValueError(
            f"unknown config field(s) {', '.join(where + k for k in unknown)} "
            f"(known: {', '.join(sorted(known))})"
        )
    kwargs = {}
    for name, f in known.items():
        if name not in d:
            if f.default is MISSING and f.default_factory is MISSING:
                raise ValueError(f"config field {where}{name} is required")
            continue
        kwargs[name] = _coerce(hints[name], d[name], f"{where}{name}")
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """``value`` as type ``tp`` (dataclass, int, float, bool, str, list, optional)."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where)
    if is_dataclass(tp):
        return build_dataclass(tp, value, where + ".")
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"config field {where} must be a table, got {value!r}")
        _, arg = typing.get_args(tp)
        return {str(k): _coerce(arg, v, f"{where}.{k}") for k, v in value.items()}
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ValueError(f"config field {where} must be a list, got {value!r}")
        (arg, *_) = typing.get_args(tp) or (Any,)
        items = [_coerce(arg, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"config field {where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"config field {where} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"config field {where} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"config field {where} must be a string, got {value!r}")
        return value
    return value
