"""Architecture families. Each declares its parameter layout and its permutation spec."""

from __future__ import annotations

from zoo.architectures.base import Architecture
from zoo.architectures.cnn import CNN
from zoo.architectures.mlp import MLP
from zoo.architectures.transformer import Transformer

FAMILIES: dict[str, type[Architecture]] = {a.family: a for a in (MLP, CNN, Transformer)}


def architecture_from_dict(d: dict) -> Architecture:
    """Inverse of ``Architecture.to_dict``; raises ValueError on an unknown family or field."""
    d = dict(d)
    family = d.pop("family", None)
    if family not in FAMILIES:
        raise ValueError(f"unknown architecture {family!r} (known: {', '.join(FAMILIES)})")
    cls = FAMILIES[family]
    for key in ("in_shape",):
        if key in d:
            d[key] = tuple(d[key])
    try:
        return cls(**d)
    except TypeError as e:
        raise ValueError(f"bad {family} architecture settings: {e}") from None


__all__ = ["Architecture", "MLP", "CNN", "Transformer", "FAMILIES", "architecture_from_dict"]
