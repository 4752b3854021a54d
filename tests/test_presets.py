"""Shipped presets are found in a checkout and in a wheel install, and a wheel ships all of them."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest

from pipelines import presets

ROOT = Path(__file__).resolve().parents[1]


def test_checkout_presets_are_the_repository_data_folder() -> None:
    assert presets.data_dir() == ROOT / "data"
    assert presets.default_spec() == ROOT / "data" / "specs" / "default.toml"
    assert presets.generator_preset("flow").is_file()
    assert not presets.generator_preset("no-such-kind").exists()


def test_installed_copy_is_used_without_a_checkout(tmp_path: Path, monkeypatch) -> None:
    installed = tmp_path / presets.INSTALLED_DATA
    (installed / "specs").mkdir(parents=True)
    monkeypatch.setattr(presets, "CHECKOUT_DATA", tmp_path / "site-packages" / "data")
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert presets.data_dir() == installed
    assert presets.default_spec() == installed / "specs" / "default.toml"


def test_missing_presets_name_both_places(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(presets, "CHECKOUT_DATA", tmp_path / "nowhere")
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"presets are missing: neither .*nowhere nor"):
        presets.data_dir()


def test_wheel_data_files_cover_every_shipped_preset() -> None:
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    shipped = set()
    for target, patterns in table["data-files"].items():
        assert target.startswith(str(presets.INSTALLED_DATA))
        for pattern in patterns:
            for f in ROOT.glob(pattern):
                # installed at target/<name>, so target must mirror the file's folder under data/
                assert Path(target) / f.name == presets.INSTALLED_DATA / f.relative_to(
                    ROOT / "data"
                )
                shipped.add(f)
    assert shipped == {f for f in (ROOT / "data").rglob("*") if f.is_file()}
