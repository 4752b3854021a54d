"""``zoo canonicalize`` on a store: canonical arrays, resume, refusals, Dask, the CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from zoo_fixtures import tiny_spec_dict

from canonicalize import Permutation
from pipelines.build import build_zoo
from pipelines.canonicalize_stage import canonicalize_zoo
from pipelines.cli import main
from zoo import open_zoo
from zoo.spec import ZooSpec
from zoo.store import StoreError, create_or_check
from zoo.training import Status

SPEC = tiny_spec_dict(
    load={"axis": "width", "values": [6, 12]},
    temperature={"axis": "learning_rate", "values": [0.05, 1e6]},  # the hot half diverges
    seeds=3,
    models_per_chunk=6,  # one chunk per population: the build is two lockstep trainings
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("zoo") / "zoo.zarr"
    build_zoo(ZooSpec.from_dict(SPEC), path, workers=0, metrics=False)
    return path


@pytest.fixture
def store(built: Path, tmp_path: Path) -> Path:
    """A fresh copy of the built zoo for each test."""
    return Path(shutil.copytree(built, tmp_path / "zoo.zarr"))


def snapshot(path: Path) -> dict[str, np.ndarray]:
    """Every array of the store outside canonical/, by path."""
    root = zarr.open_group(path, mode="r")
    out = {}
    for name, arr in root.arrays():
        out[name] = arr[:]
    for name, g in root.groups():
        for sub, arr in g.arrays():
            out[f"{name}/{sub}"] = arr[:]
        for sub, sg in g.groups():
            if sub != "canonical":
                for leaf, arr in sg.arrays():
                    out[f"{name}/{sub}/{leaf}"] = arr[:]
    return out


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)


def test_canonical_weights_are_written_and_compute_the_same_functions(store: Path) -> None:
    before = snapshot(store)
    results = canonicalize_zoo(store, workers=0)
    assert same(before, snapshot(store))  # nothing outside canonical/ changed
    zoo = open_zoo(store)
    assert [r.population for r in results] == list(zoo.populations)
    x = torch.randn(16, 2)
    for r, pop in zip(results, zoo.populations.values(), strict=True):
        done = pop.status == Status.DONE
        assert r.aligned == done.sum() == 3 and r.skipped == 3
        assert r.distance_after <= r.distance_before
        kept = pop.weights(canonical=True)[pop.status == Status.DONE]
        assert r.median_after == pytest.approx(float(torch.pdist(kept.double()).median()))
        final, canon = pop.weights(), pop.weights(canonical=True)
        assert canon.shape == final.shape and canon.dtype == torch.float32
        assert torch.isnan(canon[~done]).all()
        g = pop.group["canonical"]
        assert g.attrs["complete"] and g.attrs["method"] == "weight-matching"
        assert g.attrs["reference"] == "barycenter"  # the default: generators do better on it
        assert pop.status[g.attrs["reference_index"]] == Status.DONE
        for i in np.flatnonzero(done):
            perm = Permutation(
                pop.arch, {k: torch.from_numpy(g["perm"][k][i]) for k in g["perm"].array_keys()}
            )
            assert torch.equal(perm.apply(final[i]), canon[i])
            out_a = pop.arch.forward(final[i][None], x)
            assert (out_a - pop.model(i, canonical=True)(x)).abs().max() <= 1e-5
        for k in g["perm"].array_keys():
            assert (g["perm"][k][:][~done] == -1).all()


def test_rerun_reuses_and_other_settings_need_overwrite(store: Path) -> None:
    canonicalize_zoo(store, workers=0)
    first = (
        snapshot(store),
        {n: p.weights(canonical=True) for n, p in open_zoo(store).populations.items()},
    )
    again = canonicalize_zoo(store, workers=0)
    assert all(r.reused for r in again)
    for n, p in open_zoo(store).populations.items():
        assert np.array_equal(p.weights(canonical=True), first[1][n], equal_nan=True)
    with pytest.raises(
        StoreError, match="already canonicalized with method=weight-matching.*--overwrite"
    ):
        canonicalize_zoo(store, method="smooth", workers=0)
    out = canonicalize_zoo(store, method="smooth", workers=0, overwrite=True)
    assert not any(r.reused for r in out)
    pop = next(iter(open_zoo(store).populations.values()))
    assert pop.group["canonical"].attrs["method"] == "smooth"
    assert pop.group["canonical"].attrs["reference_index"] == -1
    assert same(first[0], snapshot(store))


def test_interrupted_run_is_redone(store: Path) -> None:
    canonicalize_zoo(store, workers=0, populations=["moons-mlp-w6"])
    g = zarr.open_group(store, mode="r+")["moons-mlp-w6"]["canonical"]
    g.attrs["complete"] = False  # as if killed before the flag was written
    g["weights"][:] = np.zeros(g["weights"].shape, dtype=np.float32)
    res = canonicalize_zoo(store, workers=0, populations=["moons-mlp-w6"])
    assert not res[0].reused
    pop = open_zoo(store).populations["moons-mlp-w6"]
    assert pop.group["canonical"].attrs["complete"]
    assert not (pop.weights(canonical=True)[pop.status == Status.DONE] == 0).all()


def test_unknown_population_and_pending_models_are_refused(store: Path, tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"no population 'nope' in this zoo \(has: moons-mlp-w6, moons-mlp-w12\)"
    ):
        canonicalize_zoo(store, populations=["nope"], workers=0)
    pending = tmp_path / "pending.zarr"
    create_or_check(pending, ZooSpec.from_dict(SPEC))  # created, nothing trained
    before = snapshot(pending)
    with pytest.raises(
        ValueError,
        match="population moons-mlp-w6: 6 of 6 models are still pending: canonicalizing before training finished",
    ):
        canonicalize_zoo(pending, workers=0)
    assert same(before, snapshot(pending))
    assert "canonical" not in zarr.open_group(pending, mode="r")["moons-mlp-w6"]
    with pytest.raises(ValueError, match="unknown canonicalization method"):
        canonicalize_zoo(store, method="git-rebasin", workers=0)
    with pytest.raises(ValueError, match="not a weightzoo store"):
        canonicalize_zoo(tmp_path / "missing.zarr", workers=0)


def test_cli_and_dask_workers_in_other_processes(store: Path, capsys) -> None:
    from distributed import LocalCluster

    assert main(["canonicalize", str(store), "--population", "nope", "--workers", "0"]) == 2
    assert "no population 'nope'" in capsys.readouterr().err
    assert (
        main(
            [
                "canonicalize",
                str(store),
                "--method",
                "transfusion",
                "--reference",
                "barycenter",
                "--workers",
                "0",
            ]
        )
        == 0
    )
    inline = {n: p.weights(canonical=True) for n, p in open_zoo(store).populations.items()}
    url = f"file://{store}"
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cl:
        res = canonicalize_zoo(
            url, method="transfusion", reference="barycenter", overwrite=True, seed=1,
            scheduler=cl.scheduler_address,
        )  # fmt: skip
    assert len(res) == 2 and not any(r.reused for r in res)
    for n, p in open_zoo(store).populations.items():
        done = p.status == Status.DONE
        assert p.group["canonical"].attrs["seed"] == 1
        d_inline = torch.pdist(inline[n][done]).mean()
        d_dask = torch.pdist(p.weights(canonical=True)[done]).mean()
        assert torch.isclose(d_inline, d_dask, rtol=0.2)
