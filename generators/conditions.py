"""What a draw is conditioned on, and where it lands.

:class:`Conditions` is what a user asks for (a task, a width, a property value, a task's data or
parameters); each generator kind declares which of these fields it takes (``accepts``) and
refuses the others. :class:`Resolved` is the network the draw produces: its architecture (the
layout of the weights), its task name and, when (task, width) is one the generator trained on,
the index of that training group. :class:`Request` is what a kind's ``_sample`` receives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from torch import Tensor

from zoo.architectures import Architecture

DATA_TASK = "task-data"  # the task name of draws conditioned on data alone


@dataclass(frozen=True)
class Conditions:
    """task: a task name; width: the width of the nets; target: the conditioning property's value
    (``data.property``, e.g. a validation accuracy); task_data: (x (S, *input_shape), y (S,))
    examples of a task; task_params: a task's parameters (e.g. a sinusoid's amplitude, phase)."""

    task: str | None = None
    width: int | None = None
    target: float | None = None
    task_data: tuple[Tensor, Tensor] | None = None
    task_params: dict[str, float] | None = None

    def __post_init__(self) -> None:
        if self.width is not None and (isinstance(self.width, bool) or int(self.width) < 1):
            raise ValueError(f"width must be a positive integer, got {self.width!r}")
        if self.target is not None and not math.isfinite(float(self.target)):
            raise ValueError(f"target must be a finite number, got {self.target}")
        if self.task_data is not None:
            if not isinstance(self.task_data, tuple | list) or len(self.task_data) != 2:
                raise ValueError("task_data must be a pair (x, y) of tensors")
            x, y = self.task_data
            if len(x) != len(y) or len(x) == 0:
                raise ValueError(
                    f"task_data needs as many labels as examples (>= 1), got {len(x)} and {len(y)}"
                )
        if self.task_params is not None:
            bad = {k: v for k, v in self.task_params.items() if not math.isfinite(float(v))}
            if bad:
                raise ValueError(f"task_params must be finite numbers, got {bad}")

    def given(self) -> list[str]:
        """The names of the fields that are set."""
        return [f.name for f in fields(self) if getattr(self, f.name) is not None]


@dataclass(frozen=True)
class Resolved:
    """Where a draw lands. arch: the architecture whose layout the weights follow; task: the task
    name of the population (``DATA_TASK`` for data alone); group: the index of the generator's
    training group (task, width), or None for a task or width it did not train on."""

    arch: Architecture
    task: str
    group: int | None = None


@dataclass
class Request:
    """What a kind's ``_sample`` receives. target: (n,) property values, one per draw, or None;
    conditions: what the user asked for (task data, parameters, ...)."""

    resolved: Resolved
    target: Tensor | None
    conditions: Conditions

    @property
    def arch(self) -> Architecture:
        return self.resolved.arch

    @property
    def task(self) -> str:
        return self.resolved.task

    @property
    def group(self) -> int | None:
        return self.resolved.group

    def require_group(self) -> int:
        """The training group's index, or a ValueError for a draw outside them."""
        if self.resolved.group is None:
            raise ValueError(
                f"task {self.task!r} at width {self.arch.width} is not one this generator "
                "trained on"
            )
        return self.resolved.group

    def subset(self, target: Tensor | None) -> Request:
        """The same request with other per-draw property values (a round of candidates)."""
        return Request(self.resolved, target, self.conditions)
