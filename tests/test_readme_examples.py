"""README.md is a user's guide: short, in the present tense, its set-up commands those CI runs,
and its Python examples run as written, as saved scripts, against what ``zoo demo`` leaves."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()
# words that tell how the project came to be, not what it is
HISTORY = ("this round", "last round", "rounds ago", "until", "an earlier run", "earlier round")


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_readme_is_short_and_says_what_is() -> None:
    assert len(README.splitlines()) <= 300
    lower = README.lower()
    found = [w for w in HISTORY if re.search(rf"\b{w}\b", lower)]
    assert not found, f"history words in README.md: {found}"


def test_the_setup_commands_are_the_ones_ci_runs() -> None:
    """The README's second command is what .ci/run executes; both install the same way."""
    first, second = re.search(r"```bash\n(.*?)\n(.*?)\n```", README).groups()
    assert first.endswith(" && zoo demo") and second.endswith(" && pytest -q")
    install = first.removesuffix(" && zoo demo")
    assert second.startswith(install + " && ")
    ci = (ROOT / ".ci" / "run").read_text()
    assert second in ci.splitlines()


def test_the_examples_name_only_what_the_demo_writes() -> None:
    """Every path an example opens lies in the demo's output folder (``demo/``)."""
    blocks = python_blocks(README)
    assert len(blocks) >= 3
    for block in blocks:
        for path in re.findall(r'"([^"]*(?:/|\.zarr|\.safetensors)[^"]*)"', block):
            assert path.startswith("demo/"), path


@pytest.mark.slow
@pytest.mark.parametrize("i", range(len(python_blocks(README))))
def test_readme_python_example_runs(i: int, tiny_demo: tuple, tmp_path: Path) -> None:
    """Example i, saved as a script, runs beside a (tiny) demo output."""
    root, _, _ = tiny_demo
    script = tmp_path / f"example_{i}.py"
    script.write_text(python_blocks(README)[i])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    run = subprocess.run([sys.executable, str(script)], cwd=root, env=env, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
