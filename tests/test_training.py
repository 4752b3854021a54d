"""Vectorized population training == independent per-model ``torch.optim`` runs.

The reference loop below is written from the contract documented in ``zoo/training.py`` only:
model p starts from ``torch.manual_seed(seed_p); arch.build()``, trains on the first
``round(fraction * n)`` training examples, and each epoch draws its batches from
``randperm(n, generator=Generator().manual_seed(seed_p + BATCH_SEED_OFFSET))`` in order, the
last batch possibly smaller; the learning rate follows ``LambdaLR`` with ``lr_factor``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zoo.architectures import CNN, MLP, Architecture, Transformer
from zoo.optim import lr_factor
from zoo.tasks import TaskData, get_task
from zoo.training import (
    BATCH_SEED_OFFSET,
    METRIC_NAMES,
    Status,
    TrainConfig,
    TrainResult,
    evaluate,
    predicted_class,
    split_predictions,
    train_population,
)

# float32 rounding differs between batched and single-model kernels (a few ulp per step); after
# 3 epochs the largest differences measured on these configs were 3e-7 (weights), 5e-7 (losses)
W_TOL = {"rtol": 1e-5, "atol": 2e-6}
L_TOL = {"rtol": 1e-5, "atol": 1e-6}
# the same computation in another batch (other P, other row): MKL may round differently with
# the memory alignment of a row, so "identical" means equal to the last bits, not bitwise
SAME = {"rtol": 0.0, "atol": 1e-6}


@dataclass
class Reference:
    """One model trained alone: weights (C, N) and metrics {name: (C,)} at the kept checkpoints."""

    weights: torch.Tensor
    metrics: dict[str, torch.Tensor]


def _metrics(model: torch.nn.Module, task: TaskData) -> dict[str, float]:
    out = {}
    with torch.no_grad():
        for split in ("train", "val", "test"):
            x, y = task.split(split)
            logits = model(x)
            if task.kind == "classification":
                out[f"{split}_loss"] = F.cross_entropy(logits, y).item()
                out[f"{split}_acc"] = (logits.argmax(-1) == y).float().mean().item()
            else:
                out[f"{split}_loss"] = F.mse_loss(logits, y).item()
                out[f"{split}_acc"] = float("nan")
    return out


def train_one(
    arch: Architecture, task: TaskData, cfg: TrainConfig, seed: int, lr: float, wd: float,
    batch_size: int, fraction: float = 1.0,
) -> Reference:  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = arch.build()
    n = max(1, int(round(fraction * len(task.x_train))))
    x, y = task.x_train[:n], task.y_train[:n]
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=cfg.momentum, weight_decay=wd)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    total = cfg.epochs * -(-n // batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(cfg.schedule, s, total))
    gen = torch.Generator().manual_seed(seed + BATCH_SEED_OFFSET)
    loss_fn = F.cross_entropy if task.kind == "classification" else F.mse_loss

    kept_w, kept_m = [], []

    def keep(epoch: int) -> None:
        if epoch in cfg.checkpoints:
            kept_w.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
            kept_m.append(_metrics(model, task))

    keep(0)
    for epoch in range(1, cfg.epochs + 1):
        perm = torch.randperm(n, generator=gen)
        for a in range(0, n, batch_size):
            idx = perm[a : a + batch_size]
            loss = loss_fn(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        keep(epoch)
    metrics = {m: torch.tensor([k[m] for k in kept_m]) for m in METRIC_NAMES}
    return Reference(torch.stack(kept_w), metrics)


def _assert_matches(
    res: TrainResult, i: int, ref: Reference, task: TaskData,
    keep: torch.Tensor | slice = slice(None),
) -> None:  # fmt: skip
    """Model i of a population run equals its reference run; ``keep`` selects compared params."""
    torch.testing.assert_close(res.weights[i][:, keep], ref.weights[:, keep], **W_TOL)
    for m in METRIC_NAMES:
        if m.endswith("_acc"):  # an argmax near-tie may flip: allow one example
            one = 1 / len(task.split(m.split("_")[0])[1])
            torch.testing.assert_close(
                res.metrics[m][i], ref.metrics[m], rtol=0, atol=one * 1.01, equal_nan=True
            )
        else:
            torch.testing.assert_close(res.metrics[m][i], ref.metrics[m], **L_TOL)


@pytest.fixture(scope="module")
def small_digits(digits: TaskData) -> TaskData:
    """Digits with a 400-example training split (the test needs a few epochs, not accuracy)."""
    return replace(digits, x_train=digits.x_train[:400], y_train=digits.y_train[:400])


# per-model hyperparameters: several learning rates, weight decays, batch sizes and fractions
# (400, 200 or 120 examples); no batch size divides its split: every epoch ends on a short batch
SEEDS = np.array([0, 1, 2, 3, 4])
WD = np.array([0.0, 1e-3, 1e-4, 0.0, 5e-3])
BS = np.array([64, 64, 96, 130, 64])
FRAC = np.array([1.0, 1.0, 1.0, 0.5, 0.3])
LR = {
    "sgd": np.array([0.05, 0.1, 0.02, 0.08, 0.1]),
    "adam": np.array([1e-3, 3e-3, 2e-3, 1e-2, 5e-3]),
}

CASES = {
    "mlp-sgd": (MLP(width=16, in_shape=(1, 8, 8)), "sgd", "cosine"),
    "mlp-adam": (MLP(width=16, in_shape=(1, 8, 8), depth=1), "adam", "onecycle"),
    "cnn-sgd": (CNN(width=3, in_shape=(1, 8, 8), depth=2), "sgd", "constant"),
    "cnn-adam": (CNN(width=3, in_shape=(1, 8, 8), depth=2), "adam", "cosine"),
}


@pytest.mark.parametrize("fused", [True, False], ids=["fused update", "torch-op update"])
@pytest.mark.parametrize("case", list(CASES))
def test_population_matches_per_model_training(
    case: str, fused: bool, small_digits: TaskData
) -> None:
    arch, optimizer, schedule = CASES[case]
    cfg = TrainConfig(epochs=3, checkpoints=(0, 1, 2, 3), optimizer=optimizer, schedule=schedule)
    lr = LR[optimizer]
    res = train_population(arch, small_digits, cfg, SEEDS, lr, WD, BS, FRAC, fused_optimizer=fused)
    assert res.weights.shape == (len(SEEDS), 4, arch.num_params)
    assert all(res.metrics[m].shape == (len(SEEDS), 4) for m in METRIC_NAMES)
    assert res.status.dtype == torch.int8 and res.status.eq(Status.DONE).all()
    for i, s in enumerate(SEEDS):
        ref = train_one(arch, small_digits, cfg, int(s), lr[i], WD[i], int(BS[i]), FRAC[i])
        _assert_matches(res, i, ref, small_digits)
    # it trained: every model's train loss went down
    assert (res.metrics["train_loss"][:, -1] < res.metrics["train_loss"][:, 0]).all()


def test_transformer_population_matches(modadd: TaskData) -> None:
    arch = Transformer(width=8, heads=2, vocab=12, seq_len=3, num_outputs=11)
    cfg = TrainConfig(epochs=2, checkpoints=(0, 2), optimizer="adam", schedule="cosine")
    seeds, lr, wd = np.array([5, 6]), np.array([3e-3, 1e-2]), np.array([0.0, 1e-2])
    res = train_population(arch, modadd, cfg, seeds, lr, wd, np.array([16, 16]))
    # the key projection has no bias (its exact gradient would be 0 and Adam would turn
    # float noise into lr-sized steps), so every parameter must match
    assert not any(name.endswith("attn.k.bias") for name in arch.layout.names)
    keep = torch.ones(arch.num_params, dtype=torch.bool)
    for i in range(2):
        ref = train_one(arch, modadd, cfg, int(seeds[i]), lr[i], wd[i], 16)
        _assert_matches(res, i, ref, modadd, keep)


def test_regression_population_matches() -> None:
    task = get_task("sinusoid:amplitude=2,phase=0.5")
    arch = MLP(width=8, in_shape=(1,), num_outputs=1)
    cfg = TrainConfig(epochs=2, checkpoints=(1, 2), optimizer="sgd", schedule="cosine")
    seeds, lr, wd, bs = (
        np.array([0, 1]),
        np.array([0.01, 0.03]),
        np.array([0.0, 1e-3]),
        np.array([50, 50]),
    )
    res = train_population(arch, task, cfg, seeds, lr, wd, bs)
    assert res.metrics["train_acc"].isnan().all()
    for i in range(2):
        _assert_matches(res, i, train_one(arch, task, cfg, int(seeds[i]), lr[i], wd[i], 50), task)


def test_checkpoint_zero_is_initialization(small_digits: TaskData) -> None:
    arch = MLP(width=8, in_shape=(1, 8, 8))
    cfg = TrainConfig(epochs=1, checkpoints=(0, 1))
    seeds = np.array([3, 1, 4])
    res = train_population(
        arch, small_digits, cfg, seeds, np.full(3, 0.05), np.zeros(3), np.full(3, 32)
    )
    w0 = arch.init_weights(list(seeds))
    assert torch.equal(res.weights[:, 0], w0)
    assert not torch.equal(res.weights[:, 1], w0)
    loss, acc = evaluate(arch, small_digits, w0, "val")
    torch.testing.assert_close(res.metrics["val_loss"][:, 0], loss, **SAME)
    torch.testing.assert_close(res.metrics["val_acc"][:, 0], acc, **SAME)


@pytest.mark.parametrize("fused", [True, False], ids=["fused update", "torch-op update"])
def test_diverged_model_is_marked_and_isolated(fused: bool, small_digits: TaskData) -> None:
    arch = MLP(width=16, in_shape=(1, 8, 8))
    cfg = TrainConfig(epochs=2, checkpoints=(0, 1, 2), schedule="constant")
    seeds, wd, bs = np.array([0, 1, 2]), np.zeros(3), np.full(3, 64)
    lr = np.array([0.05, 1e9, 0.1])  # the middle model blows up in its first steps
    res = train_population(arch, small_digits, cfg, seeds, lr, wd, bs, fused_optimizer=fused)
    assert res.status.tolist() == [Status.DONE, Status.DIVERGED, Status.DONE]
    assert torch.isfinite(res.weights[1, 0]).all()  # its initialization is kept ...
    assert res.weights[1, 1:].isnan().all()  # ... later checkpoints are NaN
    assert all(res.metrics[m][1, 1:].isnan().all() for m in METRIC_NAMES)
    # the others train exactly as without it
    keep = np.array([0, 2])
    alone = train_population(
        arch, small_digits, cfg, seeds[keep], lr[keep], wd[keep], bs[keep], fused_optimizer=fused
    )
    assert torch.isfinite(res.weights[keep]).all()
    torch.testing.assert_close(res.weights[keep], alone.weights, **SAME)
    for m in METRIC_NAMES:
        torch.testing.assert_close(res.metrics[m][keep], alone.metrics[m], **SAME)
    assert (alone.status == Status.DONE).all()


def test_diverged_in_every_group(small_digits: TaskData) -> None:
    """Divergence is per model also when models train in several lockstep groups."""
    arch = MLP(width=8, in_shape=(1, 8, 8))
    cfg = TrainConfig(epochs=1, checkpoints=(1,), optimizer="adam")
    lr = np.array([1e12, 1e-3, 1e12, 1e-3])
    res = train_population(
        arch, small_digits, cfg, np.arange(4), lr, np.zeros(4), np.array([32, 32, 50, 50])
    )
    assert res.status.tolist() == [Status.DIVERGED, Status.DONE, Status.DIVERGED, Status.DONE]


def test_data_fraction_uses_first_examples(small_digits: TaskData) -> None:
    """A fraction f trains on exactly the first round(f * n) examples of the training split."""
    arch = MLP(width=8, in_shape=(1, 8, 8))
    cfg = TrainConfig(epochs=2, checkpoints=(2,))
    args = (np.array([0, 0]), np.full(2, 0.05), np.zeros(2), np.full(2, 32))
    res = train_population(arch, small_digits, cfg, *args, data_fraction=np.array([0.25, 1.0]))
    head = replace(
        small_digits, x_train=small_digits.x_train[:100], y_train=small_digits.y_train[:100]
    )
    cut = train_population(arch, head, cfg, *[a[:1] for a in args])
    torch.testing.assert_close(res.weights[0], cut.weights[0], **SAME)
    assert not torch.allclose(res.weights[0], res.weights[1])
    # metrics stay on the full splits
    loss, _ = evaluate(arch, small_digits, res.weights[:, 0], "train")
    torch.testing.assert_close(res.metrics["train_loss"][:, 0], loss, **SAME)


def test_seeds_decide_init_and_batches(small_digits: TaskData) -> None:
    arch = MLP(width=8, in_shape=(1, 8, 8))
    cfg = TrainConfig(epochs=1, checkpoints=(1,))
    res = train_population(
        arch, small_digits, cfg, np.array([7, 7, 8]), np.full(3, 0.05), np.zeros(3), np.full(3, 32)
    )
    torch.testing.assert_close(res.weights[0], res.weights[1], **SAME)  # same seed, same run
    assert not torch.equal(res.weights[0], res.weights[2])
    again = train_population(
        arch, small_digits, cfg, np.array([7]), np.array([0.05]), np.zeros(1), np.array([32])
    )
    torch.testing.assert_close(again.weights[0], res.weights[0], **SAME)


def test_on_epoch_called(small_digits: TaskData) -> None:
    seen: list[int] = []
    arch = MLP(width=4, in_shape=(1, 8, 8))
    train_population(
        arch, small_digits, TrainConfig(epochs=3, checkpoints=(3,)), np.array([0]),
        np.array([0.01]), np.zeros(1), np.array([128]), on_epoch=seen.append,
    )  # fmt: skip
    assert seen == [1, 2, 3]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 0, "checkpoints": (0,)}, "epochs must be >= 1"),
        ({"epochs": 2, "checkpoints": (3,)}, r"checkpoints must be epochs in \[0, 2\]"),
        ({"epochs": 2, "checkpoints": (-1, 2)}, "checkpoints must be epochs"),
        ({"epochs": 2, "checkpoints": ()}, "checkpoints must be epochs"),
    ],
)
def test_bad_config(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kwargs)


def test_predicted_class_is_argmax_with_ties_and_nan() -> None:
    """max(-1).indices stands in for argmax(-1): the same index, first on ties, NaN wins."""
    logits = torch.randint(0, 3, (5, 10, 7)).float()  # many ties
    logits[0, 3, 5] = float("nan")
    logits[1, :, 2] = float("nan")
    logits[2] = float("inf")
    view = logits.transpose(1, 2)  # (P, B, K) as Architecture.forward returns it
    assert torch.equal(predicted_class(view), view.argmax(-1))
    assert torch.equal(predicted_class(logits), logits.argmax(-1))


# one chunk; 200 nets of width 128: chunks of 81 points, the last one short
@pytest.mark.parametrize(("nets", "width"), [(1, 16), (7, 16), (200, 128)])
def test_split_predictions_match_evaluate_and_one_forward(
    nets: int, width: int, digits: TaskData
) -> None:
    """The chunked predictions count the accuracy that evaluate() reports, bit for bit, and
    are the classes of one unchunked forward pass."""
    arch = MLP(width=width, in_shape=(1, 8, 8))
    w = arch.init_weights(list(range(nets)))
    for split in ("val", "test"):
        p = split_predictions(arch, digits, w, split)
        x, y = digits.split(split)
        assert p.shape == (nets, len(x))
        assert torch.equal(p.eq(y).float().mean(dim=1), evaluate(arch, digits, w, split)[1])
        assert torch.equal(p, arch.forward(w, x).argmax(-1))
