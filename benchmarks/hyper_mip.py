"""Benchmark: the hyper generator's training loss with and without the magnitude-invariant
parametrization (MIP, ``model.mip``), on one zoo with the same seeds.

For each seed, two generators that differ only in ``model.mip`` train on the same zoo (the same
training rows, the same per-step index and noise draws); the per-step training losses, smoothed
by a running mean over ``--window`` steps, are averaged over seeds and plotted side by side. The
common target is the worse of the two final smoothed losses, and for each variant the JSON gives
the first step whose smoothed loss reaches it (per seed and for the seed-mean curve), and the
same for the looser levels 100x, 30x, 10x and 3x the target (``steps_to_levels``).

    python benchmarks/hyper_mip.py --store /tmp/zoos/sinusoids.zarr [--steps 1500] [--seeds 0 1 2]

Writes ``benchmarks/results/hyper_mip.json`` and ``hyper_mip.png``. Timings are wall-clock on a
shared machine.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from generators import WeightDataset
from generators.hyper import HyperConfig, HyperGenerator

RESULTS = Path(__file__).resolve().parent / "results"
LEVELS = (100.0, 30.0, 10.0, 3.0, 1.0)  # multiples of the common target loss
PRESET = Path(__file__).resolve().parents[1] / "data" / "generators" / "hyper.toml"


def smooth(losses: list[float], window: int) -> np.ndarray:
    """Running mean over the last ``window`` steps (fewer at the start)."""
    c = np.cumsum(np.asarray(losses, dtype=np.float64))
    out = np.empty(len(c))
    for i in range(len(c)):
        a = max(0, i + 1 - window)
        out[i] = (c[i] - (c[a - 1] if a else 0.0)) / (i + 1 - a)
    return out


def steps_to(curve: np.ndarray, target: float) -> int | None:
    """First step (1-based count) whose smoothed loss is <= target; None if never."""
    hit = np.nonzero(curve <= target)[0]
    return int(hit[0]) + 1 if len(hit) else None


def dataset(store: str, heldout_tasks: list[str], raw: bool) -> WeightDataset:
    """The store's models (raw weights with ``raw``), without the held-out tasks' populations."""
    from zoo.store import open_zoo

    z = open_zoo(store)
    names = [n for n, p in z.populations.items() if p.task not in heldout_tasks]
    data = replace(HyperConfig.load(PRESET).data, canonical=not raw)
    return WeightDataset.from_zoo(z, names, data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--heldout", nargs="*", default=[], help="tasks left out of training")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--window", type=int, default=50)
    ap.add_argument("--raw", action="store_true", help="raw weights (a zoo not canonicalized)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = dataset(args.store, args.heldout, args.raw)
    base = HyperConfig.load(PRESET)
    curves: dict[str, list[np.ndarray]] = {"plain": [], "mip": []}
    seconds: dict[str, list[float]] = {"plain": [], "mip": []}
    for seed in args.seeds:
        for name, mip in (("plain", False), ("mip", True)):
            cfg = base.with_overrides({"model.mip": mip, "training.seed": seed,
                                       "training.max_steps": args.steps})  # fmt: skip
            t = time.perf_counter()
            losses = HyperGenerator(cfg).fit(ds)
            seconds[name].append(time.perf_counter() - t)
            curves[name].append(smooth(losses, args.window))
            print(f"seed {seed} {name}: final smoothed loss {curves[name][-1][-1]:.5f} "
                  f"({seconds[name][-1]:.1f} s)", flush=True)  # fmt: skip
    mean = {k: np.mean(v, axis=0) for k, v in curves.items()}
    target = max(float(m[-1]) for m in mean.values())
    per_seed = []
    for i, seed in enumerate(args.seeds):
        t_i = max(float(curves[k][i][-1]) for k in curves)
        per_seed.append({"seed": seed, "target": t_i,
                         **{f"steps_{k}": steps_to(curves[k][i], t_i) for k in curves},
                         **{f"final_{k}": float(curves[k][i][-1]) for k in curves}})  # fmt: skip
    result = {
        "store": args.store, "heldout_tasks": args.heldout, "steps": args.steps,
        "seeds": args.seeds, "window": args.window, "target_loss": target,
        "steps_to_target": {k: steps_to(m, target) for k, m in mean.items()},
        "steps_to_levels": [{"loss": target * f, **{k: steps_to(m, target * f)
                                                    for k, m in mean.items()}}
                            for f in LEVELS],
        "final_loss": {k: float(m[-1]) for k, m in mean.items()},
        "per_seed": per_seed,
        "seconds_per_run": {k: float(np.mean(v)) for k, v in seconds.items()},
        "note": "wall-clock seconds on a shared, busy 2-core machine",
        "config": base.with_overrides({"training.max_steps": args.steps,
                                       "data.canonical": not args.raw}).to_dict(),
    }  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "hyper_mip.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(curves, mean, target, result, RESULTS / "hyper_mip.png")
    print(json.dumps({k: result[k] for k in ("steps_to_levels", "final_loss")}))


def plot(curves: dict, mean: dict, target: float, result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, (name, runs) in zip(axes, curves.items(), strict=True):
        for run in runs:
            ax.plot(run, color="0.75", lw=0.8)
        ax.plot(mean[name], color="C0" if name == "plain" else "C1", lw=2, label="seed mean")
        ax.axhline(target, color="k", ls="--", lw=0.8, label=f"common target {target:.4f}")
        hit = result["steps_to_target"][name]
        title = "plain inputs" if name == "plain" else "MIP inputs [cos, sin]"
        ax.set_title(f"{title}: target at step {hit}")
        ax.set_xlabel("training step")
        ax.set_yscale("log")
        ax.legend()
    axes[0].set_ylabel(f"training loss (running mean of {result['window']})")
    fig.suptitle(f"hyper generator, {Path(result['store']).name}, seeds {result['seeds']}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
