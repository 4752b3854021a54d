"""Tasks: named datasets with deterministic train / val / test splits, built offline.

A task name is ``family`` or ``family:key=value,key=value`` (e.g. ``sinusoid:amplitude=2,phase=0.5``).
Built-in families live in :mod:`zoo.tasks.builtin` and :mod:`zoo.tasks.vision`; users add their
own tensors with :func:`register_task`. A :class:`TaskData` is plain tensors, so it can be sent to
Dask workers in other processes: builds ship the data, workers never need the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import Tensor

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
    return sorted(_BUILTIN) + sorted(_USER)


def check_task_name(name: str) -> None:
    """Raise ValueError unless ``name`` is a built-in family or a registered task."""
    family, _ = parse_task_name(name)
    if name not in _USER and family not in _BUILTIN:
        raise ValueError(f"unknown task {name!r} (known: {', '.join(known_tasks())})")


def get_task(name: str, seed: int = 0, data_root: str | None = None) -> TaskData:
    """Build (or look up) task ``name`` with splits drawn from ``seed``.

    The returned tensors are shared by every caller in the process: treat them as read-only.
    """
    if name in _USER:
        return _USER[name]
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
    x: np.ndarray, y: np.ndarray, seed: int, val: float = 0.1, test: float = 0.2
) -> tuple[np.ndarray, ...]:
    """Deterministic shuffled split -> (x_train, y_train, x_val, y_val, x_test, y_test)."""
    order = np.random.default_rng(seed).permutation(len(x))
    n_test, n_val = int(round(test * len(x))), int(round(val * len(x)))
    te, va, tr = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    return x[tr], y[tr], x[va], y[va], x[te], y[te]


def task_from_arrays(
    name: str, x: np.ndarray, y: np.ndarray, seed: int, kind: TaskKind, num_outputs: int,
    params: dict[str, float] | None = None, val: float = 0.1, test: float = 0.2,
) -> TaskData:  # fmt: skip
    parts = split_arrays(x, y, seed, val, test)
    ydtype = torch.long if kind == "classification" else torch.float32
    xt = [torch.as_tensor(p) for p in parts[0::2]]
    yt = [torch.as_tensor(p).to(ydtype) for p in parts[1::2]]
    return TaskData(name, kind, num_outputs, xt[0], yt[0], xt[1], yt[1], xt[2], yt[2], params or {})


def register_task(
    name: str, x_train: Tensor, y_train: Tensor, x_test: Tensor, y_test: Tensor,
    val_fraction: float = 0.1, seed: int = 0,
) -> str:  # fmt: skip
    """Make user tensors usable by name in a zoo spec (in this process and, shipped, on workers).

    Integer labels make a classification task; float targets a regression task. A validation
    split of ``val_fraction`` is carved from the training data with ``seed``.
    """
    if name in _BUILTIN or parse_task_name(name)[0] in _BUILTIN:
        raise ValueError(f"task name {name!r} is taken by a built-in task")
    x_train, y_train = torch.as_tensor(x_train), torch.as_tensor(y_train)
    x_test, y_test = torch.as_tensor(x_test), torch.as_tensor(y_test)
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise ValueError(f"task {name!r}: inputs and targets differ in length")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise ValueError(f"task {name!r}: train and test inputs differ in shape")
    classification = not torch.is_floating_point(y_train)
    if classification:
        num_outputs = int(max(y_train.max(), y_test.max())) + 1
        y_train, y_test = y_train.long(), y_test.long()
    else:
        y_train, y_test = y_train.float(), y_test.float()
        num_outputs = 1 if y_train.dim() == 1 else y_train.shape[1]
    if torch.is_floating_point(x_train):
        x_train, x_test = x_train.float(), x_test.float()
    order = torch.as_tensor(np.random.default_rng(seed).permutation(len(x_train)))
    n_val = int(round(val_fraction * len(x_train)))
    va, tr = order[:n_val], order[n_val:]
    kind: TaskKind = "classification" if classification else "regression"
    _USER[name] = TaskData(
        name, kind, num_outputs, x_train[tr], y_train[tr], x_train[va], y_train[va], x_test, y_test
    )
    return name
