"""Benchmark: a zoo of MLPs trained one model at a time vs as one vectorized population.

(a) the loop zoo papers use: for each model, ``torch.manual_seed``, build, ``torch.optim.SGD`` +
``LambdaLR``, shuffled mini-batches, evaluate at the kept checkpoints; (b) the same models, same
seeds and hyperparameters, through :func:`zoo.training.train_population`. Both keep the same
checkpoints and evaluate the same metrics, so they do the same work.

Also: the FLOP rate of (b) (forward + backward matmuls, counted analytically) as a fraction of
the same machine's dense ``torch.mm`` rate, measured in the same run, and the on-disk size of a
small zoo store against its raw float32 weight bytes.

    python benchmarks/zoo_train.py [--quick] [--device cpu|cuda]

Writes ``benchmarks/results/zoo_train.json`` and prints a short table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from zoo.architectures import MLP
from zoo.optim import lr_factor
from zoo.tasks import TaskData, get_task
from zoo.training import BATCH_SEED_OFFSET, TrainConfig, train_population

RESULTS = Path(__file__).resolve().parent / "results" / "zoo_train.json"


@dataclass(frozen=True)
class Setup:
    """One benchmark configuration; every model gets its own seed, learning rate, weight decay."""

    width: int
    models: int = 64
    depth: int = 2
    batch_size: int = 128
    epochs: int = 10
    loop_models: int = 64  # models timed in the per-model loop; the rest is extrapolated

    def arch(self) -> MLP:
        return MLP(width=self.width, in_shape=(1, 8, 8), depth=self.depth)

    def config(self) -> TrainConfig:
        return TrainConfig(self.epochs, (0, self.epochs), "sgd", 0.9, "cosine")

    def hparams(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        p = self.models
        return (
            np.arange(p),
            np.geomspace(0.01, 0.1, p),  # learning rate
            np.geomspace(1e-5, 1e-3, p)[::-1].copy(),  # weight decay
            np.full(p, self.batch_size),
        )


# ---- (a) one model at a time, plain PyTorch ------------------------------------------------------


def _evaluate(model: torch.nn.Module, task: TaskData) -> dict[str, float]:
    out = {}
    with torch.no_grad():
        for split in ("train", "val", "test"):
            x, y = task.split(split)
            logits = model(x)
            out[f"{split}_loss"] = F.cross_entropy(logits, y).item()
            out[f"{split}_acc"] = (logits.argmax(-1) == y).float().mean().item()
    return out


def train_one(
    setup: Setup, task: TaskData, seed: int, lr: float, wd: float, device: torch.device
) -> tuple[list[torch.Tensor], list[dict[str, float]]]:
    """The per-model loop: same init, batches, schedule and checkpoints as train_population."""
    cfg = setup.config()
    torch.manual_seed(seed)
    model = setup.arch().build().to(device)
    x, y = task.x_train, task.y_train
    n, bs = len(x), setup.batch_size
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=cfg.momentum, weight_decay=wd)
    total = cfg.epochs * math.ceil(n / bs)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(cfg.schedule, s, total))
    gen = torch.Generator().manual_seed(seed + BATCH_SEED_OFFSET)
    weights, metrics = [], []

    def keep(epoch: int) -> None:
        if epoch in cfg.checkpoints:
            weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]).cpu())
            metrics.append(_evaluate(model, task))

    keep(0)
    for epoch in range(1, cfg.epochs + 1):
        perm = torch.randperm(n, generator=gen).to(device)
        for a in range(0, n, bs):
            idx = perm[a : a + bs]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        keep(epoch)
    return weights, metrics


# ---- timing helpers ------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_gflops(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """Best-of-``repeats`` dense float32 ``torch.mm`` rate: the machine's practical peak."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    torch.mm(a, b)
    best = math.inf
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def matmul_flops(setup: Setup, task: TaskData) -> dict[str, float]:
    """Analytic matmul FLOPs of the whole population run: 6 * examples * sum(in*out) per
    training pass (forward 2, backward 4), 2 * examples * sum(in*out) per evaluation pass."""
    s = sum(p.size for p in setup.arch().layout.params if len(p.shape) == 2)
    n_all = len(task.x_train) + len(task.x_val) + len(task.x_test)
    train = 6 * s * len(task.x_train) * setup.epochs * setup.models
    evaluation = 2 * s * n_all * len(setup.config().checkpoints) * setup.models
    return {"train": float(train), "eval": float(evaluation), "total": float(train + evaluation)}


def task_on(task: TaskData, device: torch.device) -> TaskData:
    moved = {k: getattr(task, k).to(device) for k in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")}  # fmt: skip
    return TaskData(task.name, task.kind, task.num_outputs, params=task.params, **moved)


# ---- one width -----------------------------------------------------------------------------------


def run_width(setup: Setup, task: TaskData, device: torch.device, repeats: int) -> dict:
    seeds, lr, wd, bs = setup.hparams()
    arch, cfg = setup.arch(), setup.config()
    dtask = task_on(task, device)

    # warm-up both paths (first-call costs of vmap / autograd / allocator), not timed
    train_one(Setup(setup.width, epochs=1), dtask, 0, 0.01, 0.0, device)
    warm = Setup(setup.width, models=setup.models, epochs=1)
    train_population(arch, dtask, warm.config(), seeds, lr, wd, bs, device=device)

    mm_before = matmul_gflops(device)
    # (b) with its default optimizer update (chosen by size) and, side by side on the CPU, with
    # the fused kernel and with torch ops forced; interleaved run by run, medians of ``repeats``
    modes = (
        {"default": None, "fused": True, "torch ops": False}
        if device.type == "cpu"
        else {"default": None}
    )
    timings: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
    for _ in range(repeats):
        for mode, fused in modes.items():
            _sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            out = train_population(
                arch, dtask, cfg, seeds, lr, wd, bs, device=device, fused_optimizer=fused
            )
            _sync(device)
            timings[mode].append((time.perf_counter() - t0, time.process_time() - c0))
            if mode == "default":
                res = out
    median = {m: statistics.median(t for t, _ in ts) for m, ts in timings.items()}
    t_pop = median["default"]
    c_pop = statistics.median(c for _, c in timings["default"])
    mm_after = matmul_gflops(device)

    k = min(setup.loop_models, setup.models)
    loop_w, loop_acc = [], []
    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(k):
        w, m = train_one(setup, dtask, int(seeds[i]), float(lr[i]), float(wd[i]), device)
        loop_w.append(w[-1])
        loop_acc.append(m[-1]["test_acc"])
    _sync(device)
    t_loop = (time.perf_counter() - t0) * setup.models / k
    c_loop = (time.process_time() - c0) * setup.models / k

    flops = matmul_flops(setup, task)
    mm = max(mm_before, mm_after)
    gflops = flops["total"] / t_pop / 1e9
    pop_final = res.weights[:k, -1].cpu()
    return {
        "width": setup.width,
        "num_params": arch.num_params,
        "loop_models_timed": k,
        "loop_extrapolated": k < setup.models,
        "loop_seconds": t_loop,
        "population_seconds": t_pop,
        "population_runs": repeats,
        "population_seconds_all": [t for t, _ in timings["default"]],
        "population_seconds_by_optimizer_update": median,
        "fused_optimizer_speedup": median["torch ops"] / median["fused"]
        if "fused" in median
        else None,
        "loop_models_per_s": setup.models / t_loop,
        "population_models_per_s": setup.models / t_pop,
        "speedup": t_loop / t_pop,
        # process CPU seconds: with one thread, robust to other processes sharing the cores
        "loop_cpu_seconds": c_loop,
        "population_cpu_seconds": c_pop,
        "speedup_cpu_time": c_loop / c_pop,
        "population_gflops": gflops,
        "matmul_gflops": mm,
        "matmul_gflops_before_after": [mm_before, mm_after],
        "fraction_of_matmul": gflops / mm,
        "population_gflops_cpu_time": flops["total"] / c_pop / 1e9,
        "fraction_of_matmul_cpu_time": flops["total"] / c_pop / 1e9 / mm,
        "flops": flops,
        "population_mean_test_acc": float(res.metrics["test_acc"][:, -1].mean()),
        "loop_mean_test_acc": float(np.mean(loop_acc)),
        "max_abs_weight_diff_loop_vs_population": float(
            (pop_final - torch.stack(loop_w)).abs().max()
        ),
    }


# ---- store size ----------------------------------------------------------------------------------


def _bytes(path: Path) -> int:
    """Total size of the files under ``path`` (what ``du --apparent-size`` counts)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _du_blocks(path: Path) -> int | None:
    """Allocated disk blocks, as plain ``du`` reports them (small files round up to a block)."""
    try:
        out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
        return int(out.stdout.split()[0]) * 1024
    except (OSError, subprocess.CalledProcessError, ValueError):
        return None


def store_size(quick: bool) -> dict:
    """Build a small zoo into a temporary folder; compare its size with raw float32 weights."""
    try:
        from pipelines.build import build_zoo
        from zoo.spec import Axis, Training, ZooSpec
        from zoo.store import open_zoo
    except ImportError as e:  # the store is not there yet
        return {"skipped": f"store not available: {e}"}
    epochs = 2 if quick else 10
    spec = ZooSpec(
        name="bench-store", tasks=("digits",), architecture={"family": "mlp", "depth": 2},
        load=Axis("width", (16, 64)), temperature=Axis("learning_rate", (0.01, 0.03, 0.1)),
        seeds=4, epochs=epochs, checkpoints=(0, epochs // 2, epochs),
        training=Training(batch_size=64),
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "bench.zarr"
        build_zoo(spec, store, workers=0, metrics=False)
        zoo = open_zoo(store)
        raw = 0
        weights_disk = 0
        for name, pop in zoo.populations.items():
            m, c = pop.num_models, len(pop.checkpoints)
            raw += m * c * pop.layout.num_params * 4
            wdir = store / name / "weights"
            if wdir.exists():
                weights_disk += _bytes(wdir)
        total, blocks = _bytes(store), _du_blocks(store)
    return {
        "spec": {
            "widths": [16, 64],
            "learning_rates": [0.01, 0.03, 0.1],
            "seeds": 4,
            "epochs": epochs,
            "checkpoints": 3,
        },  # fmt: skip
        "raw_float32_bytes": raw,
        "weights_array_bytes": weights_disk,
        "store_bytes": total,
        "store_du_bytes": blocks,
        "weights_over_raw": weights_disk / raw if raw else None,
        "store_over_raw": total / raw if raw else None,
    }


# ---- main ----------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="2 epochs, 16 loop models timed")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--widths", type=int, nargs="+", default=[32, 256])
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--no-store", action="store_true", help="skip the store-size measurement")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()  # the store build below sets its own
    load_at_start = list(os.getloadavg())
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but no CUDA device is available")

    epochs = args.epochs or (2 if args.quick else 10)
    loop_models = 16 if args.quick else 64
    task = get_task("digits", seed=0)
    rows = []
    for width in args.widths:
        setup = Setup(width=width, epochs=epochs, loop_models=loop_models)
        rows.append(run_width(setup, task, device, 1 if args.quick else 3))
        r = rows[-1]
        print(
            f"width {width:4d}: loop {r['loop_models_per_s']:7.2f} models/s, population "
            f"{r['population_models_per_s']:7.2f} models/s, speedup {r['speedup']:6.1f}x, "
            f"{r['population_gflops']:6.1f} GFLOP/s = {100 * r['fraction_of_matmul']:5.1f}% "
            f"of mm ({r['matmul_gflops']:.1f}); by CPU time {r['speedup_cpu_time']:.1f}x, "
            f"{100 * r['fraction_of_matmul_cpu_time']:.1f}%; fused optimizer update "
            f"{r['fused_optimizer_speedup'] or float('nan'):.2f}x faster than torch ops",
            flush=True,
        )
    store = {"skipped": "--no-store"} if args.no_store else store_size(args.quick)
    if "store_over_raw" in store:
        print(
            f"store: {store['store_bytes'] / 1e6:.2f} MB on disk for "
            f"{store['raw_float32_bytes'] / 1e6:.2f} MB of raw float32 weights "
            f"(x{store['store_over_raw']:.2f}; weights array x{store['weights_over_raw']:.2f})"
        )
    loaded = max(load_at_start) > 1.5 * (os.cpu_count() or 1)
    result = {
        "benchmark": "zoo_train",
        "warning": (
            "other processes loaded the machine (see load averages): timings are noisy; "
            "compare the side-by-side ratios, and with --threads 1 the *_cpu_* figures"
        )
        if loaded
        else None,
        "device": str(device),
        "quick": args.quick,
        "machine": {
            "cpu_count": os.cpu_count(),
            "torch_threads": threads,
            "torch": torch.__version__,
            "platform": platform.platform(),
            "processor": platform.processor(),
            "load_average_at_start": load_at_start,
            "load_average_at_end": list(os.getloadavg()),
            "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
        },
        "setup": {
            "task": "digits",
            "train_examples": len(task.x_train),
            "models": 64,
            "depth": 2,
            "batch_size": 128,
            "epochs": epochs,
            "optimizer": "sgd momentum 0.9",
            "schedule": "cosine",
            "learning_rate": "geomspace(0.01, 0.1, 64), one per model",
            "weight_decay": "geomspace(1e-3, 1e-5, 64), one per model",
            "checkpoints": [0, epochs],
            "loop_models_timed": loop_models,
            "flops": "6 * examples * sum(in*out) per training pass, 2 * examples * sum(in*out) "
            "per evaluation pass (train+val+test at each kept checkpoint)",
        },  # fmt: skip
        "targets": {"speedup_at_width_32": 10.0, "fraction_of_matmul_at_width_256": 0.30},
        "widths": rows,
        "store": store,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
