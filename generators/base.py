"""The interface every generator kind implements (flow, gaussian, diffusion, hyper, neumeta).

Life cycle: ``prepare(dataset)`` derives everything data-dependent (normalization, projections,
conditioning vocabulary) and builds a fresh network; training minimises ``training_loss(index,
rng)`` over batches of training-model indices, either with :meth:`WeightGenerator.fit` (a plain
loop) or under Lightning (``pipelines.generator_training``), which call the same methods with the
same per-step seeds and therefore train the same weights; ``sample(n, task=, width=, seed=, ...)``
draws under typed :class:`~generators.conditions.Conditions` and returns a
:class:`zoo.population.Population`; ``save(run_dir)`` writes ``generator.json`` (config + dataset
info + strategy records) and ``generator.safetensors`` (network + statistics), no pickle.

A kind implements: ``network``, ``_prepare``, ``_restore``, ``extra_tensors``,
``training_loss``, ``_sample`` (and, where it takes options, ``check_sample_options``); it
declares the conditions it takes (``accepts``) and may generate beyond its training groups
(``resolve_unseen``). Sampling strategies (best-of-k, the calibrated weight, self-distillation)
are separate components composed over any kind (:mod:`generators.sampling`); a kind's own
speed-ups are optional capabilities (:mod:`generators.coded_draws`). Nothing here knows either.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor, nn

from generators.conditions import Conditions, Request, Resolved
from generators.config import GeneratorConfig
from generators.dataset import WeightDataset
from generators.info import DatasetInfo
from generators.run_dir import (
    CONFIG_FILE,
    FORMAT_VERSION,
    WEIGHTS_DIGEST,
    check_tensors,
    read_run_dir,
    write_run_dir,
)
from zoo.population import Population

WARMUP_SHARE = 0.05
# generator.json's own keys; every other key is a strategy's record (self.records)
CORE_KEYS = ("format", "kind", "config", "dataset", WEIGHTS_DIGEST)


def step_generators(seed: int, step: int, rank: int = 0) -> tuple[torch.Generator, torch.Generator]:
    """(index rng, noise rng) of one training step: a function of (seed, step, rank) only, so a
    resumed run draws exactly what an uninterrupted one would have."""
    base = (seed * 1_000_003 + step) * 64 + rank
    return torch.Generator().manual_seed(2 * base), torch.Generator().manual_seed(2 * base + 1)


class ExtraNets(Protocol):
    """Synthetic training nets a round adds to the real ones (self-distillation's draws): weights
    (K, D) padded and unnormalized, group (K,) group ids, prop (K,) measured property. Any object
    with these three tensors will do; a kind that cannot use them ignores them."""

    weights: Tensor
    group: Tensor
    prop: Tensor


class WeightGenerator(ABC):
    """Base class of weight generators; subclasses set ``kind``, ``config_class`` and
    ``accepts``."""

    kind: ClassVar[str] = ""
    config_class: ClassVar[type[GeneratorConfig]] = GeneratorConfig
    # the Conditions fields the kind takes (task, width, target, task_data, task_params)
    accepts: ClassVar[frozenset[str]] = frozenset({"task", "width", "target"})
    # False for kinds fitted in closed form by _prepare: training then runs no optimizer steps
    iterative: ClassVar[bool] = True
    # the `zoo canonicalize` method its canonical training weights must come from (None: any);
    # zoo demo and benchmarks/generators.py give such a kind a copy of the zoo made with it
    canonical_method: ClassVar[str | None] = None

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        config = config if config is not None else self.config_class()
        if not isinstance(config, self.config_class):
            raise ValueError(f"{type(self).__name__} needs a {self.config_class.__name__}")
        self.config = config
        self.info: DatasetInfo | None = None
        # JSON records that sampling strategies attach to a trained generator (the calibrated
        # best-of-k weight, ...), saved as top-level tables of generator.json and voided by a
        # fresh network
        self.records: dict[str, dict[str, Any]] = {}

    # ----- to implement -------------------------------------------------------------------
    @property
    @abstractmethod
    def network(self) -> nn.Module:
        """Every trainable parameter, as one module (saved and restored by name)."""

    @abstractmethod
    def _prepare(self, dataset: WeightDataset, extra: ExtraNets | None = None) -> None:
        """Derive data-dependent state from ``dataset`` (plus ``extra`` training nets, e.g. a
        previous round's chosen samples) and build a fresh network."""

    @abstractmethod
    def _restore(self, tensors: dict[str, Tensor]) -> None:
        """Rebuild the network (untrained) and data-derived state from saved tensors."""

    @abstractmethod
    def extra_tensors(self) -> dict[str, Tensor]:
        """Data-derived tensors to save besides the network and the dataset info."""

    @abstractmethod
    def training_loss(self, index: Tensor, rng: torch.Generator) -> Tensor:
        """Scalar loss on the training models ``index`` (B,) (rows of the training split)."""

    @abstractmethod
    def _sample(
        self, n: int, request: Request, rng: torch.Generator, out: Tensor | None = None,
        **options: Any,
    ) -> Tensor:  # fmt: skip
        """(n, N) weights in ``request.arch``'s layout; ``request.target``: (n,) property values
        or None; ``out``: an (n, N) tensor to write them into (strategies reuse one)."""

    def check_sample_options(self, options: dict[str, Any]) -> None:
        """A ValueError naming any of ``options`` that ``sample`` would not take; the default:
        a generator without options of its own takes none."""
        if options:
            raise ValueError(f"unknown sampling option(s) {sorted(options)} for {self.kind}")

    def resolve_unseen(self, conditions: Conditions) -> Resolved:
        """Where a draw for a (task, width) outside the training groups lands; the default: it
        cannot (a ValueError naming what it trained on). Kinds that generate for new widths or
        tasks override it."""
        info = self.require_info()
        info.resolve(conditions.task, conditions.width)  # raises with the one-line reason
        raise AssertionError("unreachable: resolve found a group")  # pragma: no cover

    # ----- shared -------------------------------------------------------------------------
    @property
    def num_train(self) -> int:
        return len(self.require_info().train_origin)

    @property
    def num_examples(self) -> int:
        """Rows a training step draws from: the training models, plus any synthetic ones a
        generator adds (:mod:`generators.augmentation`)."""
        return self.num_train

    def require_info(self) -> DatasetInfo:
        if self.info is None:
            raise ValueError(f"this {self.kind} generator is not trained yet: call fit() first")
        return self.info

    def prepare(self, dataset: WeightDataset, extra: ExtraNets | None = None) -> None:
        """Fix the dataset (split, statistics) and build a fresh, seeded network; ``extra``:
        synthetic training nets to add (a previous round's chosen samples)."""
        if len(dataset.train_index) == 0:
            raise ValueError("the dataset has no training models")
        self.records = {}  # a fresh network: any earlier record (calibration) is void
        self.config = type(self.config).from_dict(
            {**self.config.to_dict(), "data": vars(dataset.config)}
        )
        self.info = DatasetInfo.from_dataset(dataset)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.training.seed)
            self._prepare(dataset, extra)

    def configure_optimizer(
        self,
    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        """AdamW with a short linear warm-up, then cosine decay to ``final_lr``."""
        tc = self.config.training
        opt = torch.optim.AdamW(
            self.network.parameters(), lr=tc.learning_rate, weight_decay=tc.weight_decay
        )
        warm = max(1, int(WARMUP_SHARE * tc.max_steps))
        floor = tc.final_lr / tc.learning_rate

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            p = min(1.0, (step - warm) / max(1, tc.max_steps - warm))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p))

        return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)

    def train_step_batch(self, step: int, rank: int = 0) -> tuple[Tensor, torch.Generator]:
        """The training-model indices (B,) and the noise rng of step ``step``."""
        idx_rng, noise_rng = step_generators(self.config.training.seed, step, rank)
        index = torch.randint(
            self.num_examples, (self.config.training.batch_size,), generator=idx_rng
        )
        return index, noise_rng

    def fit(
        self, dataset: WeightDataset, max_steps: int | None = None,
        callback: Callable[[int, float], None] | None = None, extra: ExtraNets | None = None,
    ) -> list[float]:  # fmt: skip
        """Prepare on ``dataset`` (plus ``extra`` nets) and train in a plain loop; returns the
        loss of every step. The strategies' training rounds (self-distillation, calibration)
        compose over it: :func:`generators.training_rounds.fit_rounds`."""
        if max_steps is not None:
            self.config = self.config.with_overrides({"training.max_steps": int(max_steps)})
        self.prepare(dataset, extra)
        return self._train_loop(callback)

    def _train_loop(self, callback: Callable[[int, float], None] | None = None) -> list[float]:
        """``config.training.max_steps`` optimizer steps on the prepared network (none for a
        kind fitted in closed form)."""
        net = self.network
        if not self.iterative:
            net.eval()
            return []
        opt, sched = self.configure_optimizer()
        net.train()
        losses = []
        for step in range(self.config.training.max_steps):
            index, rng = self.train_step_batch(step)
            torch.manual_seed(rng.initial_seed())  # dropout draws, as in the Lightning module
            loss = self.training_loss(index, rng)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if self.config.training.grad_clip > 0:
                nn.utils.clip_grad_norm_(net.parameters(), self.config.training.grad_clip)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            if callback is not None:
                callback(step, losses[-1])
        net.eval()
        return losses

    # ----- sampling -----------------------------------------------------------------------
    def conditions(self, **given: Any) -> Conditions:
        """:class:`Conditions` from keyword arguments, refusing (in one line) any field this kind
        does not take."""
        cond = Conditions(**given)
        refused = [f for f in cond.given() if f not in self.accepts]
        if refused:
            raise ValueError(
                f"the {self.kind} generator does not take {', '.join(refused)} "
                f"(it takes: {', '.join(sorted(self.accepts))})"
            )
        info = self.require_info()
        if cond.target is not None and not info.has_property:
            raise ValueError("this generator was trained without a conditioning property")
        return cond

    def resolve(self, conditions: Conditions) -> Resolved:
        """Where draws under ``conditions`` land: a training group where (task, width) is one
        (task defaults to the only one, width to the widest), else :meth:`resolve_unseen`."""
        info = self.require_info()
        g = info.find_group(conditions.task, conditions.width)
        if g is not None and conditions.task_data is None and conditions.task_params is None:
            grp = info.groups[g]
            return Resolved(grp.arch, grp.task, g)
        return self.resolve_unseen(conditions)

    def request(self, n: int, conditions: Conditions, rng: torch.Generator) -> Request:
        """The :class:`Request` of ``n`` draws: the resolved network and (n,) property prompts
        (the target repeated, or drawn from the training nets' values; None without a
        property)."""
        info = self.require_info()
        resolved = self.resolve(conditions)
        target = None
        if info.has_property:
            target = (
                torch.full((n,), float(conditions.target))
                if conditions.target is not None
                else info.draw_prompts(resolved.group, n, rng)
            )
        return Request(resolved, target, conditions)

    @torch.no_grad()
    def sample(
        self, n: int, task: str | None = None, width: int | None = None, seed: int = 0,
        target: float | None = None, task_data: tuple[Tensor, Tensor] | None = None,
        task_params: dict[str, float] | None = None, **options: Any,
    ) -> Population:  # fmt: skip
        """``n`` new networks as a Population (weights (n, N) + layout), plainly drawn.

        task / width: which nets (defaults: the only task, the widest width); target: the
        conditioning property to ask for (``config.data.property``, e.g. a validation accuracy of
        0.95; None draws it from the group's training models); task_data / task_params: a
        task's examples or parameters, for the kinds that take them (``accepts``). Further
        options are kind specific (flow: steps, solver, guidance, ...). Best-of-k and the
        calibrated weight: :func:`generators.sampling.sample`.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be an integer >= 1, got {n!r}")
        self.check_sample_options(options)
        cond = self.conditions(task=task, width=width, target=target, task_data=task_data,
                               task_params=task_params)  # fmt: skip
        rng = torch.Generator().manual_seed(int(seed))
        request = self.request(n, cond, rng)
        self.network.eval()
        weights = self._sample(n, request, rng, **options)
        return self.population(request, weights)

    def population(self, request: Request, weights: Tensor, **extra: Tensor) -> Population:
        """The Population of draws ``weights`` (n, N) for ``request``; ``extra``: per-net
        readings to keep in its conditioning beside the prompts."""
        cond = {"target": request.target} if request.target is not None else {}
        cond.update(extra)
        res = request.resolved
        name = f"generated-{res.task}/w{res.arch.width}"
        return Population(res.arch, weights, res.task, name, cond)

    # ----- persistence --------------------------------------------------------------------
    def save(self, run_dir: str | Path) -> Path:
        info = self.require_info()
        out = Path(run_dir)
        out.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT_VERSION, "kind": self.kind, "config": self.config.to_dict(),
            "dataset": info.to_dict(), **self.records,
        }  # fmt: skip
        tensors = {f"net.{k}": v for k, v in self.network.state_dict().items()}
        tensors.update(info.tensors())
        tensors.update(self.extra_tensors())
        return write_run_dir(out, meta, tensors)  # the weights' digest beside the config

    @classmethod
    def load(cls, run_dir: str | Path) -> WeightGenerator:
        meta, tensors = read_run_dir(run_dir)
        return cls.from_saved(meta, tensors, run_dir)

    @classmethod
    def from_saved(
        cls, meta: dict[str, Any], tensors: dict[str, Tensor], run_dir: str | Path
    ) -> WeightGenerator:
        """The generator a run dir holds, from what :func:`read_run_dir` read of it (``run_dir``
        names it in errors)."""
        if meta["kind"] != cls.kind:
            raise ValueError(f"{run_dir} holds a {meta['kind']!r} generator, not {cls.kind!r}")
        gen = cls(cls.config_class.from_dict(meta["config"]))
        gen.info = DatasetInfo.from_dict(meta["dataset"], tensors)
        gen._restore(tensors)
        check_tensors(gen.network.state_dict(), tensors, run_dir)  # one line, not a traceback
        state = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
        gen.network.load_state_dict(state)
        gen.network.eval()
        records = {k: v for k, v in meta.items() if k not in CORE_KEYS}
        bad = sorted(k for k, v in records.items() if not isinstance(v, dict))
        if bad:
            raise ValueError(f"{run_dir}: {', '.join(bad)} in {CONFIG_FILE} must be tables")
        gen.records = records
        return gen
