"""``zoo demo`` end to end on a tiny zoo: every registered kind trained on one split, evaluated
plain and (where calibrated) best of k, one table with the kinds as columns, the files it names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from generators import GENERATORS, calibration_of, load_generator
from pipelines.kinds import column, comparison_table


@pytest.mark.slow
def test_demo_trains_and_compares_every_registered_kind(tiny_demo: tuple) -> None:
    root, result, text = tiny_demo
    out = root / "demo"
    assert [c["kind"] for c in result["kinds"]] == list(GENERATORS)
    assert json.loads((out / "demo.json").read_text())["kinds"] == result["kinds"]
    for c in result["kinds"]:
        gen = load_generator(out / c["kind"])  # one generator per kind, no folds
        assert gen.kind == c["kind"] and not (out / c["kind"] / "fold-0").exists()
        assert (out / c["kind"] / "evaluation" / "evaluation.json").is_file()
        assert c["train_seconds"] > 0 and c["plain"]["seconds_per_1000"] > 0
        calibration = calibration_of(gen)
        if calibration is not None:  # the calibrated best of k, evaluated with its options
            k = calibration.candidates
            report = json.loads((out / c["kind"] / f"best-of-{k}" / "evaluation.json").read_text())
            assert report["settings"]["sample_options"]["candidates"] == k
            assert c["calibrated"]["acc_ratio_free"] == report["summary"]["acc_ratio_free"]
        else:
            assert "calibrated" not in c
    assert all(Path(p).is_file() for p in result["plots"])
    assert (out / "kinds.png").is_file() and (out / "samples.safetensors").is_file()
    header = next(line for line in text.splitlines() if line.rstrip().endswith("real nets"))
    assert all(kind in header for kind in GENERATORS)
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "accuracy ratio" in text and str(out / "kinds.png") in text


def _column(kind: str, calibrated: bool) -> dict:
    summary = {"acc_ratio_free": 0.9, "distance_ratio": 0.5, "nn_disagreement": 0.4,
               "diversity": 0.3}  # fmt: skip
    plain = {"summary": summary}
    cal = {"summary": {**summary, "acc_ratio_free": 0.995},
           "settings": {"sample_options": {"candidates": 16}}}  # fmt: skip
    return column(kind, plain, cal if calibrated else None, 30.0, (0.3, 2.5 if calibrated else None),
                  128)  # fmt: skip


def test_the_kinds_table_fits_100_columns_with_five_kinds() -> None:
    """Five kinds, each plain / calibrated, and the real nets' column fit 100 terminal columns;
    a kind without a calibration shows its plain figure alone."""
    cols = [_column(k, k != "gaussian") for k in ("flow", "gaussian", "diffusion", "hyper",
                                                    "neumeta")]  # fmt: skip
    real = {"heldout_acc": 0.75, "real_nn_disagreement": 0.455, "real_pair_disagreement": 0.36}
    console = Console(record=True, width=100)
    console.print(comparison_table(cols, real))
    text = console.export_text()
    lines = text.splitlines()
    header = next(line for line in lines if line.rstrip().endswith("real nets"))
    assert all(k in header for k in ("flow", "gaussian", "diffusion", "hyper", "neumeta"))
    row = next(line for line in lines if line.strip().startswith("accuracy ratio"))
    assert row.split()[2:5] == ["90.0", "/", "99.5"]  # flow: plain / calibrated
    assert row.split()[5] == "90.0"  # gaussian: plain only
    assert row.split()[-1] == "100.0"
    assert "45.5" in next(line for line in lines if line.strip().startswith("disagreement"))
    assert "calibrated best of 16" in " ".join(text.split())
    assert max(len(line) for line in lines) <= 100
