"""PNGs of ``zoo evaluate``: accuracy histograms (real vs generated), the per-group breakdown
and the trade-off curve; and of a trained generator's calibrated best-of-k weight."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

if TYPE_CHECKING:
    from generators.calibration import Calibration

SHORT = {"temperature": "T", "novelty": "nov", "guidance": "w", "steps": "steps",
         "disagreement_weight": "λ"}  # fmt: skip


def _save_figure(fig: Any, title: str, path: str | Path) -> Path:
    """Title a figure, save it as a PNG and close it."""
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def _report_title(report: dict[str, Any], what: str) -> str:
    """A figure title for one report: its label, ``what`` and its weight space."""
    space = "canonical" if report.get("canonical") else "raw"
    return f"{report.get('label') or report['kind']}: {what} ({space} weights)"


def plot_histograms(report: dict[str, Any], path: str | Path) -> Path:
    """One panel per group: test accuracy of real models vs generated nets, as densities."""
    groups = report["groups"]
    cols = min(3, len(groups))
    rows = math.ceil(len(groups) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    bins = np.linspace(0, 1, 41)
    for ax, g in zip(axes.flat, groups, strict=False):
        ax.hist(g["real_acc"], bins=bins, density=True, alpha=0.55, color="tab:blue",
                label=f"real ({len(g['real_acc'])})")  # fmt: skip
        ax.hist(g["generated_acc"], bins=bins, density=True, alpha=0.55, color="tab:orange",
                label=f"generated ({len(g['generated_acc'])})")  # fmt: skip
        if "heldout" in g["real"]:
            ax.axvline(g["real"]["heldout"]["mean"], color="tab:blue", ls="--", lw=1.2,
                       label="held-out mean")  # fmt: skip
        ax.axvline(float(np.mean(g["generated_acc"])), color="tab:orange", ls="--", lw=1.2,
                   label="generated mean")  # fmt: skip
        ax.set_title(g["group"], fontsize=10)
        ax.set_xlabel("test accuracy")
        ax.set_ylabel("density")
        ax.set_xlim(0, 1)
        ax.legend(fontsize=7, loc="upper left")
    for ax in list(axes.flat)[len(groups) :]:
        ax.axis("off")
    return _save_figure(fig, _report_title(report, "real vs generated"), path)


def plot_per_group(report: dict[str, Any], path: str | Path) -> Path:
    """Per group (``report["per_group"]``), side by side: mean test accuracy of held-out real
    and generated nets, and the disagreement of generated nets with their nearest training net
    beside the real nets' own (held-out vs nearest training net; mean over pairs; replicates)."""
    rows = report["per_group"]
    names = [r["group"] for r in rows]
    x = np.arange(len(rows))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(9.0, 1.5 * len(rows) + 3), 4.2))
    ax1.bar(x - 0.2, [r["heldout_acc"] for r in rows], 0.4, color="tab:blue",
            label="held-out real")  # fmt: skip
    ax1.bar(x + 0.2, [r["generated_acc"] for r in rows], 0.4, color="tab:orange",
            label="generated")  # fmt: skip
    for xi, r in zip(x, rows, strict=True):
        if math.isfinite(r["acc_ratio"]):
            ax1.annotate(f"{100 * r['acc_ratio']:.0f}%", (xi, max(r["heldout_acc"],
                         r["generated_acc"])), ha="center", xytext=(0, 3),
                         textcoords="offset points", fontsize=7)  # fmt: skip
    ax1.set_ylim(0, 1.1)
    ax1.set_ylabel("mean test accuracy (label: generated / held-out)")
    ax2.bar(x - 0.3, [r["nn_disagreement"] for r in rows], 0.2, color="tab:orange",
            label="generated vs nearest training net")  # fmt: skip
    ax2.bar(x - 0.1, [r["real_nn_disagreement"] for r in rows], 0.2, color="tab:blue",
            label="held-out real vs nearest training net")  # fmt: skip
    ax2.bar(x + 0.1, [r["real_pair_disagreement"] for r in rows], 0.2, color="tab:gray",
            label="real nets: mean over pairs")  # fmt: skip
    ax2.bar(x + 0.3, [r.get("real_replicate_disagreement", np.nan) for r in rows], 0.2,
            color="tab:green", label="real replicates (same recipe, other seed)")  # fmt: skip
    ax2.set_ylabel("prediction disagreement (test split)")
    for ax in (ax1, ax2):
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    ax1.legend(fontsize=7, loc="upper left")  # accuracy grows with width: left is free
    ax2.legend(fontsize=7, loc="upper right")
    return _save_figure(fig, _report_title(report, "per group"), path)


def plot_tradeoff(reports: list[dict[str, Any]], path: str | Path) -> Path:
    """Accuracy (relative to held-out real nets) against novelty, one curve per report."""
    swept = [r for r in reports if r["tradeoff"]]  # a report evaluated without a sweep: no curve
    if not swept:
        raise ValueError("none of the reports has a trade-off sweep (EvalSettings.sweep)")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 6.2))
    for r in swept:
        rows = r["tradeoff"]
        knob = next(iter(rows[0]))
        short = SHORT.get(knob, knob)
        x = [row["distance_ratio"] for row in rows]
        xd = [row["nn_disagreement"] for row in rows]
        y = [row["acc_ratio"] for row in rows]
        label = r.get("label") or ("canonical" if r.get("canonical") else "raw")
        for ax, xs in ((ax1, x), (ax2, xd)):
            (line,) = ax.plot(xs, y, "o-", label=label)
            for xi, yi, row in zip(xs, y, rows, strict=True):
                ax.annotate(f"{short}={row[knob]:g}", (xi, yi), fontsize=7, xytext=(4, 3),
                            textcoords="offset points", color=line.get_color())  # fmt: skip
    # the real nets' own disagreement with their nearest training net depends on the weight
    # space the neighbour is found in (canonical or raw): one line per space
    real_dis = {bool(r.get("canonical")): r["summary"]["real_nn_disagreement"] for r in reports}
    pair_dis = float(np.mean([r["summary"]["real_pair_disagreement"] for r in reports]))
    for ax in (ax1, ax2):
        ax.axhline(0.98, color="gray", ls="--", lw=1, label="98% of held-out accuracy")
        ax.set_ylabel("generated / held-out mean test accuracy")
        ax.grid(alpha=0.3)
    ax1.axvline(0.25, color="tab:red", ls=":", lw=1, label="25% of train NN distance")
    ax1.set_xlabel("distance to nearest training net / mean NN distance among training nets")
    for canonical, value in sorted(real_dis.items(), reverse=True):
        space = "canonical" if canonical else "raw"
        ax2.axvline(value, color="tab:red", ls=":" if canonical else "-.", lw=1,
                    label=f"real: held-out vs nearest training net ({space})")  # fmt: skip
    ax2.axvline(pair_dis, color="tab:green", ls=":", lw=1, label="real: mean over pairs")
    across = [r["summary"]["real_task_pair_disagreement"] for r in reports
              if "real_task_pair_disagreement" in r["summary"]]  # fmt: skip
    if across:
        ax2.axvline(float(np.mean(across)), color="tab:green", ls="-.", lw=1,
                    label="real: pairs across widths")  # fmt: skip
    ax2.set_xlabel("prediction disagreement with nearest training net")
    # below the panels: inside, the legend would hide the curves that reach the reference lines
    for ax in (ax1, ax2):
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    names = ", ".join(
        f"{v} = {k}" for k, v in SHORT.items() if any(k in r["tradeoff"][0] for r in swept)
    )
    return _save_figure(
        fig, f"accuracy / novelty trade-off, no fine-tuning ({names or knob})", path
    )


def plot_calibration(calibration: Calibration, path: str | Path) -> Path:
    """A generator's calibrated ``weighted`` rule (:mod:`generators.calibration`): the kept
    candidates' cross-fitted validation disagreement with their nearest training net and their
    accuracy against the weight, the target and the weight chosen."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    w = calibration.curve_weight
    ax.plot(w, calibration.curve_disagreement, color="tab:blue",
            label="disagreement with the nearest training net")  # fmt: skip
    ax.plot(w, calibration.curve_accuracy, color="tab:orange", label="accuracy")
    ax.axhline(calibration.target, color="tab:blue", ls=":",
               label=f"target: training nets' leave-one-out + margin ({calibration.target:.3f})")  # fmt: skip
    ax.axvline(calibration.disagreement_weight, color="k", ls="--",
               label=f"calibrated weight {calibration.disagreement_weight:.2f}")  # fmt: skip
    ax.set_xlabel("disagreement weight of select='weighted'")
    ax.set_ylabel("kept candidates, validation split (cross-fitted)")
    ax.legend(fontsize=7)
    return _save_figure(
        fig, f"best of {calibration.candidates}: calibrating the weight (validation only)", path
    )
