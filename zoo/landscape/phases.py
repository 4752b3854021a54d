"""Phase labels of grid cells (Yang et al. 2021; Schürholt et al. 2025) from their metrics.

    I     high train loss, sharp, mc < 0        poorly trained, globally poorly connected
    II    high train loss, sharp, mc >= 0       poorly trained, globally well connected
    III   low train loss, flat, mc < 0          well trained, poorly connected (barriers)
    IV-A  low train loss, flat, mc ~ 0, low CKA   well trained and connected, dissimilar seeds
    IV-B  low train loss, flat, mc ~ 0, high CKA  ... and similar seeds: where accuracy peaks

The train loss decides "well trained" and mode connectivity decides the connectivity: they are
the global properties that define the phases. Sharpness (Hessian trace) is the local property
that goes with them; it is reported per cell (``sharp``) and cells where it disagrees with the
loss are counted (``disagreements``), but it does not override the loss. Cells whose models all
predict a constant (a collapsed net, typically too hot a learning rate) fall outside the
taxonomy and are labelled ``collapsed``; cells without pair metrics (one seed, or fewer than two
trained models) are ``unlabelled``.

Thresholds are relative to the zoo's own ranges where the scale depends on the task:

- loss: a cell is high-loss when its log train loss lies above ``LOSS_LOG_FRACTION`` of the way
  from the lowest to the highest cell's log train loss (losses span decades; a relative
  threshold works for any loss scale); a loss below ``LOSS_FLOOR`` is always low.
- sharpness: the same rule on log Hessian traces with ``SHARPNESS_LOG_FRACTION``.
- connectivity: classification uses the Bezier mc of the train *error* (bounded in [-1, 1], so one
  absolute tolerance ``MC_ERROR_TOLERANCE`` fits every task); regression, which has no error,
  uses the Bezier mc of the loss with a tolerance of ``MC_LOSS_RELATIVE_TOLERANCE`` times the
  cell's train loss.
- CKA (of logits, bounded in [0, 1]): high when >= ``CKA_HIGH``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

PHASES: dict[int, str] = {0: "I", 1: "II", 2: "III", 3: "IV-A", 4: "IV-B", 5: "collapsed"}
UNLABELLED = -1
PHASE_CODES: dict[str, int] = {v: k for k, v in PHASES.items()} | {"unlabelled": UNLABELLED}

LOSS_LOG_FRACTION = 0.5  # high loss: above this fraction of the cells' log-loss range
LOSS_FLOOR = 1e-2  # a train loss below this is always low
SHARPNESS_LOG_FRACTION = 0.5  # sharp: above this fraction of the cells' log-trace range
MC_ERROR_TOLERANCE = 0.02  # |mc| of the train error below this: connected (2 points of error)
MC_LOSS_RELATIVE_TOLERANCE = 1.0  # regression: |mc| below this times the cell's train loss
CKA_HIGH = 0.9  # linear CKA of logits at or above this: similar seeds (IV-B)
COLLAPSE_STD = 1e-4  # models whose outputs vary less than this over inputs predict a constant


@dataclass(frozen=True)
class PhaseThresholds:
    """Resolved thresholds (absolute values for this zoo) plus the constants they came from."""

    loss: float
    sharpness: float
    mc_error_tolerance: float
    mc_loss_relative_tolerance: float
    cka_high: float
    loss_log_fraction: float = LOSS_LOG_FRACTION
    loss_floor: float = LOSS_FLOOR
    sharpness_log_fraction: float = SHARPNESS_LOG_FRACTION
    collapse_std: float = COLLAPSE_STD

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


@dataclass
class CellInputs:
    """Per-cell metrics the labels are computed from; all (C,) float arrays, NaN = missing.

    train_loss, hessian_trace: means over a cell's trained models; mc_bezier (loss) and
    mc_bezier_error (NaN for regression): means over its seed pairs; cka: logit CKA over pairs;
    output_std: the largest output std over the cell's models (0 for collapsed nets).
    """

    train_loss: np.ndarray
    hessian_trace: np.ndarray
    mc_bezier: np.ndarray
    mc_bezier_error: np.ndarray
    cka: np.ndarray
    output_std: np.ndarray


@dataclass
class PhaseLabels:
    """codes: (C,) int8 phase codes (see ``PHASES``; -1 unlabelled); names: (C,) labels;
    high_loss, sharp, connected: (C,) bool; notes: (C,) why a cell is unlabelled or collapsed;
    thresholds: the resolved thresholds; disagreements: cells whose sharpness contradicts
    their loss (sharp but low loss, or flat but high loss)."""

    codes: np.ndarray
    names: list[str]
    high_loss: np.ndarray
    sharp: np.ndarray
    connected: np.ndarray
    notes: list[str]
    thresholds: PhaseThresholds
    disagreements: int


def _log_level(values: np.ndarray, fraction: float) -> float:
    v = values[np.isfinite(values) & (values > 0)]
    if len(v) == 0:
        return float("nan")
    lo, hi = np.log(v.min()), np.log(v.max())
    return float(np.exp(lo + fraction * (hi - lo)))


def resolve_thresholds(cells: CellInputs) -> PhaseThresholds:
    """Absolute thresholds for this zoo's cells from the module's relative constants.

    Collapsed cells are left out of the ranges: their loss and flatness are those of a
    constant predictor, not of training.
    """
    alive = ~(cells.output_std < COLLAPSE_STD)
    return PhaseThresholds(
        loss=max(_log_level(cells.train_loss[alive], LOSS_LOG_FRACTION), LOSS_FLOOR),
        sharpness=_log_level(cells.hessian_trace[alive], SHARPNESS_LOG_FRACTION),
        mc_error_tolerance=MC_ERROR_TOLERANCE,
        mc_loss_relative_tolerance=MC_LOSS_RELATIVE_TOLERANCE,
        cka_high=CKA_HIGH,
    )


def label_phases(cells: CellInputs, thresholds: PhaseThresholds | None = None) -> PhaseLabels:
    """Phase code of every cell; thresholds default to :func:`resolve_thresholds`."""
    t = thresholds or resolve_thresholds(cells)
    c = len(cells.train_loss)
    for name, v in vars(cells).items():
        if len(v) != c:
            raise ValueError(f"cell metric {name} has {len(v)} entries, expected {c}")
    high = cells.train_loss > t.loss
    sharp = cells.hessian_trace > t.sharpness
    use_error = np.isfinite(cells.mc_bezier_error)
    mc = np.where(use_error, cells.mc_bezier_error, cells.mc_bezier)
    tol = np.where(
        use_error, t.mc_error_tolerance, t.mc_loss_relative_tolerance * np.abs(cells.train_loss)
    )
    barrier = mc < -tol
    connected = np.abs(mc) <= tol
    collapsed = cells.output_std < t.collapse_std
    codes = np.full(c, UNLABELLED, dtype=np.int8)
    notes = [""] * c
    for i in range(c):
        if collapsed[i]:
            codes[i], notes[i] = (
                PHASE_CODES["collapsed"],
                "collapsed: every model predicts a constant",
            )
        elif not np.isfinite(cells.train_loss[i]):
            notes[i] = "no trained models"
        elif not np.isfinite(mc[i]):
            notes[i] = "no seed pairs: no mode connectivity"
        elif high[i]:
            codes[i] = PHASE_CODES["I"] if barrier[i] else PHASE_CODES["II"]
        elif barrier[i]:
            codes[i] = PHASE_CODES["III"]
        elif np.isfinite(cells.cka[i]):
            codes[i] = PHASE_CODES["IV-B"] if cells.cka[i] >= t.cka_high else PHASE_CODES["IV-A"]
        else:
            notes[i] = "no CKA: cannot split phase IV"
    labelled = (codes >= 0) & (codes != PHASE_CODES["collapsed"])
    disagree = labelled & np.isfinite(cells.hessian_trace) & (sharp != high)
    return PhaseLabels(
        codes=codes,
        names=[PHASES.get(int(k), "unlabelled") for k in codes],
        high_loss=high,
        sharp=sharp,
        connected=connected,
        notes=notes,
        thresholds=t,
        disagreements=int(disagree.sum()),
    )
