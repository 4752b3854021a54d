"""Tiny zoo specs shared by the store, build and CLI tests (fast on 2 cores)."""

from __future__ import annotations


def tiny_spec_dict(**over: object) -> dict:
    """2 widths x 2 learning rates x 2 seeds of 1-hidden-layer MLPs on moons, 2 epochs."""
    d: dict = {
        "name": "tiny",
        "tasks": ["moons"],
        "architecture": {"family": "mlp", "depth": 1},
        "load": {"axis": "width", "values": [4, 8]},
        "temperature": {"axis": "learning_rate", "values": [0.05, 0.5]},
        "seeds": 2,
        "epochs": 2,
        "checkpoints": [0, 1, 2],
        "models_per_chunk": 2,
    }
    d.update(over)
    return d
