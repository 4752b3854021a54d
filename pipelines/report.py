"""``zoo report``: phase-plot heatmaps over the (load x temperature) grid, histograms, index.html.

Reads what the landscape stage wrote (``<population>/cells/*``) and the training metrics, and
draws, per task, one heatmap per metric like the papers' phase plots (load on the y axis,
temperature on the x axis, every cell annotated with its value) plus the categorical phase
map, and per population a histogram of its models' test accuracy. Matplotlib with the Agg
backend: no display needed.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo.landscape.phases import PHASES, UNLABELLED
from zoo.store import Zoo
from zoo.training import Status

PHASE_COLOURS = {
    "I": "#d73027", "II": "#fc8d59", "III": "#91bfdb", "IV-A": "#4575b4", "IV-B": "#1a9850",
    "collapsed": "#7f7f7f", "unlabelled": "#ffffff",
}  # fmt: skip
SYMLOG_LINTHRESH_PP = 2.0  # mc heatmaps are linear within +-2 percentage points, log beyond
AXIS_UNITS = {"width": "hidden units", "data_fraction": "fraction of training set",
              "learning_rate": "", "batch_size": "examples", "weight_decay": ""}  # fmt: skip


@dataclass(frozen=True)
class Heatmap:
    """One metric to draw: cell field, title, colour-bar label, log scale, value format."""

    field: str
    title: str
    unit: str
    log: bool = False
    diverging: bool = False
    scale: float = 1.0
    fmt: str = ".2g"
    cmap: str = "viridis"


HEATMAPS = (
    Heatmap("test_acc", "Test accuracy", "accuracy (%)", scale=100, fmt=".1f", cmap="viridis"),
    Heatmap("train_loss", "Train loss", "cross-entropy (nats), log scale", log=True, cmap="magma_r"),
    Heatmap("hessian_trace", "Hessian trace", "trace (Hutchinson), log scale", log=True, cmap="inferno_r"),
    Heatmap("hessian_top", "Hessian top eigenvalue", "eigenvalue (power iteration), log scale", log=True, cmap="inferno_r"),
    Heatmap("mc", "Mode connectivity (Bezier)", "mc (see title)", diverging=True, fmt=".2g"),
    Heatmap("mc_linear_label", "Mode connectivity (linear path)", "mc (see title)", diverging=True, fmt=".2g"),
    Heatmap("cka", "CKA of seeds' logits", "linear CKA", fmt=".2f", cmap="cividis"),
    Heatmap("cka_features", "CKA of seeds' penultimate features", "linear CKA", fmt=".2f", cmap="cividis"),
)  # fmt: skip


@dataclass
class TaskGrid:
    """Cell metrics of one task on the (load x temperature) grid: values[name] is (L, T)."""

    task: str
    load_axis: str
    load_values: list[float]
    temperature_axis: str
    temperature_values: list[float]
    values: dict[str, np.ndarray] = field(default_factory=dict)
    notes: dict[tuple[int, int], str] = field(default_factory=dict)
    classification: bool = False  # any cell has a train-error mc
    thresholds: dict = field(default_factory=dict)


def task_grids(zoo: Zoo) -> dict[str, TaskGrid]:
    """Assemble every population's cells into one grid per task (widths are populations)."""
    spec = zoo.spec
    grids: dict[str, TaskGrid] = {}
    thresholds = dict(zoo.root.attrs.get("landscape", {})).get("thresholds", {})
    shape = (len(spec.load.values), len(spec.temperature.values))
    for pop in zoo.populations.values():
        g = pop.group
        if "cells" not in g or "phase" not in g["cells"]:
            continue
        grid = grids.setdefault(
            pop.task,
            TaskGrid(
                pop.task, spec.load.name, list(spec.load.values), spec.temperature.name,
                list(spec.temperature.values), thresholds=thresholds.get(pop.task, {}),
            ),
        )  # fmt: skip
        cg = g["cells"]
        li, ti = cg["load_index"][:], cg["temperature_index"][:]
        names = [n for n in cg.array_keys() if n not in ("load_index", "temperature_index", "cell")]
        for name in names:
            arr = grid.values.setdefault(name, np.full(shape, np.nan))
            arr[li, ti] = cg[name][:]
        grid.classification |= bool(np.isfinite(cg["mc_bezier_error"][:]).any())
        pair_notes = list(cg.attrs.get("notes", []))
        for k, note in enumerate(cg.attrs.get("phase_notes", [])):
            text = "; ".join(
                n for n in dict.fromkeys([pair_notes[k] if k < len(pair_notes) else "", note]) if n
            )
            if text:
                grid.notes[(int(li[k]), int(ti[k]))] = text
    for grid in grids.values():
        v = grid.values
        if "phase" in v:
            v["phase"] = np.where(np.isfinite(v["phase"]), v["phase"], UNLABELLED)
        cls = grid.classification
        v["mc"] = v["mc_bezier_error"] * 100 if cls else v["mc_bezier"]
        v["mc_linear_label"] = v["mc_linear_error"] * 100 if cls else v["mc_linear"]
    return grids


def _fmt_axis(values: list[float]) -> list[str]:
    return [f"{v:g}" for v in values]


def _axis_label(name: str) -> str:
    unit = AXIS_UNITS.get(name, "")
    return name.replace("_", " ") + (f" ({unit})" if unit else "")


def _draw_heatmap(grid: TaskGrid, hm: Heatmap, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm, SymLogNorm, TwoSlopeNorm

    data = grid.values.get(hm.field)
    if data is None:
        return
    data = data * hm.scale
    finite = data[np.isfinite(data)]
    fig, ax = plt.subplots(
        figsize=(1.1 * len(grid.temperature_values) + 2.6, 0.75 * len(grid.load_values) + 1.8)
    )
    norm = None
    if hm.log and len(finite) and (finite > 0).all():
        norm = LogNorm(vmin=finite.min(), vmax=max(finite.max(), finite.min() * 1.01))
    elif hm.diverging and len(finite):
        lim = max(float(np.abs(finite).max()), 1e-9)
        linthresh = SYMLOG_LINTHRESH_PP if grid.classification else 0.0
        if 0 < linthresh < lim:  # small mc stay visible next to large barriers
            norm = SymLogNorm(linthresh=linthresh, vmin=-lim, vmax=lim, base=10)
        else:
            norm = TwoSlopeNorm(vcenter=0.0, vmin=-lim, vmax=lim)
    cmap = plt.get_cmap("RdBu" if hm.diverging else hm.cmap).with_extremes(bad="#dddddd")
    im = ax.imshow(np.ma.masked_invalid(data), origin="lower", cmap=cmap, norm=norm, aspect="auto")
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            v = data[i, j]
            text = "n/a" if not np.isfinite(v) else format(v, hm.fmt)
            rgba = im.cmap(im.norm(v)) if np.isfinite(v) else (1, 1, 1, 1)
            dark = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2] < 0.5
            ax.text(
                j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black"
            )
    _grid_axes(ax, grid)
    title = hm.title
    if hm.field in ("mc", "mc_linear_label"):
        title += ": train error, percentage points" if grid.classification else ": train loss"
        title += "\n< 0: barrier, > 0: path better than its ends"
    ax.set_title(f"{title} ({grid.task})", fontsize=10)
    cb = fig.colorbar(im, ax=ax)
    unit = hm.unit
    if hm.field in ("mc", "mc_linear_label"):
        unit = (
            "mc (percentage points of train error, symmetric log)"
            if isinstance(norm, SymLogNorm)
            else (
                "mc (percentage points of train error)"
                if grid.classification
                else "mc (train loss)"
            )
        )
    if isinstance(norm, LogNorm):
        ticks = _log_ticks(norm.vmin, norm.vmax)
        cb.set_ticks(ticks, labels=[f"{t:g}" for t in ticks])
        cb.ax.minorticks_off()
    cb.set_label(unit)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _log_ticks(lo: float, hi: float) -> list[float]:
    """1-2-5 ticks covering [lo, hi] (at most about eight)."""
    ticks = [m * 10.0**k for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
             for m in (1, 2, 5)]  # fmt: skip
    ticks = [t for t in ticks if lo <= t <= hi]
    while len(ticks) > 8:
        ticks = ticks[::2]
    return ticks or [lo, hi]


def _grid_axes(ax, grid: TaskGrid) -> None:
    ax.set_xticks(range(len(grid.temperature_values)), _fmt_axis(grid.temperature_values))
    ax.set_yticks(range(len(grid.load_values)), _fmt_axis(grid.load_values))
    ax.set_xlabel(f"temperature: {_axis_label(grid.temperature_axis)}")
    ax.set_ylabel(f"load: {_axis_label(grid.load_axis)}")


def _draw_phase_map(grid: TaskGrid, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    codes = grid.values["phase"].astype(int)
    order = [UNLABELLED, *sorted(PHASES)]
    names = ["unlabelled" if c == UNLABELLED else PHASES[c] for c in order]
    index = np.vectorize(lambda c: order.index(c) if c in order else 0)(codes)
    cmap = ListedColormap([PHASE_COLOURS[n] for n in names])
    fig, ax = plt.subplots(
        figsize=(1.1 * len(grid.temperature_values) + 3.6, 0.75 * len(grid.load_values) + 1.8)
    )
    ax.imshow(index, origin="lower", cmap=cmap, vmin=-0.5, vmax=len(order) - 0.5, aspect="auto")
    for i in range(codes.shape[0]):
        for j in range(codes.shape[1]):
            name = names[index[i, j]]
            ax.text(j, i, "-" if name == "unlabelled" else ("coll." if name == "collapsed" else name),
                    ha="center", va="center", fontsize=9, color="black" if name in ("II", "III", "unlabelled") else "white")  # fmt: skip
    _grid_axes(ax, grid)
    ax.set_title(f"Loss-landscape phases ({grid.task})", fontsize=10)
    present = [n for n in names if n in {names[k] for k in np.unique(index)}]
    ax.legend(
        handles=[Patch(facecolor=PHASE_COLOURS[n], edgecolor="black", label=n) for n in present],
        loc="upper left", bbox_to_anchor=(1.02, 1.0), title="phase", frameon=False,
    )  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _draw_histograms(zoo: Zoo, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pops = list(zoo.populations.values())
    cols = min(3, len(pops))
    rows = math.ceil(len(pops) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    bins = np.linspace(0, 100, 26)
    for ax, pop in zip(axes.flat, pops, strict=False):
        acc = pop.group["metrics"]["test_acc"][:, -1]
        done = (pop.status == Status.DONE) & np.isfinite(acc)
        ax.hist(acc[done] * 100, bins=bins, color="#4575b4", edgecolor="white")
        skipped = int((~done).sum())
        ax.set_title(
            f"{pop.name} ({int(done.sum())} models"
            + (f", {skipped} not done)" if skipped else ")"),
            fontsize=9,
        )
        ax.set_xlabel("test accuracy (%)")
        ax.set_ylabel("models")
        ax.set_xlim(0, 100)
    for ax in list(axes.flat)[len(pops) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(zoo: Zoo, out: str | Path) -> Path:
    """Draw every plot of the zoo into ``out`` and write ``out/index.html``; returns its path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    grids = task_grids(zoo)
    images: dict[str, list[tuple[str, str]]] = {}
    for task, grid in grids.items():
        slug = "".join(ch if ch.isalnum() else "_" for ch in task)
        imgs = []
        _draw_phase_map(grid, out / f"{slug}_phase.png")
        imgs.append((f"{slug}_phase.png", "Phase map"))
        for hm in HEATMAPS:
            if hm.field in grid.values and np.isfinite(grid.values[hm.field]).any():
                _draw_heatmap(grid, hm, out / f"{slug}_{hm.field}.png")
                imgs.append((f"{slug}_{hm.field}.png", hm.title))
        images[task] = imgs
    _draw_histograms(zoo, out / "accuracy_histograms.png")
    index = out / "index.html"
    index.write_text(_html(zoo, grids, images))
    return index


def _cell_rows(grid: TaskGrid) -> list[list[str]]:
    v = grid.values
    rows = []
    for i, lv in enumerate(grid.load_values):
        for j, tv in enumerate(grid.temperature_values):
            code = int(v["phase"][i, j])

            def f(name: str, fmt: str, scale: float = 1.0, i: int = i, j: int = j) -> str:
                x = v.get(name, np.full((i + 1, j + 1), np.nan))[i, j] * scale
                return "-" if not np.isfinite(x) else format(x, fmt)

            rows.append([
                f"{lv:g}", f"{tv:g}", PHASES.get(code, "unlabelled"), f("test_acc", ".1f", 100),
                f("train_loss", ".3g"), f("hessian_trace", ".3g"), f("hessian_top", ".3g"),
                f("mc", ".2f"), f("mc_linear_label", ".2f"), f("cka", ".3f"), f("l2", ".3g"),
                grid.notes.get((i, j), ""),
            ])  # fmt: skip
    return rows


def _html(zoo: Zoo, grids: dict[str, TaskGrid], images: dict[str, list[tuple[str, str]]]) -> str:
    spec = zoo.spec
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>weightzoo report: {e(spec.name)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}"
        "img{max-width:48%;margin:4px;border:1px solid #ddd}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;"
        "text-align:right}th{background:#f3f3f3}</style></head><body>",
        f"<h1>Zoo {e(spec.name)}</h1>",
        f"<p>{e(zoo.location)}: load axis <b>{e(spec.load.name)}</b> "
        f"[{e(', '.join(_fmt_axis(list(spec.load.values))))}] x temperature axis "
        f"<b>{e(spec.temperature.name)}</b> [{e(', '.join(_fmt_axis(list(spec.temperature.values))))}]"
        f", {spec.seeds} seeds per cell, {spec.epochs} epochs.</p>",
        "<h2>Populations</h2><table><tr><th>population</th><th>task</th><th>params</th>"
        "<th>models</th><th>done</th><th>diverged</th><th>mean test acc</th></tr>",
    ]
    for r in zoo.summary():
        acc = "-" if math.isnan(r["test_acc_mean"]) else f"{100 * r['test_acc_mean']:.1f}%"
        parts.append(
            f"<tr><td>{e(r['population'])}</td><td>{e(r['task'])}</td><td>{r['params']}</td>"
            f"<td>{r['models']}</td><td>{r['done']}</td><td>{r['diverged']}</td><td>{acc}</td></tr>"
        )
    parts.append("</table>")
    if not grids:
        parts.append("<p><b>No landscape metrics in this store yet: run <code>zoo metrics</code>."
                     "</b></p>")  # fmt: skip
    for task, grid in grids.items():
        parts.append(f"<h2>Task {e(task)}</h2>")
        counts = {}
        for c in grid.values["phase"].astype(int).ravel():
            name = PHASES.get(c, "unlabelled")
            counts[name] = counts.get(name, 0) + 1
        parts.append(
            "<p>Cells per phase: " + ", ".join(f"{e(k)}: {n}" for k, n in counts.items()) + "</p>"
        )
        if grid.thresholds:
            th = ", ".join(f"{e(k)} = {v:.4g}" for k, v in grid.thresholds.items())
            parts.append(f"<p>Phase thresholds (stored in the zoo's attributes): {th}</p>")
        for fname, title in images[task]:
            parts.append(f"<img src='{e(fname)}' alt='{e(title)}' title='{e(title)}'>")
        mc_unit = "pp of train error" if grid.classification else "train loss"
        parts.append(
            "<h3>Cells</h3><table><tr>"
            + "".join(
                f"<th>{e(h)}</th>"
                for h in (
                    grid.load_axis,
                    grid.temperature_axis,
                    "phase",
                    "test acc %",
                    "train loss",
                    "Hessian trace",
                    "top eig.",
                    f"mc Bezier ({mc_unit})",
                    f"mc linear ({mc_unit})",
                    "CKA",
                    "L2",
                    "note",
                )
            )  # fmt: skip
            + "</tr>"
        )
        for row in _cell_rows(grid):
            parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
        parts.append("</table>")
    parts.append("<h2>Test accuracy per population</h2><img src='accuracy_histograms.png' "
                 "alt='accuracy histograms' style='max-width:100%'>")  # fmt: skip
    parts.append("</body></html>")
    return "\n".join(parts)
