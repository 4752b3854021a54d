"""The ``zoo`` CLI: one-line errors with a non-zero exit on bad input, nothing written."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from zoo_fixtures import tiny_spec_dict

from pipelines.cli import main

DEFAULT = Path(__file__).parents[1] / "data" / "specs" / "default.toml"


def write_spec(path: Path, **over: object) -> Path:
    d = tiny_spec_dict(**over)
    lines = [f"name = {d['name']!r}".replace("'", '"')]
    for key in ("tasks", "seeds", "epochs", "checkpoints", "models_per_chunk"):
        lines.append(f"{key} = {d[key]!r}".replace("'", '"'))
    for table in ("architecture", "load", "temperature"):
        lines.append(f"[{table}]")
        for k, v in d[table].items():
            lines.append(f"{k} = {v!r}".replace("'", '"'))
    path.write_text("\n".join(lines) + "\n")
    assert tomllib.loads(path.read_text())["name"] == "tiny"
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"tasks": ["nope"]}, "unknown task 'nope'"),
        ({"architecture": {"family": "lstm"}}, "unknown architecture 'lstm'"),
        ({"load": {"axis": "width", "values": []}}, "empty grid"),
        ({"load": {"axis": "width", "values": [0, 4]}}, "non-positive width"),
        ({"tasks": ["cifar10"]}, "task 'cifar10' needs --data-root"),
    ],
)
def test_bad_spec_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], over: dict, message: str
) -> None:
    spec = write_spec(tmp_path / "spec.toml", **over)
    store = tmp_path / "zoo.zarr"
    code, err = run_cli(capsys, "build", str(spec), "--store", str(store), "--workers", "0")
    assert code == 2
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not store.exists()


def test_missing_data_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write_spec(tmp_path / "spec.toml", tasks=["mnist"])
    code, err = run_cli(
        capsys, "build", str(spec), "--store", str(tmp_path / "z.zarr"),
        "--data-root", str(tmp_path / "nowhere"),
    )  # fmt: skip
    assert code == 2 and "data_root" in err and "nowhere" in err and "\n" not in err


def test_not_a_store_and_unwritable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "some.txt").write_text("keep me")
    code, err = run_cli(capsys, "info", str(tmp_path))
    assert code == 2 and "not a weightzoo store" in err
    code, err = run_cli(capsys, "build", "--store", str(tmp_path), "--workers", "0")
    assert code == 2 and "not empty and not a weightzoo store" in err
    assert (tmp_path / "some.txt").read_text() == "keep me"
    code, err = run_cli(capsys, "build", "--store", str(tmp_path / "some.txt" / "z.zarr"))
    assert code == 2 and "cannot write the store" in err


def test_build_then_info_and_spec_mismatch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write_spec(tmp_path / "spec.toml")
    store = str(tmp_path / "zoo.zarr")
    code = main(["build", str(spec), "--store", store, "--workers", "0", "--no-metrics"])
    out = capsys.readouterr().out
    assert code == 0 and "moons-mlp-w4" in out and "moons-mlp-w8" in out
    code = main(["info", store])
    out = capsys.readouterr().out
    assert code == 0 and "done" in out and "test acc mean" in out
    other = write_spec(tmp_path / "other.toml", epochs=3, checkpoints=[0, 3])
    code, err = run_cli(capsys, "build", str(other), "--store", store, "--workers", "0")
    assert code == 2 and "different spec" in err


def test_console_script_is_installed() -> None:
    exe = shutil.which("zoo")
    assert exe, "the `zoo` console script is not on PATH"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    assert "build" in out and "info" in out
