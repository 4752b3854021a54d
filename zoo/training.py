"""Vectorized population training: P models with one layout train as one batched computation.

Every model has its own seed (initialization and batch order), learning rate and weight decay;
models with the same batch size and training-set fraction step in lockstep (other batch sizes
or fractions train as separate lockstep groups). The result equals P independent
``torch.optim`` runs: model p's batches are ``randperm(n, generator=Generator().manual_seed(
seed_p + BATCH_SEED_OFFSET))`` per epoch, consumed in order, the last batch possibly smaller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.architectures import Architecture
from zoo.finite import finite_rows
from zoo.optim import OPTIMIZERS, lr_factor
from zoo.tasks import TaskData

BATCH_SEED_OFFSET = 1_000_003
METRIC_NAMES = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")
EVAL_BATCH = 1024
EVAL_ELEMENTS = 2**21  # activations per evaluation chunk: P * batch * width


class Status:
    """Status codes stored per model in the zoo's ``status`` array."""

    PENDING, DONE, FAILED, DIVERGED = 0, 1, 2, 3
    NAMES = {0: "pending", 1: "done", 2: "failed", 3: "diverged"}


@dataclass(frozen=True)
class TrainConfig:
    """Settings shared by every model of a training run."""

    epochs: int
    checkpoints: tuple[int, ...]  # epochs at which weights and metrics are kept; 0 = init
    optimizer: str = "sgd"
    momentum: float = 0.9
    schedule: str = "cosine"

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r} ({', '.join(OPTIMIZERS)})")
        lr_factor(self.schedule, 0, 1)  # validates the name
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        bad = [c for c in self.checkpoints if not 0 <= c <= self.epochs]
        if bad or not self.checkpoints:
            raise ValueError(
                f"checkpoints must be epochs in [0, {self.epochs}], got {list(self.checkpoints)}"
            )


@dataclass
class TrainResult:
    """weights: (P, C, N) at the kept checkpoints; metrics: name -> (P, C); status: (P,) codes."""

    weights: Tensor
    metrics: dict[str, Tensor]
    status: Tensor


def task_loss(task: TaskData, out: Tensor, y: Tensor) -> Tensor:
    """Per-model mean loss: out (P, B, K), y (B,) or (P, B[, K]) -> (P,)."""
    return kind_loss(task.kind, out, y)


def kind_loss(kind: str, out: Tensor, y: Tensor) -> Tensor:
    """Per-model mean loss of a ``classification`` (cross-entropy) or ``regression`` (squared
    error) task: out (P, B, K), y (B,) or (P, B[, K]) -> (P,)."""
    if kind == "classification":
        y = y.expand(out.shape[:2]) if y.dim() == 1 else y
        return F.cross_entropy(out.transpose(1, 2), y, reduction="none").mean(dim=1)
    y = y.expand(out.shape) if y.dim() == out.dim() - 1 else y
    return ((out - y) ** 2).flatten(1).mean(dim=1)


def predicted_class(logits: Tensor) -> Tensor:
    """(..., K) logits -> (...,) index of the largest, the first on ties (as ``argmax``).
    ``max(-1).indices`` gives the same indices, NaN and ties included, and on CPU it is ten
    times faster than ``argmax(-1)`` on the (P, B, K) transposed views of ``Architecture.forward``
    (0.19 ms against 1.9 ms for 256 nets, 64 points, 10 classes)."""
    return logits.max(dim=-1).indices


def prediction_disagreement(p: Tensor, q: Tensor) -> Tensor:
    """(M,) share of the points on which row i of p (M, B) and row i of q (M, B), predicted
    classes, differ (q may be one (B,) row, compared with every row of p): how differently two
    nets behave, whatever their weights."""
    return p.ne(q).float().mean(dim=1)


def eval_batch(arch: Architecture, models: int) -> int:
    """Data points per evaluation chunk of ``models`` nets at once: (P, batch, width)
    activations stay small. On CPU, buffers over glibc's 32 MB mmap limit are mapped and
    page-faulted afresh on every call, which costs more than the matmuls."""
    return max(16, min(EVAL_BATCH, EVAL_ELEMENTS // (max(models, 1) * arch.width)))


@torch.no_grad()
def split_predictions(arch: Architecture, task: TaskData, weights: Tensor, split: str) -> Tensor:
    """(P, B) class predicted by each of P models for each point of a split, chunked over the
    points as :func:`evaluate` chunks them."""
    x, _ = task.split(split)
    return torch.cat([predicted_class(out) for out in split_outputs(arch, weights, x)], 1).cpu()


@dataclass(frozen=True)
class SplitScores:
    """Each of P models on a split: loss (P,); acc (P,), NaN for regression; predicted (P, B)
    classes, None for regression or where not asked for."""

    loss: Tensor
    acc: Tensor
    predicted: Tensor | None


@torch.no_grad()
def split_scores(
    task: TaskData, y: Tensor, outputs: Iterable[Tensor], predicted: bool = False
) -> SplitScores:
    """Scores of P models from their outputs on a split's points, (P, b, K) per chunk of the
    points in order (y: the split's targets, (B, ...)); whoever computes the outputs (a forward
    from flat weights, or from codes) shares this accumulation."""
    total_loss = correct = None
    classes, a = [], 0
    for out in outputs:
        yb = y[a : a + out.shape[1]].to(out.device)
        a += len(yb)
        loss = task_loss(task, out, yb) * len(yb)  # (P,)
        total_loss = loss if total_loss is None else total_loss + loss
        if task.kind == "classification":
            label = predicted_class(out)  # (P, b)
            hits = (label == yb).float().sum(1)
            correct = hits if correct is None else correct + hits
            if predicted:
                classes.append(label.cpu())
    if total_loss is None or a != len(y):
        raise ValueError(f"outputs cover {a} of the split's {len(y)} points")
    acc = correct / a if correct is not None else torch.full_like(total_loss, float("nan"))
    return SplitScores(
        (total_loss / a).cpu(), acc.cpu(), torch.cat(classes, 1) if classes else None
    )


def split_outputs(arch: Architecture, weights: Tensor, x: Tensor) -> Iterator[Tensor]:
    """(P, b, K) outputs of the P models of weights (P, N) per chunk of the points x (B, ...),
    in chunks of :func:`eval_batch`."""
    x = x.to(weights.device)
    batch = eval_batch(arch, len(weights))
    for a in range(0, len(x), batch):
        yield arch.forward(weights, x[a : a + batch])


@torch.no_grad()
def evaluate(
    arch: Architecture, task: TaskData, weights: Tensor, split: str
) -> tuple[Tensor, Tensor]:
    """Loss and accuracy (NaN for regression) of each of P models on a whole split -> (P,), (P,)."""
    x, y = task.split(split)
    scores = split_scores(task, y, split_outputs(arch, weights, x))
    return scores.loss, scores.acc


def train_population(
    arch: Architecture,
    task: TaskData,
    config: TrainConfig,
    seeds: np.ndarray,
    learning_rate: np.ndarray,
    weight_decay: np.ndarray,
    batch_size: np.ndarray,
    data_fraction: np.ndarray | None = None,
    on_epoch: Callable[[int], None] | None = None,
    device: str | torch.device = "cpu",
    fused_optimizer: bool | None = None,
) -> TrainResult:
    """Train P models; per-model hyperparameters are (P,) arrays. See the module docstring.

    ``device`` is where the computation runs; results always come back on the CPU.
    ``fused_optimizer``: the compiled one-pass update or torch ops (default: chosen by size, see
    :class:`zoo.optim.PopulationOptimizer`; set it for comparisons).
    """
    p = len(seeds)
    fraction = np.ones(p) if data_fraction is None else np.asarray(data_fraction, dtype=float)
    n_ckpt = len(config.checkpoints)
    result = TrainResult(
        weights=torch.empty(p, n_ckpt, arch.num_params),
        metrics={m: torch.empty(p, n_ckpt) for m in METRIC_NAMES},
        status=torch.full((p,), Status.DONE, dtype=torch.int8),
    )
    keys = np.stack([np.asarray(batch_size, dtype=float), fraction], axis=1)
    for key in np.unique(keys, axis=0):
        idx = np.flatnonzero((keys == key).all(axis=1))
        sub = _train_lockstep(
            arch, task, config, seeds[idx], learning_rate[idx], weight_decay[idx],
            int(key[0]), float(key[1]), on_epoch, torch.device(device), fused_optimizer,
        )  # fmt: skip
        t = torch.as_tensor(idx)
        result.weights[t] = sub.weights
        for m in METRIC_NAMES:
            result.metrics[m][t] = sub.metrics[m]
        result.status[t] = sub.status
    return result


def _train_lockstep(
    arch: Architecture, task: TaskData, config: TrainConfig, seeds: np.ndarray, lr: np.ndarray,
    wd: np.ndarray, batch_size: int, fraction: float, on_epoch: Callable[[int], None] | None,
    device: torch.device, fused_optimizer: bool | None,
) -> TrainResult:  # fmt: skip
    p = len(seeds)
    n_train = max(1, int(round(fraction * len(task.x_train))))
    x_train, y_train = task.x_train[:n_train].to(device), task.y_train[:n_train].to(device)
    steps_per_epoch = -(-n_train // batch_size)
    total_steps = config.epochs * steps_per_epoch

    w = arch.init_weights(list(seeds)).to(device)  # (P, N)
    opt_cls = OPTIMIZERS[config.optimizer]
    extra = {"momentum": config.momentum} if config.optimizer == "sgd" else {}
    opt = opt_cls(
        w,
        torch.as_tensor(lr, dtype=torch.float32),
        torch.as_tensor(wd, dtype=torch.float32),
        fused=fused_optimizer,
        **extra,
    )
    gens = [torch.Generator().manual_seed(int(s) + BATCH_SEED_OFFSET) for s in seeds]
    active = torch.ones(p, dtype=torch.bool, device=device)
    diverged = torch.zeros(p, dtype=torch.bool, device=device)

    out = TrainResult(
        weights=torch.empty(p, len(config.checkpoints), arch.num_params),
        metrics={m: torch.empty(p, len(config.checkpoints)) for m in METRIC_NAMES},
        status=torch.full((p,), Status.DONE, dtype=torch.int8),
    )

    def keep(epoch: int) -> None:
        for c, ep in enumerate(config.checkpoints):
            if ep != epoch:
                continue
            out.weights[:, c] = w.cpu()
            for split in ("train", "val", "test"):
                loss, acc = evaluate(arch, task, w, split)
                out.metrics[f"{split}_loss"][:, c] = loss
                out.metrics[f"{split}_acc"][:, c] = acc
            out.weights[diverged.cpu(), c] = float("nan")
            for m in METRIC_NAMES:
                out.metrics[m][diverged.cpu(), c] = float("nan")

    keep(0)
    step = 0
    for epoch in range(1, config.epochs + 1):
        perms = torch.stack([torch.randperm(n_train, generator=g) for g in gens]).to(
            device
        )  # (P, n)
        for a in range(0, n_train, batch_size):
            idx = perms[:, a : a + batch_size]  # (P, B)
            xb = x_train.index_select(0, idx.reshape(-1)).view(*idx.shape, *x_train.shape[1:])
            yb = y_train.index_select(0, idx.reshape(-1)).view(*idx.shape, *y_train.shape[1:])
            wg = w.detach().requires_grad_(True)
            params = arch.layout.unflatten(wg)  # views {name: (P, *shape)}
            losses = task_loss(task, arch.forward_params(params, xb), yb)  # (P,)
            bad = ~torch.isfinite(losses.detach()) & active
            hit = bool(bad.any())
            if hit:
                diverged |= bad
                active &= ~bad
            grads = torch.autograd.grad(
                torch.where(active, losses, 0.0).sum(), list(params.values())
            )
            if hit:  # only after the backward pass: w shares its storage with the leaf wg
                w[bad] = 0.0  # frozen; its kept checkpoints from now on are NaN
            opt.step(grads, lr_factor(config.schedule, step, total_steps), active)
            step += 1
        # non-finite weights give a non-finite loss at the next step; this catches the last one
        blown = active & ~finite_rows(w)
        if blown.any():
            diverged |= blown
            active &= ~blown
            w[blown] = 0.0
        keep(epoch)
        if on_epoch is not None:
            on_epoch(epoch)
    out.status[diverged.cpu()] = Status.DIVERGED
    return out
