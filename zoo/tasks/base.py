"""Tasks: named datasets with deterministic train / val / test splits, built offline.

A task name is ``family`` or ``family:key=value,key=value`` (e.g. ``sinusoid:amplitude=2,phase=0.5``).
Built-in families live in :mod:`zoo.tasks.builtin` and :mod:`zoo.tasks.vision`; users add their
own tensors with :func:`register_task`. A :class:`TaskData` is plain tensors, so it can be sent to
Dask workers in other processes: builds ship the data, workers never need the registry.

Lookup order of :func:`get_task`: tasks registered in this process, then tasks read from a zoo
store (or a saved generator) opened in this process (:func:`register_stored`, called when a
``Zoo`` is opened), then the built-in families. A name is bound to one content fingerprint per
process: registering it again with other data, or opening a store whose task of that name holds
other data, is refused in one line naming both fingerprints.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from zoo.tasks.fingerprint import task_fingerprint
from zoo.tasks.split import stratified_val

TaskKind = Literal["classification", "regression"]


@dataclass
class TaskData:
    """Split tensors of one task. x: (N, *input_shape); y: (N,) long labels or (N, outputs) float."""

    name: str
    kind: TaskKind
    num_outputs: int
    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    x_test: Tensor
    y_test: Tensor
    params: dict[str, float] = field(default_factory=dict)

    @cached_property
    def fingerprint(self) -> str:
        """Content fingerprint (see :mod:`zoo.tasks.fingerprint`); the tensors are read-only."""
        return task_fingerprint(self)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def input_dtype(self) -> torch.dtype:
        return self.x_train.dtype

    def split(self, which: str) -> tuple[Tensor, Tensor]:
        if which not in ("train", "val", "test"):
            raise ValueError(f"unknown split {which!r} (train, val, test)")
        return getattr(self, f"x_{which}"), getattr(self, f"y_{which}")


Builder = Callable[..., TaskData]
_BUILTIN: dict[str, Builder] = {}
_USER: dict[str, TaskData] = {}
_BUILT: dict[
    tuple[str, int, str | None], TaskData
] = {}  # built-in tasks are built once per process


@dataclass
class StoredTask:
    """A task known from a store (or a saved generator): its fingerprint, where it was read,
    and how to load its tensors (loaded on first use)."""

    fingerprint: str
    origin: str
    load: Callable[[], TaskData]
    data: TaskData | None = None

    def get(self) -> TaskData:
        if self.data is None:
            data = self.load()
            if data.fingerprint != self.fingerprint:
                raise ValueError(
                    f"task {data.name!r} in {self.origin}: its data (fingerprint "
                    f"{data.fingerprint}) do not match the fingerprint stored with them "
                    f"({self.fingerprint})"
                )
            self.data = data
        return self.data


_STORED: dict[str, StoredTask] = {}


def register_stored(name: str, fingerprint: str, origin: str, load: Callable[[], TaskData]) -> None:
    """Make a task read from ``origin`` (a store or run dir) available by name in this process.

    Refused (ValueError) when the name is registered, or known from another store, with data of
    another fingerprint.
    """
    if name in _USER and _USER[name].fingerprint != fingerprint:
        raise ValueError(
            f"task {name!r}: the task registered in this process (fingerprint "
            f"{_USER[name].fingerprint}) differs from the one stored in {origin} "
            f"(fingerprint {fingerprint})"
        )
    known = _STORED.get(name)
    if known is not None and known.fingerprint != fingerprint:
        raise ValueError(
            f"task {name!r}: {known.origin} holds data of fingerprint {known.fingerprint}, "
            f"{origin} of fingerprint {fingerprint}; one process reads one task per name"
        )
    if known is None and name not in _USER:
        _STORED[name] = StoredTask(fingerprint, origin, load)


def user_task(name: str) -> TaskData | None:
    """The task registered (or read from a store) under ``name`` in this process, else None:
    what a store or a generator must carry, because no built-in rebuilds it."""
    if name in _USER:
        return _USER[name]
    if name in _STORED:
        return _STORED[name].get()
    return None


def builtin(name: str) -> Callable[[Builder], Builder]:
    """Decorator registering a built-in task family ``name``; the builder takes (seed, **params)."""

    def deco(fn: Builder) -> Builder:
        _BUILTIN[name] = fn
        return fn

    return deco


def parse_task_name(name: str) -> tuple[str, dict[str, float]]:
    family, _, rest = name.partition(":")
    params: dict[str, float] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"task {name!r}: parameter {item!r} is not key=value")
        try:
            params[key.strip()] = float(value)
        except ValueError:
            raise ValueError(f"task {name!r}: parameter {key!r} is not a number") from None
    return family.strip(), params


def known_tasks() -> list[str]:
    return sorted(_BUILTIN) + sorted(set(_USER) | set(_STORED))


def check_task_name(name: str) -> None:
    """Raise ValueError unless ``name`` is a built-in family or a registered task."""
    family, _ = parse_task_name(name)
    if name not in _USER and name not in _STORED and family not in _BUILTIN:
        raise ValueError(f"unknown task {name!r} (known: {', '.join(known_tasks())})")


def get_task(name: str, seed: int = 0, data_root: str | None = None) -> TaskData:
    """Build (or look up) task ``name`` with splits drawn from ``seed``.

    The returned tensors are shared by every caller in the process: treat them as read-only.
    """
    if name in _USER:
        return _USER[name]
    if name in _STORED:
        return _STORED[name].get()
    check_task_name(name)
    key = (name, seed, data_root)
    if key not in _BUILT:
        family, params = parse_task_name(name)
        try:
            data = _BUILTIN[family](seed=seed, data_root=data_root, **params)
        except TypeError as e:
            raise ValueError(f"task {name!r}: {e}") from None
        data.name = name
        _BUILT[key] = data
    return _BUILT[key]


def split_arrays(
    x: np.ndarray, y: np.ndarray, seed: int, val: float = 0.1, test: float = 0.2,
    small_floor: bool = True,
) -> tuple[np.ndarray, ...]:  # fmt: skip
    """Deterministic split -> (x_train, y_train, x_val, y_val, x_test, y_test).

    A seeded permutation; its first ``test`` share is the test split; validation is drawn from
    the rest by the rule of :mod:`zoo.tasks.split` (stratified by class for integer labels,
    ``val`` of the data on large sets).
    """
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(test * len(x)))
    te, pool = order[:n_test], order[n_test:]
    share = val * len(x) / max(len(pool), 1)
    classification = np.issubdtype(np.asarray(y).dtype, np.integer)
    tr, va = stratified_val(np.asarray(y)[pool], share, classification, small_floor)
    tr, va = pool[tr], pool[va]
    return x[tr], y[tr], x[va], y[va], x[te], y[te]


def task_from_arrays(
    name: str, x: np.ndarray, y: np.ndarray, seed: int, kind: TaskKind, num_outputs: int,
    params: dict[str, float] | None = None, val: float = 0.1, test: float = 0.2,
    small_floor: bool = True,
) -> TaskData:  # fmt: skip
    parts = split_arrays(x, y, seed, val, test, small_floor)
    ydtype = torch.long if kind == "classification" else torch.float32
    xt = [torch.as_tensor(p) for p in parts[0::2]]
    yt = [torch.as_tensor(p).to(ydtype) for p in parts[1::2]]
    return TaskData(name, kind, num_outputs, xt[0], yt[0], xt[1], yt[1], xt[2], yt[2], params or {})


def register_task(
    name: str, x_train: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor,
    val_fraction: float = 0.1, seed: int = 0, x_val: Tensor | None = None,
    y_val: Tensor | None = None, kind: TaskKind | None = None,
) -> str:  # fmt: skip
    """Make user tensors usable by name in a zoo spec (in this process and, shipped, on workers).

    Integer labels make a classification task; float targets a regression task (``kind`` states
    it instead). Without ``x_val``/``y_val``, the validation split is carved from the training
    data with ``seed`` by the rule of :mod:`zoo.tasks.split` (stratified by class, ``val_fraction``
    of it, at least 20% of a training set under 1,000 examples and 5 examples per class).
    ``zoo build`` stores the task with the zoo, so later processes read it from there.
    Registering a name again with other data is refused, as is a name whose data differ from a
    store opened in this process.
    """
    data = task_from_tensors(
        name, x_train, y_train, x_test, y_test, val_fraction, seed, x_val, y_val, kind
    )
    return register_data(data)


def register_data(data: TaskData) -> str:
    """Register a built :class:`TaskData` under ``data.name`` (the checks of
    :func:`register_task`); returns the name."""
    name = data.name
    if name in _BUILTIN or parse_task_name(name)[0] in _BUILTIN:
        raise ValueError(f"task name {name!r} is taken by a built-in task")
    if name in _USER and _USER[name].fingerprint != data.fingerprint:
        raise ValueError(
            f"task {name!r} is already registered with other data (fingerprint "
            f"{_USER[name].fingerprint}, these data {data.fingerprint}); use another name"
        )
    if name in _STORED and _STORED[name].fingerprint != data.fingerprint:
        raise ValueError(
            f"task {name!r}: these data (fingerprint {data.fingerprint}) differ from the task "
            f"stored in {_STORED[name].origin} (fingerprint {_STORED[name].fingerprint})"
        )
    _USER.setdefault(name, data)
    return name


def task_from_tensors(
    name: str, x_train: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor,
    val_fraction: float = 0.1, seed: int = 0, x_val: Tensor | None = None,
    y_val: Tensor | None = None, kind: TaskKind | None = None,
) -> TaskData:  # fmt: skip
    """A :class:`TaskData` from a user's splits (see :func:`register_task`), not registered."""
    if (x_val is None) != (y_val is None):
        raise ValueError(f"task {name!r}: give both x_val and y_val, or neither")
    if kind not in (None, "classification", "regression"):
        raise ValueError(f"task {name!r}: kind must be classification or regression, got {kind!r}")
    x_train, y_train = torch.as_tensor(x_train), torch.as_tensor(y_train)
    x_test, y_test = torch.as_tensor(x_test), torch.as_tensor(y_test)
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise ValueError(f"task {name!r}: inputs and targets differ in length")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(f"task {name!r}: train and test inputs differ in shape")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"task {name!r}: val_fraction must be in [0, 1), got {val_fraction}")
    classification = not torch.is_floating_point(y_train) if kind is None else (
        kind == "classification")  # fmt: skip
    if classification and torch.is_floating_point(y_train):
        if not (torch.equal(y_train, y_train.round()) and torch.equal(y_test, y_test.round())):
            raise ValueError(f"task {name!r}: classification labels must be whole numbers")
    if x_val is None:
        order = np.random.default_rng(seed).permutation(len(x_train))
        tr, va = stratified_val(y_train.numpy()[order], val_fraction, classification)
        tr, va = torch.as_tensor(order[tr]), torch.as_tensor(order[va])
        x_train, y_train, x_val, y_val = x_train[tr], y_train[tr], x_train[va], y_train[va]
    x_val, y_val = torch.as_tensor(x_val), torch.as_tensor(y_val)
    if len(x_val) != len(y_val):
        raise ValueError(f"task {name!r}: inputs and targets differ in length")
    if x_val.shape[1:] != x_train.shape[1:]:
        raise ValueError(f"task {name!r}: train and validation inputs differ in shape")
    ys = [y_train, y_val, y_test]
    if classification:
        ys = [y.long() for y in ys]
        if min(int(y.min()) for y in ys if len(y)) < 0:
            raise ValueError(f"task {name!r}: class labels must be >= 0")
        num_outputs = max(int(y.max()) for y in ys if len(y)) + 1
    else:
        ys = [y.float()[:, None] if y.dim() == 1 else y.float() for y in ys]  # (N, outputs)
        num_outputs = ys[0].shape[1]
    xs = [x_train, x_val, x_test]
    if torch.is_floating_point(x_train):
        xs = [x.float() for x in xs]
    task_kind: TaskKind = "classification" if classification else "regression"
    return TaskData(name, task_kind, num_outputs, xs[0], ys[0], xs[1], ys[1], xs[2], ys[2])
