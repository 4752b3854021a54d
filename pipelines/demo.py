"""``zoo demo``: the whole pipeline on the default zoo, every generator kind side by side.

default zoo (``data/specs/default.toml``) with its loss-landscape phases -> canonicalize (weight
matching to the barycenter) -> for every registered generator kind
(:data:`generators.registry.GENERATORS`), with its shipped preset (``data/generators/KIND.toml``),
train on one 80/20 split of each width's models -> sample -> evaluate on the held-out models,
plainly and, where the kind calibrated itself (:mod:`generators.calibration`), with its
calibrated best of k -> one table with the kinds as columns (:mod:`pipelines.kinds`) and the
paths of the plots. Cross-validation and the variants of a kind's settings are
``zoo train-generator --folds K``, ``benchmarks/generators.py`` and
``benchmarks/generator_variants.py``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from generators.selection import DISAGREEMENT_WEIGHT
from pipelines.kinds import calibrated_best_of

# config overrides the demo applies to a kind's preset, for a kind whose preset trains too long
# for the demo's time budget (printed when applied); the benchmarks use the presets as shipped
DEMO_OVERRIDES: dict[str, dict[str, Any]] = {
    "hyper": {"training.max_steps": 300},  # preset: 1,500 steps (0.3 s each on 2 cores)
    "neumeta": {"training.max_steps": 400},  # preset: 1,500 steps (0.3 s each)
}
# best of 8 by validation accuracy + 0.45 x disagreement with the nearest training net, at full
# source noise and 4 Heun steps (benchmarks/generator_variants.py's rows)
WEIGHTED_8: dict[str, Any] = {
    "candidates": 8, "select": "weighted", "disagreement_weight": DISAGREEMENT_WEIGHT,
    "temperature": 1.0, "steps": 4,
}  # fmt: skip
__all__ = ["DEMO_OVERRIDES", "WEIGHTED_8", "calibrated_best_of", "preset_flow",
           "preset_generator", "run_demo", "summary_table", "per_group_table"]  # fmt: skip


def preset_generator(kind: str, overrides: dict[str, Any] | None = None) -> Any:
    """A fresh generator of ``kind`` with its shipped preset (``data/generators/KIND.toml``; the
    built-in defaults where it ships none) and dotted config overrides."""
    from generators import make_generator
    from pipelines.presets import generator_preset

    preset = generator_preset(kind)
    gen = make_generator(kind, preset if preset.is_file() else None)
    if overrides:
        gen.config = gen.config.with_overrides(overrides)
    return gen


def preset_flow(overrides: dict[str, Any]) -> Any:
    """A fresh flow generator with the shipped preset and dotted overrides."""
    return preset_generator("flow", overrides)


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
    max_steps: int | None = None, n: int = 100, kinds: list[str] | None = None,
    overrides: dict[str, dict[str, Any]] | None = None, timing_nets: int = 1000,
    console: Console | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Run the demo into ``out``; returns its timings and every kind's figures (also written to
    ``out/demo.json``). ``kinds``: the kinds to train (default: every registered one);
    ``max_steps``: training steps of every kind (default: each preset's); ``n``: generated nets
    per width in each evaluation; ``overrides``: config overrides per kind, over
    ``DEMO_OVERRIDES``; ``timing_nets``: nets sampled to time the sampling (the table quotes
    seconds per 1,000)."""
    from generators import (
        GENERATORS,
        WeightDataset,
        calibrated_sampling,
        load_generator,
        save_population,
    )
    from pipelines.build import build_zoo
    from pipelines.canonicalize_stage import canonicalize_zoo
    from pipelines.evaluate import EvalSettings, evaluate_generator
    from pipelines.generator_training import train_generator
    from pipelines.kinds import (
        column,
        comparison_table,
        is_calibrated,
        plot_kinds,
        real_readings,
        sampling_seconds,
        store_for,
    )

    if console is None:  # the kinds table fits 100 columns: not cut at 80 when piped to a file
        console = Console()
        console = console if console.is_terminal else Console(width=100)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = str(out / "zoo.zarr")
    kinds = list(kinds or GENERATORS)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    console.rule("1/4 build the default zoo and label its loss-landscape phases")
    t0 = time.perf_counter()
    build_zoo(spec, store, workers=workers, metrics=True, console=console)
    timings["build"] = time.perf_counter() - t0

    console.rule("2/4 canonicalize (weight matching to the barycenter)")
    t0 = time.perf_counter()
    canonicalize_zoo(store, reference="barycenter", workers=0, console=console)
    timings["canonicalize"] = time.perf_counter() - t0

    columns, plots, first_report = [], [], None
    read: WeightDataset | None = None
    read_store = store
    for i, kind in enumerate(kinds):
        console.rule(f"3/4 generator {i + 1}/{len(kinds)}, {kind}: train on one split, sample, "
                     "evaluate")  # fmt: skip
        t0 = time.perf_counter()
        changed = {**DEMO_OVERRIDES.get(kind, {}), **(overrides or {}).get(kind, {})}
        gen = preset_generator(kind, changed)
        if changed:
            console.print(f"{kind}: the preset with {changed}", highlight=False)
        kind_store = store_for(kind, store, console)  # NeuMeta: a smooth-ordered copy
        if read is None or read.config != gen.config.data or kind_store != read_store:
            read, read_store = WeightDataset.from_zoo(kind_store, None, gen.config.data), kind_store
        run_dir = out / kind
        trained = train_generator(gen, read, run_dir, max_steps=max_steps)
        plain = evaluate_generator(gen, read, EvalSettings(n=n, sweep=()), run_dir / "evaluation",
                                   label=kind)  # fmt: skip
        first_report = first_report or plain
        plots += plain["plots"][1:]  # the per-width breakdown
        per_1000 = 1000 / timing_nets
        calibrated, seconds = None, [per_1000 * sampling_seconds(gen, timing_nets)]
        if is_calibrated(gen):
            opts = calibrated_best_of(gen)
            calibrated = evaluate_generator(
                gen, read, EvalSettings(n=n, sweep=(), sample_options=opts),
                run_dir / f"best-of-{opts['candidates']}", label=f"{kind}, calibrated",
            )  # fmt: skip
            seconds.append(per_1000 * sampling_seconds(gen, timing_nets, calibrated_sampling(gen)))
            if (run_dir / "calibration.png").is_file():
                plots.append(str(run_dir / "calibration.png"))
        columns.append(column(kind, plain, calibrated, trained.seconds,
                              (seconds[0], seconds[1] if calibrated else None),
                              max(read.widths)))  # fmt: skip
        timings[kind] = time.perf_counter() - t0

    console.rule("4/4 every kind side by side")
    assert first_report is not None, "no generator kind to train"
    real = real_readings(first_report)
    plots.insert(0, str(plot_kinds(columns, real, out / "kinds.png")))
    gen = load_generator(out / kinds[0])
    samples = save_population(gen.sample(n, seed=0), out / "samples.safetensors")
    timings["total"] = time.perf_counter() - t_all
    result = {"timings_s": timings, "kinds": columns, "real": real, "overrides": {
              k: {**DEMO_OVERRIDES.get(k, {}), **(overrides or {}).get(k, {})} for k in kinds},
              "samples": str(samples), "plots": plots}  # fmt: skip
    (out / "demo.json").write_text(json.dumps(result, indent=2) + "\n")
    console.print(comparison_table(columns, real))
    trained_s = ", ".join(f"{k} {timings[k]:.0f} s" for k in kinds)
    console.print(f"total {timings['total']:.0f} s: zoo {timings['build']:.0f} s, canonicalize "
                  f"{timings['canonicalize']:.0f} s, per kind (train, sample, evaluate): "
                  f"{trained_s}", highlight=False)  # fmt: skip
    console.print(f"plots: {', '.join(plots)}", highlight=False)
    console.print(f"generators: {', '.join(str(out / k) for k in kinds)}; {n} nets of "
                  f"{kinds[0]}: {samples}; results: {out / 'demo.json'}", highlight=False)  # fmt: skip
    return result
