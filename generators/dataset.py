"""WeightDataset: the models a generator learns from, padded, split and normalized.

Built from one or more populations, either in memory (:class:`zoo.population.Population` or
``(arch, weights (M, N), task)``) or read from a zoo store. Only finished models are kept
(status done, finite weights), and of those the ones that pass the data filter of
:class:`generators.config.DataConfig` (``exclude_phases``, e.g. the ``collapsed`` nets that
predict a constant; ``min_val_acc``). Models of one task and one architecture form a *group*,
the unit of conditioning (task x width); every group is split into training and held-out models
by a seeded permutation, and the held-out models are recorded with the generator for evaluation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from generators.config import DataConfig
from generators.normalization import Normalizer
from generators.padding import PaddedLayout
from zoo.architectures import Architecture, architecture_from_dict
from zoo.finite import finite_rows
from zoo.landscape.phases import COLLAPSE_STD, PHASE_CODES
from zoo.population import Population
from zoo.tasks import get_task
from zoo.training import Status, evaluate

PopulationLike = Population | tuple[Architecture, Tensor, str]


@dataclass(frozen=True)
class Group:
    """One conditioning class: the models of one task with one architecture (hence one width)."""

    task: str
    arch: Architecture
    sources: tuple[str, ...]

    @property
    def width(self) -> int:
        return self.arch.width

    @property
    def key(self) -> str:
        return f"{self.task}/w{self.width}"

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "arch": self.arch.to_dict(), "sources": list(self.sources)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Group:
        return cls(d["task"], architecture_from_dict(d["arch"]), tuple(d["sources"]))


def group_tasks(groups: list[Group]) -> list[str]:
    """Sorted distinct tasks of conditioning groups: the task ids the generator embeds."""
    return sorted({g.task for g in groups})


def group_widths(groups: list[Group]) -> list[int]:
    """Sorted distinct widths of conditioning groups: the width ids the generator embeds."""
    return sorted({g.width for g in groups})


@dataclass
class WeightBatch:
    """A training batch. x: (B, D) normalized padded weights; mask: (B, D) real coordinates;
    group, task, width: (B,) long ids; prop: (B,) standardized property (0 where unknown);
    has_prop: (B,) bool."""

    x: Tensor
    mask: Tensor
    group: Tensor
    task: Tensor
    width: Tensor
    prop: Tensor
    has_prop: Tensor


@dataclass
class Source:
    """The usable rows of one population: weights (M, N), property (M,), rows: index in it;
    filtered: how many usable models the data filter (``exclude_phases``, ``min_val_acc``) left
    out; recipes: (M,) each row's training recipe (its hyperparameters but the seed, as JSON),
    empty when the population does not record them; canonical: the ``zoo canonicalize`` method
    that made canonical weights read from a store ("" for raw or in-memory weights)."""

    name: str
    task: str
    arch: Architecture
    weights: Tensor
    prop: Tensor
    rows: list[int]
    filtered: int = 0
    recipes: list[str] = field(default_factory=list)
    canonical: str = ""


@dataclass
class WeightDataset:
    """Padded weights (M, D) of every kept model with group ids (M,), property (M,), split (M,).

    origin[m] = (population name, row in that population). ``normalizer`` holds the statistics
    of the training models; ``prop_mean``/``prop_std`` standardize the property. filtered: per
    population, the usable models the data filter (``config.exclude_phases``, ``min_val_acc``)
    left out. recipe: (M,) id of each model's training recipe (population and hyperparameters
    but the seed: models with one id are replicates), -1 where unknown (in-memory populations).
    canonical: per population, the method that made its canonical weights ("" if none: raw or
    in-memory weights), for generators that need one (NeuMeta: ``smooth``).
    """

    groups: list[Group]
    padded: PaddedLayout
    weights: Tensor
    group: Tensor
    prop: Tensor
    train: Tensor
    origin: list[tuple[str, int]]
    config: DataConfig = field(default_factory=DataConfig)
    filtered: dict[str, int] = field(default_factory=dict)
    recipe: Tensor | None = None
    canonical: dict[str, str] = field(default_factory=dict)
    zoo_fingerprint: str = ""  # Zoo.fingerprint of the store read (from_zoo), "" in memory

    def __post_init__(self) -> None:
        if self.recipe is None:
            self.recipe = torch.full((len(self.weights),), -1, dtype=torch.long)
        tr = self.train
        self.normalizer = Normalizer.fit(
            self.weights[tr], self.group[tr], self.padded.masks, self.padded.union,
            self.config.normalization,
        )  # fmt: skip
        known = self.prop[tr][torch.isfinite(self.prop[tr])]
        self.prop_mean = float(known.mean()) if len(known) else 0.0
        self.prop_std = float(known.std()) if len(known) > 1 else 1.0
        self.prop_std = self.prop_std if self.prop_std > 1e-8 else 1.0

    # ----- construction -------------------------------------------------------------------
    @classmethod
    def from_populations(
        cls, populations: Sequence[PopulationLike], config: DataConfig | None = None
    ) -> WeightDataset:
        config = config or DataConfig()
        if not populations:
            raise ValueError("a weight dataset needs at least one population")
        pops = [as_population(p, i) for i, p in enumerate(populations)]
        names = [p.name for p in pops]
        if len(set(names)) != len(names):
            raise ValueError(f"population names must be unique, got {names}")
        pops = without_heldout_tasks(pops, config.heldout_tasks or [])
        return cls.from_sources([read_source(p, config) for p in pops], config)

    @classmethod
    def from_zoo(
        cls, zoo: Any, populations: Sequence[str] | None = None, config: DataConfig | None = None
    ) -> WeightDataset:
        """All (or the named) populations of a store (a path/URL or an opened ``Zoo``)."""
        from zoo.store import open_zoo

        z = open_zoo(zoo) if isinstance(zoo, str | Path) else zoo
        config = config or DataConfig()
        if config.heldout_tasks is None:  # the zoo's held-out tasks, recorded with the generator
            config = replace(config, heldout_tasks=list(z.spec.heldout_tasks))
        names = list(populations) if populations else list(z.populations)
        missing = [n for n in names if n not in z.populations]
        if missing:
            raise ValueError(
                f"no population {missing[0]!r} in {z.location} (has: {', '.join(z.populations)})"
            )
        ds = cls.from_populations([z.populations[n] for n in names], config)
        ds.zoo_fingerprint = z.fingerprint()
        return ds

    @classmethod
    def from_sources(cls, sources: list[Source], config: DataConfig) -> WeightDataset:
        keys: dict[tuple[str, str], int] = {}
        members: list[list[Source]] = []
        for s in sources:
            key = (s.task, json.dumps(s.arch.to_dict(), sort_keys=True))
            if key not in keys:
                keys[key] = len(members)
                members.append([])
            members[keys[key]].append(s)
        groups = [Group(m[0].task, m[0].arch, tuple(s.name for s in m)) for m in members]
        padded = PaddedLayout(tuple(g.arch.layout for g in groups))
        rows, gid, props, origin, recipe = [], [], [], [], []
        recipe_ids: dict[tuple[str, str], int] = {}
        for g, ms in enumerate(members):
            for s in ms:
                rows.append(padded.pad(s.weights, g))
                gid.append(torch.full((len(s.rows),), g, dtype=torch.long))
                props.append(s.prop)
                origin += [(s.name, r) for r in s.rows]
                keys = s.recipes or [None] * len(s.rows)
                recipe += [-1 if k is None else recipe_ids.setdefault((s.name, k), len(recipe_ids))
                           for k in keys]  # fmt: skip
        group = torch.cat(gid)
        return cls(
            groups, padded, torch.cat(rows), group, torch.cat(props).float(),
            split_models(group, config.heldout, config.split_seed, config.folds, config.fold),
            origin, config,
            {s.name: s.filtered for s in sources}, torch.tensor(recipe, dtype=torch.long),
            {s.name: s.canonical for s in sources},
        )  # fmt: skip

    def with_split(
        self, train_origin: Sequence[tuple[str, int]], config: DataConfig | None = None
    ) -> WeightDataset:
        """The same models with the training set given by origin (to restore a saved split);
        ``config``: the data config to record instead of this dataset's (one that reads the
        same models, e.g. another fold's)."""
        wanted = {(str(a), int(b)) for a, b in train_origin}
        have = set(self.origin)
        if not wanted <= have:
            gone = sorted(wanted - have)[:3]
            raise ValueError(f"the generator's training models {gone} are not in this zoo")
        train = torch.tensor([o in wanted for o in self.origin])
        return replace(self, train=train, config=config or self.config)

    def with_fold(self, folds: int, fold: int) -> WeightDataset:
        """The same models split as fold ``fold`` of ``folds``: what reading the zoo again with
        ``data.folds`` and ``data.fold`` set gives (the split depends on nothing else), without
        reading it again."""
        config = replace(self.config, folds=folds, fold=fold)
        train = split_models(self.group, config.heldout, config.split_seed, folds, fold)
        return replace(self, train=train, config=config)

    def reads_like(self, config: DataConfig) -> bool:
        """Whether ``config`` keeps the same models as this dataset's config: the two differ in
        the fold at most. Unset ``heldout_tasks`` (None) means the zoo's, which this dataset
        has resolved."""
        if config.heldout_tasks is None:
            config = replace(config, heldout_tasks=self.config.heldout_tasks)
        return replace(self.config, fold=0) == replace(config, fold=0)

    # ----- views --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.weights)

    @cached_property
    def tasks(self) -> list[str]:
        return group_tasks(self.groups)

    @cached_property
    def widths(self) -> list[int]:
        return group_widths(self.groups)

    @cached_property
    def group_task(self) -> Tensor:
        """(G,) task id of every group."""
        return torch.tensor([self.tasks.index(g.task) for g in self.groups])

    @cached_property
    def group_width(self) -> Tensor:
        """(G,) width id of every group."""
        return torch.tensor([self.widths.index(g.width) for g in self.groups])

    @property
    def dim(self) -> int:
        return self.padded.dim

    @cached_property
    def normalized(self) -> Tensor:
        """(M, D) standardized weights of every model."""
        return self.normalizer.normalize(self.weights, self.group)

    @cached_property
    def train_index(self) -> Tensor:
        return torch.nonzero(self.train).flatten()

    def standardize_prop(self, values: Tensor) -> Tensor:
        return (values - self.prop_mean) / self.prop_std

    def conditioning_prop(self, values: Tensor) -> tuple[Tensor, Tensor]:
        """Raw property values (B,) -> (standardized, 0 where unknown (B,); known (B,) bool)."""
        has = torch.isfinite(values)
        return torch.where(has, self.standardize_prop(values), 0.0), has

    def batch(self, index: Tensor) -> WeightBatch:
        """The models at ``index`` (B,) as a training batch."""
        g = self.group[index]
        prop, has = self.conditioning_prop(self.prop[index])
        return WeightBatch(
            self.normalized[index], self.padded.masks[g], g, self.group_task[g],
            self.group_width[g], prop, has,
        )  # fmt: skip

    def random_batch(self, size: int, generator: torch.Generator) -> WeightBatch:
        """``size`` training models drawn uniformly with replacement."""
        pick = torch.randint(len(self.train_index), (size,), generator=generator)
        return self.batch(self.train_index[pick])

    def group_rows(self, g: int, train: bool) -> Tensor:
        """Row indices of group ``g``'s training (or held-out) models."""
        return torch.nonzero((self.group == g) & (self.train if train else ~self.train)).flatten()

    def group_weights(self, g: int, train: bool) -> Tensor:
        """(M_g, N_g) unpadded weights of group ``g``'s training or held-out models."""
        return self.padded.crop(self.weights[self.group_rows(g, train)], g)


def as_population(p: PopulationLike, i: int) -> Population:
    if isinstance(p, Population):
        return p
    if isinstance(p, tuple) and len(p) == 3:
        arch, weights, task = p
        return Population(arch, torch.as_tensor(weights, dtype=torch.float32), task, f"pop{i}")
    raise ValueError(f"expected a Population or (arch, weights, task), got {type(p).__name__}")


def without_heldout_tasks(pops: list[Population], heldout: Sequence[str]) -> list[Population]:
    """The populations whose task is not held out (``data.heldout_tasks``); a ValueError if
    none is left."""
    kept = [p for p in pops if p.task not in set(heldout)]
    if not kept:
        raise ValueError(
            f"data.heldout_tasks ({', '.join(heldout)}) leaves out every population: "
            "nothing to train on"
        )
    return kept


def read_source(pop: Population, config: DataConfig) -> Source:
    """The usable models of ``pop``: done (stored populations) and finite."""
    stored = hasattr(pop, "status") and hasattr(pop, "metrics")
    method = ""
    if stored:
        w = pop.weights(checkpoint=config.checkpoint, canonical=config.canonical)
        method = str(pop.canonical_info.get("method", "")) if config.canonical else ""
        keep = torch.as_tensor(np.asarray(pop.status) == Status.DONE)
    else:
        w = pop.weights()
        keep = torch.ones(len(w), dtype=torch.bool)
    if pop.task is None:
        raise ValueError(f"population {pop.name} has no task recorded")
    if w.dim() != 2 or w.shape[1] != pop.arch.num_params:
        raise ValueError(
            f"population {pop.name}: weights of shape {tuple(w.shape)} do not match the "
            f"layout ({pop.arch.num_params} parameters)"
        )
    keep &= finite_rows(w).to(keep.device)
    rows = torch.nonzero(keep).flatten()
    if len(rows) == 0:
        raise ValueError(f"population {pop.name} has no usable models (done, finite weights)")
    usable = len(rows)
    rows, w = select_rows(pop, config, w[rows].float(), rows)
    prop = property_values(pop, config, w, rows)
    return Source(pop.name, pop.task, pop.arch, w, prop, rows.tolist(), usable - len(rows),
                  training_recipes(pop, rows), method)  # fmt: skip


def training_recipes(pop: Population, rows: Tensor) -> list[str]:
    """Each of ``rows``' training recipe: its hyperparameters but the seed, as sorted JSON (so
    that models of one grid cell, trained alike but for the seed, share a key). Empty for
    populations without recorded hyperparameters (in-memory ones)."""
    hp = getattr(pop, "hparams", None)
    if not hp:
        return []
    names = sorted(k for k in hp if k != "seed")
    return [json.dumps({k: np.asarray(hp[k])[r].item() for k in names}) for r in rows.tolist()]


def phase_codes(pop: Population) -> np.ndarray:
    """(M,) per-model phase codes (``zoo.landscape.phases.PHASES``) of a population.

    Stored populations: ``<population>/phase``, written by the landscape stage (``zoo metrics``);
    in-memory ones: ``conditioning["phase"]``. Neither is a ValueError.
    """
    group = getattr(pop, "group", None)
    if group is not None and "phase" in group:
        return np.asarray(group["phase"][:]).astype(np.int64)
    if "phase" in pop.conditioning:
        return np.asarray(pop.conditioning["phase"]).astype(np.int64)
    raise ValueError(
        f"data.exclude_phases needs phase labels, but population {pop.name} has none: run "
        "`zoo metrics STORE` (the landscape stage) first, or set data.exclude_phases = []"
    )


def constant_predictors(pop: Population) -> np.ndarray:
    """(M,) bool: models that predict a constant, by their own output std (``metrics/output_std``
    of the landscape stage, below the phase taxonomy's ``COLLAPSE_STD``).

    Phases are labelled per grid cell, and a cell is ``collapsed`` only when all its models are:
    a lone collapsed net in a cell of phase I is still a net that predicts a constant. Models
    without the metric (in-memory populations) are not flagged."""
    metrics = getattr(pop, "metrics", None) or {}  # stored populations only
    if "output_std" not in metrics:
        return np.zeros(len(pop), dtype=bool)
    return np.asarray(metrics["output_std"], dtype=np.float64) < COLLAPSE_STD


def select_rows(
    pop: Population, config: DataConfig, w: Tensor, rows: Tensor
) -> tuple[Tensor, Tensor]:
    """The usable ``rows`` (weights ``w``, (len(rows), N)) that pass the data filter (weight
    norm, phase and min_val_acc), with their weights."""
    if config.max_norm_ratio > 0 and len(rows):
        norm = w.double().norm(dim=1)  # (M,) the same in raw and canonical weights
        small = norm <= config.max_norm_ratio * norm.median()
        rows, w = rows[small], w[small]
    if config.exclude_phases:
        codes = phase_codes(pop)
        if len(codes) != len(pop):
            raise ValueError(
                f"population {pop.name} has {len(codes)} phase labels for {len(pop)} models"
            )
        excluded = [PHASE_CODES[name] for name in config.exclude_phases]
        keep = ~np.isin(codes[rows.numpy()], excluded)
        if "collapsed" in config.exclude_phases:
            keep &= ~constant_predictors(pop)[rows.numpy()]
        keep = torch.from_numpy(keep)
        rows, w = rows[keep], w[keep]
    if config.min_val_acc > 0 and len(rows):
        acc = property_values(pop, replace(config, property="val_acc"), w, rows)
        if torch.isnan(acc).all():
            raise ValueError(
                f"data.min_val_acc: population {pop.name} has no validation accuracy "
                "(a regression task?); set data.min_val_acc = 0"
            )
        good = acc >= config.min_val_acc  # NaN (untrained) fails the test
        rows, w = rows[good], w[good]
    if len(rows) == 0:
        raise ValueError(
            f"the data filter (exclude_phases={config.exclude_phases}, min_val_acc="
            f"{config.min_val_acc}, max_norm_ratio={config.max_norm_ratio}) leaves no models of "
            f"population {pop.name} ({pop.task}, width {pop.arch.width}): relax the filter or "
            "leave the population out"
        )
    return rows, w


def property_values(pop: Population, config: DataConfig, w: Tensor, rows: Tensor) -> Tensor:
    """(M,) values of the conditioning property (NaN if none is configured)."""
    name = config.property
    if not name:
        return torch.full((len(rows),), math.nan)
    metrics = getattr(pop, "metrics", None)
    if isinstance(metrics, dict) and name in metrics:
        v = np.asarray(metrics[name])
        v = v[:, -1 if config.canonical else config.checkpoint] if v.ndim == 2 else v
        return torch.as_tensor(v, dtype=torch.float32)[rows]
    if name in pop.conditioning:
        return torch.as_tensor(pop.conditioning[name], dtype=torch.float32)[rows]
    if is_measurable(name):
        return measure_property(name, pop.arch, pop.task, w)
    raise ValueError(
        f"population {pop.name} has no property {name!r} (set data.property to e.g. val_acc, "
        'or to "" for none)'
    )


def is_measurable(name: str) -> bool:
    """Whether a property is a metric of the weights alone (``{train,val,test}_{acc,loss}``)."""
    split, _, what = name.partition("_")
    return split in ("train", "val", "test") and what in ("acc", "loss")


def measure_property(name: str, arch: Architecture, task: str, w: Tensor) -> Tensor:
    """(M,) measured property ``name`` (see :func:`is_measurable`) of the models w (M, N)."""
    if not is_measurable(name):
        raise ValueError(f"property {name!r} cannot be measured from weights")
    split, _, what = name.partition("_")
    loss, acc = evaluate(arch, get_task(task), w, split)
    return acc if what == "acc" else loss


def split_models(group: Tensor, heldout: float, seed: int, folds: int = 0, fold: int = 0) -> Tensor:
    """(M,) bool training mask. Per group, in a seeded order: the first ``heldout`` share is held
    out, or with ``folds`` = K >= 2 every K-th model from position ``fold`` (fold ``fold`` of K,
    so the K folds hold out each model once). At least one model of a group always trains."""
    train = torch.ones(len(group), dtype=torch.bool)
    for g in group.unique().tolist():
        rows = torch.nonzero(group == g).flatten()
        order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(seed + 7919 * g))
        if folds:
            held = order[fold::folds]
            held = held if len(held) < len(rows) else held[:-1]
        else:
            held = order[: min(int(round(heldout * len(rows))), len(rows) - 1)]
        train[rows[held]] = False
    return train
