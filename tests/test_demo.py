"""``zoo demo`` end to end on a tiny zoo: every stage runs, the tables and files appear."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console
from zoo_fixtures import tiny_spec_dict

from pipelines.demo import (
    FIRST_ROUND,
    HEADINGS,
    VARIANTS,
    preset_flow,
    run_demo,
    summary_table,
)
from zoo.spec import ZooSpec


@pytest.mark.slow
def test_demo_on_a_tiny_zoo(tmp_path: Path) -> None:
    spec = ZooSpec.from_dict(tiny_spec_dict(seeds=3))
    console = Console(record=True, width=100)
    result = run_demo(tmp_path, spec=spec, workers=0, max_steps=5, n=4, folds=2,
                      console=console)  # fmt: skip
    calibrate = preset_flow({}).config.calibrate
    k = calibrate.candidates
    best = f"canonical, best of {k}"
    assert set(result["summary"]) == {*VARIANTS, FIRST_ROUND, best}
    assert (
        json.loads((tmp_path / "demo.json").read_text())["summary"].keys()
        == result["summary"].keys()
    )
    pooled = json.loads((tmp_path / "flow-canonical" / f"best-of-{k}" /
                         "evaluation.json").read_text())  # fmt: skip
    # the preset's calibrated best of k, each fold keeping by its own weight
    expected = {"candidates": k, "select": "weighted", **calibrate.options}
    assert pooled["settings"]["sample_options"] == expected
    assert len(result["best_of"]["calibrated_weights"]) == 2
    for f in range(2):
        assert (tmp_path / "flow-canonical" / f"fold-{f}" / "calibration.png").is_file()
    # the comparisons neither distil nor calibrate
    assert not (tmp_path / "flow-raw" / "fold-0" / "calibration.png").exists()
    assert pooled["settings"]["folds"] == 2
    assert all(Path(p).is_file() for p in result["plots"])
    text = console.export_text()
    assert best in text and "ratio (target >= 98%)" in text
    assert result["timings_s"]["sample_1000_best_of"] > 0


def _report(acc_ratios: list[float]) -> dict:
    """A report as evaluate / evaluate_folds return it, with only the fields the table reads."""
    keys = ("generated_acc_free", "heldout_acc", "acc_ratio_free", "distance_ratio",
            "local_ratio", "nn_disagreement", "real_nn_disagreement", "real_pair_disagreement",
            "diversity", "ensemble_generated", "ensemble_real", "single_generated")  # fmt: skip
    folds = [{**dict.fromkeys(keys, 0.5), "acc_ratio_free": a} for a in acc_ratios]
    summary = {**dict.fromkeys(keys, 0.5), "seconds_per_net": 1e-3,
               "acc_ratio_free": sum(acc_ratios) / len(acc_ratios)}  # fmt: skip
    return {"summary": summary, "folds": folds} if len(acc_ratios) > 1 else {"summary": summary}


def test_summary_table_shows_the_fold_range_only_for_cross_validated_reports() -> None:
    console = Console(record=True, width=200)
    console.print(summary_table({"cv": _report([0.959, 1.066, 0.98]), "one": _report([0.9])}))
    rows = [line for line in console.export_text().splitlines() if "lowest - highest" in line]
    assert len(rows) == 2  # accuracy ratio and disagreement
    assert "96-107%" in rows[0] and rows[0].rstrip(" │").endswith("-")
    assert "50-50%" in rows[1]
    console = Console(record=True, width=200)
    console.print(summary_table({"one": _report([0.9])}))
    text = console.export_text()
    assert "lowest - highest" not in text and "prompted like held-out" not in text
    assert "90.0%" in text and "real: replicates" not in text


def test_the_comparison_table_names_its_short_headings() -> None:
    """The demo's four-column table heads two columns with short names (so that it fits 80
    columns) and spells them out in its caption."""
    console = Console(record=True, width=80)
    reports = {k: _report([0.9, 1.0]) for k in (*VARIANTS, FIRST_ROUND)}
    console.print(summary_table(reports, None, HEADINGS))
    text = console.export_text()
    header = next(line for line in text.splitlines() if "metric" in line)
    assert all(short in header for short in HEADINGS.values())
    assert "no augm.: canonical, no augmentation" in text
    assert "undistilled: canonical, not distilled" in text
