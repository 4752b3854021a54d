"""Refuse, before anything is written, a build that Dask's process start-up would break.

Dask starts its worker processes with ``spawn``: each one re-runs the user's main script. A
script that calls ``build_zoo`` at top level (no ``if __name__ == "__main__":``) would start a
build inside every worker while the first one waits for them, and leave a half-made store. The
parent sees this coming by reading its own main script (the line running at module level must
sit under the guard); a spawned child sees that it is re-running the script.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from types import FrameType


class ScriptGuardError(RuntimeError):
    """A build that would start Dask workers from an unguarded main script."""


def _is_main_test(node: ast.expr) -> bool:
    """Whether ``node`` is ``__name__ == "__main__"`` (either side)."""
    if not (isinstance(node, ast.Compare) and len(node.ops) == 1):
        return False
    if not isinstance(node.ops[0], ast.Eq):
        return False
    sides = [node.left, node.comparators[0]]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    consts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return len(names) == 1 and len(consts) == 1


def guarded_lines(source: str) -> list[tuple[int, int]]:
    """(first, last) line ranges of the bodies of top-level ``if __name__ == "__main__":``."""
    out = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.If) and _is_main_test(node.test) and node.body:
            out.append((node.body[0].lineno, node.body[-1].end_lineno or node.body[-1].lineno))
    return out


def _main_module_frame() -> FrameType | None:
    frame = sys._getframe(1)
    while frame is not None:
        g = frame.f_globals
        if frame.f_code.co_name == "<module>" and g.get("__name__") in ("__main__", "__mp_main__"):
            return frame
        frame = frame.f_back
    return None


def check_main_guard(what: str = "build_zoo") -> None:
    """ScriptGuardError (one line, saying what to add) when ``what`` runs at the top level of
    a main script without the ``__main__`` guard, or inside a spawned worker re-running it."""
    frame = _main_module_frame()
    if frame is None:
        return  # called from an interactive session, a notebook, a function: nothing re-runs it
    file = frame.f_globals.get("__file__")
    if frame.f_globals.get("__name__") == "__mp_main__":
        raise ScriptGuardError(
            f"{what} ran inside a Dask worker that was re-running {file}: put the call under "
            "'if __name__ == \"__main__\":' (or pass workers=0)"
        )
    if not file or not Path(file).is_file():
        return
    try:
        ranges = guarded_lines(Path(file).read_text())
    except (SyntaxError, UnicodeDecodeError, OSError):
        return
    line = frame.f_lineno
    if not any(a <= line <= b for a, b in ranges):
        raise ScriptGuardError(
            f"{Path(file).name} line {line} calls {what} outside 'if __name__ == \"__main__\":'; "
            "Dask's worker processes re-run the script, so put the call under that guard "
            "(or pass workers=0 to train in this process)"
        )
