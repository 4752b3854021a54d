"""``zoo demo``: the whole pipeline on the default zoo, in minutes on a laptop.

default zoo (``data/specs/default.toml``) with its loss-landscape phases -> canonicalize (weight
matching) -> train the flow generator on canonical weights and, for comparison, on raw weights
and without the interpolation augmentation, each 5-fold cross-validated (5 generators, every
real model held out once; the canonical ones self-distilled, :mod:`generators.distillation`, and
their first rounds evaluated too) -> sample 100 nets -> evaluate on held-out real models; the
canonical generators once more with best-of-16 sampling (:mod:`generators.selection`: of 16
draws per prompt, the one with the highest validation accuracy + w x its disagreement with its
nearest training net, w calibrated by each generator on its own training nets and validation
split, :mod:`generators.calibration`; drawn with the options it was calibrated with: in the
preset, source-noise temperature 1 and 4 Euler steps) -> short tables and the paths of the plots.
The phases are needed by the default generator config (``data/generators/flow.toml``), which
leaves out the ``collapsed`` nets (``data.exclude_phases``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from generators.calibration import calibrated_sampling, calibration_of
from generators.sampling import sample
from generators.selection import DISAGREEMENT_WEIGHT
from pipelines.evaluate import WEIGHT_SWEEP

# the generators the demo compares: name -> (run folder, overrides of the default config)
# (the preset distils, :mod:`generators.distillation`, and calibrates its best-of-k weight,
# :mod:`generators.calibration`; the comparisons do neither, and compare with the canonical
# generators' own first round, FIRST_ROUND, at no extra training)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "canonical": ("flow-canonical", {"data.canonical": True}),
    "raw": (
        "flow-raw", {"data.canonical": False, "distill.per_net": 0, "calibrate.candidates": 0},
    ),
    "canonical, no augmentation": (
        "flow-canonical-plain",
        {"augment.interpolations": 0, "distill.per_net": 0, "calibrate.candidates": 0},
    ),
}  # fmt: skip
FIRST_ROUND = "canonical, not distilled"
# the comparison table's column headings: four columns and the metric names fit 80 columns
HEADINGS = {"canonical, no augmentation": "no augm.", FIRST_ROUND: "undistilled"}
# the demo's best-of-k setting until this round (generators/selection.py, rule "weighted"): of 8
# draws per prompt, the one with the highest validation accuracy + 0.45 x its disagreement with
# its nearest training net, at full source noise and 4 Heun steps; 5-fold on the default zoo,
# from the distilled generators: 99.9% of the held-out accuracy at 41.4% disagreement. Kept for
# the benchmarks' rows
WEIGHTED_8: dict[str, Any] = {
    "candidates": 8, "select": "weighted", "disagreement_weight": DISAGREEMENT_WEIGHT,
    "temperature": 1.0, "steps": 4,
}  # fmt: skip


def calibrated_best_of(gen: Any) -> dict[str, Any]:
    """The best-of-k sampling options a trained generator was calibrated for, without the weight
    itself (:mod:`generators.calibration`): evaluated fold by fold, each fold's generator then
    keeps by its own calibrated weight."""
    opts = calibrated_sampling(gen)
    return {k: v for k, v in opts.items() if k != "disagreement_weight"}


def preset_flow(overrides: dict[str, Any]) -> Any:
    """A fresh flow generator with the shipped preset (``data/generators/flow.toml``) and dotted
    overrides."""
    from generators import make_generator
    from pipelines.presets import generator_preset

    gen = make_generator("flow", generator_preset("flow"))
    gen.config = gen.config.with_overrides(overrides)
    return gen


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def _summary(key: str) -> Callable[[dict[str, Any]], str]:
    """A report's pooled value of ``key`` as a percentage; "-" where it has none."""
    return lambda r: _pct(r["summary"][key]) if key in r["summary"] else "-"


def _fold_range(key: str) -> Callable[[dict[str, Any]], str]:
    """The lowest and highest fold's value of ``key`` of a cross-validated report, in whole
    percents (how far the pooled figure could move with the split); "-" for one generator."""

    def cell(r: dict[str, Any]) -> str:
        values = [f[key] for f in r.get("folds", []) if key in f]
        return f"{100 * min(values):.0f}-{100 * max(values):.0f}%" if values else "-"

    return cell


def summary_table(
    reports: dict[str, dict[str, Any]], train_seconds: dict[str, float] | None = None,
    headings: dict[str, str] | None = None,
) -> Table:  # fmt: skip
    """Headline metrics of one or more evaluation reports, one column each; ``headings``: short
    column names for some reports, spelled out in the caption."""
    headings = {k: v for k, v in (headings or {}).items() if k in reports}
    table = Table(
        title="generated vs real networks (held-out models, test split, no fine-tuning)",
        caption="; ".join(f"{short}: {name}" for name, short in headings.items()) or None,
    )
    table.add_column("metric", style="bold")
    for name in reports:
        table.add_column(headings.get(name, name), justify="right")
    # one short value per cell, so that the table fits 80 columns with three reports
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("test acc, generated (free)", _summary("generated_acc_free")),
        ("test acc, held-out real", _summary("heldout_acc")),
        ("  ratio (target >= 98%)", _summary("acc_ratio_free")),
        ("    lowest - highest fold", _fold_range("acc_ratio_free")),
        ("  generated, prompted like held-out", _summary("generated_acc_matched")),
        ("distance to nearest train net / train NN (>= 25%)", _summary("distance_ratio")),
        ("  relative to that neighbour's NN", _summary("local_ratio")),
        ("disagreement with nearest train net", _summary("nn_disagreement")),
        ("    lowest - highest fold", _fold_range("nn_disagreement")),
        ("  real: held-out vs nearest train net", _summary("real_nn_disagreement")),
        ("  real: mean over pairs", _summary("real_pair_disagreement")),
        ("  real: pairs across widths", _summary("real_task_pair_disagreement")),
        ("  real: replicates (same recipe, other seed)", _summary("real_replicate_disagreement")),
        ("diversity (pairwise disagreement)", _summary("diversity")),
        ("ensemble of K generated nets", _summary("ensemble_generated")),
        ("  of K real nets", _summary("ensemble_real")),
        ("  one generated net", _summary("single_generated")),
        ("sampling time per net",
         lambda r: f"{1e3 * r['summary']['seconds_per_net']:.2f} ms"),
    ]  # fmt: skip
    for label, fn in rows:
        cells = [fn(r) for r in reports.values()]
        if any(c != "-" for c in cells):  # no fold rows for single generators
            table.add_row(label, *cells)
    if train_seconds:
        table.add_row("generator training (slowest fold)",
                      *[f"{train_seconds[k]:.1f} s" if k in train_seconds else "-"
                        for k in reports])  # fmt: skip
    return table


def per_group_table(reports: dict[str, dict[str, Any]]) -> Table:
    """Per group (width) of one or more evaluation reports of the same zoo: the accuracy ratio and
    the disagreement with the nearest training net of each, beside the real nets' own
    disagreement (a held-out net vs its nearest training net; the mean over pairs, and over pairs
    of replicates)."""
    table = Table(title="per group: accuracy ratio (generated / held-out real) and disagreement "
                        "with the nearest training net")  # fmt: skip
    table.add_column("group", style="bold", no_wrap=True)
    for name in reports:
        table.add_column(f"ratio, {name}", justify="right")
    for name in reports:
        table.add_column(f"disagr., {name}", justify="right")
    table.add_column("real:\nheld-out", justify="right")
    table.add_column("real:\npairs", justify="right")
    table.add_column("real:\nrepl.", justify="right")
    rows = [r["per_group"] for r in reports.values()]
    for per_report in zip(*rows, strict=True):
        first = per_report[0]
        table.add_row(
            first["group"], *[_pct(r["acc_ratio"]) for r in per_report],
            *[_pct(r["nn_disagreement"]) for r in per_report],
            _pct(first["real_nn_disagreement"]), _pct(first["real_pair_disagreement"]),
            _pct(first.get("real_replicate_disagreement", float("nan"))),
        )  # fmt: skip
    return table


def run_demo(
    out: str | Path = "demo", spec: str | Path | None = None, workers: int | None = None,
    max_steps: int | None = None, n: int = 100, folds: int = 5, console: Console | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Run the demo into ``out``; returns the timings and both evaluation summaries.

    Each weight space is cross-validated (:mod:`pipelines.crossval`): ``folds`` generators, one
    per fold, so that every real model of the zoo is held out once."""
    from generators import load_generator, save_population
    from pipelines.build import build_zoo
    from pipelines.canonicalize_stage import canonicalize_zoo
    from pipelines.crossval import cross_validate, evaluate_folds, fold_dirs
    from pipelines.evaluate import EvalSettings
    from pipelines.evaluation_plots import plot_tradeoff
    from pipelines.generator_training import round_dir

    console = console or Console()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = str(out / "zoo.zarr")
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    console.rule("1/5 build the default zoo (and label its loss-landscape phases)")
    t0 = time.perf_counter()
    build_zoo(spec, store, workers=workers, metrics=True, console=console)
    timings["build"] = time.perf_counter() - t0

    console.rule("2/5 canonicalize (weight matching to the barycenter)")
    t0 = time.perf_counter()
    canonicalize_zoo(store, reference="barycenter", workers=0, console=console)
    timings["canonicalize"] = time.perf_counter() - t0

    reports, train_seconds = {}, {}
    t0 = time.perf_counter()
    for name, (folder, overrides) in VARIANTS.items():
        console.rule(f"3-4/5 flow generator, {name}: train and evaluate, "
                     f"{folds}-fold cross-validated")  # fmt: skip

        reports[name] = cross_validate(
            partial(preset_flow, overrides), store, folds, out / folder, EvalSettings(n=n),
            max_steps=max_steps, label=f"flow, {name}", console=console,
        )  # fmt: skip
        train_seconds[name] = max(reports[name]["train_seconds"])
    canonical_dir = out / VARIANTS["canonical"][0]
    reports[FIRST_ROUND] = evaluate_folds(
        canonical_dir, store, EvalSettings(n=n), canonical_dir / round_dir(0),
        label=f"flow, {FIRST_ROUND}", sub=round_dir(0),
    )  # fmt: skip
    timings["train_and_evaluate"] = time.perf_counter() - t0

    fold_gens = [load_generator(d) for d in fold_dirs(canonical_dir)]
    selected = calibrated_best_of(fold_gens[0])
    k = selected["candidates"]
    best = f"canonical, best of {k}"
    weights = [calibration_of(g).disagreement_weight for g in fold_gens]
    console.rule(f"4/5 the canonical generators again, keeping one of {k} draws per prompt")
    console.print(f"kept: the highest validation accuracy + w x disagreement with the nearest "
                  f"training net, w calibrated by each fold's generator (validation split only): "
                  f"{', '.join(f'{w:.2f}' for w in weights)}")  # fmt: skip
    t0 = time.perf_counter()
    reports[best] = evaluate_folds(
        canonical_dir, store,
        EvalSettings(n=n, knob="disagreement_weight", sweep=WEIGHT_SWEEP, sample_options=selected),
        canonical_dir / f"best-of-{k}", label=f"flow, {best}",
    )  # fmt: skip
    timings["evaluate_best_of"] = time.perf_counter() - t0

    console.rule("5/5 report")
    gen = fold_gens[0]
    t0 = time.perf_counter()
    pop = gen.sample(1000, seed=0)
    timings["sample_1000"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    sample(gen, 1000, seed=0, **calibrated_sampling(gen))
    timings["sample_1000_best_of"] = time.perf_counter() - t0
    samples = save_population(gen.sample(n, seed=0), out / "samples.safetensors")
    tradeoff = plot_tradeoff(list(reports.values()), out / "tradeoff.png")
    timings["total"] = time.perf_counter() - t_all
    result = {
        "timings_s": timings, "train_seconds": train_seconds, "folds": folds,
        "best_of": {**selected, "calibrated_weights": weights},
        "summary": {k: r["summary"] for k, r in reports.items()},
        "fold_summaries": {k: r["folds"] for k, r in reports.items()},
        "samples": str(samples), "sampled_width": pop.arch.width,
        "plots": [p for r in reports.values() for p in r["plots"]] + [str(tradeoff)],
    }  # fmt: skip
    (out / "demo.json").write_text(json.dumps(result, indent=2) + "\n")
    console.print(summary_table({k: reports[k] for k in (*VARIANTS, FIRST_ROUND)}, train_seconds,
                                HEADINGS))  # fmt: skip
    console.print(summary_table({k: reports[k] for k in ("canonical", best)}))
    console.print(per_group_table({"plain": reports["canonical"], f"best of {k}": reports[best]}))
    console.print(
        f"1,000 nets of width {pop.arch.width} sampled in {timings['sample_1000']:.2f} s "
        f"({timings['sample_1000_best_of']:.2f} s best of {k}); "
        f"total {timings['total']:.0f} s (zoo {timings['build']:.0f} s, canonicalize "
        f"{timings['canonicalize']:.0f} s, {len(VARIANTS) * folds} generators trained (the "
        f"canonical ones twice: distilled) and evaluated {timings['train_and_evaluate']:.0f} s, "
        f"best-of-{k} evaluation {timings['evaluate_best_of']:.0f} s)"
    )
    console.print(f"plots: {', '.join(result['plots'])}", highlight=False)
    console.print(f"{n} generated nets: {samples}; results: {out / 'demo.json'}")
    return result
