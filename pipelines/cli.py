"""Entry point of the ``zoo`` console script: one-line errors and a non-zero exit on bad input."""

from __future__ import annotations

import sys

import typer

from pipelines import commands  # noqa: F401  (registers every command on the app)
from pipelines.app import app

USER_ERRORS = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    KeyError,
    IndexError,
)


def _click_errors() -> tuple[type[Exception], ...]:
    """Click's usage-error base class as typer raises it (typer >= 0.20 bundles its own click)."""
    import click

    bundled = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    return (bundled, click.ClickException)


CLICK_ERRORS = _click_errors()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print ``error: ...`` on one line and exit with status 2."""
    try:
        app(args=argv, prog_name="zoo", standalone_mode=False)
    except SystemExit as e:
        return int(e.code or 0)
    except USER_ERRORS as e:
        msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        first = msg.splitlines()[0] if msg.strip() else type(e).__name__
        print(f"error: {first}", file=sys.stderr)  # one line, never wrapped
        return 2
    except CLICK_ERRORS as e:  # usage errors: unknown option, bad choice, missing argument
        e.show()
        return e.exit_code
    except typer.Abort:
        return 130
    return 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
