"""Zoo specs: the phase grid a zoo is trained on, loadable from TOML and stored with the zoo.

A spec crosses a **load-like** axis (model width, or training-set fraction) with a
**temperature-like** axis (learning rate, batch size or weight decay), with ``seeds`` models per
grid cell, for each task. Every model has its own seed (``cell * seeds + s``) unless
``shared_init`` is set, in which case seed ``s`` of every cell starts from the same initialization
(a controlled comparison across cells, but the zoo's nets are then near-aligned in raw weights,
which hides what canonicalization does). Models that share one parameter layout (task x
architecture x width) form a *population*; :meth:`ZooSpec.plan` lists the populations and every
model's hyperparameters.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from zoo.architectures import FAMILIES, Architecture, architecture_from_dict
from zoo.tasks import check_task_name
from zoo.training import TrainConfig

LOAD_AXES = ("width", "data_fraction")
TEMPERATURE_AXES = ("learning_rate", "batch_size", "weight_decay")
HPARAM_NAMES = (
    "seed", "width", "data_fraction", "learning_rate", "batch_size", "weight_decay",
    "load_index", "temperature_index", "cell",
)  # fmt: skip


class SpecError(ValueError):
    """An invalid zoo spec; the message names the offending field."""


@dataclass(frozen=True)
class Axis:
    name: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class Training:
    """Defaults for every model; the temperature axis (and a width load axis) override one field."""

    optimizer: str = "sgd"
    learning_rate: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64
    schedule: str = "cosine"
    width: int = 32  # the width when the load axis is data_fraction


@dataclass(frozen=True)
class PopulationPlan:
    """One population of a spec: its architecture and per-model hyperparameters, {name: (M,)}."""

    name: str
    task: str
    arch: Architecture
    hparams: dict[str, np.ndarray]

    @property
    def num_models(self) -> int:
        return len(self.hparams["seed"])


@dataclass(frozen=True)
class ZooSpec:
    name: str
    tasks: tuple[str, ...]
    architecture: dict
    load: Axis
    temperature: Axis
    seeds: int = 3
    shared_init: bool = False  # seed s of every cell shares its initialization and batch order
    epochs: int = 20
    checkpoints: tuple[int, ...] = ()
    training: Training = field(default_factory=Training)
    split_seed: int = 0
    models_per_chunk: int = 0  # models per Dask task (and Zarr shard); 0 = automatic
    data_root: str | None = None  # local folder of torchvision-style datasets (not compared)
    task_sources: dict = field(default_factory=dict)  # {task: {"file": path, ...}} file tasks
    heldout_tasks: tuple[str, ...] = ()  # built and stored, left out of generators' training

    def __post_init__(self) -> None:
        if not self.checkpoints:
            object.__setattr__(self, "checkpoints", (0, self.epochs))
        self.validate()

    # ---- validation -------------------------------------------------------------------------
    def validate(self) -> None:
        if not self.tasks:
            raise SpecError("spec has no tasks")
        family = self.architecture.get("family")
        if family not in FAMILIES:
            raise SpecError(f"unknown architecture {family!r} (known: {', '.join(FAMILIES)})")
        if self.load.name not in LOAD_AXES:
            raise SpecError(f"unknown load axis {self.load.name!r} (known: {', '.join(LOAD_AXES)})")
        if self.temperature.name not in TEMPERATURE_AXES:
            raise SpecError(
                f"unknown temperature axis {self.temperature.name!r} (known: {', '.join(TEMPERATURE_AXES)})"
            )
        for axis in (self.load, self.temperature):
            if not axis.values:
                raise SpecError(f"empty grid: the {axis.name} axis has no values")
            if len(set(axis.values)) != len(axis.values):
                raise SpecError(f"the {axis.name} axis repeats a value: {list(axis.values)}")
            if any(not math.isfinite(v) or v < 0 for v in axis.values):
                raise SpecError(f"the {axis.name} axis has a negative or non-finite value")
        positive = {"width", "batch_size", "learning_rate", "data_fraction"}
        for axis in (self.load, self.temperature):
            if axis.name in positive and any(v <= 0 for v in axis.values):
                raise SpecError(f"non-positive {axis.name} in grid: {list(axis.values)}")
            if axis.name in ("width", "batch_size") and any(v != int(v) for v in axis.values):
                raise SpecError(f"{axis.name} values must be integers: {list(axis.values)}")
        if self.load.name == "data_fraction" and any(v > 1 for v in self.load.values):
            raise SpecError(f"data_fraction values must be in (0, 1]: {list(self.load.values)}")
        if self.training.width <= 0 or self.training.batch_size <= 0:
            raise SpecError("training.width and training.batch_size must be positive")
        if self.seeds < 2:
            raise SpecError(
                f"seeds per cell must be >= 2 (pair metrics compare seeds), got {self.seeds}"
            )
        check_task_table(self.tasks, self.task_sources, self.heldout_tasks)
        if self.models_per_chunk < 0:
            raise SpecError("models_per_chunk must be >= 0 (0 = automatic)")
        try:
            self.train_config()
        except ValueError as e:
            raise SpecError(str(e)) from None

    def resolve(self) -> ZooSpec:
        """Check that the tasks exist here and the architecture builds for them; returns self.

        Separate from :meth:`validate` because a stored spec must stay readable in a process
        where a user task was not registered.
        """
        try:
            self.register_file_tasks()
            from zoo.spec_checks import count_params

            for plan_arch in self._archs():
                count_params(plan_arch)  # builds on the meta device: bad settings, no memory
        except SpecError:
            raise
        except ValueError as e:
            raise SpecError(str(e)) from None
        except FileNotFoundError as e:
            raise SpecError(str(e)) from None
        return self

    # ---- derived ------------------------------------------------------------------------------
    def train_config(self) -> TrainConfig:
        t = self.training
        return TrainConfig(
            self.epochs, tuple(self.checkpoints), t.optimizer, t.momentum, t.schedule
        )

    def widths(self) -> list[int]:
        return (
            [int(v) for v in self.load.values]
            if self.load.name == "width"
            else [self.training.width]
        )

    def register_file_tasks(self) -> None:
        """Read the spec's file tasks and register them in this process (see
        :mod:`zoo.tasks.files`); a name registered with other data is refused."""
        load_file_tasks(self.task_sources, self.split_seed)

    def _archs(self) -> list[Architecture]:
        from zoo.tasks import get_task

        for t in self.tasks:
            check_task_name(t)
        archs = []
        for task in self.tasks[:1]:
            data = get_task(task, seed=self.split_seed, data_root=self.data_root)
            for w in self.widths()[:1]:
                archs.append(self.arch_for(data.input_shape, data.num_outputs, w))
        return archs

    def arch_for(self, input_shape: tuple[int, ...], num_outputs: int, width: int) -> Architecture:
        d = {k: v for k, v in self.architecture.items()}
        family = d["family"]
        if family == "transformer":
            d.setdefault("seq_len", input_shape[0])
            d.setdefault("num_outputs", num_outputs)
            d.setdefault("vocab", num_outputs + 1)
        else:
            d["in_shape"] = tuple(input_shape)
            d["num_outputs"] = num_outputs
        d["width"] = int(width)
        return architecture_from_dict(d)

    def model_seed(self, cell: int, s: int) -> int:
        """Seed (initialization and batch order) of the s-th model of grid cell ``cell``."""
        return s if self.shared_init else cell * self.seeds + s

    def plan(self) -> list[PopulationPlan]:
        """Populations (task x width) with every model's hyperparameters."""
        from zoo.tasks import get_task

        self.register_file_tasks()
        plans = []
        for task in self.tasks:
            data = get_task(task, seed=self.split_seed, data_root=self.data_root)
            for width in self.widths():
                arch = self.arch_for(data.input_shape, data.num_outputs, width)
                rows = []
                load_idx = (
                    [self.widths().index(width)]
                    if self.load.name == "width"
                    else range(len(self.load.values))
                )
                for li in load_idx:
                    for ti, tv in enumerate(self.temperature.values):
                        cell = li * len(self.temperature.values) + ti
                        for s in range(self.seeds):
                            h = {
                                "seed": self.model_seed(cell, s), "width": width,
                                "data_fraction": 1.0,
                                "learning_rate": self.training.learning_rate,
                                "batch_size": self.training.batch_size,
                                "weight_decay": self.training.weight_decay,
                                "load_index": li, "temperature_index": ti,
                                "cell": cell,
                            }  # fmt: skip
                            if self.load.name == "data_fraction":
                                h["data_fraction"] = self.load.values[li]
                            h[self.temperature.name] = tv
                            rows.append(h)
                hp = {k: np.array([r[k] for r in rows]) for k in HPARAM_NAMES}
                for k in ("seed", "width", "batch_size", "load_index", "temperature_index", "cell"):
                    hp[k] = hp[k].astype(np.int64)
                for k in ("data_fraction", "learning_rate", "weight_decay"):
                    hp[k] = hp[k].astype(np.float64)
                plans.append(PopulationPlan(population_name(task, arch), task, arch, hp))
        return plans

    # ---- (de)serialization ----------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d["tasks"] = list(self.tasks)
        d["heldout_tasks"] = list(self.heldout_tasks)
        d["checkpoints"] = list(self.checkpoints)
        d["load"] = {"axis": self.load.name, "values": list(self.load.values)}
        d["temperature"] = {"axis": self.temperature.name, "values": list(self.temperature.values)}
        return d

    @classmethod
    def from_dict(cls, d: dict, resolve: bool = True) -> ZooSpec:
        """Build and validate a spec; ``resolve`` also checks its tasks and architecture here."""
        spec = cls._from_dict(d)
        return spec.resolve() if resolve else spec

    @classmethod
    def from_stored(cls, d: dict) -> ZooSpec:
        """The spec recorded in a store. Stores written before ``shared_init`` existed gave seed s
        of every cell one initialization, so a record without the field means ``shared_init``;
        resuming such a store with a per-model-seed spec is then refused, not silently mixed."""
        return cls.from_dict({"shared_init": True, **d}, resolve=False)

    @classmethod
    def _from_dict(cls, d: dict, base: Path | None = None) -> ZooSpec:
        from zoo.spec_checks import check_spec_dict

        check_spec_dict(d)  # types, ranges, unknown keys: before anything is built
        d = dict(d)
        if "tasks" in d:
            d.update(parse_tasks(d["tasks"], d.get("heldout_tasks", ()), base))
            d["task_sources"] = {**d.get("task_sources", {}), **d.pop("_sources")}
        try:  # unknown and missing fields: refused by check_spec_dict
            d["load"] = _axis(d["load"], "load")
            d["temperature"] = _axis(d["temperature"], "temperature")
            tr = dict(d.get("training", {}))
            bad = set(tr) - {f.name for f in fields(Training)}
            if bad:
                raise SpecError(f"unknown training field(s): {', '.join(sorted(bad))}")
            d["training"] = Training(**tr)
            d["checkpoints"] = tuple(int(c) for c in d.get("checkpoints", ()))
            if not isinstance(d["architecture"], dict):
                raise SpecError("architecture must be a table with a 'family' key")
            return cls(**d)
        except TypeError as e:
            raise SpecError(f"bad spec: {e}") from None

    @classmethod
    def from_toml(cls, path: str | Path, **overrides: object) -> ZooSpec:
        """Read a spec file; ``overrides`` replace top-level fields (e.g. ``data_root``)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"spec file not found: {path}")
        try:
            d = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise SpecError(f"{path}: not valid TOML ({e})") from None
        spec = cls._from_dict({**d, **overrides}, base=path.parent)
        return spec.resolve()

    def diff(self, other: ZooSpec) -> list[str]:
        """Names of top-level fields in which two specs differ (``data_root`` is a location, not
        part of the experiment, so it is not compared)."""
        a, b = self.to_dict(), other.to_dict()
        return [k for k in a if k != "data_root" and a[k] != b.get(k)]


def _axis(d: dict, where: str) -> Axis:
    if not isinstance(d, dict) or "axis" not in d or "values" not in d:
        raise SpecError(f"[{where}] needs 'axis' and 'values'")
    return Axis(str(d["axis"]), tuple(float(v) for v in d["values"]))


def population_name(task: str, arch: Architecture) -> str:
    slug = re.sub(r"[^A-Za-z0-9.-]+", "_", task).strip("_")
    return f"{slug}-{arch.family}-w{arch.width}"


def parse_tasks(tasks: object, heldout: object, base: Path | None) -> dict:
    """The ``tasks`` entry of a spec: a list of names, or a table ``[tasks.NAME]`` whose entries
    are empty (a built-in task), name a file (``file = "data.npz"``, see
    :mod:`zoo.tasks.files`; paths relative to the spec file) and may say ``heldout = true``.
    -> {"tasks": names, "heldout_tasks": names, "_sources": {name: file options}}."""
    from zoo.tasks.files import FILE_OPTIONS

    if isinstance(heldout, str) or not isinstance(heldout, list | tuple):
        raise SpecError(f"heldout_tasks must be a list of task names, got {heldout!r}")
    held, sources = [str(h) for h in heldout], {}
    if isinstance(tasks, str):
        return {"tasks": (tasks,), "heldout_tasks": tuple(held), "_sources": {}}
    if isinstance(tasks, list | tuple):
        if not all(isinstance(t, str) for t in tasks):
            raise SpecError("tasks must be a list of task names or a [tasks.NAME] table")
        return {"tasks": tuple(tasks), "heldout_tasks": tuple(held), "_sources": {}}
    if not isinstance(tasks, dict):
        raise SpecError("tasks must be a list of task names or a [tasks.NAME] table")
    for name, opts in tasks.items():
        if not isinstance(opts, dict):
            raise SpecError(f"[tasks.{name}] must be a table (empty for a built-in task)")
        unknown = set(opts) - set(FILE_OPTIONS) - {"heldout"}
        if unknown:
            raise SpecError(
                f"[tasks.{name}]: unknown field(s) {', '.join(sorted(unknown))} "
                f"(known: {', '.join((*FILE_OPTIONS, 'heldout'))})"
            )
        if opts.get("heldout", False) is True and name not in held:
            held.append(name)
        source = {k: v for k, v in opts.items() if k != "heldout"}
        if source and "file" not in source:
            raise SpecError(f"[tasks.{name}] has {', '.join(source)} but no file")
        for key in ("file", "test_file"):
            if key in source:
                p = Path(str(source[key])).expanduser()
                source[key] = str((base / p if base and not p.is_absolute() else p).resolve())
        if source:
            sources[str(name)] = source
    return {
        "tasks": tuple(str(t) for t in tasks),
        "heldout_tasks": tuple(held),
        "_sources": sources,
    }


def check_task_table(tasks: tuple[str, ...], sources: dict, heldout: tuple[str, ...]) -> None:
    """SpecError unless file tasks and held-out tasks are tasks of the spec, and some task is
    not held out."""
    if len(set(tasks)) != len(tasks):
        raise SpecError(f"tasks repeat a name: {list(tasks)}")
    for what, names in (("task file", sources), ("heldout_tasks", heldout)):
        extra = [n for n in names if n not in tasks]
        if extra:
            raise SpecError(f"{what} names {extra[0]!r}, which is not one of the spec's tasks")
    if heldout and set(heldout) >= set(tasks):
        raise SpecError("every task is held out: a generator would have nothing to train on")


def load_file_tasks(sources: dict, split_seed: int) -> None:
    """Read and register every file task of a spec (checked against what is registered)."""
    from zoo.tasks import register_data, task_from_file

    for name, opts in sources.items():
        try:
            register_data(task_from_file(name, seed=split_seed, **opts))
        except TypeError as e:
            raise SpecError(f"[tasks.{name}]: {e}") from None
