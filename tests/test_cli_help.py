"""``zoo --help`` and every subcommand's help read cleanly: every option explained, no
placeholders for flags, no reStructuredText / Markdown quoting."""

from __future__ import annotations

import pytest
import typer

from pipelines.app import app
from pipelines.cli import main


def _commands() -> dict[str, typer.core.TyperCommand]:
    group = typer.main.get_command(app)
    return dict(group.commands)  # type: ignore[attr-defined]


COMMANDS = sorted(_commands())


def _help(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main([*args, "--help"]) == 0
    return capsys.readouterr().out


def _check_clean(text: str) -> None:
    assert "`" not in text, "literal backticks in the help"
    assert "<bool>" not in text, "a value placeholder on a flag"
    assert "<list[" not in text, "a raw Python type as a placeholder"


def test_every_command_is_listed_with_a_summary(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    text = _help(capsys)
    _check_clean(text)
    for name in COMMANDS:
        assert name in text
    assert "zoo demo" in text  # the main entry point is named at the top


@pytest.mark.parametrize("name", COMMANDS)
def test_subcommand_help_is_clean(
    name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    text = _help(capsys, name)
    _check_clean(text)
    cmd = _commands()[name]
    assert cmd.help and cmd.help.strip(), f"zoo {name} has no description"
    for param in cmd.params:
        helptext = getattr(param, "help", None)
        assert helptext and helptext.strip(), f"zoo {name}: {param.name} has no help text"
        assert "`" not in helptext
        for opt in param.opts:
            if opt.startswith("--"):
                assert opt in text  # shown, not hidden


def test_the_demo_help_says_what_it_runs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    text = " ".join(_help(capsys, "demo").split())
    for stage in ("default zoo", "canonicalize", "every registered", "sample", "evaluate"):
        assert stage in text, stage


def test_the_selection_rules_are_all_explained(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--select names every rule of generators.selection, each with what it keeps."""
    from generators.selection import RULES

    monkeypatch.setenv("COLUMNS", "200")
    text = " ".join(_help(capsys, "sample").split())
    for rule in RULES:
        assert f"{rule} (" in text, rule
