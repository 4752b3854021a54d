"""Every registered generator kind side by side: the figures ``zoo demo`` and
``benchmarks/generators.py`` compare, one table with the kinds as columns, one plot.

Per kind, two ways of sampling: plain, and the calibrated best of k where the kind's trained
generator calibrated itself (:mod:`generators.calibration`). Per way, the accuracy ratio
(generated / held-out real mean test accuracy), the distance ratio (to the nearest training
net, relative to the training nets' own nearest-neighbour distance), the prediction
disagreement with the nearest training net, the diversity (mean pairwise disagreement among
generated nets), the generator's training seconds, and the seconds to sample 1,000 nets of the
widest width. The real nets' own readings stand beside them: a held-out net against its nearest
training net (the disagreement to reach) and the mean over pairs of real nets of a width (the
diversity of real nets).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table

from generators import calibrated_sampling, calibration_of, generator_class, sample

# the figures of one sampling way, as read from an evaluation report's summary
READINGS = ("acc_ratio_free", "distance_ratio", "nn_disagreement", "diversity")
REAL = "real nets"


def store_for(kind: str, store: str, console: Any = None) -> str:
    """The zoo ``kind`` trains on: ``store`` itself, or, for a kind whose weights must be
    canonicalized by another method (``canonical_method``, e.g. NeuMeta's ``smooth``), a copy
    beside it (``<store>-<method>.zarr``) canonicalized by that method, made once and reused."""
    from zoo import open_zoo
    from zoo.store import is_url

    method = generator_class(kind).canonical_method
    if method is None:
        return store
    made = {str(p.canonical_info.get("method", "")) for p in open_zoo(store).populations.values()}
    if made == {method}:
        return store
    if is_url(store):
        raise ValueError(f"{kind} needs weights canonicalized by {method!r}: copy {store} and run "
                         f"`zoo canonicalize COPY --method {method}`")  # fmt: skip
    import shutil

    from pipelines.canonicalize_stage import canonicalize_zoo

    copy = Path(str(store).rstrip("/").removesuffix(".zarr") + f"-{method}.zarr")
    if not copy.exists():
        shutil.copytree(store, copy)
    canonicalize_zoo(str(copy), method=method, overwrite=True, workers=0, console=console)
    return str(copy)


def calibrated_best_of(gen: Any) -> dict[str, Any]:
    """The best-of-k sampling options a trained generator was calibrated for, without the weight
    itself (:mod:`generators.calibration`): evaluated fold by fold, each fold's generator then
    keeps by its own calibrated weight."""
    opts = calibrated_sampling(gen)
    return {k: v for k, v in opts.items() if k != "disagreement_weight"}


def is_calibrated(gen: Any) -> bool:
    return calibration_of(gen) is not None


def sampling_seconds(gen: Any, n: int = 1000, options: dict[str, Any] | None = None) -> float:
    """Seconds to sample ``n`` nets of the generator's widest width (its default) with
    ``options``, timed once after a warm-up draw of a few nets."""
    sample(gen, 4, seed=1, **(options or {}))
    t0 = time.perf_counter()
    sample(gen, n, seed=0, **(options or {}))
    return time.perf_counter() - t0


def way(report: dict[str, Any], seconds: float) -> dict[str, float]:
    """One sampling way's figures: the report's ``READINGS`` and its seconds per 1,000 nets."""
    return {**{k: report["summary"][k] for k in READINGS}, "seconds_per_1000": seconds}


def column(
    kind: str, plain: dict[str, Any], calibrated: dict[str, Any] | None, train_seconds: float,
    seconds: tuple[float, float | None], widest: int,
) -> dict[str, Any]:  # fmt: skip
    """One kind's figures: ``plain`` / ``calibrated`` evaluation reports (None: no calibration),
    its training seconds, and the seconds per 1,000 widest nets of each sampling way."""
    out: dict[str, Any] = {"kind": kind, "train_seconds": train_seconds, "width": widest,
                           "plain": way(plain, seconds[0])}  # fmt: skip
    if calibrated is not None and seconds[1] is not None:
        out["calibrated"] = {**way(calibrated, seconds[1]),
                             "sample_options": calibrated["settings"]["sample_options"]}  # fmt: skip
    return out


def real_readings(report: dict[str, Any]) -> dict[str, float]:
    """The real nets' own figures of a zoo, from any evaluation report of it."""
    s = report["summary"]
    return {"heldout_acc": s["heldout_acc"], "real_nn_disagreement": s["real_nn_disagreement"],
            "real_pair_disagreement": s["real_pair_disagreement"],
            "real_replicate_disagreement": s.get("real_replicate_disagreement", float("nan"))}  # fmt: skip


def _pct(v: float) -> str:
    return "-" if v != v else f"{100 * v:.1f}"


def _pair(col: dict[str, Any], key: str, fmt: Any) -> str:
    """``plain / calibrated`` of one figure (the calibrated part only where there is one)."""
    plain = fmt(col["plain"][key])
    return f"{plain} / {fmt(col['calibrated'][key])}" if "calibrated" in col else plain


def comparison_table(columns: list[dict[str, Any]], real: dict[str, float]) -> Table:
    """The kinds as columns, the real nets last; fits 100 terminal columns with five kinds."""
    k = next((c["calibrated"]["sample_options"].get("candidates") for c in columns
              if "calibrated" in c), None)  # fmt: skip
    caption = ("percentages; each cell: plain sampling"
               + (f" / calibrated best of {k}" if k else "")
               + ". distance ratio: to the nearest training net / the training nets' own; "
               "disagreement: share of test points predicted unlike the nearest training net "
               "(real: a held-out net's); diversity: between two generated nets (real: two real "
               f"nets of a width); s per 1,000 nets: of width {columns[0]['width']}")  # fmt: skip
    table = Table(title="generated vs held-out real nets (test split, no fine-tuning)",
                  caption=caption, box=box.SIMPLE_HEAD, pad_edge=False)  # fmt: skip
    table.add_column("", style="bold", no_wrap=True)
    for c in columns:
        table.add_column(c["kind"], justify="right", no_wrap=True)
    table.add_column(REAL, justify="right", no_wrap=True)
    secs = lambda v: f"{v:.2f}"  # noqa: E731
    rows = [
        ("accuracy ratio", "acc_ratio_free", _pct, "100.0"),
        ("distance ratio", "distance_ratio", _pct, "-"),
        ("disagreement", "nn_disagreement", _pct, _pct(real["real_nn_disagreement"])),
        ("diversity", "diversity", _pct, _pct(real["real_pair_disagreement"])),
        ("s per 1,000 nets", "seconds_per_1000", secs, "-"),
    ]
    for label, key, fmt, real_cell in rows:
        table.add_row(label, *[_pair(c, key, fmt) for c in columns], real_cell)
    table.add_row("training s", *[f"{c['train_seconds']:.1f}" for c in columns], "-")
    return table


def plot_kinds(columns: list[dict[str, Any]], real: dict[str, float], path: str | Path) -> Path:
    """Accuracy ratio against disagreement with the nearest training net: one point per kind and
    sampling way, with the accuracy target and the real nets' readings."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for i, c in enumerate(columns):
        color = f"C{i}"
        for way, marker in (("plain", "o"), ("calibrated", "X"), ("sampled", "s")):
            if way in c:
                x, y = c[way]["nn_disagreement"], c[way]["acc_ratio_free"]
                ax.scatter(x, y, marker=marker, color=color, s=60)
                name = c["kind"] if way == "plain" else f"{c['kind']}, {way}"
                if way == "sampled":  # benchmarks/generators.py --sample: its options
                    name += " " + " ".join(f"{k}={v}" for k, v in c[way]["sample_options"].items())
                ax.annotate(name, (x, y), fontsize=8, xytext=(5, 3), textcoords="offset points")
    ax.axhline(0.98, color="k", ls="--", lw=1, label="98% of held-out accuracy")
    ax.axvline(real["real_nn_disagreement"], color="tab:red", ls="-.", lw=1,
               label="real: held-out net vs its nearest training net")  # fmt: skip
    ax.axvline(real["real_pair_disagreement"], color="tab:green", ls=":", lw=1,
               label="real: mean over pairs of a width")  # fmt: skip
    replicates = real.get("real_replicate_disagreement", float("nan"))
    if replicates == replicates:
        ax.axvline(replicates, color="tab:purple", ls="--", lw=1,
                   label="real: replicates (same recipe, other seed)")  # fmt: skip
    ax.set_xlabel("prediction disagreement with the nearest training net (test split)")
    ax.set_ylabel("mean test accuracy, generated / held-out real")
    ax.set_title("generator kinds: accuracy vs novelty (o plain, x calibrated best of k, "
                 "square: sampled with options)",
                 fontsize=10)  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.margins(x=0.1, y=0.15)  # room for the labels
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
