"""``zoo train-generator``, ``zoo sample``, ``zoo evaluate`` and ``zoo demo``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from generators.registry import GENERATORS
from pipelines.app import app
from pipelines.key_values import parse_key_values

# every registered generator kind is offered on the command line
Kind = StrEnum("Kind", {kind: kind for kind in GENERATORS})


ZooOpt = Annotated[str, typer.Option("--zoo", help="store path or fsspec URL")]
CandidatesOpt = typer.Option(
    metavar="K",
    help="best of K: draw K nets per requested net (same prompt), measure each on the validation "
    "split and keep one by the --select rule (about K times the sampling cost; 1: plain sampling)",
)
SelectOpt = typer.Option(
    metavar="RULE",
    help="which of the K candidates to keep: closest (validation accuracy closest to the prompt) "
    "| at-least (of those at least as good as the prompt, the closest to it) | novel (of those "
    "at least as good as the prompt, the one predicting most unlike its nearest training net) "
    "| weighted (the highest validation accuracy + W x that disagreement; the prompt is no "
    "floor). Under at-least and novel, when no candidate reaches the prompt the best is kept",
)
WeightOpt = typer.Option(
    metavar="W",
    help="W of --select weighted: accuracy points given up per point of disagreement with the "
    "nearest training net gained (default: the generator's calibrated weight, else 0.45)",
)
CalibratedOpt = typer.Option(
    "--calibrated",
    help="sample as the generator calibrated itself after training: best of K (its "
    "calibrate.candidates) by --select weighted at its calibrated W, with the sampling options "
    "it was calibrated with; refuses --candidates, --select, --disagreement-weight and "
    "--temperature beside it",
)
TemperatureOpt = typer.Option(
    help="scale of the source noise the draws start from (below 1: closer to the training "
    "nets, more accurate; default: the generator's config)"
)
KindOptionOpt = typer.Option(
    "--option",
    metavar="KEY=VALUE",
    help="a sampling option of the generator's kind, the value read as TOML (repeat for "
    'several), e.g. diffusion: data_guidance=0.05, data_guidance_steps=32, sampler="ddim"',
)


def calibrated_options(gen: Any, given: dict[str, Any]) -> dict[str, Any]:
    """``--calibrated``: the best-of-k sampling options the generator ``gen`` calibrated,
    without the weight (each generator keeps by its own, the default of ``sample``); a
    ValueError naming any option given beside it (``given``: those set)."""
    from pipelines.demo import calibrated_best_of

    if given:
        names = ", ".join(f"--{k.replace('_', '-')}" for k in given)
        raise ValueError(f"--calibrated sets the sampling options itself; drop {names}")
    return calibrated_best_of(gen)


@app.command("train-generator")
def train_generator_cmd(
    kind: Annotated[
        Kind, typer.Argument(help="generator kind (its preset: data/generators/KIND.toml)")
    ],
    zoo: ZooOpt,
    out: Annotated[
        Path, typer.Option(help="run directory: generator.json + .safetensors, checkpoints, logs")
    ],
    population: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME",
            help="train on this population only (repeat for several; "
            "default: every population of the zoo)",
        ),
    ] = None,
    raw: Annotated[
        bool | None,
        typer.Option(
            "--raw/--canonical",
            help="train on raw or canonical weights (default: the config's data.canonical)",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="generator config, .toml or .json (default: data/generators/KIND.toml)"),
    ] = None,
    devices: Annotated[int, typer.Option(help="Lightning devices: processes on CPU, or GPUs")] = 1,
    max_steps: Annotated[
        int | None, typer.Option(help="training steps (overrides training.max_steps of the config)")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="training seed (overrides training.seed of the config)")
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="continue from the run dir's last checkpoint, if it has one")
    ] = True,
    folds: Annotated[
        int,
        typer.Option(
            metavar="K",
            help="K >= 2: cross-validate instead, one generator per fold in OUT/fold-F, each "
            "evaluated on its held-out models, pooled in OUT/evaluation.json (0: one generator)",
        ),
    ] = 0,
) -> None:
    """Train a weight generator on a zoo's weights (canonical unless --raw or the config's
    data.canonical says otherwise) into OUT."""
    from generators import WeightDataset, calibration_of, make_generator
    from generators.training_rounds import distill_rounds
    from pipelines.generator_training import round_dir, train_generator
    from pipelines.presets import generator_preset

    if config is None:  # the shipped preset, as `zoo demo` uses it; built-in defaults without it
        preset = generator_preset(kind.value)
        config = preset if preset.is_file() else None
    gen = make_generator(kind.value, config)
    overrides: dict[str, Any] = {} if raw is None else {"data.canonical": not raw}
    if seed is not None:
        overrides["training.seed"] = seed
    gen.config = gen.config.with_overrides(overrides)
    if folds:
        _cross_validate(gen, zoo, population, folds, out, max_steps)
        return
    ds = WeightDataset.from_zoo(zoo, population, gen.config.data)
    s = train_generator(gen, ds, out, devices=devices, max_steps=max_steps, resume=resume)
    table = Table(title=f"{kind.value} generator: {s.run_dir}")
    for col in ("group", "train models", "held-out models", "filtered out", "parameters"):
        table.add_column(col, justify="left" if col == "group" else "right")
    for g, grp in enumerate(ds.groups):
        table.add_row(grp.key, str(len(ds.group_rows(g, True))), str(len(ds.group_rows(g, False))),
                      str(sum(ds.filtered.get(n, 0) for n in grp.sources)),
                      str(grp.arch.num_params))  # fmt: skip
    console = Console()
    console.print(table)
    d = gen.config.data
    if ds.config.heldout_tasks:
        console.print(f"held-out tasks (left out of training, kept in the zoo for `zoo "
                      f"evaluate`): {', '.join(ds.config.heldout_tasks)}")  # fmt: skip
    if d.exclude_phases or d.min_val_acc > 0:
        console.print(f"data filter: exclude_phases={d.exclude_phases}, "
                      f"min_val_acc={d.min_val_acc}")  # fmt: skip
    if distill_rounds(gen):
        dc = gen.config.distill
        console.print(f"self-distilled: trained {distill_rounds(gen) + 1} times, each time after "
                      f"the first also on {dc.per_net} nets per training net drawn by the "
                      f"last (best of {dc.candidates}, weighted {dc.disagreement_weight}); the "
                      f"first: {out / round_dir(0)}")  # fmt: skip
    c = calibration_of(gen)
    if c is not None:
        console.print(f"calibrated: best of {c.candidates} keeps the highest validation accuracy + "
                      f"{c.disagreement_weight:.2f} x disagreement with the nearest training net "
                      f"(cross-fitted on the validation split: {c.reached:.3f} for a target of "
                      f"{c.target:.3f}); plot: {out / 'calibration.png'}; "
                      "sample with --calibrated")  # fmt: skip
    note = f" (resumed at step {s.resumed_from})" if s.resumed_from else ""
    console.print(f"{s.steps} steps in {s.seconds:.1f} s{note}, final loss {s.final_loss:.4f}; "
                  f"weights: {'canonical' if d.canonical else 'raw'}")  # fmt: skip


def _cross_validate(
    gen: Any, zoo: str, population: list[str] | None, folds: int, out: Path,
    max_steps: int | None,
) -> None:  # fmt: skip
    """``zoo train-generator --folds K``: K generators of ``gen``'s config, pooled evaluation."""
    from generators import make_generator
    from pipelines.crossval import cross_validate

    console = Console()
    report = cross_validate(
        lambda: make_generator(gen.kind, gen.config), zoo, folds, out, populations=population,
        max_steps=max_steps, label=f"{gen.kind}, {folds}-fold", console=console,
    )  # fmt: skip
    print_report(console, report, out, {report["label"]: max(report["train_seconds"])})


def print_report(
    console: Console, report: dict[str, Any], out: Path, seconds: dict[str, float] | None = None
) -> None:
    """An evaluation report's tables (regression: the loss table; classification: summary and
    per group), its held-out tasks' line and where its files are."""
    from pipelines.demo import per_group_table, summary_table

    if report.get("task_kind") == "regression":
        console.print(regression_table(report))
        console.print(f"results: {out / 'evaluation.json'}")
        return
    console.print(summary_table({report["label"]: report}, seconds))
    console.print(per_group_table({"generated": report}))
    s = report["summary"]
    if s.get("heldout_task_generated_count"):
        console.print(f"held-out tasks: generated nets reach {s['heldout_task_acc_ratio']:.1%} of "
                      f"the real nets' test accuracy ({s['heldout_task_generated_acc']:.3f} vs "
                      f"{s['heldout_task_real_acc']:.3f}, {s['heldout_task_generated_count']} "
                      "task(s))")  # fmt: skip
    console.print(f"results: {out / 'evaluation.json'}; plots: {', '.join(report['plots'])}")


@app.command()
def sample(
    run_dir: Annotated[Path, typer.Argument(help="trained generator run dir")],
    out: Annotated[Path, typer.Option(help="output file, .safetensors or .zarr")],
    n: Annotated[int, typer.Option("--n", help="number of networks to sample")] = 100,
    task: Annotated[
        str | None, typer.Option(help="task of the nets (default: the generator's only task)")
    ] = None,
    width: Annotated[
        int | None, typer.Option(help="width of the nets (default: the widest it was trained on)")
    ] = None,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
    target: Annotated[
        float | None,
        typer.Option(
            help="property value to ask for, e.g. 0.95 validation accuracy (default: "
            "drawn from the training nets' values)"
        ),
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="flow: ODE integration steps (default: its config)")
    ] = None,
    solver: Annotated[
        str | None, typer.Option(help="flow: ODE solver, euler | heun | rk4 (default: its config)")
    ] = None,
    guidance: Annotated[
        float | None,
        typer.Option(help="flow: classifier-free guidance weight (1: plain conditional)"),
    ] = None,
    novelty: Annotated[
        float | None,
        typer.Option(
            help="flow: scale of extra Gaussian noise added outside the principal components of "
            "the training nets, in units of their residual there (0: none, the default)"
        ),
    ] = None,
    temperature: Annotated[float | None, TemperatureOpt] = None,
    candidates: Annotated[int, CandidatesOpt] = 1,
    select: Annotated[str, SelectOpt] = "closest",
    disagreement_weight: Annotated[float | None, WeightOpt] = None,
    calibrated: Annotated[bool, CalibratedOpt] = False,
    option: Annotated[list[str] | None, KindOptionOpt] = None,
) -> None:
    """Sample new networks from a trained generator and write them to a file (.zarr streams
    in chunks: memory stays bounded whatever --n)."""
    import time

    import torch

    from generators import load_generator, sample, save_population
    from generators.population_io import chunk_seed, stream_population, stream_rows

    check_finite(target=target, guidance=guidance, novelty=novelty, temperature=temperature,
                 disagreement_weight=disagreement_weight)  # fmt: skip
    if n < 1:
        raise ValueError(f"--n must be >= 1, got {n}")
    gen = load_generator(run_dir)
    opts = {k: v for k, v in dict(steps=steps, solver=solver, guidance=guidance, novelty=novelty,
                                  temperature=temperature, disagreement_weight=disagreement_weight,
                                  ).items() if v is not None}  # fmt: skip
    opts.update({k: v for k, v in dict(candidates=candidates, select=select).items()
                 if v not in (1, "closest")})  # fmt: skip
    opts = with_kind_options(opts, option)
    if calibrated:
        opts = calibrated_options(gen, opts)
    candidates, select = opts.get("candidates", 1), opts.get("select", "closest")
    num_params = gen.resolve(gen.conditions(task=task, width=width)).arch.num_params
    check_output_size(out, n, num_params)
    t0 = time.perf_counter()
    if out.suffix == ".zarr":  # streamed: one chunk of nets in memory at a time
        rows = stream_rows(num_params, n)
        draws: list = []

        def draw(count: int, index: int):
            chunk = sample(gen, count, task=task, width=width, seed=chunk_seed(seed, index),
                           target=target, **opts)  # fmt: skip
            draws.append({k: v for k, v in chunk.conditioning.items()})
            return chunk

        pop = stream_population(out, n, draw, rows)
        pop.conditioning = {k: torch.cat([d[k] for d in draws]) for k in draws[0]}
        path = out
    else:
        pop = sample(gen, n, task=task, width=width, seed=seed, target=target, **opts)
        path = save_population(pop, out)
    dt = time.perf_counter() - t0
    Console().print(f"{n} {pop.task} nets of width {pop.arch.width} ({pop.arch.num_params} "
                    f"parameters) in {dt:.2f} s -> {path}", highlight=False)  # fmt: skip
    measured = next((k for k in pop.conditioning if k.startswith("measured_")), None)
    if measured is not None:  # best of k: how close the kept nets came to their prompts
        got, asked = pop.conditioning[measured], pop.conditioning["target"]
        prop = measured.removeprefix("measured_")
        Console().print(f"best of {candidates} ({select}): {prop} {float(got.mean()):.3f} on average "
                        f"(prompts {float(asked.mean()):.3f}; mean miss "
                        f"{float((got - asked).abs().mean()):.3f})", highlight=False)  # fmt: skip
    if "nearest_train_disagreement" in pop.conditioning:
        dis = float(pop.conditioning["nearest_train_disagreement"].mean())
        Console().print(f"disagreement with the nearest training net (validation split): "
                        f"{dis:.3f} on average", highlight=False)  # fmt: skip


def with_kind_options(opts: dict[str, Any], option: list[str] | None) -> dict[str, Any]:
    """``opts`` plus the ``--option KEY=VALUE`` items (a ValueError for a malformed one or a key
    that one of the command's own flags already set)."""
    out = dict(opts)
    for key, value in parse_key_values(option or [], "--option").items():
        if key in out:
            raise ValueError(f"--option {key} repeats an option given by its own flag")
        out[key] = value
    return out


def check_finite(**options: float | None) -> None:
    """A ValueError naming the first sampling option that is NaN or infinite (None: unset)."""
    import math

    for name, value in options.items():
        if value is not None and not math.isfinite(value):
            raise ValueError(f"--{name.replace('_', '-')} must be a finite number, got {value}")


# .safetensors outputs are written whole, from memory: past this, use .zarr (streamed)
MAX_WHOLE_OUTPUT = 2 * 2**30


def check_output_size(out: Path, n: int, num_params: int) -> None:
    """Refuse up front an output larger than the free disk (with both sizes), and a
    .safetensors output too large to hold in memory."""
    from generators.population_io import check_free_disk, output_bytes

    size = output_bytes(n, num_params)
    check_free_disk(out, size)
    if out.suffix == ".safetensors" and size > MAX_WHOLE_OUTPUT:
        raise ValueError(
            f"{n} nets of {num_params} parameters make {size / 2**30:.2f} GiB, too large for a "
            f".safetensors file written from memory (limit {MAX_WHOLE_OUTPUT / 2**30:.0f} GiB); "
            "write a .zarr store, which is streamed"
        )


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="trained generator run dir")],
    zoo: ZooOpt,
    out: Annotated[
        Path | None, typer.Option(help="output folder (default: RUN_DIR/evaluation)")
    ] = None,
    n: Annotated[int, typer.Option("--n", help="generated nets per group (task x width)")] = 100,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
    knob: Annotated[
        str,
        typer.Option(
            help="sampling option swept for the accuracy / novelty trade-off plot: temperature | "
            "novelty | guidance | steps | disagreement_weight (the last with --select weighted)"
        ),
    ] = "temperature",
    temperature: Annotated[float | None, TemperatureOpt] = None,
    candidates: Annotated[int, CandidatesOpt] = 1,
    select: Annotated[str, SelectOpt] = "closest",
    disagreement_weight: Annotated[float | None, WeightOpt] = None,
    calibrated: Annotated[bool, CalibratedOpt] = False,
    widths: Annotated[
        str | None,
        typer.Option(
            help="e.g. 24,48,96: only accuracy at these widths (generators that sample "
            "any width, e.g. neumeta), against held-out real nets at zoo widths and "
            "interpolated from the two neighbouring widths' real nets elsewhere"
        ),
    ] = None,
    option: Annotated[list[str] | None, KindOptionOpt] = None,
) -> None:
    """Compare generated nets with held-out real ones: accuracy, novelty, diversity, ensembles.

    RUN_DIR is one generator, or a cross-validated run (train-generator --folds K): then every
    fold's generator is evaluated on its own held-out models and the results are pooled. Writes
    evaluation.json and PNGs into OUT."""
    from generators import load_generator
    from generators.run_dir import CONFIG_FILE
    from generators.selection import check_rule
    from pipelines.crossval import evaluate_folds, fold_dirs
    from pipelines.evaluate import WEIGHT_SWEEP, EvalSettings, dataset_for, evaluate_generator

    check_finite(temperature=temperature, disagreement_weight=disagreement_weight)
    out = out or Path(run_dir) / "evaluation"
    if widths is not None:
        _evaluate_widths(run_dir, zoo, out, widths, n, seed)
        return
    sweeps = {"temperature": (0.5, 0.75, 1.0, 1.25, 1.5), "novelty": (0.0, 0.25, 0.5, 1.0),
              "guidance": (1.0, 1.5, 2.0, 3.0), "steps": (2, 4, 8, 16, 32),
              "disagreement_weight": WEIGHT_SWEEP}  # fmt: skip
    if knob not in sweeps:
        raise ValueError(f"unknown knob {knob!r} ({', '.join(sweeps)})")
    given = {
        "candidates": (candidates, 1),
        "select": (select, "closest"),
        "temperature": (temperature, None),
        "disagreement_weight": (disagreement_weight, None),
    }  # (value, default); a sweep still sweeps its knob
    options = with_kind_options({k: v for k, (v, default) in given.items() if v != default},
                                option)  # fmt: skip
    if calibrated:  # each fold's generator keeps by its own calibrated weight
        folds = fold_dirs(run_dir)
        options = calibrated_options(load_generator(folds[0] if folds else run_dir), options)
    select = options.get("select", "closest")
    check_rule(select)
    if knob == "disagreement_weight" and (select != "weighted" or options.get("candidates", 1) < 2):
        raise ValueError("knob disagreement_weight sweeps --select weighted: "
                         "add --candidates K (K >= 2) --select weighted")  # fmt: skip
    settings = EvalSettings(n=n, seed=seed, knob=knob, sweep=sweeps[knob], sample_options=options)
    if not (Path(run_dir) / CONFIG_FILE).is_file() and fold_dirs(run_dir):
        report = evaluate_folds(run_dir, zoo, settings, out, label=str(run_dir))
    else:
        gen = load_generator(run_dir)
        report = evaluate_generator(
            gen, dataset_for(gen, zoo), settings, out, label=str(run_dir), zoo=zoo
        )
    print_report(Console(), report, out)


def regression_table(report: dict[str, Any]) -> Table:
    """Per group and pooled: generated and held-out real nets' mean test MSE and their ratio;
    the held-out tasks' loss ratio in the caption."""
    table = Table(title=f"{report['label']}: test MSE, generated vs held-out real nets",
                  caption=f"held-out tasks: loss ratio "
                          f"{report['summary'].get('heldout_task_loss_ratio', float('nan')):.3f}")  # fmt: skip
    for col in ("group", "generated", "held-out real", "ratio"):
        table.add_column(col, justify="left" if col == "group" else "right")
    rows = [*report["per_group"], {"group": "pooled", **{
        k: report["summary"][v] for k, v in (("generated_loss", "generated_loss"),
                                            ("heldout_loss", "heldout_loss"),
                                            ("loss_ratio", "loss_ratio"))}}]  # fmt: skip
    for r in rows:
        table.add_row(r["group"], f"{r['generated_loss']:.4f}", f"{r['heldout_loss']:.4f}",
                      f"{r['loss_ratio']:.3f}")  # fmt: skip
    return table


def _evaluate_widths(run_dir: Path, zoo: str, out: Path, widths: str, n: int, seed: int) -> None:
    """``zoo evaluate --widths``: :mod:`pipelines.width_evaluation`, to OUT/widths.json."""
    import json

    from generators import load_generator
    from pipelines.evaluate import dataset_for
    from pipelines.width_evaluation import evaluate_widths, parse_widths

    gen = load_generator(run_dir)
    report = evaluate_widths(gen, dataset_for(gen, zoo), parse_widths(widths), n=n, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "widths.json").write_text(json.dumps(report, indent=2) + "\n")
    table = Table(title=f"{gen.kind} generator by width ({report['task']}, {n} nets each)")
    for col in ("width", "generated", "real", "ratio", "reference"):
        table.add_column(col, justify="left" if col == "reference" else "right")
    for r in report["widths"]:
        table.add_row(str(r["width"]), f"{r['generated_mean']:.3f}", f"{r['real_mean']:.3f}",
                      f"{r['ratio']:.1%}", r["reference"])  # fmt: skip
    console = Console()
    console.print(table)
    console.print(f"results: {out / 'widths.json'}")


@app.command()
def demo(
    out: Annotated[
        Path, typer.Option(help="output folder: zoo store, one run dir per kind, plots")
    ] = Path("demo"),
    workers: Annotated[
        int | None, typer.Option(help="Dask workers for the zoo build (default: one per core)")
    ] = None,
    max_steps: Annotated[
        int | None,
        typer.Option(help="training steps of every kind (default: each preset's own)"),
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            metavar="KIND",
            help="train this kind only (repeat for several; default: every registered kind)",
        ),
    ] = None,
) -> None:
    """Run every stage on the default zoo and compare every registered generator kind.

    Builds the default zoo (data/specs/default.toml) and labels its loss-landscape phases,
    canonicalizes it, trains every registered generator kind with its shipped preset on one
    80/20 split of each width's models, samples and evaluates each on the held-out models (plain
    and, where the kind calibrated itself, best of K), and prints one table with the kinds as
    columns and the paths of the plots. Cross-validation: train-generator --folds K."""
    from pipelines.demo import run_demo

    run_demo(out, workers=workers, max_steps=max_steps, kinds=kind)
