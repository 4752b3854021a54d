"""A saved generator's run dir: ``generator.json`` (kind, config, dataset info) beside
``generator.safetensors`` (network and statistics); read without executing any code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file
from torch import Tensor

CONFIG_FILE = "generator.json"
WEIGHTS_FILE = "generator.safetensors"
FORMAT_VERSION = 1


def read_run_dir(run_dir: str | Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(metadata, tensors) of a saved generator, or a FileNotFoundError / ValueError."""
    d = Path(run_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"generator run dir {d} does not exist")
    if not (d / CONFIG_FILE).is_file() or not (d / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(
            f"{d} is not a weightzoo generator (expected {CONFIG_FILE} and {WEIGHTS_FILE}; "
            "train one with `zoo train-generator`)"
        )
    try:
        meta = json.loads((d / CONFIG_FILE).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{d / CONFIG_FILE} is not valid JSON: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION or "kind" not in meta:
        raise ValueError(
            f"{d / CONFIG_FILE} is not a weightzoo generator file (format {FORMAT_VERSION})"
        )
    return meta, load_file(d / WEIGHTS_FILE)
