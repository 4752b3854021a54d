"""``zoo build``: train every pending chunk of a zoo spec with Dask and write it into Zarr.

One Dask task per chunk of ``model_chunk`` models of a population: it trains the chunk as one
vectorized population and writes exactly its own shards (weights, metrics, then status). The
driver holds the store's build lock, so a second build of the same store is refused; a killed
build leaves unfinished chunks pending and a re-run trains only those.

The lock is taken before the store is created or touched. On an existing store the build first
verifies every finished model against its checksums (:mod:`zoo.integrity`): damaged ones go back
to pending and are re-trained, and the undamaged models of their chunks are written back
bit for bit (:func:`keep_intact`).
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from distributed import Client, as_completed
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pipelines.build_tasks import check_build_tasks, write_build_tasks
from pipelines.cluster import broadcast, cpu_count, dask_client, threads_per_worker
from pipelines.presets import default_spec
from pipelines.script_guard import check_main_guard
from zoo.architectures import architecture_from_dict
from zoo.integrity import CHECKSUMS, FINAL_CODES, Damage, row_checksums, verify_population
from zoo.spec import ZooSpec
from zoo.spec_checks import check_size
from zoo.store import Zoo, _check_writable, create_or_check, open_group, open_zoo, write_chunk
from zoo.store_lock import BuildLock
from zoo.tasks import TaskData, get_task
from zoo.training import Status, TrainConfig, train_population

FINAL = (Status.DONE, Status.DIVERGED)


@dataclass(frozen=True)
class Chunk:
    """Models [start, stop) of one population: the unit of Dask work and of Zarr writing."""

    population: str
    task: str
    start: int
    stop: int


@dataclass(frozen=True)
class ChunkResult:
    chunk: Chunk
    done: int
    diverged: int
    seconds: float


def load_spec(spec_or_path: ZooSpec | str | Path | None, data_root: str | None = None) -> ZooSpec:
    """The spec object, read from TOML if given a path (the default preset if None)."""
    overrides = {"data_root": data_root} if data_root else {}
    if isinstance(spec_or_path, ZooSpec):
        return replace(spec_or_path, **overrides)
    return ZooSpec.from_toml(spec_or_path or default_spec(), **overrides)


def pending_chunks(location: str | Path) -> list[Chunk]:
    """Chunks with at least one model neither done nor diverged (pending or failed)."""
    root = open_group(location, mode="r")
    chunks = []
    for name in root.attrs["weightzoo"]["populations"]:
        g = root[name]
        status = g["status"][:]
        k = int(g.attrs["model_chunk"])
        for start in range(0, len(status), k):
            stop = min(start + k, len(status))
            if not np.isin(status[start:stop], FINAL).all():
                chunks.append(Chunk(name, g.attrs["task"], start, stop))
    return chunks


def train_chunk(
    location: str, chunk: Chunk, data: TaskData, cfg: TrainConfig, threads: int
) -> ChunkResult:
    """Dask task: train one chunk and write its shards. Runs in a worker process, on its GPU
    when it has one."""
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    g = open_group(location, mode="r")[chunk.population]
    arch = architecture_from_dict(g.attrs["arch"])
    hp = {k: g["hparams"][k][chunk.start : chunk.stop] for k in g["hparams"].array_keys()}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    result = train_population(
        arch, data, cfg, hp["seed"], hp["learning_rate"], hp["weight_decay"], hp["batch_size"],
        hp["data_fraction"], device=device,
    )  # fmt: skip
    keep_intact(g, chunk, result)
    write_chunk(location, chunk.population, chunk.start, result)
    status = result.status.numpy()
    return ChunkResult(
        chunk, int((status == Status.DONE).sum()), int((status == Status.DIVERGED).sum()),
        time.perf_counter() - t0,
    )  # fmt: skip


def keep_intact(group, chunk: Chunk, result) -> int:
    """Put back into ``result`` the models of ``chunk`` that were already final and still
    match their checksums (a chunk re-trained because some of its models were damaged), so
    that writing the chunk leaves them bit for bit unchanged; returns how many were kept."""
    if CHECKSUMS not in group:
        return 0
    sl = slice(chunk.start, chunk.stop)
    try:
        status = np.asarray(group["status"][sl])
        final = np.isin(status, FINAL_CODES)
        if not final.any():
            return 0
        old = np.asarray(group["weights"][sl])  # (k, C, N)
        sums = np.asarray(group[CHECKSUMS][sl])  # (k, C)
        metrics = {m: np.asarray(group["metrics"][m][sl]) for m in result.metrics}
    except Exception:  # an unreadable shard: nothing in it can be kept
        return 0
    keep = final & (row_checksums(old) == sums).all(axis=1)
    if not keep.any():
        return 0
    idx = torch.from_numpy(np.flatnonzero(keep))
    result.weights[idx] = torch.from_numpy(old[keep]).to(result.weights.dtype)
    for m, values in metrics.items():
        result.metrics[m][idx] = torch.from_numpy(values[keep]).to(result.metrics[m].dtype)
    result.status[idx] = torch.from_numpy(status[keep]).to(result.status.dtype)
    return int(keep.sum())


def heal(location: str, console: Console) -> list[Damage]:
    """Verify every finished model of the store; damaged ones (and a lost status array) go
    back to pending so that this build re-trains them. Returns what was found."""
    root = open_group(location, mode="r+")
    found = []
    for name in root.attrs["weightzoo"]["populations"]:
        g = root[name]
        damage = verify_population(g, name)
        if not damage.damaged:
            continue
        found.append(damage)
        if damage.problems and "status" not in g:  # the status array itself is gone
            k = int(g.attrs["model_chunk"])
            m = g["weights"].shape[0]
            g.create_array("status", shape=(m,), dtype="int8", chunks=(k,),
                           fill_value=Status.PENDING)  # fmt: skip
        elif damage.models:
            idx = np.asarray(damage.models)
            status = np.asarray(g["status"][:])
            status[idx] = Status.PENDING
            g["status"][:] = status
            unreadable = {i for i, why in damage.reasons.items() if why == "unreadable"}
            _drop_shards(g, sorted(unreadable))
        console.print(f"[yellow]damaged: {damage.describe()}; re-training them[/]")
        if damage.canonical:
            console.print(f"[yellow]population {name}: re-run `zoo canonicalize --overwrite` "
                          "for its damaged canonical weights[/]")  # fmt: skip
    if found:
        n = sum(len(d.models) or root[d.population]["weights"].shape[0] for d in found)
        console.print(f"healing {n} damaged model(s) in {len(found)} population(s) "
                      f"({', '.join(d.population for d in found)})")  # fmt: skip
    return found


def _drop_shards(group, rows: list[int]) -> None:
    """Delete the weight shards holding ``rows`` (ones that no longer decode): zarr reads a
    shard before rewriting it, so a garbled one would fail the re-training's write."""
    from zarr.core.sync import sync

    arr = group["weights"]
    k = arr.shards[0] if arr.shards else arr.chunks[0]
    for shard in sorted({r // k for r in rows}):
        key = f"{arr.path}/{arr.metadata.encode_chunk_key((shard, 0, 0))}"
        sync(group.store.delete(key))


def mark_failed(location: str, chunk: Chunk) -> None:
    g = open_group(location, mode="r+")[chunk.population]
    g["status"][chunk.start : chunk.stop] = np.full(
        chunk.stop - chunk.start, Status.FAILED, dtype=np.int8
    )


def build_zoo(
    spec_or_path: ZooSpec | str | Path | None = None,
    store: str | Path = "zoo.zarr",
    workers: int | None = None,
    scheduler: str | None = None,
    metrics: bool = True,
    data_root: str | None = None,
    console: Console | None = None,
    overwrite: bool = False,
    force: bool = False,
    timeout: float | None = None,
    dashboard: str | None = None,
) -> Zoo:
    """Train what is not yet trained of a spec into ``store``; returns the opened zoo.

    workers: Dask worker processes (default: one per core); ``0`` trains in this process
    (also used for ``memory://`` stores, which other processes cannot see). scheduler: address
    of an existing Dask cluster to join instead of starting a LocalCluster (``timeout``
    seconds to answer). The spec's size estimate is refused above its limits unless ``force``;
    a store holding finished models is discarded only with ``overwrite``. Damaged models of an
    existing store are re-trained.
    """
    console = console or Console(stderr=True)
    inline = workers == 0 or (str(store).startswith("memory://") and not scheduler)
    if not inline and scheduler is None:
        check_main_guard()  # before anything is created: spawned workers re-run the script
    spec = load_spec(spec_or_path, data_root)
    check_size(spec, force=force)
    location = str(store)
    _check_writable(location)  # one line for a file, a read-only place, before the lock file
    tasks = check_build_tasks(location, spec)  # refused before anything is written
    with BuildLock(location):  # before anything is created or wiped
        create_or_check(location, spec, overwrite=overwrite)
        write_build_tasks(location, spec, tasks)
        heal(location, console)
        chunks = pending_chunks(location)
        # training changes the status digest the landscape stage checks: those re-measure
        to_measure = _unmeasured_populations(location) | {c.population for c in chunks}
        to_measure = to_measure if metrics else set()
        n_tasks = max(len(chunks), len(to_measure))
        with ExitStack() as stack:
            client = None
            if not inline and n_tasks:  # one cluster for training and metrics, if there is work
                client = stack.enter_context(dask_client(
                    workers, scheduler, max_workers=n_tasks, timeout=timeout, dashboard=dashboard
                ))  # fmt: skip
                console.print(f"Dask dashboard: {client.dashboard_link}")
            _train_pending(location, spec, client, scheduler is not None, console)
            if to_measure:
                from pipelines.metrics_stage import compute_metrics

                compute_metrics(
                    location, workers=0 if inline else None, client=client, console=console
                )
    return open_zoo(location)


def _unmeasured_populations(location: str) -> set[str]:
    """Populations whose landscape metrics are missing or stale (one Dask task each)."""
    from pipelines.metrics_stage import is_measured

    root = open_group(location, mode="r")
    return {n for n in root.attrs["weightzoo"]["populations"] if not is_measured(root[n])}


def _train_pending(
    location: str, spec: ZooSpec, client: Client | None, joined: bool, console: Console
) -> None:
    """Train every pending chunk (under the build lock), on ``client`` or in this process."""
    chunks = pending_chunks(location)
    if not chunks:
        console.print(f"[green]{location}: every model is trained already[/]")
        return
    data = {
        t: get_task(t, seed=spec.split_seed, data_root=spec.data_root)
        for t in sorted({c.task for c in chunks})
    }
    n_models = sum(c.stop - c.start for c in chunks)
    console.print(
        f"training {n_models} models in {len(chunks)} chunks of spec [bold]{spec.name}[/] "
        f"into {location}"
    )
    if client is None:
        _run_inline(location, chunks, data, spec.train_config(), console)
    else:
        _run_dask(location, chunks, data, spec.train_config(), client, joined, console)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("models"), TimeElapsedColumn(), console=console,
    )  # fmt: skip


def _run_inline(
    location: str,
    chunks: list[Chunk],
    data: dict[str, TaskData],
    cfg: TrainConfig,
    console: Console,
) -> None:
    with _progress(console) as bar:
        job = bar.add_task("training", total=sum(c.stop - c.start for c in chunks))
        for chunk in chunks:
            try:
                train_chunk(location, chunk, data[chunk.task], cfg, cpu_count())
            except Exception:
                mark_failed(location, chunk)
                raise
            bar.advance(job, chunk.stop - chunk.start)


def _run_dask(
    location: str, chunks: list[Chunk], data: dict[str, TaskData], cfg: TrainConfig,
    client: Client, joined: bool, console: Console,
) -> None:  # fmt: skip
    n_workers = max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
    threads = 1 if joined else threads_per_worker(n_workers)  # a joined cluster sets its own
    shipped = {t: broadcast(client, d) for t, d in data.items()}
    futures = {
        client.submit(train_chunk, location, c, shipped[c.task], cfg, threads, pure=False): c
        for c in chunks
    }
    failures: list[str] = []
    with _progress(console) as bar:
        job = bar.add_task("training", total=sum(c.stop - c.start for c in chunks))
        for fut in as_completed(futures):
            chunk = futures[fut]
            if fut.status == "error":
                mark_failed(location, chunk)
                failures.append(
                    f"{chunk.population}[{chunk.start}:{chunk.stop}]: {fut.exception()}"
                )
            bar.advance(job, chunk.stop - chunk.start)
    if failures:
        raise RuntimeError(
            f"{len(failures)} chunk(s) failed, re-run to retry; first: {failures[0]}"
        )
