"""Training any weight generator under Lightning: checkpoints, resume, progress, CSV log, devices.

The generator supplies the objective (:meth:`WeightGenerator.training_loss`) and the optimizer;
this module adds the engineering. Every step's batch and noise are a function of (seed, step,
rank) (:func:`generators.base.step_generators`), so a run resumed from ``last.ckpt`` continues
exactly as an uninterrupted one, and a single-device run equals ``generator.fit``. Checkpoints
are safetensors (:mod:`pipelines.safetensors_checkpoint`), never pickles.

A run resumes only what it would have trained itself: ``checkpoints/run.json`` records the
generator's config and the fingerprints of its zoo and of its training data, and a run dir whose
record differs (another seed, learning rate, zoo...) is refused, naming what differs.

At the scale of the default zoo (a few thousand parameters per net) Lightning's per-step
overhead matters, so batches are large, steps few, validation and the model summary are off,
and the log is written every 25 steps.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from generators import WeightDataset, WeightGenerator
from generators.base import ExtraNets, step_generators
from generators.calibration import calibrate as calibrate_generator
from generators.training_rounds import check_strategies, distill, distill_rounds
from pipelines.safetensors_checkpoint import SafetensorsCheckpointIO

CHECKPOINT_DIR = "checkpoints"
RUN_RECORD = "run.json"  # in CHECKPOINT_DIR: what the checkpoints were trained with
LOG_EVERY = 25


class StepIndices(IterableDataset):
    """Endless stream of training-model index batches (B,), one per step from ``start()``."""

    def __init__(self, generator: WeightGenerator, start: callable, rank: callable) -> None:
        self.generator, self.start, self.rank = generator, start, rank

    def __iter__(self):
        step = self.start()
        while True:
            yield self.generator.train_step_batch(step, self.rank())[0]
            step += 1


class WeightDataModule(L.LightningDataModule):
    """Holds the WeightDataset and feeds the generator's index batches."""

    def __init__(self, generator: WeightGenerator, dataset: WeightDataset) -> None:
        super().__init__()
        self.generator, self.dataset = generator, dataset

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        stream = StepIndices(
            self.generator, lambda: trainer.global_step if trainer else 0,
            lambda: trainer.global_rank if trainer else 0,
        )  # fmt: skip
        return DataLoader(stream, batch_size=None, num_workers=0)


class GeneratorModule(L.LightningModule):
    """Wraps a prepared generator; its network is the only trainable module."""

    def __init__(self, generator: WeightGenerator) -> None:
        super().__init__()
        self.generator = generator
        self.net = generator.network

    def training_step(self, index: Tensor, batch_idx: int) -> Tensor:
        _, rng = step_generators(
            self.generator.config.training.seed, self.global_step, self.global_rank
        )
        torch.manual_seed(rng.initial_seed())  # dropout draws, as in generator.fit
        loss = self.generator.training_loss(index, rng)
        self.log(
            "train_loss", loss, prog_bar=True, on_step=True, on_epoch=False, batch_size=len(index)
        )
        return loss

    def configure_optimizers(self):
        opt, sched = self.generator.configure_optimizer()
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


@dataclass
class TrainSummary:
    run_dir: Path
    steps: int
    seconds: float
    final_loss: float
    resumed_from: int


class FinalCheckpoint(L.Callback):
    """Writes ``last.ckpt`` once more when training ends between two periodic checkpoints
    (``max_steps`` not a multiple of their interval), so that resuming a finished run retrains
    nothing."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        saved = SafetensorsCheckpointIO().load_checkpoint(self.path) if self.path.is_file() else {}
        if saved.get("global_step") != trainer.global_step:
            trainer.save_checkpoint(self.path)


def train_generator(
    generator: WeightGenerator, dataset: WeightDataset, run_dir: str | Path,
    devices: int | str = 1, accelerator: str = "auto", max_steps: int | None = None,
    resume: bool = True, progress: bool = True, checkpoints: int = 4,
    callbacks: list[L.Callback] | None = None,
) -> TrainSummary:  # fmt: skip
    """Train ``generator`` on ``dataset`` and save it to ``run_dir``; resumes from last.ckpt.

    With ``config.distill`` on, in rounds: the first generator is trained and saved to
    ``run_dir/round-0``, draws its best samples (:mod:`generators.distillation`), and a fresh one
    is trained on them too (into ``run_dir/round-1`` if another round follows, else into
    ``run_dir``); each round resumes on its own. With ``config.calibrate`` on, the trained
    generator then calibrates its best-of-k weight (:mod:`generators.calibration`), saved with
    it and plotted as ``run_dir/calibration.png``.
    checkpoints: how many checkpoints to write over the run (the last is always kept);
    callbacks: extra Lightning callbacks.
    """
    if max_steps is not None:
        generator.config = generator.config.with_overrides({"training.max_steps": int(max_steps)})
    out = Path(run_dir)
    options = dict(devices=devices, accelerator=accelerator, resume=resume, progress=progress,
                   checkpoints=checkpoints, callbacks=callbacks)  # fmt: skip
    check_strategies(generator, dataset)
    rounds = distill_rounds(generator)
    seconds, distilled = 0.0, None
    for r in range(rounds + 1):
        t0 = time.perf_counter()
        if r > 0:
            distilled = distill(generator, dataset)  # deterministic: a resumed run draws the same
        where = out / round_dir(r) if r < rounds else out
        summary = train_round(generator, dataset, where, distilled, calibrate=r == rounds,
                              **options)  # fmt: skip
        seconds += time.perf_counter() - t0
    return replace(summary, seconds=seconds)


def data_fingerprint(dataset: WeightDataset, distilled: ExtraNets | None = None) -> str:
    """A digest of the training data: every net's weights, group, property and split, plus the
    distilled nets of an earlier round."""
    h = hashlib.sha256()
    tensors = [dataset.weights, dataset.group, dataset.prop, dataset.train]
    if distilled is not None:
        tensors += [distilled.weights, distilled.group, distilled.prop]
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def run_record(
    generator: WeightGenerator, dataset: WeightDataset, distilled: ExtraNets | None = None
) -> dict:
    """What a run's checkpoints are trained with: config, zoo and data fingerprints."""
    return {
        "config": generator.config.to_dict(),
        "zoo_fingerprint": getattr(dataset, "zoo_fingerprint", ""),
        "data_fingerprint": data_fingerprint(dataset, distilled),
    }


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_resumable(path: Path, record: dict) -> None:
    """A ValueError naming what differs unless the checkpoints at ``path``'s folder were
    trained with ``record`` (:func:`run_record`)."""
    where = path.parent.parent
    hint = "use another --out, or --no-resume to train from scratch there"
    if not path.is_file():
        raise ValueError(f"{where} holds checkpoints without a record of what they were "
                         f"trained with; {hint}")  # fmt: skip
    try:
        saved = json.loads(path.read_text())
        old, new = _flat(saved["config"]), _flat(record["config"])
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise ValueError(f"{path} is not a valid run record; {hint}") from None
    diff = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    for key, label in (("zoo_fingerprint", "zoo"), ("data_fingerprint", "training data")):
        if saved.get(key) != record[key]:
            diff.append(label)
    if diff:
        raise ValueError(f"cannot resume {where}: it was trained with another "
                         f"{', '.join(diff[:6])}{' ...' if len(diff) > 6 else ''}; {hint}")  # fmt: skip


def trainer_is_rank_zero() -> bool:
    """Whether this process is rank zero of a (possibly distributed) run: only it writes."""
    import os

    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0


def round_dir(r: int) -> str:
    """The folder (in a distilled generator's run dir) of the generator trained in round r <
    ``distill.rounds``; round 0 is the plain one."""
    return f"round-{r}"


def train_round(
    generator: WeightGenerator, dataset: WeightDataset, out: Path, distilled: ExtraNets | None,
    devices: int | str, accelerator: str, resume: bool, progress: bool, checkpoints: int,
    callbacks: list[L.Callback] | None, calibrate: bool = False,
) -> TrainSummary:  # fmt: skip
    """One Lightning run from a freshly prepared network (on ``dataset`` plus ``distilled``);
    ``calibrate``: the last round, whose generator then calibrates by ``config.calibrate``
    before it is saved."""
    steps = generator.config.training.max_steps
    generator.prepare(dataset, distilled)  # deterministic: a resumed run rebuilds the same state
    if not generator.iterative:  # fitted in closed form by prepare: nothing to optimize
        t0 = time.perf_counter()
        finish_round(generator, out, calibrate)
        return TrainSummary(out, 0, time.perf_counter() - t0, float("nan"), 0)
    ckpt_dir = out / CHECKPOINT_DIR
    last = ckpt_dir / "last.ckpt"
    start = 0
    record = run_record(generator, dataset, distilled)
    if resume and last.is_file():
        check_resumable(ckpt_dir / RUN_RECORD, record)
        start = int(SafetensorsCheckpointIO().load_checkpoint(last)["global_step"])
    elif last.exists():
        last.unlink()
    if trainer_is_rank_zero():
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        (ckpt_dir / RUN_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    checkpoint = ModelCheckpoint(
        dirpath=ckpt_dir, filename="step{step}", auto_insert_metric_name=False, save_last=True,
        every_n_train_steps=max(1, steps // max(1, checkpoints)), save_top_k=1,
    )  # fmt: skip
    # Lightning's info lines (accelerators found, a logging-service tip) are noise here
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
    L.seed_everything(generator.config.training.seed, verbose=False)
    trainer = L.Trainer(
        max_steps=steps, max_epochs=1, devices=devices, accelerator=accelerator,
        logger=CSVLogger(out, name="logs"),
        callbacks=[checkpoint, FinalCheckpoint(last), *(callbacks or [])],
        plugins=[SafetensorsCheckpointIO()], enable_progress_bar=progress,
        enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
        gradient_clip_val=generator.config.training.grad_clip or None,
        log_every_n_steps=LOG_EVERY, enable_checkpointing=True,
    )  # fmt: skip
    module = GeneratorModule(generator)
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=WeightDataModule(generator, dataset),
                ckpt_path=str(last) if start else None)  # fmt: skip
    seconds = time.perf_counter() - t0
    generator.network.eval()
    loss = trainer.callback_metrics.get("train_loss")
    if trainer.is_global_zero:
        finish_round(generator, out, calibrate)
    return TrainSummary(out, int(trainer.global_step), seconds,
                        float(loss) if loss is not None else float("nan"), start)  # fmt: skip


def finish_round(generator: WeightGenerator, out: Path, calibrate: bool) -> None:
    """Save a trained round to ``out``; the last round (``calibrate``) first calibrates its
    best-of-k weight by ``config.calibrate``, plotted as ``out/calibration.png``."""
    out.mkdir(parents=True, exist_ok=True)
    if calibrate:
        calibration = calibrate_generator(generator)
        if calibration is not None:
            from pipelines.evaluation_plots import plot_calibration

            plot_calibration(calibration, out / "calibration.png")
    generator.save(out)
