"""A kind that needs weights canonicalized by another method (NeuMeta: smooth) gets a copy of the
zoo canonicalized by it, made once; other kinds train on the zoo itself."""

from __future__ import annotations

from pathlib import Path

from zoo_fixtures import built_tiny_zoo

from pipelines.canonicalize_stage import canonicalize_zoo
from pipelines.kinds import store_for
from zoo import open_zoo


def test_a_smooth_copy_for_neumeta_the_zoo_itself_for_the_others(tmp_path: Path) -> None:
    store = built_tiny_zoo(tmp_path / "zoo")
    canonicalize_zoo(store, workers=0)
    assert store_for("flow", store) == store
    copy = store_for("neumeta", store)
    assert copy != store and Path(copy).name == "zoo-smooth.zarr"
    methods = {p.canonical_info["method"] for p in open_zoo(copy).populations.values()}
    assert methods == {"smooth"}
    assert {p.canonical_info["method"] for p in open_zoo(store).populations.values()} == {
        "weight-matching"
    }, "the zoo itself is left as it was"
    assert store_for("neumeta", copy) == copy, "a smooth zoo is used as it is"
