"""Entry point of the ``zoo`` console script: one error path for every command.

Expected failures (bad input, a missing file, a damaged store, a cluster that does not answer)
print ``error: ...`` on one line and exit 2; anything unexpected prints one line naming the
exception plus a hint, and exits 1; Ctrl-C exits 130. ``--debug`` (anywhere on the command line)
re-raises instead, for the traceback. ``--threads N`` caps the cores the command uses (default:
the process's CPU affinity, within which torch's threads follow the cores other processes leave
free, :mod:`pipelines.core_share`); given, it pins the count, so that results do not depend on
the machine's load.
"""

from __future__ import annotations

import sys

import typer

from pipelines import commands  # noqa: F401  (registers every command on the app)
from pipelines.app import app
from pipelines.core_share import follow_free_cores, stop_following

USER_ERRORS = (
    ValueError,
    FileNotFoundError,
    FileExistsError,
    PermissionError,
    IsADirectoryError,
    NotADirectoryError,
    KeyError,
    IndexError,
    TimeoutError,
)
EXIT_USER, EXIT_UNEXPECTED, EXIT_INTERRUPTED = 2, 1, 130


def _click_errors() -> tuple[type[Exception], ...]:
    """Click's usage-error base class as typer raises it (typer >= 0.20 bundles its own click)."""
    import click

    bundled = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
    return (bundled, click.ClickException)


def _abort_errors() -> tuple[type[BaseException], ...]:
    """Click's Abort (raised for Ctrl-C inside a command), bundled and plain."""
    import click

    return (typer.Abort, click.exceptions.Abort)


CLICK_ERRORS = _click_errors()
ABORTS = _abort_errors()


def _global_options(argv: list[str]) -> tuple[list[str], bool, int | None]:
    """(argv without them, --debug, --threads N): options every command takes."""
    out, debug, threads = [], False, None
    it = iter(argv)
    for arg in it:
        if arg == "--debug":
            debug = True
        elif arg == "--threads" or arg.startswith("--threads="):
            value = arg.partition("=")[2] if "=" in arg else next(it, "")
            try:
                threads = int(value)
            except ValueError:
                raise ValueError(f"--threads must be an integer, got {value!r}") from None
        else:
            out.append(arg)
    return out, debug, threads


def _one_line(e: BaseException) -> str:
    msg = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    first = next((line for line in msg.splitlines() if line.strip()), "")
    return first or type(e).__name__


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; see the module docstring for the exit codes."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    share = None
    try:
        argv, debug, threads = _global_options(argv)
        from pipelines.cluster import set_thread_budget

        budget = set_thread_budget(threads)
        # --threads pins the count (results then do not depend on the machine's load)
        share = follow_free_cores(budget) if threads is None else None
        code = app(args=argv, prog_name="zoo", standalone_mode=False)
        if isinstance(code, int) and code:  # typer.Exit(n) comes back as a return value
            if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C inside a command into Exit(130)
                print("interrupted", file=sys.stderr)
            return code
    except SystemExit as e:
        return int(e.code or 0) if not isinstance(e.code, str) else 1
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ABORTS:  # click turns a Ctrl-C inside a command into Abort
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except CLICK_ERRORS as e:  # usage errors: unknown option, bad choice, missing argument
        e.show()
        return e.exit_code
    except USER_ERRORS as e:
        if debug:
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)  # one line, never wrapped
        return EXIT_USER
    except Exception as e:
        if debug:
            raise
        print(f"error: unexpected {type(e).__name__}: {_one_line(e)} (rerun with --debug for "
              "the traceback)", file=sys.stderr)  # fmt: skip
        return EXIT_UNEXPECTED
    finally:
        if share is not None:
            stop_following()
    return 0


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
