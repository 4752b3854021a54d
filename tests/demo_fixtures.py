"""A tiny stand-in for the default zoo (digits MLPs of depth 2, widths 8 and 32, so that the
populations are named as the default zoo's), and ``zoo demo`` run on it with tiny settings:
what the demo and README tests read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from zoo_fixtures import tiny_spec_dict

from zoo.spec import ZooSpec

# every kind's preset, made cheap without switching anything on or off: fewer candidates per
# distilled net, fewer prompts per training net in the calibration
TINY: dict[str, Any] = {"distill.candidates": 2, "calibrate.per_net": 1}


def tiny_digits_spec() -> ZooSpec:
    """2 widths x 2 learning rates x 3 seeds of depth-2 digits MLPs, 2 epochs."""
    return ZooSpec.from_dict(tiny_spec_dict(
        tasks=["digits"], architecture={"family": "mlp", "depth": 2},
        load={"axis": "width", "values": [8, 32]},
        temperature={"axis": "learning_rate", "values": [0.03, 0.1]}, seeds=3,
    ))  # fmt: skip


def run_tiny_demo(out: Path, console: Console | None = None) -> dict[str, Any]:
    """``zoo demo`` into ``out`` on the tiny zoo: every registered kind, 5 training steps, 4
    nets per width, sampling timed on 20 nets."""
    from generators import GENERATORS
    from pipelines.demo import run_demo

    return run_demo(out, spec=tiny_digits_spec(), workers=0, max_steps=5, n=4,
                    overrides=dict.fromkeys(GENERATORS, TINY), timing_nets=20,
                    console=console or Console(quiet=True))  # fmt: skip
