"""The Typer application behind the ``zoo`` command; commands register in ``pipelines.commands``."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    name="zoo",
    help="weightzoo: build phase-controlled model zoos, canonicalize them, train weight generators.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Options shared by the commands that read a store or run on Dask.
StoreArg = Annotated[str, typer.Argument(help="store path or fsspec URL")]
WorkersOpt = Annotated[int | None, typer.Option(help="Dask worker processes (0: in this process)")]
SchedulerOpt = Annotated[str | None, typer.Option(help="address of an existing Dask scheduler")]
DEFAULT_TIMEOUT = 30.0
TimeoutOpt = Annotated[
    float, typer.Option(help="seconds to wait for the Dask scheduler of --scheduler to answer")
]
LOOPBACK_DASHBOARD = "127.0.0.1:0"
DashboardOpt = Annotated[
    str,
    typer.Option(help="Dask dashboard address (host:port); the default listens on loopback only"),
]
