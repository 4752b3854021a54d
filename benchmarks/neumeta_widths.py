"""NeuMeta across widths: does one implicit field give working nets of every width?

On the default zoo's smooth-ordered copy (6 widths, 4 to 128; ``zoo canonicalize STORE --method
smooth --overwrite``), with the ``neumeta`` preset (or a trained run, ``--run``): the mean test
accuracy of 100 sampled nets at every zoo width (against the held-out real nets of that width)
and at widths in no population (against the accuracy interpolated, in log width, from all real
nets of the two neighbouring widths); the paper's compression reading (the narrowest widths'
accuracy against the widest's, for real and generated nets); and the seconds to sample 1,000
nets of width 128 on 2 threads (a fresh generator: the layout's field is computed, then 1,000
codes decoded), median of 3 runs after one warm-up on another width.

    python benchmarks/neumeta_widths.py [--zoo STORE] [--run RUN_DIR] [--max-steps N]
        -> benchmarks/results/neumeta_widths.json + .png
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

# run as a script, this folder comes first on sys.path and benchmarks/canonicalize.py would
# shadow the ``canonicalize`` package: drop the folder first
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

from generators import WeightDataset, load_generator, make_generator  # noqa: E402
from pipelines.presets import generator_preset  # noqa: E402
from pipelines.width_evaluation import evaluate_widths  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
UNSEEN = (6, 12, 24, 48, 96)


def train(zoo: str, max_steps: int | None, out: Path) -> tuple[object, float]:
    """A neumeta generator trained with the preset on ``zoo``, saved to ``out``."""
    gen = make_generator("neumeta", generator_preset("neumeta"))
    ds = WeightDataset.from_zoo(zoo, None, gen.config.data)
    t0 = time.perf_counter()
    gen.fit(ds, max_steps=max_steps)
    seconds = time.perf_counter() - t0
    gen.save(out)
    return gen, seconds


def sampling_seconds(run: Path, n: int = 1000, width: int = 128, repeats: int = 3) -> list[float]:
    """Seconds for ``n`` nets of ``width`` from a freshly loaded generator, 2 threads."""
    torch.set_num_threads(2)
    times = []
    for r in range(repeats):
        gen = load_generator(run)  # nothing cached: the field at the layout is computed anew
        gen.sample(8, width=16, seed=r)  # warm-up elsewhere (allocator, first calls)
        t0 = time.perf_counter()
        pop = gen.sample(n, width=width, seed=r)
        times.append(time.perf_counter() - t0)
        assert pop.weights().shape[0] == n
    torch.set_num_threads(1)
    return times


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["widths"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    real = report["real_per_width"]
    ax.plot([r["width"] for r in real], [r["mean"] for r in real], "o-", color="black",
            label="real nets (all, mean)")  # fmt: skip
    for key, marker, colour, label in (
        (True, "s", "tab:blue", "generated, zoo widths"),
        (False, "^", "tab:orange", "generated, unseen widths"),
    ):
        sel = [r for r in rows if r["seen"] is key]
        ax.errorbar([r["width"] for r in sel], [r["generated_mean"] for r in sel],
                    yerr=[[r["generated_mean"] - r["generated_min"] for r in sel],
                          [r["generated_max"] - r["generated_mean"] for r in sel]],
                    fmt=marker, color=colour, capsize=3, label=f"{label} (mean, min-max)")  # fmt: skip
    unseen = [r for r in rows if not r["seen"]]
    ax.plot([r["width"] for r in unseen], [r["real_mean"] for r in unseen], "x", color="grey",
            label="interpolated real reference")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xlabel("width (hidden units)")
    ax.set_ylabel("test accuracy")
    ax.set_title("neumeta: one field, every width (default digits zoo)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--zoo", default="/tmp/dz/default-smooth.zarr")
    ap.add_argument("--run", type=Path, default=None, help="a trained neumeta run dir")
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--out", type=Path, default=RESULTS / "neumeta_widths.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    train_seconds = None
    run = args.run
    if run is None:
        run = Path("/tmp/neumeta-widths-run")
        _, train_seconds = train(args.zoo, args.max_steps, run)
    gen = load_generator(run)
    from pipelines.evaluate import dataset_for
    from pipelines.width_evaluation import real_accuracy

    ds = dataset_for(gen, args.zoo)
    zoo_widths = sorted(g.width for g in ds.groups)
    widths = sorted(set(zoo_widths) | {w for w in UNSEEN if zoo_widths[0] < w < zoo_widths[-1]})
    report = evaluate_widths(gen, ds, widths, n=args.n, seed=0)
    task = report["task"]
    real = [{"width": w, "mean": float(real_accuracy(ds, task, w, False).mean())}
            for w in zoo_widths]  # fmt: skip
    by_width = {r["width"]: r for r in report["widths"]}
    narrow, wide = zoo_widths[:2], zoo_widths[-1]
    real_by = {r["width"]: r["mean"] for r in real}
    report.update(
        real_per_width=real,
        compression={
            "narrow_widths": narrow,
            "widest": wide,
            "real": {str(w): real_by[w] / real_by[wide] for w in narrow},
            "generated": {
                str(w): by_width[w]["generated_mean"] / by_width[wide]["generated_mean"]
                for w in narrow
            },
        },  # fmt: skip
        seen_min_ratio=min(r["ratio"] for r in report["widths"] if r["seen"]),
        unseen_min_ratio=min(r["ratio"] for r in report["widths"] if not r["seen"]),
        sampling_seconds_1000_w128_2threads=sampling_seconds(run),
        train_seconds=train_seconds,
        run=str(run),
        config=gen.config.to_dict(),
        note="timings on a shared, busy 2-core machine",
    )
    report["sampling_seconds_median"] = statistics.median(
        report["sampling_seconds_1000_w128_2threads"]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out.with_suffix(".png"))
    for r in report["widths"]:
        print(f"width {r['width']:4d} {'seen  ' if r['seen'] else 'unseen'} generated "
              f"{r['generated_mean']:.3f} real {r['real_mean']:.3f} ratio {r['ratio']:.1%}")  # fmt: skip
    print(f"compression: {report['compression']}")
    print(f"1,000 width-128 nets: {report['sampling_seconds_median']:.2f} s (median of 3)")


if __name__ == "__main__":
    main()
