"""``KEY=VALUE`` settings from the command line, each value read as TOML (``3``, ``0.5``,
``"heun"``, ``true``): config overrides and a kind's own sampling options."""

from __future__ import annotations

import math
import tomllib
from typing import Any


def parse_key_values(items: list[str], flag: str) -> dict[str, Any]:
    """``["a=1", "b.c=0.5"]`` -> ``{"a": 1, "b.c": 0.5}``; a ValueError naming ``flag`` for an
    item without ``=``, a value TOML cannot read, or a NaN or infinite number."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} takes KEY=VALUE, got {item!r}")
        try:
            parsed = tomllib.loads(f"v = {value.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            raise ValueError(
                f"{flag} {key.strip()}: {value.strip()!r} is not a TOML value (a string needs "
                'quotes: KEY="text")'
            ) from None
        if isinstance(parsed, float) and not math.isfinite(parsed):
            raise ValueError(f"{flag} {key.strip()} must be finite, got {value.strip()}")
        out[key.strip()] = parsed
    return out
