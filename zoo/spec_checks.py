"""One validation pass over a zoo spec, before any work or any write.

:func:`check_spec_dict` checks the raw table as read from TOML or a store: known keys, types
(an integer where one belongs, ``true``/``false`` for flags: the string ``"false"`` is refused,
not read as true) and ranges (seeds >= 2, 0 <= momentum < 1, weight decay >= 0, checkpoints
increasing within [0, epochs], ...). Each top-level field has one check in :data:`FIELD_CHECKS`;
:func:`register_field_check` adds or replaces one (a ``tasks`` table, say).

:func:`size_estimate` / :func:`check_size` estimate what a spec costs without building anything
big (parameters counted on PyTorch's meta device): stored weights (parameters x models x kept
checkpoints), the training memory of one chunk, and training work; above the limits below a
spec is refused unless forced.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

# Limits of an unforced build (``--force`` lifts them). A build past these is almost surely a
# typo (a width of 1e5, epochs = 1e20); they are far above every shipped preset (the default
# zoo: 11 MB of weights, ~50 MB per chunk in training, ~1e11 FLOPs).
MAX_STORE_BYTES = 16 * 2**30  # stored weights, all populations
MAX_TRAIN_BYTES = 8 * 2**30  # training memory of one chunk (weights, grads, optimizer, activations)
MAX_TRAIN_FLOPS = 1e15  # ~6 x parameters x samples x epochs x models: a day on a few cores
MAX_TASK_SAMPLES = 10**7  # a task's ``num_samples`` parameter (procedural tasks)

TOP_FIELDS = (
    "name", "tasks", "architecture", "load", "temperature", "seeds", "shared_init", "epochs",
    "checkpoints", "training", "split_seed", "models_per_chunk", "data_root",
)  # fmt: skip
TRAINING_FIELDS = ("optimizer", "learning_rate", "momentum", "weight_decay", "batch_size",
                   "schedule", "width")  # fmt: skip


def _fail(msg: str) -> None:
    from zoo.spec import SpecError

    raise SpecError(msg)


def _int(v: Any, where: str, low: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        _fail(f"spec field {where} must be an integer, got {v!r}")
    if low is not None and v < low:
        _fail(f"spec field {where} must be >= {low}, got {v}")
    return v


def _num(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        _fail(f"spec field {where} must be a finite number, got {v!r}")
    return float(v)


def _str(v: Any, where: str) -> str:
    if not isinstance(v, str) or not v.strip():
        _fail(f"spec field {where} must be a non-empty string, got {v!r}")
    return v


def _bool(v: Any, where: str) -> bool:
    if not isinstance(v, bool):
        _fail(f"spec field {where} must be true or false, got {v!r}")
    return v


def check_tasks(v: Any) -> None:
    """A task name, a list of them (``name:key=value`` with numeric values) or a
    ``[tasks.NAME]`` table of tables (its entries: :func:`zoo.spec.parse_tasks`)."""
    from zoo.tasks.base import parse_task_name

    names = [v] if isinstance(v, str) else v
    if isinstance(v, dict):
        bad = [k for k, opts in v.items() if not isinstance(opts, dict)]
        if bad:
            _fail(f"spec field [tasks.{bad[0]}] must be a table (empty for a built-in task)")
        names = list(v)
    if not isinstance(names, list | tuple) or not names:
        _fail(f"spec field tasks must be a task name or a non-empty list of them, got {v!r}")
    for i, t in enumerate(names):
        _str(t, f"tasks[{i}]")
        _, params = parse_task_name(t)
        n = params.get("num_samples")
        if n is not None and not 1 <= n <= MAX_TASK_SAMPLES:
            _fail(f"task {t!r}: num_samples must be in [1, {MAX_TASK_SAMPLES:g}], got {n:g}")


def check_architecture(v: Any) -> None:
    """A table with a known ``family``; its other settings positive integers."""
    from zoo.architectures import FAMILIES

    if not isinstance(v, dict) or "family" not in v:
        _fail("spec field architecture must be a table with a 'family' key")
    if v["family"] not in FAMILIES:
        _fail(f"unknown architecture {v['family']!r} (known: {', '.join(FAMILIES)})")
    cls = FAMILIES[v["family"]]
    known = set(cls.__dataclass_fields__) - {"width", "in_shape", "num_outputs"}
    unknown = sorted(set(v) - known - {"family", "width", "in_shape", "num_outputs"})
    if unknown:
        _fail(f"unknown architecture field(s) {', '.join(unknown)} for {v['family']} "
              f"(known: {', '.join(sorted(known))})")  # fmt: skip
    for k, x in v.items():
        if k in ("family", "in_shape"):
            continue
        _int(x, f"architecture.{k}", 1)


def _check_axis(v: Any, where: str) -> None:
    if not isinstance(v, dict) or set(v) != {"axis", "values"}:
        _fail(f"spec field {where} must be a table with exactly 'axis' and 'values'")
    _str(v["axis"], f"{where}.axis")
    values = v["values"]
    if not isinstance(values, list | tuple):
        _fail(f"spec field {where}.values must be a list of numbers, got {values!r}")
    if not values:
        _fail(f"empty grid: the {where} axis has no values")
    for i, x in enumerate(values):
        _num(x, f"{where}.values[{i}]")


def check_training(v: Any) -> None:
    if not isinstance(v, dict):
        _fail(f"spec field training must be a table, got {v!r}")
    unknown = sorted(set(v) - set(TRAINING_FIELDS))
    if unknown:
        _fail(f"unknown training field(s): {', '.join(unknown)}")
    for k in ("optimizer", "schedule"):
        if k in v:
            _str(v[k], f"training.{k}")
    if "learning_rate" in v and not _num(v["learning_rate"], "training.learning_rate") > 0:
        _fail(f"spec field training.learning_rate must be > 0, got {v['learning_rate']}")
    if "momentum" in v and not 0 <= _num(v["momentum"], "training.momentum") < 1:
        _fail(f"spec field training.momentum must be in [0, 1), got {v['momentum']}")
    if "weight_decay" in v and _num(v["weight_decay"], "training.weight_decay") < 0:
        _fail(f"spec field training.weight_decay must be >= 0, got {v['weight_decay']}")
    for k in ("batch_size", "width"):
        if k in v:
            _int(v[k], f"training.{k}", 1)


def _check_checkpoints(v: Any) -> None:
    if not isinstance(v, list | tuple):
        _fail(f"spec field checkpoints must be a list of epochs, got {v!r}")
    for i, c in enumerate(v):
        _int(c, f"checkpoints[{i}]", 0)
    if any(b <= a for a, b in zip(v, v[1:], strict=False)):
        _fail(f"spec field checkpoints must be strictly increasing epochs, got {list(v)}")


def _check_seeds(v: Any) -> None:
    if _int(v, "seeds") < 2:
        _fail(f"seeds per cell must be >= 2 (pair metrics compare seeds), got {v}")


def _str_list(v: Any, where: str) -> None:
    if isinstance(v, str) or not isinstance(v, list | tuple):
        _fail(f"spec field {where} must be a list of task names, got {v!r}")
    for i, t in enumerate(v):
        _str(t, f"{where}[{i}]")


def _table(v: Any, where: str) -> None:
    if not isinstance(v, dict):
        _fail(f"spec field {where} must be a table, got {v!r}")


def _optional_str(v: Any, where: str) -> None:
    if v is not None:
        _str(v, where)


FieldCheck = Callable[[Any], None]
FIELD_CHECKS: dict[str, FieldCheck] = {
    "name": lambda v: _str(v, "name"),
    "tasks": check_tasks,
    "architecture": check_architecture,
    "load": lambda v: _check_axis(v, "load"),
    "temperature": lambda v: _check_axis(v, "temperature"),
    "seeds": _check_seeds,
    "shared_init": lambda v: _bool(v, "shared_init"),
    "epochs": lambda v: _int(v, "epochs", 1),
    "checkpoints": _check_checkpoints,
    "training": check_training,
    "split_seed": lambda v: _int(v, "split_seed", 0),
    "models_per_chunk": lambda v: _int(v, "models_per_chunk", 0),
    "data_root": lambda v: _optional_str(v, "data_root"),
    "heldout_tasks": lambda v: _str_list(v, "heldout_tasks"),
    "task_sources": lambda v: _table(v, "task_sources"),
}


def register_field_check(name: str, check: FieldCheck) -> None:
    """Add (or replace) the check of top-level spec field ``name``; ``check`` raises
    :class:`zoo.spec.SpecError` with a one-line message naming the field."""
    FIELD_CHECKS[name] = check


def check_spec_dict(d: Any) -> None:
    """Check a raw spec table (TOML or stored) before anything is built from it."""
    if not isinstance(d, dict):
        _fail(f"a zoo spec must be a table, got {type(d).__name__}")
    unknown = sorted(set(d) - set(FIELD_CHECKS))
    if unknown:
        _fail(f"unknown spec field(s): {', '.join(unknown)} (known: {', '.join(FIELD_CHECKS)})")
    for req in ("name", "tasks", "architecture", "load", "temperature"):
        if req not in d:
            _fail(f"spec is missing the required field {req!r}")
    for name, value in d.items():
        FIELD_CHECKS[name](value)
    epochs = d.get("epochs", 20)
    bad = [c for c in d.get("checkpoints", ()) if c > epochs]
    if bad:
        _fail(
            f"spec field checkpoints must be epochs in [0, {epochs}], got {list(d['checkpoints'])}"
        )


@dataclass(frozen=True)
class SizeEstimate:
    """What building a spec costs: stored bytes, the largest chunk's training memory, FLOPs."""

    store_bytes: float
    train_bytes: float
    flops: float
    largest: str  # the population with the largest chunk

    def problems(self) -> list[str]:
        out = []
        if self.store_bytes > MAX_STORE_BYTES:
            out.append(f"stored weights {_gib(self.store_bytes)} > {_gib(MAX_STORE_BYTES)}")
        if self.train_bytes > MAX_TRAIN_BYTES:
            out.append(f"training memory {_gib(self.train_bytes)} per chunk ({self.largest}) > "
                       f"{_gib(MAX_TRAIN_BYTES)}")  # fmt: skip
        if self.flops > MAX_TRAIN_FLOPS:
            out.append(f"training work {self.flops:.2g} FLOPs > {MAX_TRAIN_FLOPS:.0e}")
        return out


def _gib(b: float) -> str:
    return f"{b / 2**30:.3g} GiB"


def count_params(arch) -> int:
    """Parameters of ``arch`` counted on the meta device: nothing is allocated."""
    with torch.device("meta"):
        module = arch.build()
    return sum(p.numel() for p in module.parameters())


def size_estimate(spec) -> SizeEstimate:
    """Estimate ``spec``'s store size, per-chunk training memory and training FLOPs."""
    from zoo.tasks import get_task

    store = train = flops = 0.0
    largest = ""
    c = len(spec.checkpoints)
    for task in spec.tasks:
        data = get_task(task, seed=spec.split_seed, data_root=spec.data_root)
        n_train = len(data.split("train")[0])
        per_width = len(spec.load.values) if spec.load.name != "width" else 1
        models = per_width * len(spec.temperature.values) * spec.seeds
        for width in spec.widths():
            arch = spec.arch_for(data.input_shape, data.num_outputs, width)
            n = count_params(arch)
            store += 4.0 * n * models * c
            k = min(spec.models_per_chunk or 64, models)
            batch = max(int(v) for v in _batch_sizes(spec))
            # weights, grads, momentum, an update temporary, kept checkpoints; activations
            chunk = 4.0 * k * (n * (4 + c) + 4 * batch * width * getattr(arch, "depth", 2))
            if chunk > train:
                train, largest = chunk, f"{task} width {width}"
            flops += 6.0 * n * n_train * spec.epochs * models
    return SizeEstimate(store, train, flops, largest)


def _batch_sizes(spec) -> list[float]:
    if spec.temperature.name == "batch_size":
        return list(spec.temperature.values)
    return [spec.training.batch_size]


def check_size(spec, force: bool = False) -> SizeEstimate:
    """The spec's :class:`SizeEstimate`; a SpecError naming what is over its limit unless
    ``force``."""
    est = size_estimate(spec)
    problems = est.problems()
    if problems and not force:
        _fail(f"spec {spec.name!r} is too large: {'; '.join(problems)} (--force builds it anyway)")
    return est
