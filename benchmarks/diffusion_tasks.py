"""Networks for tasks the zoo never trained on: the diffusion generator on held-out tasks.

For each task-family zoo (``digits-rotations``, ``digits-pairs``; built by ``zoo build`` from
``data/specs/``), the diffusion generator is trained on the zoo's training tasks (its spec's
``heldout_tasks`` are left out by the default data config) and asked, for every held-out task
and width, for nets conditioned on the first ``--examples`` training pairs of that task
(``sample(n, task_data=(x, y), width=W)``), plain and with data guidance (``--guidance``,
``--guidance-steps``: each step's predicted net moved against the loss on those examples,
:mod:`generators.diffusion.data_guidance`). On the held-out task's test split, their mean
accuracy is set against:

* the real nets trained on that task (the zoo stores them; none of them was seen in training);
* the real nets of the nearest seen task: the training task whose real nets (same width) score
  best on the held-out task's validation split (for rotations, in practice the nearest angle);
* randomly initialised nets.

Then, as an initialization: ``--finetune`` nets from the generator (data-guided) and as many
random inits, fine-tuned with SGD (momentum 0.9, batch 32) on the held-out task at the widest
width at each of ``--lrs`` (each start keeps its fastest), the mean test accuracy read every
``--every`` steps; the SGD steps each needs to reach the real nets' mean accuracy, and their
ratio (target: generated <= 1/4 of random init). Writes
``benchmarks/results/diffusion_tasks.json`` and ``diffusion_tasks.png``.

    python benchmarks/diffusion_tasks.py [--zoo-root /tmp/zoos] [--families ...] [--max-steps N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

# benchmarks/canonicalize.py would shadow the canonicalize package: drop this folder first
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from generators import WeightDataset, make_generator  # noqa: E402
from pipelines.evaluate import accuracy  # noqa: E402
from pipelines.presets import generator_preset  # noqa: E402
from zoo.architectures import Architecture  # noqa: E402
from zoo.store import open_zoo  # noqa: E402
from zoo.tasks import TaskData, get_task  # noqa: E402
from zoo.training import Status  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def real_nets(store: str) -> dict[tuple[str, int], tuple[Architecture, torch.Tensor]]:
    """(task, width) -> (arch, (M, N) final weights of its finished real nets)."""
    z = open_zoo(store)
    out: dict[tuple[str, int], tuple[Architecture, torch.Tensor]] = {}
    for pop in z.populations.values():
        done = torch.as_tensor(np.asarray(pop.status) == Status.DONE)
        w = pop.weights()[done]
        key = (pop.task, pop.arch.width)
        prev = out.get(key)
        out[key] = (pop.arch, w if prev is None else torch.cat([prev[1], w]))
    return out


def val_accuracy(arch: Architecture, task: TaskData, w: torch.Tensor) -> float:
    x, y = task.split("val")
    with torch.no_grad():
        return float(arch.forward(w, x).argmax(-1).eq(y).float().mean())


def finetune_curve(
    arch: Architecture, task: TaskData, w0: torch.Tensor, steps: int, every: int, lr: float,
    seed: int,
) -> list[float]:  # fmt: skip
    """Mean test accuracy of the nets w0 (P, N) every ``every`` SGD steps (momentum 0.9, batch
    32, cross-entropy) on the task's training split, from step 0 to ``steps``."""
    w = w0.clone().requires_grad_(True)
    opt = torch.optim.SGD([w], lr=lr, momentum=0.9)
    rng = torch.Generator().manual_seed(seed)
    x, y = task.x_train, task.y_train
    curve = [float(accuracy(arch, task, w.detach()).mean())]
    for step in range(1, steps + 1):
        idx = torch.randint(len(x), (32,), generator=rng)
        out = arch.forward(w, x[idx])  # (P, 32, C)
        loss = (
            torch.nn.functional.cross_entropy(
                out.reshape(-1, out.shape[-1]), y[idx].repeat(len(w)), reduction="sum"
            )
            / 32
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % every == 0:
            curve.append(float(accuracy(arch, task, w.detach()).mean()))
    return curve


def fastest(
    arch: Architecture, task: TaskData, w0: torch.Tensor, target: float, args: argparse.Namespace
) -> tuple[float, list[float], int | None]:
    """Fine-tune from w0 at every learning rate of ``args.lrs``; the one that reaches ``target``
    in the fewest steps (the first of them on a tie; the largest if none reaches it), with its
    curve and steps. Each start gets its own best learning rate: a trained net at a learning
    rate made for random init first loses accuracy, a random init at a small one crawls."""
    runs = []
    for lr in args.lrs:
        curve = finetune_curve(arch, task, w0, args.steps, args.every, lr, 0)
        runs.append((lr, curve, steps_to_reach(curve, target, args.every)))
    reached = [r for r in runs if r[2] is not None]
    return min(reached, key=lambda r: r[2]) if reached else runs[-1]


def steps_to_reach(curve: list[float], target: float, every: int) -> int | None:
    for i, acc in enumerate(curve):
        if acc >= target:
            return i * every
    return None


def run_family(name: str, store: str, args: argparse.Namespace) -> dict[str, Any]:
    cfg = make_generator("diffusion", generator_preset("diffusion")).config
    over: dict[str, Any] = {}
    if args.max_steps:
        over["training.max_steps"] = args.max_steps
    cfg = cfg.with_overrides(over) if over else cfg
    ds = WeightDataset.from_zoo(store, config=cfg.data)
    gen = make_generator("diffusion", cfg)
    t0 = time.perf_counter()
    gen.fit(ds)
    train_s = time.perf_counter() - t0
    seen = gen.require_info().tasks
    nets = real_nets(store)
    heldout = sorted({t for t, _ in nets} - set(seen))
    rows = []
    for t in heldout:
        task = get_task(t)
        x, y = task.x_train[: args.examples], task.y_train[: args.examples]
        for (tt, width), (arch, real_w) in sorted(nets.items()):
            if tt != t:
                continue
            real = float(accuracy(arch, task, real_w).mean())
            gen_w = gen.sample(args.n, task_data=(x, y), width=width, seed=args.seed).weights()
            guided = gen.sample(args.n, task_data=(x, y), width=width, seed=args.seed,
                                **guidance(args)).weights()  # fmt: skip
            by_name = gen.sample(args.n, task=t, width=width, seed=args.seed).weights()
            cands = [(s, nets[(s, width)][1]) for s in seen if (s, width) in nets]
            best, best_w = max(cands, key=lambda c: val_accuracy(arch, task, c[1]))
            init = arch.init_weights(list(range(args.n)))
            row = {
                "task": t, "width": width, "real_acc": real, "real_nets": len(real_w),
                "generated_acc": float(accuracy(arch, task, gen_w).mean()),
                "generated_by_name_acc": float(accuracy(arch, task, by_name).mean()),
                "guided_acc": float(accuracy(arch, task, guided).mean()),
                "nearest_seen_task": best,
                "nearest_seen_acc": float(accuracy(arch, task, best_w).mean()),
                "random_init_acc": float(accuracy(arch, task, init).mean()),
            }  # fmt: skip
            for k in ("generated", "generated_by_name", "guided", "nearest_seen", "random_init"):
                row[f"{k}_ratio"] = row[f"{k}_acc"] / real
            rows.append(row)
            print(json.dumps(row), flush=True)
    widest = max(r["width"] for r in rows)
    curves = []
    for t in heldout:
        task = get_task(t)
        arch, real_w = nets[(t, widest)]
        target = float(accuracy(arch, task, real_w).mean())
        x, y = task.x_train[: args.examples], task.y_train[: args.examples]
        gen_w = gen.sample(args.finetune, task_data=(x, y), width=widest, seed=args.seed + 1,
                           **guidance(args))  # fmt: skip
        init = arch.init_weights(list(range(1000, 1000 + args.finetune)))
        lg, cg, sg = fastest(arch, task, gen_w.weights(), target, args)
        lr_, cr, sr = fastest(arch, task, init, target, args)
        curves.append({"task": t, "width": widest, "real_acc": target, "generated": cg,
                       "random_init": cr, "steps_generated": sg, "steps_random_init": sr,
                       "lr_generated": lg, "lr_random_init": lr_,
                       "step_ratio": (sg / sr) if sg is not None and sr else None})  # fmt: skip
        print(t, "steps to real accuracy: generated", sg, f"(lr {lg})", "random init", sr,
              f"(lr {lr_})", flush=True)  # fmt: skip
    mean = {k: float(np.mean([r[k] for r in rows]))
            for k in rows[0] if k.endswith("_ratio")}  # fmt: skip
    return {"family": name, "store": store, "train_seconds": train_s, "seen_tasks": seen,
            "heldout_tasks": heldout, "mean": mean, "rows": rows, "finetune": curves}  # fmt: skip


def guidance(args: argparse.Namespace) -> dict[str, Any]:
    return {"data_guidance": args.guidance, "data_guidance_steps": args.guidance_steps}


def plot(results: list[dict[str, Any]], path: Path, every: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(6 * len(results), 4), squeeze=False)
    for ax, res in zip(axes[0], results, strict=True):
        for c, color in zip(res["finetune"], plt.cm.tab10.colors, strict=False):
            steps = np.arange(len(c["generated"])) * every
            ax.plot(steps, c["generated"], color=color, label=f"{c['task']} generated")
            ax.plot(steps, c["random_init"], color=color, ls="--", label="random init")
            ax.axhline(c["real_acc"], color=color, ls=":", lw=0.8)
        ax.set_xscale("symlog", linthresh=every)  # the first hundred steps are the story
        ax.set_xlim(left=0)
        ax.set(title=f"{res['family']}: fine-tuning on held-out tasks", xlabel="SGD steps",
               ylabel="mean test accuracy")  # fmt: skip
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zoo-root", default="/tmp/zoos")
    ap.add_argument("--families", nargs="+", default=["digits-rotations", "digits-pairs"])
    ap.add_argument("--max-steps", type=int, default=0, help="override training.max_steps")
    ap.add_argument("--n", type=int, default=50, help="nets per (held-out task, width)")
    ap.add_argument("--examples", type=int, default=100, help="task pairs the encoder reads")
    ap.add_argument("--finetune", type=int, default=8, help="nets fine-tuned per start")
    ap.add_argument("--steps", type=int, default=2000, help="fine-tuning SGD steps")
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--lrs", type=float, nargs="+", default=[0.01, 0.03, 0.1],
                    help="fine-tuning learning rates; each start keeps its fastest")  # fmt: skip
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--guidance", type=float, default=0.05, help="data guidance step (latent std)")
    ap.add_argument("--guidance-steps", type=int, default=32, help="guidance moves per step")
    ap.add_argument("--out", default=str(RESULTS / "diffusion_tasks.json"))
    args = ap.parse_args()
    torch.manual_seed(0)
    results = []
    for fam in args.families:
        store = str(Path(args.zoo_root) / f"{fam}.zarr")
        if not Path(store).exists():
            print(f"skipping {fam}: no store at {store}", flush=True)
            continue
        results.append(run_family(fam, store, args))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"settings": vars(args), "families": results}, indent=2) + "\n")
    if results:
        plot(results, out.with_suffix(".png"), args.every)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
