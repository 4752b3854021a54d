"""benchmarks/generator_variants.py: every result row gets the style of its kind, and the
frontier plot is written from a results dict alone (no zoo, no training)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "generator_variants.py"


@pytest.fixture(scope="module")
def variants() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generator_variants", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row(acc: float, dis: float, overrides: dict | None = None, options: dict | None = None) -> dict:
    return {"acc_ratio_free": acc, "nn_disagreement": dis, "overrides": overrides or {},
            "sample_options": options or {}, "real_nn_disagreement": 0.45,
            "real_pair_disagreement": 0.36, "real_replicate_disagreement": 0.28}  # fmt: skip


def test_every_shipped_variant_has_a_style(variants: ModuleType) -> None:
    for name, (overrides, options) in variants.VARIANTS.items():
        kind = variants.variant_kind(name, {"overrides": overrides, "sample_options": options})
        assert kind in variants.STYLES, name
    assert variants.variant_kind("best of 8, novel",
                                 {"sample_options": variants.NOVEL}) == "novel"  # fmt: skip
    assert variants.variant_kind("best of 8, weighted 0.45",
                                 {"sample_options": variants.WEIGHTED_8}) == "weighted"  # fmt: skip
    distilled = {"sample_options": variants.WEIGHTED_8, "distilled": True}
    assert variants.variant_kind("d", distilled) == "distilled, weighted"
    assert variants.variant_kind("d", {"distilled": True}) == "distilled"
    for name, (overrides, _) in variants.VARIANTS.items():  # distilled: the preset's own rows
        assert name.startswith("distilled") == ("distill.per_net" not in overrides), name
    assert variants.variant_kind("x", {"overrides": {"data.canonical": False}}) == "raw"
    assert variants.variant_kind(variants.REFERENCE, {}) == "reference"


def test_frontier_plot_is_written(variants: ModuleType, tmp_path: Path) -> None:
    results = {
        "default": row(0.88, 0.43),
        "raw": row(0.67, 0.50, {"data.canonical": False}),
        "novel": row(0.979, 0.352, options={"candidates": 8, "select": "novel"}),
        "same point": row(0.979, 0.352, options={"candidates": 8, "select": "at-least"}),
        variants.REFERENCE: row(0.979, 0.206),
    }
    out = variants.plot_frontier(results, tmp_path / "frontier.png", "zoo.zarr")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_kinds_plot_draws_every_way_with_its_options(tmp_path: Path) -> None:
    """benchmarks/generators.py's plot: plain, calibrated and ``--sample`` points, the sampled
    one labelled with its options, from a results dict alone."""
    import matplotlib.pyplot as plt

    from pipelines.kinds import plot_kinds

    way = {"acc_ratio_free": 0.93, "nn_disagreement": 0.22}
    col = {"kind": "diffusion", "plain": way, "calibrated": {**way, "acc_ratio_free": 0.95},
           "sampled": {"acc_ratio_free": 0.98, "nn_disagreement": 0.27,
                       "sample_options": {"data_guidance": 0.05}}}  # fmt: skip
    real = {"real_nn_disagreement": 0.45, "real_pair_disagreement": 0.33,
            "real_replicate_disagreement": 0.26}  # fmt: skip
    texts: list[str] = []
    real_savefig = plt.Figure.savefig

    def keep_texts(fig, path, **kw):  # the figure's labels, read before it is closed
        texts.extend(t.get_text() for ax in fig.axes for t in ax.texts)
        texts.extend(t.get_text() for ax in fig.axes for t in ax.get_legend().get_texts())
        return real_savefig(fig, path, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plt.Figure, "savefig", keep_texts)
        path = plot_kinds([col], real, tmp_path / "kinds.png")
    assert path.is_file() and path.stat().st_size > 0
    assert texts[:3] == [
        "diffusion",
        "diffusion, calibrated",
        "diffusion, sampled data_guidance=0.05",
    ]
    assert "real: replicates (same recipe, other seed)" in texts
