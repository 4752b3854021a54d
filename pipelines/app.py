"""The Typer application behind the ``zoo`` command; commands register in ``pipelines.commands``."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="zoo",
    help="weightzoo: build phase-controlled model zoos, canonicalize them, train weight generators.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
