"""``zoo build`` and ``zoo info``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipelines.app import (
    DEFAULT_TIMEOUT,
    LOOPBACK_DASHBOARD,
    DashboardOpt,
    SchedulerOpt,
    StoreArg,
    TimeoutOpt,
    WorkersOpt,
    app,
)

if TYPE_CHECKING:
    from zoo.store import Zoo


@app.command()
def build(
    spec: Annotated[
        Path | None, typer.Argument(help="zoo spec, a TOML file (default: data/specs/default.toml)")
    ] = None,
    store: Annotated[
        str, typer.Option(help="zoo store to write (or resume): a local path or an fsspec URL")
    ] = "zoo.zarr",
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
    metrics: Annotated[
        bool, typer.Option(help="after training, measure loss-landscape metrics and label phases")
    ] = True,
    data_root: Annotated[
        str | None,
        typer.Option(help="folder holding the original MNIST / Fashion-MNIST / CIFAR-10 files"),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="discard an existing store, finished models too")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="build a spec over the size limits (zoo.spec_checks)")
    ] = False,
    timeout: TimeoutOpt = DEFAULT_TIMEOUT,
    dashboard: DashboardOpt = LOOPBACK_DASHBOARD,
) -> None:
    """Train a phase-controlled zoo into a store; run again, it trains only what is not done and
    re-trains damaged models."""
    from pipelines.build import build_zoo

    zoo = build_zoo(
        spec, store, workers=workers, scheduler=scheduler, metrics=metrics, data_root=data_root,
        overwrite=overwrite, force=force, timeout=timeout, dashboard=dashboard,
    )  # fmt: skip
    print_info(zoo.location)


@app.command()
def verify(store: StoreArg) -> None:
    """Check every finished model (and the canonical weights) against its checksums; exits 1
    naming the damaged models."""
    from zoo.store import open_zoo

    zoo = open_zoo(store)
    damages = zoo.verify()
    console = Console(highlight=False)
    for d in damages:
        if d.damaged:
            console.print(f"[red]DAMAGED[/] {d.describe()}")
        elif d.unchecked:
            console.print(f"unchecked population {d.population}: written without checksums")
        else:
            console.print(f"ok population {d.population}")
    bad = [d for d in damages if d.damaged]
    if bad:
        n = sum(len(d.models) + len(d.canonical) for d in bad)
        typer.echo(f"error: {store} is damaged: {n} model(s) in {len(bad)} population(s) "
                   f"({', '.join(d.population for d in bad)}); `zoo build` re-trains them",
                   err=True)  # fmt: skip
        raise typer.Exit(1)


@app.command()
def info(store: StoreArg) -> None:
    """List a zoo's populations: task, architecture, width, models by status, test accuracy."""
    print_info(store)


def print_info(store: str) -> None:
    from zoo.store import open_zoo

    zoo = open_zoo(store)
    spec = zoo.spec
    table = Table(title=f"{spec.name}: {zoo.location}")
    for col in ("population", "task", "arch", "width", "params", "models", "done", "pending",
                "failed", "diverged", "test acc mean", "min", "max"):  # fmt: skip
        left = col in ("population", "task", "arch")
        table.add_column(col, justify="left" if left else "right", no_wrap=True)

    def pct(v: float) -> str:
        return "-" if math.isnan(v) else f"{100 * v:.1f}%"

    for r in zoo.summary():
        table.add_row(
            r["population"], r["task"], r["arch"], str(r["width"]), str(r["params"]), str(r["models"]),
            str(r["done"]), str(r["pending"]), str(r["failed"]), str(r["diverged"]),
            pct(r["test_acc_mean"]), pct(r["test_acc_min"]), pct(r["test_acc_max"]),
        )  # fmt: skip
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(table)

    def values(vs: tuple[float, ...]) -> str:
        return ", ".join(f"{v:g}" for v in vs)

    print_tasks(zoo, console)
    console.print(
        f"grid: {spec.load.name} [{values(spec.load.values)}] x {spec.temperature.name} "
        f"[{values(spec.temperature.values)}] x {spec.seeds} seeds, {spec.epochs} epochs, "
        f"checkpoints {list(spec.checkpoints)}",
        highlight=False,
    )


def print_tasks(zoo: Zoo, console: Console) -> None:
    """The zoo's stored tasks: source, kind, parameters, split sizes, fingerprint, held out."""
    from zoo.task_store import stored_tasks

    records = stored_tasks(zoo.root)
    held = set(zoo.spec.heldout_tasks)
    if not records:
        console.print("tasks: none stored (a store written before tasks were stored)")
        return
    table = Table(title="tasks")
    for col in ("task", "source", "kind", "parameters", "train", "val", "test", "fingerprint",
                "held out"):  # fmt: skip
        table.add_column(col, justify="right" if col in ("train", "val", "test") else "left",
                         no_wrap=True)  # fmt: skip
    for name, r in records.items():
        params = ", ".join(f"{k}={v:g}" for k, v in r.get("params", {}).items()) or "-"
        sizes = r.get("sizes", {})
        table.add_row(
            name, r["source"], r["kind"], params, str(sizes.get("train", "?")),
            str(sizes.get("val", "?")), str(sizes.get("test", "?")), r["fingerprint"],
            "yes" if name in held else "no",
        )  # fmt: skip
    console.print(table)
