"""``zoo metrics`` (the landscape stage) and ``zoo report`` (phase plots and index.html)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipelines.app import SchedulerOpt, StoreArg, WorkersOpt, app


@app.command()
def metrics(
    store: StoreArg,
    workers: WorkersOpt = None,
    scheduler: SchedulerOpt = None,
) -> None:
    """Measure (or resume) loss-landscape metrics of a trained zoo and label its phases."""
    from pipelines.metrics_stage import compute_metrics

    compute_metrics(store, workers=workers, scheduler=scheduler)


@app.command()
def report(
    store: StoreArg,
    out: Annotated[Path, typer.Option(help="output folder for the PNGs and index.html")] = Path(
        "report"
    ),
) -> None:
    """Draw the phase map, metric heatmaps and accuracy histograms into OUT/index.html."""
    from pipelines.report import write_report
    from zoo.store import open_zoo

    index = write_report(open_zoo(store), out)
    Console().print(f"report: {index}", highlight=False)
