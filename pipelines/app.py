"""The Typer application behind the ``zoo`` command; commands register in ``pipelines.commands``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

import typer
from typer.core import TyperGroup


def _untyped_flags(params: Iterable[Any]) -> list[Any]:
    """Flags take no value, so their help shows no value type (typer prints ``<bool>``)."""
    params = list(params)
    for p in params:
        if getattr(p, "is_flag", False) and p.metavar is None:
            p.metavar = ""
    return params


class ZooGroup(TyperGroup):
    """The ``zoo`` group: help without a value placeholder for flags, here and in subcommands."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _untyped_flags(super().get_params(ctx))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None:
            _untyped_flags(cmd.get_params(ctx))
        return cmd


app = typer.Typer(
    name="zoo",
    cls=ZooGroup,
    help="weightzoo: build phase-controlled model zoos, measure their loss-landscape phases, "
    "canonicalize their weights, and train, sample and evaluate weight generators. "
    "'zoo demo' runs every stage on the default zoo; 'zoo COMMAND --help' explains each.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Options shared by the commands that read a store or run on Dask.
StoreArg = Annotated[str, typer.Argument(help="zoo store: a local path or an fsspec URL")]
WorkersOpt = Annotated[
    int | None,
    typer.Option(help="Dask worker processes (default: one per core; 0: in this process)"),
]
SchedulerOpt = Annotated[
    str | None, typer.Option(help="address of a running Dask scheduler to use instead")
]
DEFAULT_TIMEOUT = 30.0
TimeoutOpt = Annotated[
    float, typer.Option(help="seconds to wait for the Dask scheduler of --scheduler to answer")
]
LOOPBACK_DASHBOARD = "127.0.0.1:0"
DashboardOpt = Annotated[
    str,
    typer.Option(help="Dask dashboard address (host:port); the default listens on loopback only"),
]
