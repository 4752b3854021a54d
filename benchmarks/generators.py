"""Every registered generator kind on one zoo, side by side, on the same cross-validation folds.

Each kind (:data:`generators.registry.GENERATORS`) is trained with its shipped preset
(``data/generators/KIND.toml``) once per fold (:mod:`pipelines.crossval`: every real model is
held out once), and evaluated on its held-out models twice: plain sampling, and the calibrated
best of k where the kind's generators calibrated themselves (each fold's by its own weight).
Per kind and way: the accuracy ratio to held-out real nets (pooled, with the lowest and highest
fold), the distance ratio, the disagreement with the nearest training net, the diversity, the
training seconds (per fold) and the seconds per 1,000 nets of the widest width (fold 0's
generator); beside the real nets' own readings. A new kind appears here by being registered.

    python benchmarks/generators.py [--zoo STORE] [--folds K] [--kinds KIND ...] [--max-steps N]
        [--set KEY=VALUE ...] [--sample KEY=VALUE ...] [--out JSON]

Writes ``benchmarks/results/generators.json`` and ``generators.png`` (accuracy against
disagreement, one point per kind and way); ``--kinds`` reruns some kinds into an existing JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

# Run as a script, this folder comes first on sys.path, and benchmarks/canonicalize.py would
# shadow the ``canonicalize`` package that the pipeline imports: drop the folder first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402
from rich.console import Console  # noqa: E402

from generators import GENERATORS, calibrated_sampling, load_generator  # noqa: E402
from pipelines.crossval import cross_validate, evaluate_folds, fold_dirs  # noqa: E402
from pipelines.demo import preset_generator  # noqa: E402
from pipelines.evaluate import EvalSettings  # noqa: E402
from pipelines.key_values import parse_key_values  # noqa: E402
from pipelines.kinds import (  # noqa: E402
    calibrated_best_of,
    column,
    comparison_table,
    is_calibrated,
    plot_kinds,
    real_readings,
    sampling_seconds,
    store_for,
    way,
)

RESULTS = Path(__file__).resolve().parent / "results" / "generators.json"


def fold_range(report: dict[str, Any], key: str) -> list[float]:
    """The lowest and highest fold's value of ``key``."""
    values = [f[key] for f in report["folds"]]
    return [min(values), max(values)]


def run_kind(
    kind: str, zoo: str, folds: int, work: Path, n: int, max_steps: int | None,
    overrides: dict[str, Any], timing_nets: int, options: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, float]]:  # fmt: skip
    """One kind: its column of figures (:func:`pipelines.kinds.column`, plus per-fold detail;
    with ``options``, the same fold generators sampled with them too, as ``sampled``) and the
    real nets' readings of the zoo."""
    settings = EvalSettings(n=n, sweep=())
    run = work / kind
    plain = cross_validate(partial(preset_generator, kind, overrides), zoo, folds, run, settings,
                           max_steps=max_steps, label=kind, console=Console(quiet=True))  # fmt: skip
    gens = [load_generator(d) for d in fold_dirs(run)]
    per_1000 = 1000 / timing_nets
    seconds: list[float | None] = [per_1000 * sampling_seconds(gens[0], timing_nets), None]
    calibrated = None
    if all(is_calibrated(g) for g in gens):
        opts = calibrated_best_of(gens[0])
        calibrated = evaluate_folds(run, zoo, EvalSettings(n=n, sweep=(), sample_options=opts),
                                    run / "calibrated", label=f"{kind}, calibrated")  # fmt: skip
        seconds[1] = per_1000 * sampling_seconds(gens[0], timing_nets,
                                                 calibrated_sampling(gens[0]))  # fmt: skip
    train = plain["train_seconds"]
    widest = max(g["width"] for g in plain["per_group"])  # where sample() draws by default
    col = column(kind, plain, calibrated, sum(train) / len(train), (seconds[0], seconds[1]),
                 widest)  # fmt: skip
    col["train_seconds_per_fold"] = train
    col["overrides"] = overrides
    col["plain"]["acc_ratio_fold_range"] = fold_range(plain, "acc_ratio_free")
    if calibrated is not None:
        col["calibrated"]["acc_ratio_fold_range"] = fold_range(calibrated, "acc_ratio_free")
        col["calibrated"]["weight_per_fold"] = [
            calibrated_sampling(g)["disagreement_weight"] for g in gens
        ]
    if options:
        sampled = evaluate_folds(run, zoo, EvalSettings(n=n, sweep=(), sample_options=options),
                                 run / "sampled", label=f"{kind}, sampled")  # fmt: skip
        col["sampled"] = {
            **way(sampled, per_1000 * sampling_seconds(gens[0], timing_nets, options)),
            "sample_options": options, "acc_ratio_fold_range": fold_range(sampled, "acc_ratio_free"),
        }  # fmt: skip
    return col, real_readings(plain)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", default="demo/zoo.zarr", help="a canonicalized zoo (zoo demo's)")
    ap.add_argument("--folds", type=int, default=5, help="cross-validation folds (>= 2)")
    ap.add_argument("--kinds", nargs="*", help="kinds to run (default: every registered one)")
    ap.add_argument(
        "--max-steps", type=int, help="training steps of every kind (default: presets')"
    )
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="config override for every kind, e.g. calibrate.per_net=4")  # fmt: skip
    ap.add_argument("--sample", nargs="*", default=[], metavar="KEY=VALUE",
                    help="also evaluate the same generators sampled with these options, e.g. "
                    "data_guidance=0.05 (a kind's sampling options)")  # fmt: skip
    ap.add_argument("--n", type=int, default=100, help="generated nets per width and fold")
    ap.add_argument("--timing-nets", type=int, default=1000, help="nets sampled to time sampling")
    ap.add_argument("--out", type=Path, default=RESULTS, help="results JSON (PNG beside it)")
    args = ap.parse_args()
    if not Path(args.zoo).exists():
        raise SystemExit(f"no zoo at {args.zoo}: run `zoo demo` (or `zoo build` + "
                         "`zoo canonicalize`) first")  # fmt: skip
    unknown = [k for k in args.kinds or [] if k not in GENERATORS]
    if unknown:
        raise SystemExit(f"unknown kind(s) {unknown} (registered: {', '.join(GENERATORS)})")
    try:
        overrides = parse_key_values(args.set, "--set")
        options = parse_key_values(args.sample, "--sample")
    except ValueError as e:
        raise SystemExit(str(e)) from None
    results = json.loads(args.out.read_text()) if args.out.exists() and args.kinds else {}
    columns: dict[str, Any] = {c["kind"]: c for c in results.get("kinds", [])}
    console = Console()
    console = console if console.is_terminal else Console(width=100)  # the table's width
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds or list(GENERATORS):
            t0 = time.perf_counter()
            console.rule(f"{kind}: {args.folds} folds")
            zoo = store_for(kind, args.zoo, console)  # NeuMeta: a smooth-ordered copy
            columns[kind], readings = run_kind(kind, zoo, args.folds, Path(tmp), args.n,
                                               args.max_steps, overrides, args.timing_nets,
                                               options)  # fmt: skip
            columns[kind]["zoo"] = zoo
            columns[kind]["real"] = readings  # of this kind's data filter and split
            # the table's real nets: the first registered kind's (the flow's preset filter)
            real = results.get("real", readings) if kind != next(iter(GENERATORS)) else readings
            columns[kind]["wall_seconds"] = time.perf_counter() - t0
            ordered = [columns[k] for k in GENERATORS if k in columns]
            results = {
                "zoo": args.zoo, "folds": args.folds, "n": args.n, "max_steps": args.max_steps,
                "threads": torch.get_num_threads(), "load_average": list(os.getloadavg()),
                "real": real, "kinds": ordered,
            }  # fmt: skip
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2) + "\n")
            console.print(comparison_table([columns[kind]], real))
            if "sampled" in columns[kind]:
                sm = columns[kind]["sampled"]
                console.print(f"{kind} sampled with {options}: accuracy ratio "
                              f"{sm['acc_ratio_free']:.1%}, disagreement "
                              f"{sm['nn_disagreement']:.1%}, distance ratio "
                              f"{sm['distance_ratio']:.1%}, {sm['seconds_per_1000']:.2f} s "
                              "per 1,000 nets")  # fmt: skip
    ordered = results["kinds"]
    plot = plot_kinds(ordered, results["real"], args.out.with_suffix(".png"))
    console.print(comparison_table(ordered, results["real"]))
    console.print(f"results: {args.out}, plot: {plot}")


if __name__ == "__main__":
    main()
