"""The generator interface shared by every kind (flow matching, and later diffusion, hyper, ...).

Life cycle: ``prepare(dataset)`` derives everything data-dependent (normalization, projections,
conditioning vocabulary) and builds a fresh network; training minimises ``training_loss(index,
rng)`` over batches of training-model indices, either with :meth:`WeightGenerator.fit` (a plain
loop) or under Lightning (``pipelines.generator_training``), which call the same methods with the
same per-step seeds and therefore train the same weights; ``sample(n, task=, width=, seed=)``
returns a :class:`zoo.population.Population`; ``save(run_dir)`` writes ``generator.json``
(config + dataset info) and ``generator.safetensors`` (network + statistics), no pickle.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from generators.affine_code import AffineCode
from generators.calibration import Calibration, calibrate_weight
from generators.coded_forward import CodedForward
from generators.config import GeneratorConfig
from generators.dataset import WeightDataset
from generators.distillation import Distilled, distill_nets
from generators.info import DatasetInfo
from generators.run_dir import CONFIG_FILE, FORMAT_VERSION, WEIGHTS_FILE, read_run_dir
from generators.selection import (
    DISAGREEMENT_WEIGHT,
    NOVELTY_RULES,
    SELECT_CANDIDATES,
    PromptSelection,
    TrainingNets,
    check_rule,
)
from zoo.population import Population
from zoo.tasks import get_task
from zoo.training import predicted_class, split_outputs

WARMUP_SHARE = 0.05


def step_generators(seed: int, step: int, rank: int = 0) -> tuple[torch.Generator, torch.Generator]:
    """(index rng, noise rng) of one training step: a function of (seed, step, rank) only, so a
    resumed run draws exactly what an uninterrupted one would have."""
    base = (seed * 1_000_003 + step) * 64 + rank
    return torch.Generator().manual_seed(2 * base), torch.Generator().manual_seed(2 * base + 1)


class WeightGenerator(ABC):
    """Base class of weight generators; subclasses set ``kind`` and ``config_class``."""

    kind: ClassVar[str] = ""
    config_class: ClassVar[type[GeneratorConfig]] = GeneratorConfig

    def __init__(self, config: GeneratorConfig | None = None) -> None:
        config = config if config is not None else self.config_class()
        if not isinstance(config, self.config_class):
            raise ValueError(f"{type(self).__name__} needs a {self.config_class.__name__}")
        self.config = config
        self.info: DatasetInfo | None = None
        # the weighted rule's weight, calibrated on the trained generator (config.calibrate)
        self.calibration: Calibration | None = None

    # ----- to implement -------------------------------------------------------------------
    @property
    @abstractmethod
    def network(self) -> nn.Module:
        """Every trainable parameter, as one module (saved and restored by name)."""

    @abstractmethod
    def _prepare(self, dataset: WeightDataset, distilled: Distilled | None = None) -> None:
        """Derive data-dependent state from ``dataset`` (plus the previous round's chosen
        samples, ``distilled``, as extra training nets) and build a fresh network."""

    @abstractmethod
    def _restore(self, tensors: dict[str, Tensor]) -> None:
        """Rebuild the network (untrained) and data-derived state from saved tensors."""

    @abstractmethod
    def extra_tensors(self) -> dict[str, Tensor]:
        """Data-derived tensors to save besides the network and the normalizer."""

    @abstractmethod
    def training_loss(self, index: Tensor, rng: torch.Generator) -> Tensor:
        """Scalar loss on the training models ``index`` (B,) (rows of the training split)."""

    @abstractmethod
    def _sample(self, n: int, group: int, rng: torch.Generator, target: Tensor | None,
                out: Tensor | None = None, codes: Tensor | None = None,
                **options: Any) -> Tensor:  # fmt: skip
        """(n, N_group) weights of ``group``'s layout; ``target``: (n,) property values or None;
        ``out``: an (n, N_group) tensor to write them into (best-of-k reuses one per round);
        ``codes``: an (n, K) tensor to write their codes into, where :meth:`_affine_code` gives
        one for these options."""

    def _sample_codes(
        self, n: int, group: int, rng: torch.Generator, target: Tensor | None, **options: Any
    ) -> Tensor:
        """(n, K) the codes of the draws ``_sample`` makes with the same rng, not decoded: for
        the options where :meth:`_affine_code` gives a code (a ValueError elsewhere)."""
        raise ValueError(f"{type(self).__name__} draws no codes")

    def _affine_code(self, group: int, **options: Any) -> AffineCode | None:
        """How ``_sample(..., **options)`` decodes ``group``'s draws, if as an affine function
        of a short code (:class:`AffineCode`); None, the default: not so."""
        return None

    def check_sample_options(self, options: dict[str, Any]) -> None:
        """A ValueError naming any of ``options`` that ``sample`` would not take; the default:
        a generator without options of its own takes none."""
        if options:
            raise ValueError(f"unknown sampling option(s) {sorted(options)}")

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

    def prepare(self, dataset: WeightDataset, distilled: Distilled | None = None) -> None:
        """Fix the dataset (split, statistics) and build a fresh, seeded network; ``distilled``:
        the previous round's chosen samples, for the next round (:meth:`distill`)."""
        if len(dataset.train_index) == 0:
            raise ValueError("the dataset has no training models")
        dc, cc = self.config.distill, self.config.calibrate
        if dc.per_net > 0:  # fail before training, not after the first round
            PromptSelection(dc.candidates, dataset.config.property, "weighted",
                            dc.disagreement_weight)  # fmt: skip
        if cc.candidates > 0:  # likewise: the calibration comes after training
            PromptSelection(cc.candidates, dataset.config.property, "weighted")
            self.check_sample_options(cc.options)
        self.calibration = None  # a fresh network: any earlier calibration is void
        self.config = type(self.config).from_dict(
            {**self.config.to_dict(), "data": vars(dataset.config)}
        )
        self.info = DatasetInfo.from_dataset(dataset)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.training.seed)
            self._prepare(dataset, distilled)

    def distill(self, dataset: WeightDataset) -> Distilled:
        """The trained generator's best samples by ``config.distill``, to train the next round
        on (:mod:`generators.distillation`)."""
        return distill_nets(self, dataset, self.config.distill, self.config.training.seed)

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
        callback: Callable[[int, float], None] | None = None,
    ) -> list[float]:  # fmt: skip
        """Prepare on ``dataset`` and train in a plain loop; returns the loss of every step (of
        every round with ``config.distill``: train, draw its best samples, train afresh on them
        too)."""
        if max_steps is not None:
            self.config = self.config.with_overrides({"training.max_steps": int(max_steps)})
        self.prepare(dataset)
        losses = self._train_loop(callback)
        for _ in range(self.distill_rounds):
            self.prepare(dataset, self.distill(dataset))
            losses += self._train_loop(callback)
        self.calibrate()
        return losses

    def calibrate(self) -> Calibration | None:
        """Calibrate the ``weighted`` rule's weight on the trained generator by
        ``config.calibrate`` (:mod:`generators.calibration`; None where that is off); ``sample``
        then takes it as its default ``disagreement_weight``."""
        cfg = self.config.calibrate
        self.calibration = (
            calibrate_weight(self, cfg, self.config.training.seed) if cfg.candidates else None
        )
        return self.calibration

    def calibrated_sampling(self) -> dict[str, Any]:
        """``sample`` keyword arguments of the calibrated best-of-k (candidates, the weighted
        rule, its calibrated weight and the sampling options it was calibrated with); a
        ValueError for a generator without a calibration."""
        if self.calibration is None:
            raise ValueError(
                "this generator has no calibrated weight: train it with calibrate.candidates > 0 "
                "(the shipped flow preset does)"
            )
        return self.calibration.sampling()

    @property
    def distill_rounds(self) -> int:
        """Trainings after the first, each on the previous one's best samples (0: off)."""
        dc = self.config.distill
        return dc.rounds if dc.per_net > 0 else 0

    def _train_loop(self, callback: Callable[[int, float], None] | None) -> list[float]:
        opt, sched = self.configure_optimizer()
        net = self.network.train()
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

    @torch.no_grad()
    def sample(
        self, n: int, task: str | None = None, width: int | None = None, seed: int = 0,
        target: float | None = None, candidates: int = 1, select: str = "closest",
        disagreement_weight: float | None = None, **options: Any,
    ) -> Population:  # fmt: skip
        """``n`` new networks for (task, width) as a Population (weights (n, N) + layout).

        target: the conditioning property to ask for (``config.data.property``, e.g. a
        validation accuracy of 0.95); None draws it from the group's training models.
        candidates: k > 1 draws k nets per prompt and keeps the one whose measured property is
        closest to it (:mod:`generators.selection`; k times the cost); the kept nets' measured
        values come back as ``conditioning["measured_<property>"]``. select: ``"closest"``; or, of
        the candidates at least as good as the prompt, the closest to it (``"at-least"``) or the
        one that differs most from its nearest training net on the validation split
        (``"novel"``; that share comes back as ``conditioning["nearest_train_disagreement"]``);
        or, whatever the prompt, the one with the highest validation accuracy +
        ``disagreement_weight`` x that share (``"weighted"``; default: the generator's
        calibrated weight, :meth:`calibrate`, else ``DISAGREEMENT_WEIGHT``).
        Further options are generator specific (for flow: steps, solver, guidance, ...).
        """
        info = self.require_info()
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        check_rule(select)
        if disagreement_weight is not None and select != "weighted":
            raise ValueError(
                f"disagreement_weight applies to select='weighted' only (select={select!r})"
            )
        g = info.resolve(task, width)
        rng = torch.Generator().manual_seed(int(seed))
        props = None
        if info.has_property:
            props = (
                torch.full((n,), float(target))
                if target is not None
                else info.draw_prompts(g, n, rng)
            )
        elif target is not None:
            raise ValueError("this generator was trained without a conditioning property")
        group = info.groups[g]
        self.network.eval()
        cond = {"target": props} if props is not None else {}
        if candidates == 1:
            weights = self._sample(n, g, rng, props, **options)
            return Population(group.arch, weights, group.task, f"generated-{group.key}", cond)
        if disagreement_weight is None:
            disagreement_weight = (
                DISAGREEMENT_WEIGHT if self.calibration is None
                else self.calibration.disagreement_weight
            )  # fmt: skip
        selection = PromptSelection(
            candidates, info.data.property if props is not None else "", select,
            disagreement_weight,
        )  # fmt: skip
        per_round = max(1, SELECT_CANDIDATES // candidates)  # prompts whose candidates fit a round
        code = self._affine_code(g, **options)  # the draws' code, if they have one
        reference = None
        if select in NOVELTY_RULES:  # the nearest-net search runs on the codes, if any
            reference = self._training_nets(g, code)
        forward = None  # the candidates' validation outputs from their codes, if it can
        if selection.property.startswith("val_"):
            forward = self._coded_forward(g, code, min(n, per_round) * candidates)
        measured, novelty = [], []
        size = info.padded.indices[g].numel()
        # one (a round's candidates, N_g) buffer for every round, and the kept nets written in
        # place: no (n, N_g) concatenation at the end, which would hold the kept nets twice
        dtype = info.normalizer.mean.dtype
        buffer = codes = None
        if forward is None:
            buffer = torch.empty(min(n, per_round) * candidates, size, dtype=dtype)
            codes = None if code is None else torch.empty(len(buffer), code.dim)  # (.., K)
        kept = torch.empty(n, size, dtype=dtype)  # (n, N_g)
        for a in range(0, n, per_round):
            p = props[a : a + per_round]
            m = len(p) * candidates
            prompts = p.repeat_interleave(candidates)  # (m,)
            if forward is not None:  # only the kept candidates are decoded
                c = self._sample_codes(m, g, rng, prompts, **options)  # (m, K)
                chosen = selection.select_coded(c, p, forward, group.task, reference)
            else:
                c = None if codes is None else codes[:m]
                drawn = self._sample(m, g, rng, prompts, out=buffer[:m], codes=c, **options)
                chosen = selection.select(drawn, p, group.arch, group.task, reference, c)
            kept[a : a + len(p)] = chosen.weights
            measured.append(chosen.measured)
            if chosen.novelty is not None:
                novelty.append(chosen.novelty)
        cond[f"measured_{info.data.property}"] = torch.cat(measured)
        if novelty:
            cond["nearest_train_disagreement"] = torch.cat(novelty)
        return Population(group.arch, kept, group.task, f"generated-{group.key}", cond)

    def training_reference(self, group: int, **options: Any) -> TrainingNets:
        """Group ``group``'s training nets and their validation predictions, set up for draws
        with these sampling options (their nearest-net search runs on the draws' codes, where
        they have one)."""
        return self._training_nets(group, self._affine_code(group, **options))

    def _training_nets(self, group: int, code: AffineCode | None) -> TrainingNets:
        """:meth:`training_reference` for draws decoded by ``code`` (None: no code)."""
        info = self.require_info()
        grp = info.groups[group]
        return TrainingNets.of(grp.arch, grp.task, info.training_nets(group), code)

    def _coded_forward(
        self, group: int, code: AffineCode | None, models: int
    ) -> CodedForward | None:
        """The validation outputs of ``group``'s draws from their codes (``code``), ``models``
        at a time, where they have one and the architecture an input layer to factor out."""
        grp = self.require_info().groups[group]
        if code is None or not grp.arch.input_layer:
            return None
        return CodedForward(grp.arch, code, get_task(grp.task).split("val")[0], models)

    @torch.no_grad()
    def draw_predictions(
        self, prompts: Tensor, group: int, rng: torch.Generator, reference: TrainingNets,
        **options: Any,
    ) -> tuple[Tensor, Tensor]:  # fmt: skip
        """One draw of ``group`` per prompt (prompts: (m,) property values), not kept: (m, V)
        the class each predicts at every validation point, and (m,) the index of its nearest
        training net in ``reference`` (:meth:`training_reference` with the same options). In
        rounds of ``SELECT_CANDIDATES``, from the draws' codes where they have one, as
        ``sample`` measures its candidates (the calibration reads them point by point)."""
        self.network.eval()
        grp = self.require_info().groups[group]
        code = self._affine_code(group, **options)
        forward = self._coded_forward(group, code, min(len(prompts), SELECT_CANDIDATES))
        x_val = get_task(grp.task).split("val")[0]
        predicted, nearest = [], []
        for a in range(0, len(prompts), SELECT_CANDIDATES):
            p = prompts[a : a + SELECT_CANDIDATES]
            w = None
            if forward is not None:
                codes = self._sample_codes(len(p), group, rng, p, **options)  # (m, K)
                outputs = forward.outputs(codes)
            else:
                codes = None if code is None else torch.empty(len(p), code.dim)
                w = self._sample(len(p), group, rng, p, codes=codes, **options)  # (m, N_g)
                outputs = split_outputs(grp.arch, w, x_val)
            predicted.append(torch.cat([predicted_class(o) for o in outputs], dim=1))
            nearest.append(reference.nearest(w, codes))
        return torch.cat(predicted), torch.cat(nearest)

    # ----- persistence --------------------------------------------------------------------
    def save(self, run_dir: str | Path) -> Path:
        info = self.require_info()
        out = Path(run_dir)
        out.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT_VERSION, "kind": self.kind, "config": self.config.to_dict(),
            "dataset": info.to_dict(),
        }  # fmt: skip
        if self.calibration is not None:
            meta["calibration"] = self.calibration.to_dict()
        tensors = {f"net.{k}": v for k, v in self.network.state_dict().items()}
        tensors.update(info.tensors())
        tensors.update(self.extra_tensors())
        save_file({k: v.detach().contiguous() for k, v in tensors.items()}, out / WEIGHTS_FILE)
        (out / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        return out

    @classmethod
    def load(cls, run_dir: str | Path) -> WeightGenerator:
        meta, tensors = read_run_dir(run_dir)
        if meta["kind"] != cls.kind:
            raise ValueError(f"{run_dir} holds a {meta['kind']!r} generator, not {cls.kind!r}")
        gen = cls(cls.config_class.from_dict(meta["config"]))
        gen.info = DatasetInfo.from_dict(meta["dataset"], tensors)
        gen._restore(tensors)
        state = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
        gen.network.load_state_dict(state)
        gen.network.eval()
        if "calibration" in meta:
            gen.calibration = Calibration.from_dict(meta["calibration"])
        return gen
