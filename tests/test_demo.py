"""``zoo demo`` end to end on a tiny zoo: every stage runs, the tables and files appear."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console
from zoo_fixtures import tiny_spec_dict

from pipelines.demo import BEST_OF, SELECTED, VARIANTS, run_demo
from zoo.spec import ZooSpec


@pytest.mark.slow
def test_demo_on_a_tiny_zoo(tmp_path: Path) -> None:
    spec = ZooSpec.from_dict(tiny_spec_dict(seeds=3))
    console = Console(record=True, width=100)
    result = run_demo(tmp_path, spec=spec, workers=0, max_steps=5, n=4, folds=2,
                      console=console)  # fmt: skip
    best = f"canonical, best of {BEST_OF}"
    assert set(result["summary"]) == {*VARIANTS, best}
    assert (
        json.loads((tmp_path / "demo.json").read_text())["summary"].keys()
        == result["summary"].keys()
    )
    pooled = json.loads((tmp_path / "flow-canonical" / f"best-of-{BEST_OF}" /
                         "evaluation.json").read_text())  # fmt: skip
    assert pooled["settings"]["sample_options"] == SELECTED
    assert pooled["settings"]["folds"] == 2
    assert all(Path(p).is_file() for p in result["plots"])
    text = console.export_text()
    assert best in text and "ratio (target >= 98%)" in text
    assert result["timings_s"]["sample_1000_best_of"] > 0
