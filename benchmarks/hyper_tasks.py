"""Benchmark: the hyper generator on tasks it never trained on, against real nets trained on them.

A task-family zoo (``sinusoids``: regression over amplitude x phase; ``digits-rotations``:
digits classification over rotation angles) is built with some tasks held out of generator
training (the zoo's ``heldout_tasks``, or ``--heldout``). The hyper generator (the shipped preset,
conditioned on the task parameters) trains on the other tasks; then for every held-out task and
width it samples ``--n`` nets from the task's parameters alone and compares them on the test
split with the zoo's real nets of that task: mean test MSE (regression; ratio generated / real,
target <= 1.5 inside the training grid) or mean test accuracy (classification; ratio generated /
real, target >= 0.95), and their diversity (pairwise prediction disagreement, or the std of the
regression outputs across nets) against the real nets'. Held-out tasks whose parameters lie outside the training range are
reported apart (``outside``). Each held-out row also gives the score on that task of the real
nets of the nearest training task (``nearest_seen_real_mean``: what reusing a seen task's nets
gives, the bar a generator for new tasks has to clear). Seen tasks get the same figures, against all real nets of the task.

    python benchmarks/hyper_tasks.py sinusoids --store /tmp/zoos/sinusoids.zarr [--steps 1500] [--raw]
    python benchmarks/hyper_tasks.py digits-rotations --store /tmp/zoos/digits-rotations.zarr

Writes (merges into) ``benchmarks/results/hyper_tasks.json``, one entry per family. Timings are
wall-clock on a shared, busy machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from generators import WeightDataset
from generators.hyper import HyperConfig, HyperGenerator
from zoo.finite import finite_rows
from zoo.store import open_zoo
from zoo.tasks import get_task
from zoo.training import Status, evaluate

RESULTS = Path(__file__).resolve().parent / "results" / "hyper_tasks.json"
PRESET = Path(__file__).resolve().parents[1] / "data" / "generators" / "hyper.toml"
TARGET = {"regression": 1.5, "classification": 0.95}  # MSE ratio at most, accuracy ratio at least


def real_weights(pop) -> torch.Tensor:
    """(M, N) final weights of a stored population's finished, finite models."""
    w = pop.weights(checkpoint=-1)
    done = torch.as_tensor(np.asarray(pop.status) == Status.DONE)
    return w[done & finite_rows(w)]


def score(arch, task: str, w: torch.Tensor) -> torch.Tensor:
    """(M,) test MSE (regression) or test accuracy (classification) of the rows of w."""
    data = get_task(task)
    loss, acc = evaluate(arch, data, w, "test")
    return loss if data.kind == "regression" else acc


@torch.no_grad()
def diversity(arch, task: str, w: torch.Tensor) -> float:
    """Classification: mean pairwise share of test points on which two of the nets w (M, N)
    predict different classes; regression: mean over test points of the std of the M nets'
    predictions."""
    data = get_task(task)
    out = arch.forward(w, data.x_test)  # (M, B, outputs)
    if data.kind == "regression":
        return float(out.std(dim=0).mean())
    pred = out.argmax(-1)  # (M, B)
    differ = (pred[:, None] != pred[None]).float().mean(-1)  # (M, M)
    m = len(pred)
    return float(differ.sum() / max(1, m * (m - 1)))


def compare(gen: HyperGenerator, pops: list, task: str, n: int, seed: int) -> list[dict]:
    """Per width of ``task``'s populations: generated vs real test scores."""
    rows = []
    for pop in pops:
        arch = pop.arch
        real = score(arch, task, real_weights(pop))
        t = time.perf_counter()
        drawn = gen.sample(n, task=task, width=arch.width, seed=seed)
        seconds = time.perf_counter() - t
        g = score(arch, task, drawn.weights())
        kind = get_task(task).kind
        rows.append({
            "task": task, "width": arch.width, "kind": kind,
            "metric": "test_mse" if kind == "regression" else "test_acc",
            "generated_mean": float(g.mean()), "generated_min": float(g.min()),
            "generated_max": float(g.max()), "real_mean": float(real.mean()),
            "real_median": float(real.median()), "real_models": len(real),
            "ratio": float(g.mean() / real.mean()), "sample_seconds": seconds,
            "generated_diversity": diversity(arch, task, drawn.weights()),
            "real_diversity": diversity(arch, task, real_weights(pop)),
        })  # fmt: skip
    return rows


def nearest_seen(gen: HyperGenerator, task: str) -> list[str]:
    """The training tasks nearest to ``task`` in scaled parameters (all of them on a tie)."""
    info = gen.require_info()
    p = gen.scaler.scale(gen.scaler.vector(dict(get_task(task).params), task)[None])
    d = (gen.scaler.scale(gen.task_table) - p).norm(dim=1)  # (T,)
    return [info.tasks[i] for i in torch.nonzero(d <= d.min() + 1e-6).flatten().tolist()]


def nearest_baseline(rows: list[dict], gen: HyperGenerator, by_task: dict, task: str) -> None:
    """Adds to each row (one width of held-out ``task``) the score on ``task`` of the real nets
    of its nearest training task(s) at that width: what reusing a seen task's nets gives."""
    near = nearest_seen(gen, task)
    for row in rows:
        pops = [p for t in near for p in by_task[t] if p.arch.width == row["width"]]
        w = [real_weights(p) for p in pops]
        row["nearest_seen_tasks"] = near
        row["nearest_seen_real_mean"] = float(score(pops[0].arch, task, torch.cat(w)).mean())


def inside(gen: HyperGenerator, task: str) -> bool:
    """Whether every parameter of ``task`` lies within the generator's training range."""
    p = gen.scaler.vector(dict(get_task(task).params), task)
    return bool(((p >= gen.scaler.low) & (p <= gen.scaler.high)).all())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("family", help="a name for the entry: sinusoids, digits-rotations, ...")
    ap.add_argument("--store", required=True)
    ap.add_argument("--heldout", nargs="*", default=None,
                    help="tasks left out of training (default: the zoo's heldout_tasks)")  # fmt: skip
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: preset)")
    ap.add_argument("--n", type=int, default=32, help="nets sampled per task and width")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mip", choices=["true", "false"], default=None)
    ap.add_argument("--raw", action="store_true", help="raw weights (a zoo not canonicalized)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    z = open_zoo(args.store)
    heldout = args.heldout
    if heldout is None:
        heldout = list(getattr(z.spec, "heldout_tasks", ()))
    if not heldout:
        raise SystemExit(f"{args.store} names no held-out tasks: pass --heldout")
    by_task: dict[str, list] = {}
    for pop in z.populations.values():
        by_task.setdefault(pop.task, []).append(pop)
    missing = [t for t in heldout if t not in by_task]
    if missing:
        raise SystemExit(f"no real nets of held-out task(s) {missing} in {args.store}")
    over = {"training.seed": args.seed}
    if args.steps:
        over["training.max_steps"] = args.steps
    if args.mip:
        over["model.mip"] = args.mip == "true"
    if args.raw:
        over["data.canonical"] = False
    cfg = HyperConfig.load(PRESET).with_overrides(over)
    names = [n for n, p in z.populations.items() if p.task not in heldout]
    ds = WeightDataset.from_zoo(z, names, cfg.data)
    gen = HyperGenerator(cfg)
    t = time.perf_counter()
    losses = gen.fit(ds)
    train_seconds = time.perf_counter() - t
    seen = [r for task in gen.require_info().tasks
            for r in compare(gen, by_task[task], task, args.n, args.seed)]  # fmt: skip
    held = {"inside": [], "outside": []}
    for task in heldout:
        rows = compare(gen, by_task[task], task, args.n, args.seed)
        nearest_baseline(rows, gen, by_task, task)
        held["inside" if inside(gen, task) else "outside"] += rows
    kind = get_task(heldout[0]).kind

    def pooled(rows: list[dict]) -> float | None:
        return float(np.mean([r["ratio"] for r in rows])) if rows else None

    entry = {
        "store": args.store, "heldout_tasks": heldout, "n": args.n, "seed": args.seed,
        "metric": "test_mse" if kind == "regression" else "test_acc",
        "target": ("ratio <= " if kind == "regression" else "ratio >= ") + str(TARGET[kind]),
        "ratio_heldout_inside": pooled(held["inside"]),
        "ratio_heldout_outside": pooled(held["outside"]), "ratio_seen": pooled(seen),
        "heldout_inside": held["inside"], "heldout_outside": held["outside"], "seen": seen,
        "train_seconds": train_seconds, "final_train_loss": float(np.mean(losses[-50:])),
        "param_range": {k: [float(gen.scaler.low[i]), float(gen.scaler.high[i])]
                        for i, k in enumerate(gen.scaler.names)},
        "note": "seconds are wall-clock on a shared, busy 2-core machine",
        "config": cfg.to_dict(),
    }  # fmt: skip
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[args.family] = entry
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: entry[k] for k in ("metric", "target", "ratio_heldout_inside",
                                            "ratio_heldout_outside", "ratio_seen")}))  # fmt: skip


if __name__ == "__main__":
    main()
