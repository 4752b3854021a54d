"""Where the shipped presets (``data/``: zoo specs, generator configs) are found.

In a checkout or an editable install they are the repository's ``data/`` folder; a regular
(wheel) install copies that folder to ``<prefix>/share/weightzoo/data`` (``data-files`` in
``pyproject.toml``), since ``data/`` is not inside a Python package.
"""

from __future__ import annotations

import sys
from pathlib import Path

CHECKOUT_DATA = Path(__file__).resolve().parents[1] / "data"
INSTALLED_DATA = Path("share") / "weightzoo" / "data"


def data_dir() -> Path:
    """The presets folder: the checkout's ``data/`` if there is one, else the installed copy."""
    for candidate in (CHECKOUT_DATA, Path(sys.prefix) / INSTALLED_DATA):
        if (candidate / "specs").is_dir():
            return candidate
    raise FileNotFoundError(
        f"weightzoo's presets are missing: neither {CHECKOUT_DATA} nor "
        f"{Path(sys.prefix) / INSTALLED_DATA} exists; reinstall weightzoo"
    )


def default_spec() -> Path:
    """The default zoo spec, ``data/specs/default.toml``."""
    return data_dir() / "specs" / "default.toml"


def generator_preset(kind: str) -> Path:
    """The shipped config of generator ``kind`` (``data/generators/KIND.toml``; may not exist)."""
    return data_dir() / "generators" / f"{kind}.toml"
