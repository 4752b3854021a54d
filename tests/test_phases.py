"""Phase labels from hand-made cell metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from zoo.landscape.phases import (
    CKA_HIGH,
    LOSS_FLOOR,
    MC_ERROR_TOLERANCE,
    PHASE_CODES,
    CellInputs,
    PhaseThresholds,
    label_phases,
    resolve_thresholds,
)

nan = float("nan")


def cells(rows: list[tuple[float, float, float, float, float, float]]) -> CellInputs:
    """rows of (train_loss, trace, mc_loss, mc_error, cka, output_std)."""
    cols = np.array(rows, dtype=np.float64).T
    return CellInputs(*cols)


HAND = cells(
    [
        (2.0, 50.0, -0.5, -0.20, 0.30, 1.0),  # I: high loss, sharp, barrier
        (1.5, 40.0, 0.3, 0.10, 0.40, 1.0),  # II: high loss, sharp, mc > 0
        (0.01, 2.0, -0.05, -0.10, 0.80, 1.0),  # III: low loss, flat, barrier
        (0.005, 1.0, 0.0, 0.00, 0.50, 1.0),  # IV-A: connected, low CKA
        (0.004, 1.0, -0.001, -0.005, 0.95, 1.0),  # IV-B: connected, high CKA
        (2.3, 0.9, 0.0, 0.0, nan, 0.0),  # collapsed: constant outputs
        (0.5, 10.0, nan, nan, nan, 1.0),  # one seed: no mc
        (1.2, 30.0, 0.0, 0.01, 0.6, 1.0),  # high loss, mc ~ 0: well connected -> II
    ]
)


def test_hand_made_cells_get_their_phases() -> None:
    labels = label_phases(HAND)
    assert labels.names == ["I", "II", "III", "IV-A", "IV-B", "collapsed", "unlabelled", "II"]
    assert labels.codes.dtype == np.int8
    assert labels.codes[6] == PHASE_CODES["unlabelled"] == -1
    assert "no seed pairs" in labels.notes[6] and "constant" in labels.notes[5]
    assert labels.notes[0] == ""
    assert labels.high_loss.tolist() == [True, True, False, False, False, True, True, True]
    assert labels.disagreements == 0


def test_thresholds_are_relative_to_the_zoo_and_skip_collapsed_cells() -> None:
    t = resolve_thresholds(HAND)
    alive = [2.0, 1.5, 0.01, 0.005, 0.004, 0.5, 1.2]  # the collapsed cell's 2.3 is left out
    assert t.loss == pytest.approx(math.sqrt(min(alive) * max(alive)))  # log midpoint
    traces = [50.0, 40.0, 2.0, 1.0, 1.0, 10.0, 30.0]
    assert t.sharpness == pytest.approx(math.sqrt(min(traces) * max(traces)))
    assert t.mc_error_tolerance == MC_ERROR_TOLERANCE and t.cka_high == CKA_HIGH
    d = t.to_dict()
    assert d["loss_floor"] == LOSS_FLOOR and set(d) >= {"loss", "sharpness", "cka_high"}
    # rescaling every loss rescales the threshold: the labels do not change
    scaled = CellInputs(**{**vars(HAND), "train_loss": HAND.train_loss * 10})
    assert label_phases(scaled).names == label_phases(HAND).names


def test_loss_floor_keeps_a_well_trained_zoo_low_loss() -> None:
    c = cells([(0.001, 1.0, 0.0, 0.0, 0.95, 1.0), (0.004, 2.0, 0.0, 0.0, 0.95, 1.0)])
    labels = label_phases(c)
    assert labels.thresholds.loss == LOSS_FLOOR
    assert labels.names == ["IV-B", "IV-B"]


def test_regression_uses_loss_mc_with_relative_tolerance() -> None:
    c = cells(
        [
            (0.10, 1.0, -0.05, nan, 0.95, 1.0),  # |mc| 0.05 <= 1.0 * 0.10: connected
            (0.10, 1.0, -0.50, nan, 0.95, 1.0),  # barrier 5x the loss: III
            (5.00, 9.0, 1.00, nan, 0.95, 1.0),
        ]
    )
    assert label_phases(c).names == ["IV-B", "III", "II"]


def test_explicit_thresholds_and_disagreements() -> None:
    t = PhaseThresholds(
        loss=0.1, sharpness=5.0, mc_error_tolerance=0.02, mc_loss_relative_tolerance=1.0,
        cka_high=0.9,
    )  # fmt: skip
    c = cells([(0.05, 20.0, 0.0, 0.0, 0.95, 1.0), (1.0, 1.0, 0.0, -0.1, 0.5, 1.0)])
    labels = label_phases(c, t)
    assert labels.names == ["IV-B", "I"]
    assert labels.sharp.tolist() == [True, False]
    assert labels.disagreements == 2  # low loss but sharp; high loss but flat


def test_missing_cka_and_bad_lengths() -> None:
    c = cells([(0.001, 1.0, 0.0, 0.0, nan, 1.0), (1.0, 9.0, 0.0, -0.5, nan, 1.0)])
    labels = label_phases(c)
    assert labels.names == ["unlabelled", "I"]  # phase IV needs CKA; phase I does not
    assert "no CKA" in labels.notes[0]
    bad = CellInputs(**{**vars(c), "cka": np.zeros(3)})
    with pytest.raises(ValueError, match="cell metric cka has 3 entries, expected 2"):
        label_phases(bad)
