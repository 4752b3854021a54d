"""``zoo canonicalize``: align every population of a zoo and write canonical weights into Zarr.

One Dask task per population: it reads the final weights of the models that finished training,
aligns them (:func:`canonicalize.align_population`) and writes, inside the population's group::

    canonical/weights          (models, params) float32; NaN rows for diverged/failed models
    canonical/perm/<group>     (models, group size) int64; row m: new[i] = old[perm[i]]; -1 rows
                               for skipped models
    canonical attrs            method, reference, seed, reference_index, distances, complete

Nothing outside ``canonical/`` is written. The ``complete`` attribute is written last, so a
killed run leaves it missing and a re-run redoes exactly the unfinished populations; a finished
population is kept as is, unless asked with another method or reference (refused without
``overwrite``). Before anything is written, every chosen population is checked: a model still
pending (training not finished) refuses the whole run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from canonicalize import METHOD_NAMES, REFERENCES, align_population
from zoo.architectures import architecture_from_dict
from zoo.integrity import CHECKSUMS, read_checked, row_checksums
from zoo.store import MAX_INNER_CHUNK, StoreError, open_group, open_zoo
from zoo.store_lock import BuildLock
from zoo.training import Status

GROUP = "canonical"


@dataclass(frozen=True)
class CanonicalResult:
    """What one population's task did (``skipped``: diverged/failed models left NaN).
    distance_*: mean pairwise L2 of the aligned models; median_*: the median, which one blown-up
    model barely moves (NaN for a store canonicalized before it was recorded)."""

    population: str
    aligned: int
    skipped: int
    distance_before: float
    distance_after: float
    seconds: float
    reused: bool = False  # already canonicalized the same way: nothing was done
    median_before: float = float("nan")
    median_after: float = float("nan")


def stored_settings(group) -> dict | None:
    """The canonical attrs of a population group if a run finished there, else None."""
    if GROUP not in group:
        return None
    attrs = dict(group[GROUP].attrs)
    return attrs if attrs.get("complete") else None


def check_populations(location: str, names: list[str] | None) -> list[str]:
    """The chosen population names, after checking that they exist and finished training."""
    zoo = open_zoo(location)
    available = list(zoo.populations)
    chosen = names or available
    for name in chosen:
        if name not in zoo.populations:
            raise ValueError(f"no population {name!r} in this zoo (has: {', '.join(available)})")
    for name in chosen:
        status = zoo.populations[name].status
        pending = int((status == Status.PENDING).sum())
        if pending:
            raise ValueError(
                f"population {name}: {pending} of {len(status)} models are still pending: "
                "canonicalizing before training finished (run `zoo build` to finish it)"
            )
    return chosen


def _reusable(
    group, name: str, method: str, reference: str, seed: int, overwrite: bool
) -> CanonicalResult | None:
    """The stored result if this population is canonicalized with the same settings already;
    None if it must be (re)done; StoreError if done otherwise and ``overwrite`` is not set."""
    done = stored_settings(group)
    if done is None:
        return None
    if (done["method"], done["reference"], done["seed"]) == (method, reference, seed):
        return CanonicalResult(
            name, done["aligned"], done["skipped"], done["distance_before"],
            done["distance_after"], 0.0, reused=True,
            median_before=done.get("median_before", float("nan")),
            median_after=done.get("median_after", float("nan")),
        )  # fmt: skip
    if overwrite:
        return None
    raise StoreError(
        f"population {name} is already canonicalized with method={done['method']}, "
        f"reference={done['reference']}, seed={done['seed']}; pass --overwrite to replace it"
    )


def canonicalize_population(
    location: str, name: str, method: str, reference: str, seed: int, overwrite: bool,
    threads: int, progress=None,
) -> CanonicalResult:  # fmt: skip
    """Dask task: align one population and write its ``canonical/`` arrays."""
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    g = open_group(location, mode="r+")[name]
    reused = _reusable(g, name, method, reference, seed, overwrite)
    if reused is not None:
        return reused
    arch = architecture_from_dict(g.attrs["arch"])
    status = g["status"][:]
    keep = np.flatnonzero(status == Status.DONE)
    m, n = len(status), arch.num_params
    spec = arch.permutation_spec()
    weights = np.full((m, n), np.nan, dtype=np.float32)
    perms = {grp: np.full((m, s.size), -1, dtype=np.int64) for grp, s in spec.groups.items()}
    attrs: dict = {"method": method, "reference": reference, "seed": seed}
    if len(keep):
        weights_now = read_checked(g, name, (slice(None), -1))  # damaged: one-line error
        final = torch.from_numpy(weights_now[keep])  # (K, N) last kept checkpoint
        out = align_population(arch, final, method, reference, seed=seed, progress=progress)
        weights[keep] = out.weights.numpy()
        for grp, p in out.perms.items():
            perms[grp][keep] = p.numpy()
        ref = int(keep[out.reference_index]) if out.reference_index >= 0 else -1
        attrs.update(
            reference_index=ref, rounds=out.rounds,
            distance_before=out.distance_before, distance_after=out.distance_after,
            median_before=out.median_before, median_after=out.median_after,
        )  # fmt: skip
    else:
        attrs.update(reference_index=-1, rounds=0, distance_before=0.0, distance_after=0.0,
                     median_before=0.0, median_after=0.0)  # fmt: skip
    attrs.update(aligned=len(keep), skipped=m - len(keep))
    _write(g, weights, perms, attrs, int(g.attrs.get("model_chunk", m)))
    return CanonicalResult(
        name, len(keep), m - len(keep), attrs["distance_before"], attrs["distance_after"],
        time.perf_counter() - t0, median_before=attrs["median_before"],
        median_after=attrs["median_after"],
    )  # fmt: skip


def _write(group, weights: np.ndarray, perms: dict[str, np.ndarray], attrs: dict, k: int) -> None:
    """(Re)create ``canonical/`` (ours only), arrays first, the completion flag last."""
    if GROUP in group:
        del group[GROUP]
    cg = group.create_group(GROUP)
    cg.attrs.update({**attrs, "complete": False})
    m, n = weights.shape
    inner = min(n, MAX_INNER_CHUNK)
    cw = cg.create_array(
        "weights", shape=(m, n), dtype="float32", chunks=(1, inner),
        shards=(min(k, m), inner * -(-n // inner)), fill_value=np.nan,
    )  # fmt: skip
    cw[:] = weights
    cg.create_array(CHECKSUMS, shape=(m,), dtype="uint32", chunks=(min(k, m),),
                    fill_value=0)[:] = row_checksums(weights)  # fmt: skip
    pg = cg.create_group("perm")
    for name, p in perms.items():
        pg.create_array(name, shape=p.shape, dtype="int64", chunks=p.shape, fill_value=-1)[:] = p
    cg.attrs.update({**attrs, "complete": True})


def canonicalize_zoo(
    store: str | Path,
    method: str = "weight-matching",
    reference: str = "barycenter",
    populations: list[str] | None = None,
    seed: int = 0,
    overwrite: bool = False,
    workers: int | None = None,
    scheduler: str | None = None,
    console: Console | None = None,
) -> list[CanonicalResult]:
    """Canonicalize the chosen populations (default: all) of a zoo; resumable.

    workers: Dask worker processes (default: one per core, at most one per population); ``0``
    runs in this process (also used for ``memory://`` stores). scheduler: join an existing
    Dask cluster instead.
    """
    if method not in METHOD_NAMES:
        raise ValueError(f"unknown canonicalization method {method!r} ({', '.join(METHOD_NAMES)})")
    if reference not in REFERENCES:
        raise ValueError(f"unknown reference {reference!r} ({', '.join(REFERENCES)})")
    console = console or Console(stderr=True)
    location = str(store)
    names = check_populations(location, populations)
    with BuildLock(location):
        names = check_populations(location, names)  # again, now that nothing else writes
        open_zoo(location).check_intact()  # damaged weights: one line, before any work
        root = open_group(location, mode="r")
        sizes = {n: root[n]["status"].shape[0] for n in names}
        reused = [
            r
            for r in (_reusable(root[n], n, method, reference, seed, overwrite) for n in names)
            if r
        ]
        todo = [n for n in names if n not in {r.population for r in reused}]
        console.print(
            f"canonicalizing {len(todo)} population(s), {sum(sizes[n] for n in todo)} models, "
            f"with {method} (reference: {reference}) in {location}"
        )
        args = (method, reference, seed, overwrite)
        inline = workers == 0 or (location.startswith("memory://") and not scheduler)
        if not todo:
            results = []
        elif inline:
            results = _run_inline(location, todo, sizes, args, console)
        else:
            results = _run_dask(location, todo, sizes, args, workers, scheduler, console)
    results = sorted(reused + results, key=lambda r: names.index(r.population))
    for r in results:
        note = " (already done)" if r.reused else ""
        median = (
            f", median {r.median_before:.3f} -> {r.median_after:.3f}"
            if np.isfinite(r.median_before)
            else ""
        )
        console.print(
            f"{r.population}: {r.aligned} aligned, {r.skipped} skipped, pairwise L2 mean "
            f"{r.distance_before:.3f} -> {r.distance_after:.3f}{median}{note}",
            highlight=False,
        )
    return results


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("models"), TimeElapsedColumn(), console=console,
    )  # fmt: skip


def _run_inline(location, names, sizes, args, console) -> list[CanonicalResult]:
    from pipelines.cluster import cpu_count

    results = []
    with _progress(console) as bar:
        job = bar.add_task("canonicalizing", total=sum(sizes.values()))
        for name in names:
            start = bar.tasks[0].completed

            def tick(done: int, total: int, start: float = start) -> None:
                bar.update(job, completed=start + done)

            results.append(canonicalize_population(location, name, *args, cpu_count(), tick))
            bar.update(job, completed=start + sizes[name])
    return results


def _run_dask(location, names, sizes, args, workers, scheduler, console) -> list[CanonicalResult]:
    from distributed import as_completed

    from pipelines.cluster import dask_client, threads_per_worker

    results, failures = [], []
    with dask_client(workers, scheduler, max_workers=len(names)) as client:
        console.print(f"Dask dashboard: {client.dashboard_link}")
        n_workers = max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
        threads = threads_per_worker(n_workers) if not scheduler else 1
        futures = {
            client.submit(canonicalize_population, location, n, *args, threads, pure=False): n
            for n in names
        }
        with _progress(console) as bar:
            job = bar.add_task("canonicalizing", total=sum(sizes.values()))
            for fut in as_completed(futures):
                name = futures[fut]
                if fut.status == "error":
                    failures.append(f"{name}: {fut.exception()}")
                else:
                    results.append(fut.result())
                bar.advance(job, sizes[name])
    if failures:
        raise RuntimeError(f"{len(failures)} population(s) failed, re-run to retry; {failures[0]}")
    return results
