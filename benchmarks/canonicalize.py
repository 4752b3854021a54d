"""Benchmark: Git Re-Basin weight matching on digits MLPs, pairs and whole populations.

(1) Two MLPs 64-512-512-512-10 trained independently on digits (``train_population``): seconds
to match them (median of repeats), the linear-interpolation train-loss barrier (max over t of
loss((1-t) a + t b) minus the mean of the endpoint losses) and the L2 distance, before and after
matching; side by side in one run, interleaved: the default (strict stopping rule) on 1 and 2
torch threads, with ``overlap`` (two threads), with scipy's assignment solver run from
scratch at every visit (the reference), and with the optional relative ``tol``.
(2) A population of 100 digits MLPs (64-128-128-10, different seeds and learning rates):
seconds to align all of them to the medoid, and the mean pairwise L2 before/after.
Also: seconds of the NeuMeta smoothing order for one 3x512 model, and its total variation.

    python benchmarks/canonicalize.py [--quick] [--device cpu|cuda]

Training always runs on the CPU; matching runs on ``--device`` (the assignments on the CPU).
Writes ``benchmarks/results/canonicalize.json`` and prints a short table. Timings on a shared
machine are noisy: the JSON records the load average and the CPU time next to the wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow the
# ``canonicalize`` package: drop the folder before importing it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from canonicalize import (  # noqa: E402
    Permutation,
    align_population,
    smooth,
    total_variation,
    weight_matching,
)
from canonicalize.descent import coordinate_descent  # noqa: E402
from canonicalize.solvers import ScipyAssignment  # noqa: E402
from canonicalize.weight_matching import free_solvers  # noqa: E402
from zoo.architectures import MLP  # noqa: E402
from zoo.tasks import TaskData, get_task  # noqa: E402
from zoo.training import TrainConfig, evaluate, train_population  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "canonicalize.json"
TARGETS = {"pair_seconds": 0.3, "barrier_cut": 0.9, "population_seconds": 30.0}
TOLS = (1e-4, 1e-3, 1e-2)  # the optional relative stopping tolerance, against the strict default


def train(
    arch: MLP, task: TaskData, seeds: np.ndarray, lr: np.ndarray, epochs: int
) -> torch.Tensor:
    """(P, N) final weights of models trained with SGD + momentum, cosine schedule, batch 32."""
    p = len(seeds)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batched matmuls: one thread is faster on a shared machine
    res = train_population(
        arch, task, TrainConfig(epochs, (epochs,)), seeds, lr, np.full(p, 1e-4), np.full(p, 32)
    )
    torch.set_num_threads(threads)
    if not (res.status == 1).all():
        raise RuntimeError(f"{int((res.status != 1).sum())} models diverged")
    return res.weights[:, -1]


def barrier(arch: MLP, task: TaskData, a: torch.Tensor, b: torch.Tensor, steps: int = 25) -> float:
    """Train-loss barrier along the linear path from a to b."""
    ts = torch.linspace(0, 1, steps)
    loss, _ = evaluate(arch, task, torch.stack([(1 - t) * a + t * b for t in ts]), "train")
    return float((loss - (loss[0] + loss[-1]) / 2).max())


def timed(fn, repeats: int) -> tuple[object, list[float], list[float]]:
    """Result of the last call, wall seconds and CPU seconds of each call."""
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return out, walls, cpus


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timing(walls: list[float], cpus: list[float]) -> dict:
    return {
        "match_seconds_median": statistics.median(walls),
        "match_seconds_min": min(walls),
        "match_cpu_seconds_median": statistics.median(cpus),
    }


def bench_pair(task: TaskData, device: str, epochs: int, repeats: int) -> dict:
    arch = MLP(width=512, depth=3, in_shape=(1, 8, 8))
    t0 = time.perf_counter()
    w = train(arch, task, np.array([1, 2]), np.full(2, 0.05), epochs)
    train_s = time.perf_counter() - t0
    w_a, w_b = w[0].to(device), w[1].to(device)
    weight_matching(arch, w_a, w_b)  # warm-up (first-call allocations)

    def match(solver: str = "compiled", **kwargs):
        if solver == "scipy":  # the reference: scipy from scratch at every visit
            solvers = {g: ScipyAssignment() for g in free_solvers(arch, False)}
            p = Permutation(arch, coordinate_descent(arch, w_a, w_b, solvers, seed=0).perms)
        else:
            p = weight_matching(arch, w_a, w_b, seed=0, **kwargs)
        sync(device)
        return p

    # Variants side by side, interleaved repeat by repeat, so that the load of other jobs on a
    # shared machine hits all of them alike. Default: the strict stopping rule, no overlap.
    threads = torch.get_num_threads()
    variants: dict[str, tuple[int, dict]] = {
        f"default, {t} torch thread(s)": (t, {}) for t in sorted({1, threads})
    }
    if threads > 1:
        variants[f"overlap, {threads} torch threads"] = (threads, {"overlap": True})
    variants["scipy solver (no warm start), 1 torch thread"] = (1, {"solver": "scipy"})
    for tol in TOLS:
        variants[f"tol={tol:g}, 1 torch thread"] = (1, {"tol": tol})
    walls: dict[str, list[float]] = {k: [] for k in variants}
    cpus: dict[str, list[float]] = {k: [] for k in variants}
    perms = {}
    load_start = os.getloadavg()
    for _ in range(repeats):
        for name, (t, kwargs) in variants.items():
            torch.set_num_threads(t)
            perms[name], wl, cp = timed(lambda kw=kwargs: match(**kw), 1)
            walls[name] += wl
            cpus[name] += cp
    torch.set_num_threads(threads)
    load_end = os.getloadavg()
    w_a, w_b = w_a.cpu(), w_b.cpu()
    b0 = barrier(arch, task, w_a, w_b)
    out_variants = {}
    first = next(iter(variants))
    for name, (_, kwargs) in variants.items():
        w_bp = perms[name].apply(w_b)
        b1 = barrier(arch, task, w_a, w_bp)
        tol = kwargs.get("tol", 0.0)
        passes = coordinate_descent(arch, w_a, w_b, free_solvers(arch, False), seed=0, tol=tol)
        out_variants[name] = {
            **timing(walls[name], cpus[name]),
            "passes": passes.passes,
            "barrier_after": b1,
            "barrier_cut": 1 - b1 / b0,
            "l2_after": float((w_a - w_bp).norm()),
            "same_permutation_as_default": perms[name].perms.keys() == perms[first].perms.keys()
            and all(
                torch.equal(perms[name].perms[g], perms[first].perms[g]) for g in perms[first].perms
            ),
        }
    default = out_variants[f"default, {threads} torch thread(s)"]
    w_bp = perms[f"default, {threads} torch thread(s)"].apply(w_b)
    loss, acc = evaluate(arch, task, w, "train")
    _, sw, _ = timed(lambda: smooth(arch, w_a), 1)
    return {
        "architecture": "MLP 64-512-512-512-10",
        "epochs": epochs,
        "train_seconds": train_s,
        "endpoint_train_loss": loss.tolist(),
        "endpoint_test_acc": evaluate(arch, task, w, "test")[1].tolist(),
        "train_acc": acc.tolist(),
        **{k: default[k] for k in ("match_seconds_median", "match_seconds_min")},
        "match_cpu_seconds_median": default["match_cpu_seconds_median"],
        "by_torch_threads": {
            t: out_variants[f"default, {t} torch thread(s)"] for t in sorted({1, threads})
        },
        "variants": out_variants,
        "repeats": repeats,
        "load_average_during_matching": {"start": load_start, "end": load_end},
        "passes": default["passes"],
        "barrier_before": b0,
        "barrier_after": default["barrier_after"],
        "barrier_cut": default["barrier_cut"],
        "l2_before": float((w_a - w_b).norm()),
        "l2_after": float((w_a - w_bp).norm()),
        "smooth_seconds": sw[0],
        "tv_before": float(total_variation(arch, w_a)),
        "tv_after_smoothing": float(total_variation(arch, smooth(arch, w_a).apply(w_a))),
    }


def bench_population(task: TaskData, device: str, models: int, width: int, epochs: int) -> dict:
    arch = MLP(width=width, depth=2, in_shape=(1, 8, 8))
    lrs = np.array([0.01, 0.03, 0.1])[np.arange(models) % 3]
    t0 = time.perf_counter()
    w = train(arch, task, np.arange(models), lrs, epochs)
    train_s = time.perf_counter() - t0
    out = {"models": models, "architecture": f"MLP 64-{width}-{width}-10", "epochs": epochs}
    out["train_seconds"] = train_s
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matmuls: one thread is as fast and robust to shared load
    out["torch_threads"] = 1
    for ref in ("medoid", "barycenter"):
        res, walls, cpus = timed(lambda r=ref: align_population(arch, w.to(device), reference=r), 1)
        out[ref] = {
            "seconds": walls[0],
            "cpu_seconds": cpus[0],
            "distance_before": res.distance_before,
            "distance_after": res.distance_after,
            "reduction": 1 - res.distance_after / res.distance_before,
            "rounds": res.rounds,
        }
    torch.set_num_threads(threads)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer epochs and models")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but CUDA is not available")
    task = get_task("digits", seed=0)
    pair = bench_pair(
        task, args.device, epochs=2 if args.quick else 10, repeats=3 if args.quick else 7
    )
    pop = bench_population(
        task,
        args.device,
        models=20 if args.quick else 100,
        width=128,
        epochs=2 if args.quick else 5,
    )
    result = {
        "device": args.device,
        "quick": args.quick,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "targets": TARGETS,
        "pair": pair,
        "population": pop,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"{'':34s}{'before':>10s}{'after':>10s}")
    print(
        f"{'3x512 pair: train-loss barrier':34s}{pair['barrier_before']:10.3f}{pair['barrier_after']:10.3f}"
    )
    print(f"{'3x512 pair: L2 distance':34s}{pair['l2_before']:10.2f}{pair['l2_after']:10.2f}")
    for name, r in pair["variants"].items():
        print(
            f"3x512 pair, {name}: {r['match_seconds_median']:.3f} s (median of "
            f"{pair['repeats']}, min {r['match_seconds_min']:.3f} s, CPU "
            f"{r['match_cpu_seconds_median']:.3f} s), {r['passes']} passes, barrier cut "
            f"{r['barrier_cut']:.1%}"
        )
    load = pair["load_average_during_matching"]
    print(f"load average (1 min) while matching: {load['start'][0]:.2f} -> {load['end'][0]:.2f}")
    print(f"barrier cut {pair['barrier_cut']:.1%}")
    for ref in ("medoid", "barycenter"):
        r = pop[ref]
        print(
            f"{pop['models']} models ({ref}): {r['seconds']:.2f} s, mean pairwise L2 "
            f"{r['distance_before']:.2f} -> {r['distance_after']:.2f}"
        )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
