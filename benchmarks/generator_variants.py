"""Accuracy / novelty of flow-generator variants on the default zoo, 5-fold cross-validated.

Every variant is the default preset (``data/generators/flow.toml``) with a few fields overridden;
each config is trained once per fold (:mod:`pipelines.crossval`), so every real model is held out
once, and rows that differ only in their sampling options share those generators. The preset
self-distils (:mod:`generators.distillation`); the rows measured before it existed turn it off.
Side by side: the pooled accuracy ratio (generated / held-out real mean test accuracy), the
distance ratio and the prediction disagreement with the nearest training net, against the same
disagreement of held-out real nets; the spread of the accuracy ratio over the folds shows how
much one 80/20 split alone would move it. ``generator_variants.png`` plots accuracy against
disagreement for every variant, with the targets. No timings: these are quality figures.

One reference row involves no generator: the augmentation's interpolations between two training
nets (kept when no worse than the worse parent), drawn directly and scored with the same
metrics. It shows where the flow's own training data sits on the accuracy / novelty trade-off.

    python benchmarks/generator_variants.py [--zoo STORE] [--only NAME ...] [--folds K] [--out JSON]

Each row also keeps the per-group breakdown (``per_group``: accuracy ratio and disagreement per
width). ``--out`` writes to another JSON (and PNG beside it), for a zoo other than the default.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from functools import partial
from pathlib import Path

# Run as a script, this folder comes first on sys.path, and benchmarks/canonicalize.py would
# shadow the ``canonicalize`` package that the pipeline imports: drop the folder first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from rich.console import Console  # noqa: E402

from generators import WeightDataset, calibration_of, load_generator  # noqa: E402
from generators.augmentation import interpolate_models  # noqa: E402
from generators.training_rounds import distill_rounds  # noqa: E402
from pipelines.crossval import cross_validate, evaluate_folds, fold_dirs  # noqa: E402
from pipelines.demo import WEIGHTED_8, preset_flow  # noqa: E402
from pipelines.evaluate import (  # noqa: E402
    EvalSettings,
    accuracy,
    group_replicate_disagreement,
    heldout_vs_nearest,
    mean_pairwise_disagreement,
    novelty,
    predictions,
    ratio,
)
from zoo.tasks import get_task  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "generator_variants.json"

# the demo's setting until this round: of 8 draws, the most novel of those at least as good as
# the prompt (temperature 1, 4 Heun steps)
NOVEL: dict = {"candidates": 8, "select": "novel", "temperature": 1.0, "steps": 4}
# twice its candidates at temperature 0.75 (the same 4 steps)
BEST_OF_16: dict = {**NOVEL, "candidates": 16, "temperature": 0.75}
# and four times them: does more selection keep moving the frontier?
BEST_OF_32: dict = {**BEST_OF_16, "candidates": 32}
# the preset distils (generators/distillation.py); the rows measured before it keep their
# figures with distillation off (and the calibration, generators/calibration.py, which they do
# not read)
UNDISTILLED: dict = {"distill.per_net": 0, "calibrate.candidates": 0}
# the preset's calibrated best of 16 (zoo demo's setting): no weight given, so each fold's
# generator keeps by its own calibrated one
CALIBRATED: dict = {
    "candidates": 16, "select": "weighted", "temperature": 1.0, "steps": 4, "solver": "euler",
}  # fmt: skip
# the demo's rule with two and four times its candidates: more candidates move its frontier
WEIGHTED_16: dict = {**WEIGHTED_8, "candidates": 16, "disagreement_weight": 0.55}
WEIGHTED_32: dict = {**WEIGHTED_8, "candidates": 32, "disagreement_weight": 0.6}
# name -> (config overrides, sampling options)
VARIANTS_UNDISTILLED: dict[str, tuple[dict, dict]] = {
    "default (augment 4, pca <= 16 within 7.5 points)": ({}, {}),
    "no augmentation": ({"augment.interpolations": 0}, {}),
    "guidance 2": ({}, {"guidance": 2.0}),
    "pca_max_drop 0.05": ({"model.pca_max_drop": 0.05}, {}),
    "pca_max_drop 0.125": ({"model.pca_max_drop": 0.125}, {}),
    "pca_max_drop 0.2": ({"model.pca_max_drop": 0.2}, {}),
    "pca 6 in every group": ({"model.pca": 6, "model.pca_max_drop": None}, {}),
    "no OT pairing": ({"model.ot_pairing": False}, {}),
    "source_std 1.0": ({"model.source_std": 1.0}, {}),
    "hidden 1024, 1600 steps, augment 8": (
        {"model.hidden": 1024, "training.max_steps": 1600, "augment.interpolations": 8},
        {},
    ),
    "no max_norm_ratio": ({"data.max_norm_ratio": 0.0}, {}),
    "raw weights": ({"data.canonical": False}, {}),
    "raw weights, no augmentation": ({"data.canonical": False, "augment.interpolations": 0}, {}),
    "pca 16 in every group": ({"model.pca_max_drop": None}, {}),
    # best-of-k sampling (generators.selection): k draws per prompt, the one whose measured
    # validation accuracy is closest to the prompt is kept
    "best of 8": ({}, {"candidates": 8}),
    "temperature 1.0, best of 8": ({}, {"temperature": 1.0, "candidates": 8}),
    "pca_max_drop 0.05, best of 8": ({"model.pca_max_drop": 0.05}, {"candidates": 8}),
    "pca 16 in every group, best of 8": ({"model.pca_max_drop": None}, {"candidates": 8}),
    # the prompt as a floor: of the candidates at least as good as it, the closest to it
    "best of 4, at least the prompt, temperature 0.75": (
        {},
        {"candidates": 4, "select": "at-least", "temperature": 0.75},
    ),
    "pca_max_drop 0.05, best of 4, at least the prompt, temperature 0.75": (
        {"model.pca_max_drop": 0.05},
        {"candidates": 4, "select": "at-least", "temperature": 0.75},
    ),
    # ... or the most novel (best of 8, temperature 1, 4 Heun steps)
    "best of 8, novel": ({}, NOVEL),
    "best of 8, novel, temperature 0.75": ({}, {**NOVEL, "temperature": 0.75}),
    "best of 4, novel": ({}, {**NOVEL, "candidates": 4}),
    "pca_max_drop 0.1, best of 8, novel": ({"model.pca_max_drop": 0.1}, NOVEL),
    "pca_max_drop 0.125, best of 8, novel": ({"model.pca_max_drop": 0.125}, NOVEL),
    "pca_max_drop 0.05, best of 8, novel": ({"model.pca_max_drop": 0.05}, NOVEL),
    "pca_max_drop 0.2, best of 8, novel": ({"model.pca_max_drop": 0.2}, NOVEL),
    "pca_max_drop 0.1, best of 16, novel, temperature 0.75, 4 steps": (
        {"model.pca_max_drop": 0.1},
        BEST_OF_16,
    ),
    "pca_max_drop 0.125, best of 16, novel, temperature 0.75, 4 steps": (
        {"model.pca_max_drop": 0.125},
        BEST_OF_16,
    ),
    "best of 32, novel, temperature 0.75, 4 steps": ({}, BEST_OF_32),
    "pca_max_drop 0.125, best of 32, novel, temperature 0.75, 4 steps": (
        {"model.pca_max_drop": 0.125},
        BEST_OF_32,
    ),
    # the highest validation accuracy + weight x novelty, whatever the prompt (zoo demo's
    # setting: weight 0.45, best of 8, temperature 1, 4 Heun steps)
    "best of 8, weighted 0.45": ({}, WEIGHTED_8),
    "best of 8, weighted 0.4": ({}, {**WEIGHTED_8, "disagreement_weight": 0.4}),
    "best of 8, weighted 0.5": ({}, {**WEIGHTED_8, "disagreement_weight": 0.5}),
    "best of 8, weighted 0.6": ({}, {**WEIGHTED_8, "disagreement_weight": 0.6}),
    "best of 4, weighted 0.45": ({}, {**WEIGHTED_8, "candidates": 4}),
    # more candidates move the weighted frontier (the first round's draws for distillation)
    "best of 16, weighted 0.55": ({}, WEIGHTED_16),
    "best of 32, weighted 0.6": ({}, WEIGHTED_32),
}
VARIANTS: dict[str, tuple[dict, dict]] = {
    **{name: ({**UNDISTILLED, **o}, opts) for name, (o, opts) in VARIANTS_UNDISTILLED.items()},
    # the preset: trained twice, the second time also on the first round's best of 32
    "distilled": ({}, {}),
    "distilled, best of 8, weighted 0.45 (zoo demo until this round)": ({}, WEIGHTED_8),
    "distilled, best of 8, weighted 0.35": ({}, {**WEIGHTED_8, "disagreement_weight": 0.35}),
    "distilled, best of 8, weighted 0.55": ({}, {**WEIGHTED_8, "disagreement_weight": 0.55}),
    "distilled, best of 16, weighted 0.55": ({}, WEIGHTED_16),
    "distilled, best of 16, weighted 0.6": ({}, {**WEIGHTED_16, "disagreement_weight": 0.6}),
    "distilled, best of 32, weighted 0.6": ({}, WEIGHTED_32),
    # the weight calibrated by each fold's generator on its training nets and validation split
    "distilled, best of 16, calibrated (zoo demo)": ({}, CALIBRATED),
    "distilled, best of 16, calibrated, margin 0": ({"calibrate.margin": 0.0}, CALIBRATED),
    # a second round: trained a third time, on the once-distilled generator's best of 32
    "distilled twice": ({"distill.rounds": 2}, {}),
    "distilled twice, best of 8, weighted 0.45": ({"distill.rounds": 2}, WEIGHTED_8),
    "distilled twice, best of 8, weighted 0.55": (
        {"distill.rounds": 2}, {**WEIGHTED_8, "disagreement_weight": 0.55},
    ),
}  # fmt: skip
KEYS = ("acc_ratio_free", "acc_ratio_matched", "distance_ratio", "nn_disagreement",
        "real_nn_disagreement", "real_pair_disagreement", "real_replicate_disagreement",
        "diversity")  # fmt: skip
ACCURACY_TARGET = 0.98


REFERENCE = "reference: interpolations between training nets, no generator"


def interpolation_reference(zoo: str, folds: int, per_net: int = 8) -> dict[str, float]:
    """The default preset's augmentation drawn directly, ``per_net`` candidates per training net
    (kept if no worse than the worse parent on validation accuracy), per fold and group, scored
    like generated nets: accuracy pooled over folds, novelty averaged over folds and groups."""
    gen_acc: dict[int, list[float]] = {}
    held_acc: list[float] = []
    dist, dis, real_dis, pair_dis, rep_dis, div = [], [], [], [], [], []
    for f in range(folds):
        cfg = preset_flow({"data.folds": folds, "data.fold": f}).config
        ds = WeightDataset.from_zoo(zoo, None, cfg.data)
        aug = interpolate_models(
            ds, replace(cfg.augment, interpolations=per_net), cfg.training.seed
        )
        for g, grp in enumerate(ds.groups):
            arch, task = grp.arch, get_task(grp.task)
            train_w, held_w = ds.group_weights(g, True), ds.group_weights(g, False)
            w = ds.padded.crop(aug.weights[aug.group == g], g)  # (K, N)
            p, train_p = predictions(arch, task, w), predictions(arch, task, train_w)
            gen_acc.setdefault(g, []).extend(accuracy(arch, task, w).tolist())
            held_acc.extend(accuracy(arch, task, held_w).tolist())
            nov = novelty(w, train_w, p, train_p)
            dist.append(nov["distance_ratio"])
            dis.append(nov["nn_disagreement"])
            held_p = predictions(arch, task, held_w)
            real_dis.append(float(heldout_vs_nearest(held_w, train_w, held_p, train_p)[1].mean()))
            real_p = torch.cat([train_p, held_p])
            pair_dis.append(mean_pairwise_disagreement(real_p))
            rep_dis.append(group_replicate_disagreement(ds, g, real_p))
            div.append(mean_pairwise_disagreement(p))
    generated = float(np.mean([np.mean(a) for a in gen_acc.values()]))
    return {"acc_ratio_free": ratio(generated, float(np.mean(held_acc))),
            "acc_ratio_matched": float("nan"), "distance_ratio": float(np.mean(dist)),
            "nn_disagreement": float(np.mean(dis)), "real_nn_disagreement": float(np.mean(real_dis)),
            "real_pair_disagreement": float(np.mean(pair_dis)),
            "real_replicate_disagreement": float(np.nanmean(rep_dis)),
            "diversity": float(np.mean(div))}  # fmt: skip


# marker, colour and legend text of a variant's kind: weight space, or best-of-k rule
STYLES: dict[str, tuple[str, str, str]] = {
    "canonical": ("o", "tab:blue", "flow, canonical weights"),
    "raw": ("s", "tab:red", "flow, raw weights"),
    "closest": ("^", "tab:orange", "best of k, closest to the prompt"),
    "at-least": ("D", "tab:purple", "best of k, closest at least as good as the prompt"),
    "novel": ("P", "tab:brown", "best of k, most novel at least as good as the prompt"),
    "weighted": ("X", "black", "best of k, highest accuracy + weight x novelty"),
    "distilled": ("o", "tab:cyan", "distilled flow (trained again on its best of 32)"),
    "distilled, weighted": ("X", "tab:cyan", "distilled flow, best of k, weighted"),
    "reference": ("*", "tab:green", "interpolations between training nets (no generator)"),
}


def variant_kind(name: str, r: dict) -> str:
    """Which entry of STYLES a result row is drawn with."""
    if name == REFERENCE:
        return "reference"
    opts = r.get("sample_options", {})
    if r.get("distilled"):  # rows measured before distillation existed have no such key
        return "distilled, weighted" if opts.get("candidates", 1) > 1 else "distilled"
    if opts.get("candidates", 1) > 1:
        return opts.get("select", "closest")
    return "raw" if r.get("overrides", {}).get("data.canonical") is False else "canonical"


def plot_frontier(results: dict[str, dict], path: Path, zoo: str) -> Path:
    """Accuracy ratio against disagreement with the nearest training net, one point per variant,
    with the targets: accuracy >= 98% of held-out real nets, disagreement >= real nets' (three
    readings). Left: every variant; right: the corner where the targets meet, labelled."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    canonical = next(r for n, r in results.items() if variant_kind(n, r) != "reference" and
                     r.get("overrides", {}).get("data.canonical") is not False)  # fmt: skip
    reps = canonical.get("real_replicate_disagreement")
    pairs = canonical.get("real_pair_disagreement")
    # the right panel's window: the corner between the real readings and the accuracy target
    x_lo = (reps if reps is not None else 0.25) - 0.04
    # ... up to the held-out reading, where the most novel settings now land
    x_hi = max(
        (pairs if pairs is not None else 0.4) + 0.06, canonical["real_nn_disagreement"] + 0.015
    )
    y_lo = 0.925
    y_hi = max([1.0] + [r["acc_ratio_free"] + 0.005 for r in results.values()])  # the top point

    # the real nets' readings: one vertical line each, drawn in both panels and named in the legend
    readings = [(canonical["real_nn_disagreement"], "tab:gray", "-.",
                 "real held-out net vs its nearest training net"),
                (pairs, "tab:gray", ":", "real nets: mean over pairs (shaded: both targets met)"),
                (reps, "tab:olive", ":", "real replicates, same recipe (shaded: both met)")]  # fmt: skip

    def zoomed(x: float, y: float) -> bool:
        return x_lo <= x <= x_hi and y >= y_lo

    fig, axes = plt.subplots(1, 2, figsize=(15, 6.5), width_ratios=(1, 1.3))
    for panel, ax in enumerate(axes):
        labels: dict[tuple[float, float], list[str]] = {}  # variants that land on one point
        for name, r in results.items():
            x, y = r["nn_disagreement"], r["acc_ratio_free"]
            labels.setdefault((round(x, 4), round(y, 4)), []).append(name)
            marker, color, _ = STYLES[variant_kind(name, r)]
            ax.scatter(x, y, marker=marker, color=color, s=130 if marker == "*" else 40)
        ax.axhline(ACCURACY_TARGET, color="k", ls="--", lw=1)
        for value, color, ls, _ in readings:
            if value is not None:
                ax.axvline(value, color=color, ls=ls, lw=1.2)
        if panel == 1:
            ax.set_xlim(x_lo, x_hi)
            ax.set_ylim(y_lo, y_hi)
        mid = sum(ax.get_xlim()) / 2
        for (x, y), names in labels.items():
            if zoomed(x, y) == (panel == 1):  # each point is labelled in one panel
                right = panel == 0 and x > mid  # these run leftwards, to stay inside the axes
                ax.annotate(" = ".join(names), (x, y), fontsize=7, xytext=(-5 if right else 5, 2),
                            textcoords="offset points", ha="right" if right else "left")  # fmt: skip
        hi = ax.get_xlim()[1]
        for value, color, alpha in ((pairs, "tab:green", 0.12), (reps, "tab:olive", 0.08)):
            if value is not None:
                ax.fill_between([value, hi], ACCURACY_TARGET, y_hi, color=color, alpha=alpha)
        ax.set_xlim(right=hi)
        ax.set_xlabel("prediction disagreement with the nearest training net")
        ax.set_ylabel("mean test accuracy, generated / held-out real")
    where = "/".join(Path(zoo).parts[-2:])  # e.g. demo/zoo.zarr, not a scratch folder's full path
    axes[0].set_title(f"Flow variants, 5-fold on {where}: accuracy vs novelty", fontsize=10)
    axes[1].set_title("the corner where the targets meet", fontsize=10)
    handles = [axes[0].scatter([], [], marker=m, color=c, label=t) for m, c, t in STYLES.values()]
    lines = [(None, "k", "--", "accuracy target (98%)"), *readings]
    handles += [axes[0].plot([], [], color=c, ls=ls, label=t)[0] for _, c, ls, t in lines]
    axes[0].legend(handles=handles, fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", default="demo/zoo.zarr", help="default zoo (run `zoo demo` first)")
    ap.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=RESULTS, help="results JSON (PNG beside it)")
    args = ap.parse_args()
    out, plot = args.out, args.out.with_suffix(".png")
    if not Path(args.zoo).exists():
        raise SystemExit(f"no zoo at {args.zoo}: run `zoo demo` (or `zoo build` + "
                         "`zoo canonicalize`) first")  # fmt: skip
    results = json.loads(out.read_text()) if out.exists() and args.only else {}
    console = Console()
    tmp = tempfile.TemporaryDirectory()
    trained: dict[str, tuple[Path, list[float]]] = {}  # overrides -> fold generators, seconds
    for name, (overrides, sample) in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        settings = EvalSettings(n=100, sweep=(), sample_options=sample)
        key = json.dumps(overrides, sort_keys=True)  # rows with the same config share generators
        if key in trained:
            run, seconds = trained[key]
            r = evaluate_folds(run, args.zoo, settings, run / "evaluation", label=name)
            r["train_seconds"] = seconds
        else:
            run = Path(tmp.name) / f"run-{len(trained)}"
            r = cross_validate(partial(preset_flow, overrides), args.zoo, args.folds, run,
                               settings, label=name, console=Console(quiet=True))  # fmt: skip
            trained[key] = run, r["train_seconds"]
        s = r["summary"]
        results[name] = {
            "overrides": overrides, "sample_options": sample, "folds": args.folds,
            "distilled": distill_rounds(preset_flow(overrides)) > 0,
            **{k: s[k] for k in KEYS},
            "acc_ratio_per_fold": [f["acc_ratio_free"] for f in r["folds"]],
            "train_seconds_per_fold": r["train_seconds"], "per_group": r["per_group"],
        }  # fmt: skip
        calibrations = [calibration_of(load_generator(d)) for d in fold_dirs(run)]
        if "disagreement_weight" not in sample and all(calibrations):
            results[name]["calibrated_weight_per_fold"] = [
                c.disagreement_weight for c in calibrations
            ]
        console.print(name, {k: round(s[k], 3) for k in KEYS})
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
    if not args.only or REFERENCE in args.only:
        torch.manual_seed(0)
        results[REFERENCE] = {"folds": args.folds, **interpolation_reference(args.zoo, args.folds)}
        console.print(REFERENCE, {k: round(v, 3) for k, v in results[REFERENCE].items()})
        out.write_text(json.dumps(results, indent=2) + "\n")
    tmp.cleanup()
    console.print(f"results: {out}, plot: {plot_frontier(results, plot, args.zoo)}")


if __name__ == "__main__":
    main()
