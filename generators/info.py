"""What a trained generator keeps of its dataset: groups, split, normalization, property stats,
and the training nets themselves.

Saved with the generator (JSON + the normalizer's tensors and the training nets' weights in
safetensors) so that sampling needs no zoo (best-of-k with ``select="novel"`` compares candidates
with the training nets), and evaluation can find the exact training and held-out models again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
from torch import Tensor

from generators.config import DataConfig, build_dataclass
from generators.dataset import Group, WeightDataset, group_tasks, group_widths
from generators.normalization import Normalizer
from generators.padding import PaddedLayout
from zoo.task_store import TASK_TENSORS, register_task_tensors, task_tensors

TRAIN_WEIGHTS = "train_weights"  # safetensors key prefix: train_weights.<group>


@dataclass
class DatasetInfo:
    """groups: conditioning classes; group_props[g]: the training models' property values;
    train_origin / heldout_origin: (population, row) of the models in each split;
    train_weights[g]: (M_g, N_g) unpadded weights of group g's training models (in the
    generator's weight space: canonical or raw), empty for generators saved before they were
    kept."""

    groups: list[Group]
    data: DataConfig
    prop_mean: float
    prop_std: float
    group_props: list[list[float]]
    train_origin: list[tuple[str, int]]
    heldout_origin: list[tuple[str, int]]
    normalizer: Normalizer
    train_weights: list[Tensor] = field(default_factory=list)
    task_records: list[dict[str, Any]] = field(default_factory=list)  # its arrays tasks
    task_data: dict[str, Tensor] = field(default_factory=dict)  # task.<i>.<split>
    zoo_fingerprint: str = ""  # Zoo.fingerprint of the zoo trained on; "" for older run dirs

    @classmethod
    def from_dataset(cls, ds: WeightDataset) -> DatasetInfo:
        props = [ds.prop[ds.group_rows(g, True)] for g in range(len(ds.groups))]
        # the registered / file tasks it learnt (and held out): sampling in another process
        # needs their validation data, and no built-in rebuilds them
        records, task_data = task_tensors(sorted({*ds.tasks, *(ds.config.heldout_tasks or [])}))
        return cls(
            groups=list(ds.groups), data=ds.config, prop_mean=ds.prop_mean, prop_std=ds.prop_std,
            group_props=[[float(v) for v in p[torch.isfinite(p)]] for p in props],
            train_origin=[o for o, t in zip(ds.origin, ds.train.tolist(), strict=True) if t],
            heldout_origin=[o for o, t in zip(ds.origin, ds.train.tolist(), strict=True) if not t],
            normalizer=ds.normalizer,
            train_weights=[ds.group_weights(g, True).clone() for g in range(len(ds.groups))],
            task_records=records, task_data=task_data,
            zoo_fingerprint=ds.zoo_fingerprint,
        )  # fmt: skip

    @cached_property
    def padded(self) -> PaddedLayout:
        return PaddedLayout(tuple(g.arch.layout for g in self.groups))

    @cached_property
    def tasks(self) -> list[str]:
        return group_tasks(self.groups)

    @cached_property
    def widths(self) -> list[int]:
        return group_widths(self.groups)

    @property
    def has_property(self) -> bool:
        return bool(self.data.property) and any(self.group_props)

    def find_group(self, task: str | None, width: int | None) -> int | None:
        """Index of the group for (task, width) (defaults: the only task, its widest width), or
        None where the generator has no such group (an unseen task or width, or no task named
        where it knows several)."""
        if task is None:
            if len(self.tasks) > 1:
                return None
            task = self.tasks[0]
        widths = sorted(g.width for g in self.groups if g.task == task)
        if not widths:
            return None
        width = widths[-1] if width is None else int(width)
        for i, g in enumerate(self.groups):
            if g.task == task and g.width == width:
                return i
        return None

    def resolve(self, task: str | None, width: int | None) -> int:
        """Index of the group for (task, width); defaults: the only task, the widest width."""
        if task is None:
            if len(self.tasks) > 1:
                raise ValueError(
                    f"this generator knows several tasks ({', '.join(self.tasks)}): pass task="
                )
            task = self.tasks[0]
        if task not in self.tasks:
            raise ValueError(
                f"unknown task {task!r} for this generator (trained on: {', '.join(self.tasks)})"
            )
        widths = sorted(g.width for g in self.groups if g.task == task)
        width = widths[-1] if width is None else int(width)
        for i, g in enumerate(self.groups):
            if g.task == task and g.width == width:
                return i
        raise ValueError(
            f"width {width} is not available for task {task!r} "
            f"(trained widths: {', '.join(map(str, widths))})"
        )

    def check_zoo(self, fingerprint: str, location: str) -> None:
        """A ValueError unless ``fingerprint`` (:meth:`zoo.store.Zoo.fingerprint`) is the zoo this
        generator was trained on; generators saved before fingerprints were kept pass."""
        if self.zoo_fingerprint and fingerprint and fingerprint != self.zoo_fingerprint:
            raise ValueError(
                f"{location} is not the zoo this generator was trained on (fingerprint "
                f"{fingerprint}, trained on {self.zoo_fingerprint})"
            )

    def standardize(self, values: Tensor) -> Tensor:
        return (values - self.prop_mean) / self.prop_std

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": [g.to_dict() for g in self.groups],
            "data": self.data.__dict__,
            "prop_mean": self.prop_mean,
            "prop_std": self.prop_std,
            "group_props": self.group_props,
            "train_origin": [list(o) for o in self.train_origin],
            "heldout_origin": [list(o) for o in self.heldout_origin],
            "tasks": self.task_records,
            "zoo_fingerprint": self.zoo_fingerprint,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], tensors: dict[str, Tensor]) -> DatasetInfo:
        """The saved info; registers the tasks it carries in this process (checked against the
        tasks registered here by fingerprint)."""
        records = list(d.get("tasks", []))
        task_data = {k: v for k, v in tensors.items() if k.startswith(f"{TASK_TENSORS}.")}
        register_task_tensors(records, task_data, "a saved generator")
        return cls(
            groups=[Group.from_dict(g) for g in d["groups"]],
            data=build_dataclass(DataConfig, d["data"], "data."),
            prop_mean=float(d["prop_mean"]), prop_std=float(d["prop_std"]),
            group_props=[list(map(float, p)) for p in d["group_props"]],
            train_origin=[(str(a), int(b)) for a, b in d["train_origin"]],
            heldout_origin=[(str(a), int(b)) for a, b in d["heldout_origin"]],
            normalizer=Normalizer.from_state_dict(tensors),
            train_weights=[tensors[f"{TRAIN_WEIGHTS}.{g}"] for g in range(len(d["groups"]))
                           if f"{TRAIN_WEIGHTS}.{g}" in tensors],
            task_records=records, task_data=task_data,
            zoo_fingerprint=str(d.get("zoo_fingerprint", "")),
        )  # fmt: skip

    def tensors(self) -> dict[str, Tensor]:
        """The tensors saved with the generator: the normalizer's and the training nets'."""
        out = dict(self.normalizer.state_dict())
        out.update({f"{TRAIN_WEIGHTS}.{g}": w for g, w in enumerate(self.train_weights)})
        out.update(self.task_data)
        return out

    def draw_prompts(self, g: int | None, n: int, rng: torch.Generator) -> Tensor:
        """(n,) property values to prompt group g with, drawn (with replacement) from its training
        models' values (the mean of all groups' where it has none); g None (a draw outside the
        training groups): from every group's values."""
        values = [v for p in self.group_props for v in p] if g is None else self.group_props[g]
        pool = torch.tensor(values or [self.prop_mean])
        return pool[torch.randint(len(pool), (n,), generator=rng)]

    def training_nets(self, g: int) -> Tensor:
        """(M_g, N_g) weights of group g's training models, or a ValueError for a generator
        saved without them."""
        if g >= len(self.train_weights):
            raise ValueError(
                "this generator was saved without its training nets (an older run dir): "
                "train it again to select novel candidates"
            )
        return self.train_weights[g]
