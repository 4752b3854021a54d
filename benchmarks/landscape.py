"""Cost of the landscape stage: vs training, per model and for the default zoo; batched HVPs.

    python benchmarks/landscape.py [--quick] [--device cpu|cuda]

1. Default preset: wall time of ``build_zoo(..., metrics=False)`` and of ``compute_metrics`` on
   the result, with its own Dask LocalCluster and on an already running one, one after the
   other in this run (target: metrics add <= 50% to the build). Skipped with --quick.
2. Per model, in this process with one torch thread: seconds to train a population of the
   default preset (20 epochs) vs seconds to measure it (Hessian, curves, CKA), per model.
3. Batched population HVPs vs a per-model loop: one ``PopulationHessian.hvp`` on P models
   against P single-model HVPs, same weights and directions (ratio, same run).

Writes ``benchmarks/results/landscape.json`` and prints a short table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from pipelines.presets import default_spec
from zoo import MLP
from zoo.landscape import PopulationHessian, fixed_batches
from zoo.landscape.grid import LandscapeConfig, measure_population
from zoo.spec import ZooSpec
from zoo.tasks import get_task
from zoo.training import train_population

RESULTS = Path(__file__).resolve().parent / "results" / "landscape.json"


def bench_default_build() -> dict:
    """Build the default zoo without metrics, then run the stage twice on copies of it: with its
    own LocalCluster (as ``build_zoo`` calls it today) and on an already running cluster (what
    it adds when the build shares its Dask client)."""
    import shutil

    from pipelines.build import build_zoo
    from pipelines.cluster import dask_client
    from pipelines.metrics_stage import compute_metrics

    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "zoo.zarr")
        t0 = time.perf_counter()
        build_zoo(default_spec(), store, metrics=False)
        t_build = time.perf_counter() - t0
        shared = str(Path(tmp) / "shared.zarr")
        shutil.copytree(store, shared, ignore=shutil.ignore_patterns(".build.lock"))
        t0 = time.perf_counter()
        summary = compute_metrics(store)
        t_own = time.perf_counter() - t0
        with dask_client() as client:
            client.submit(_warm_up).result()  # workers have imported torch and zoo
            t0 = time.perf_counter()
            compute_metrics(shared, client=client)
            t_shared = time.perf_counter() - t0
    models = sum(p.measured for p in summary.populations)
    return {
        "models": models,
        "build_s": round(t_build, 2),
        "metrics_own_cluster_s": round(t_own, 2),
        "metrics_shared_cluster_s": round(t_shared, 2),
        "own_cluster_over_build": round(t_own / t_build, 3),
        "shared_cluster_over_build": round(t_shared / t_build, 3),
        "target_metrics_over_build": 0.5,
        "phases": summary.phases,
    }


def _warm_up() -> bool:
    import zoo.landscape  # noqa: F401

    return True


def bench_per_model(widths: list[int]) -> list[dict]:
    """Train one population of the default preset per width, then measure it (1 thread)."""
    torch.set_num_threads(1)
    spec = ZooSpec.from_toml(default_spec())
    task = get_task(spec.tasks[0], seed=spec.split_seed)
    rows = []
    for plan in spec.plan():
        if plan.arch.width not in widths:
            continue
        hp = plan.hparams
        t0 = time.perf_counter()
        res = train_population(
            plan.arch, task, spec.train_config(), hp["seed"], hp["learning_rate"],
            hp["weight_decay"], hp["batch_size"], hp["data_fraction"],
        )  # fmt: skip
        t_train = time.perf_counter() - t0
        t0 = time.perf_counter()
        r = measure_population(
            plan.arch, task, res.weights[:, -1], hp["cell"], res.status.numpy(), LandscapeConfig(),
            res.metrics["train_loss"][:, -1].numpy(), res.metrics["test_acc"][:, -1].numpy(),
        )  # fmt: skip
        t_metrics = time.perf_counter() - t0
        m = plan.num_models
        rows.append({
            "population": plan.name, "models": m, "params": plan.arch.num_params,
            "train_s_per_model": round(t_train / m, 4),
            "metrics_s_per_model": round(t_metrics / m, 4),
            "metrics_over_train": round(t_metrics / t_train, 3),
            "mean_power_iterations": round(float(r.models.hessian_iterations[r.models.measured].mean()), 1),
        })  # fmt: skip
    return rows


def bench_hvp(models: int, width: int, device: str, repeats: int) -> dict:
    """One batched HVP of P models vs P single-model HVPs (same weights and directions)."""
    task = get_task("digits", seed=0)
    arch = MLP(width=width, in_shape=(1, 8, 8))
    batches = fixed_batches(task)
    w = arch.init_weights(list(range(models))).to(device)
    v = torch.randn(w.shape, generator=torch.Generator().manual_seed(0)).to(device)
    batched = PopulationHessian(arch, task, w, batches)
    singles = [PopulationHessian(arch, task, w[i : i + 1], batches) for i in range(models)]

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    batched.hvp(v)  # warm-up
    singles[0].hvp(v[:1])
    sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        hb = batched.hvp(v)
    sync()
    t_batched = (time.perf_counter() - t0) / repeats
    t0 = time.perf_counter()
    for _ in range(repeats):
        hl = torch.cat([s.hvp(v[i : i + 1]) for i, s in enumerate(singles)])
    sync()
    t_loop = (time.perf_counter() - t0) / repeats
    return {
        "models": models, "width": width, "params": arch.num_params, "device": device,
        "samples": batches.num_samples, "batched_s": round(t_batched, 4), "loop_s": round(t_loop, 4),
        "speedup": round(t_loop / t_batched, 2),
        "max_abs_diff": float((hb - hl).abs().max()),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the default-zoo build")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = parser.parse_args()
    out: dict = {"device": args.device, "threads": torch.get_num_threads(), "quick": args.quick}
    out["hvp"] = [
        bench_hvp(64, 32, args.device, 3 if args.quick else 5),
        bench_hvp(64, 128, args.device, 2 if args.quick else 3),
    ]
    if args.device == "cpu":
        out["per_model"] = bench_per_model([16] if args.quick else [16, 128])
        if not args.quick:
            out["default_build"] = bench_default_build()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2))

    print(f"{'batched HVP':<40}{'loop s':>10}{'batched s':>11}{'speedup':>9}")
    for r in out["hvp"]:
        print(f"{r['models']} MLPs width {r['width']} ({r['device']}){'':<14}"
              f"{r['loop_s']:>10.3f}{r['batched_s']:>11.3f}{r['speedup']:>8.1f}x")  # fmt: skip
    for r in out.get("per_model", []):
        print(f"{r['population']:<28} train {r['train_s_per_model']:.3f} s/model, metrics "
              f"{r['metrics_s_per_model']:.3f} s/model ({100 * r['metrics_over_train']:.0f}%)")  # fmt: skip
    if "default_build" in out:
        d = out["default_build"]
        print(f"default preset ({d['models']} models): build {d['build_s']:.1f} s; metrics "
              f"{d['metrics_own_cluster_s']:.1f} s with their own cluster "
              f"({100 * d['own_cluster_over_build']:.0f}% of the build), "
              f"{d['metrics_shared_cluster_s']:.1f} s on a running one "
              f"({100 * d['shared_cluster_over_build']:.0f}%; target <= 50%)")  # fmt: skip
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
