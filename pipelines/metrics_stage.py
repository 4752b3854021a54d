"""The landscape stage of a zoo: per-model Hessian metrics, per-cell pair metrics, phase labels.

Runs after training (``zoo build`` calls it unless ``--no-metrics``; ``zoo metrics STORE`` runs or
resumes it). One Dask task per population measures its trained models at the final checkpoint
(:func:`zoo.landscape.grid.measure_population`) and writes only its own group:

    <population>/metrics/hessian_top, hessian_trace, ...   (M,) per model, NaN where skipped
    <population>/cells/<name>                            (C,) per grid cell of the population
    <population>/attrs["landscape"]                      config, skipped models, done flag (last)

Then the driver labels every cell's phase over all populations of a task at once (thresholds are
relative to the zoo's ranges) and writes ``<population>/cells/phase``, ``<population>/phase`` (M,)
and the thresholds into the population and root attributes (``attrs["landscape"]``).

Resumable: a population whose done flag matches its current status codes is not measured again;
one whose models changed status since (a resumed build) is measured anew. Untrained, failed or
diverged models are skipped and reported, never a crash.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import zarr
from rich.console import Console

from zoo.architectures import architecture_from_dict
from zoo.integrity import read_checked
from zoo.landscape.grid import CELL_FIELDS, LandscapeConfig, measure_population
from zoo.landscape.phases import PHASES, UNLABELLED, CellInputs, label_phases
from zoo.store import Zoo, open_group
from zoo.store_lock import BuildLock
from zoo.tasks import TaskData, get_task

ATTR = "landscape"
MODEL_FIELDS = (
    "hessian_top", "hessian_trace", "hessian_trace_stderr", "hessian_iterations",
    "hessian_converged", "output_std",
)  # fmt: skip


@dataclass
class PopulationSummary:
    """What one population's task did: models measured / skipped (index -> reason), seconds."""

    population: str
    measured: int
    skipped: dict[int, str]
    cells_without_pairs: dict[int, str]
    seconds: float
    resumed: bool = False


@dataclass
class MetricsSummary:
    """populations: per-population summaries; phases: task -> {phase name: number of cells}."""

    populations: list[PopulationSummary] = field(default_factory=list)
    phases: dict[str, dict[str, int]] = field(default_factory=dict)


def _status_digest(status: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(status, dtype=np.int8).tobytes()).hexdigest()


def _write(group: zarr.Group, name: str, values: np.ndarray, chunk: int) -> None:
    values = np.asarray(values)
    if values.dtype == bool:
        values = values.astype(np.int8)
    arr = group.create_array(
        name, shape=values.shape, dtype=values.dtype, chunks=(max(1, min(chunk, len(values))),),
        overwrite=True,
    )  # fmt: skip
    arr[:] = values


def is_measured(group: zarr.Group) -> bool:
    """Whether a population's landscape metrics are up to date with its status codes."""
    info = group.attrs.get(ATTR, {})
    return bool(info.get("done")) and info.get("status_digest") == _status_digest(
        group["status"][:]
    )


def stored_summary(population: str, group: zarr.Group) -> PopulationSummary:
    """The summary of a population measured by an earlier run (resumed: nothing recomputed)."""
    info = group.attrs[ATTR]
    return PopulationSummary(
        population, int(info["measured"]), {int(k): v for k, v in info["skipped"].items()},
        {int(k): v for k, v in info["cells_without_pairs"].items()}, 0.0, resumed=True,
    )  # fmt: skip


def measure_stored(
    location: str, population: str, data: TaskData, threads: int, config: LandscapeConfig
) -> PopulationSummary:
    """Dask task: measure one population and write its own arrays (done flag last)."""
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    g = open_group(location, mode="r+")[population]
    status = g["status"][:]
    if is_measured(g):
        return stored_summary(population, g)
    g.attrs[ATTR] = {"done": False}
    arch = architecture_from_dict(g.attrs["arch"])
    hp = {k: g["hparams"][k][:] for k in g["hparams"].array_keys()}
    weights = torch.from_numpy(read_checked(g, population, (slice(None), -1)))  # (M, N) final
    final = {m: g["metrics"][m][:, -1] for m in ("train_loss", "test_acc")}
    result = measure_population(
        arch, data, weights, hp["cell"], status, config, final["train_loss"], final["test_acc"]
    )

    k = int(g.attrs["model_chunk"])
    mg = g["metrics"]
    for name in MODEL_FIELDS:
        _write(mg, name, getattr(result.models, name), k)
    cg = g.require_group("cells")
    cells = result.cells
    first = {int(c): int(np.flatnonzero(hp["cell"] == c)[0]) for c in cells.cell}
    _write(cg, "cell", cells.cell, len(cells.cell))
    _write(cg, "load_index", np.array([hp["load_index"][first[c]] for c in cells.cell]), 1 << 20)
    _write(
        cg, "temperature_index",
        np.array([hp["temperature_index"][first[c]] for c in cells.cell]), 1 << 20,
    )  # fmt: skip
    _write(cg, "models", cells.models, 1 << 20)
    _write(cg, "pairs", cells.pairs, 1 << 20)
    for name in CELL_FIELDS:
        _write(cg, name, cells[name], 1 << 20)
    no_pairs = {int(c): n for c, n in zip(cells.cell, cells.note, strict=True) if n}
    cg.attrs["notes"] = [str(n) for n in cells.note]
    g.attrs[ATTR] = {
        "config": config.to_dict(),
        "checkpoint": int(g.attrs["checkpoints"][-1]),
        "measured": int(result.models.measured.sum()),
        "skipped": {str(i): r for i, r in result.skipped.items()},
        "cells_without_pairs": {str(c): n for c, n in no_pairs.items()},
        "status_digest": _status_digest(status),
        "done": True,  # written last: a killed task leaves the population to be measured again
    }
    return PopulationSummary(
        population, int(result.models.measured.sum()), result.skipped, no_pairs,
        time.perf_counter() - t0,
    )  # fmt: skip


def label_zoo(location: str) -> dict[str, dict[str, int]]:
    """Label every measured cell of the zoo, thresholds per task; writes phases and attributes."""
    root = open_group(location, mode="r+")
    names = root.attrs["weightzoo"]["populations"]
    by_task: dict[str, list[str]] = {}
    for name in names:
        g = root[name]
        if g.attrs.get(ATTR, {}).get("done") and "cells" in g:
            by_task.setdefault(g.attrs["task"], []).append(name)
    counts: dict[str, dict[str, int]] = {}
    thresholds: dict[str, dict] = {}
    for task, pops in by_task.items():
        cols = {
            f: []
            for f in (
                "train_loss",
                "hessian_trace",
                "mc_bezier",
                "mc_bezier_error",
                "cka",
                "output_std",
            )
        }
        sizes = []
        for name in pops:
            cg = root[name]["cells"]
            sizes.append(cg["cell"].shape[0])
            for f in cols:
                cols[f].append(cg[f][:].astype(np.float64))
        inputs = CellInputs(**{f: np.concatenate(v) for f, v in cols.items()})
        labels = label_phases(inputs)
        thresholds[task] = labels.thresholds.to_dict()
        start = 0
        for name, size in zip(pops, sizes, strict=True):
            g = root[name]
            codes = labels.codes[start : start + size]
            notes = labels.notes[start : start + size]
            cg = g["cells"]
            _write(cg, "phase", codes, 1 << 20)
            _write(cg, "sharp", labels.sharp[start : start + size], 1 << 20)
            _write(cg, "high_loss", labels.high_loss[start : start + size], 1 << 20)
            cg.attrs["phase_notes"] = notes
            cell_of = {int(c): int(p) for c, p in zip(cg["cell"][:], codes, strict=True)}
            cells = g["hparams"]["cell"][:]
            per_model = np.array([cell_of.get(int(c), UNLABELLED) for c in cells], dtype=np.int8)
            _write(g, "phase", per_model, int(g.attrs["model_chunk"]))
            g.attrs[ATTR] = {
                **dict(g.attrs[ATTR]), "phases": {str(k): v for k, v in PHASES.items()},
                "thresholds": thresholds[task],
            }  # fmt: skip
            start += size
        counts[task] = {
            PHASES.get(int(c), "unlabelled"): int((labels.codes == c).sum())
            for c in np.unique(labels.codes)
        }
    root.attrs[ATTR] = {
        "phases": {str(k): v for k, v in PHASES.items()},
        "unlabelled": UNLABELLED,
        "thresholds": thresholds,
        "phase_counts": counts,
        "complete": all(root[n].attrs.get(ATTR, {}).get("done") for n in names),
    }
    return counts


def compute_metrics(
    store: str | Path | Zoo,
    workers: int | None = None,
    scheduler: str | None = None,
    client=None,
    config: LandscapeConfig | None = None,
    console: Console | None = None,
) -> MetricsSummary:
    """Run or resume the landscape stage on a store; returns what was measured and skipped.

    workers: Dask worker processes (``0``: in this process, as for ``memory://`` stores);
    scheduler: address of an existing cluster; client: an already connected ``distributed``
    Client to use instead of either.
    """
    location = store.location if isinstance(store, Zoo) else str(store)
    console = console or Console(stderr=True)
    config = config or LandscapeConfig()
    zoo = Zoo(location, mode="r")
    spec = zoo.spec
    summary = MetricsSummary()
    with BuildLock(location, reentrant=True):  # inside `zoo build`, which holds it
        root = open_group(location, mode="r")
        todo = [n for n in zoo.attrs["populations"] if not is_measured(root[n])]
        done_before = [n for n in zoo.attrs["populations"] if n not in todo]
        for name in done_before:
            summary.populations.append(stored_summary(name, root[name]))
        if todo:
            tasks = {n: root[n].attrs["task"] for n in todo}
            data = {
                t: get_task(t, seed=spec.split_seed, data_root=spec.data_root)
                for t in sorted(set(tasks.values()))
            }
            console.print(f"measuring loss landscapes of {len(todo)} population(s) in {location}")
            inline = client is None and (
                workers == 0 or (location.startswith("memory://") and not scheduler)
            )
            if inline:
                summary.populations += _run_inline(location, todo, tasks, data, config, console)
            else:
                summary.populations += _run_dask(
                    location, todo, tasks, data, config, workers, scheduler, client, console
                )
        summary.phases = label_zoo(location)
    _report(summary, console)
    return summary


def _progress(console: Console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("populations"), TimeElapsedColumn(), console=console,
    )  # fmt: skip


def _run_inline(
    location: str, todo: list[str], tasks: dict[str, str], data: dict[str, TaskData],
    config: LandscapeConfig, console: Console,
) -> list[PopulationSummary]:  # fmt: skip
    from pipelines.cluster import cpu_count

    out = []
    with _progress(console) as bar:
        job = bar.add_task("landscape", total=len(todo))
        for name in todo:
            out.append(measure_stored(location, name, data[tasks[name]], cpu_count(), config))
            bar.advance(job)
    return out


def _run_dask(
    location: str, todo: list[str], tasks: dict[str, str], data: dict[str, TaskData],
    config: LandscapeConfig, workers: int | None, scheduler: str | None, client, console: Console,
) -> list[PopulationSummary]:  # fmt: skip
    from contextlib import nullcontext

    from distributed import as_completed

    from pipelines.cluster import broadcast, dask_client, threads_per_worker

    ctx = nullcontext(client) if client is not None else dask_client(workers, scheduler, len(todo))
    out, failures = [], []
    with ctx as c:
        n_workers = max(1, len(c.scheduler_info(n_workers=-1)["workers"]))
        threads = threads_per_worker(n_workers) if not scheduler and client is None else 1
        shipped = {t: broadcast(c, d) for t, d in data.items()}
        # largest populations first: they bound the stage's wall time
        order = sorted(todo, key=lambda n: -open_group(location, mode="r")[n]["weights"].shape[2])
        futures = {
            c.submit(measure_stored, location, n, shipped[tasks[n]], threads, config, pure=False): n
            for n in order
        }
        with _progress(console) as bar:
            job = bar.add_task("landscape", total=len(todo))
            for fut in as_completed(futures):
                if fut.status == "error":
                    failures.append(f"{futures[fut]}: {fut.exception()}")
                else:
                    out.append(fut.result())
                bar.advance(job)
    if failures:
        raise RuntimeError(
            f"landscape metrics failed for {len(failures)} population(s), re-run `zoo metrics` to "
            f"retry; first: {failures[0]}"
        )
    return out


def _report(summary: MetricsSummary, console: Console) -> None:
    skipped = {p.population: p.skipped for p in summary.populations if p.skipped}
    for pop, sk in skipped.items():
        reasons: dict[str, int] = {}
        for r in sk.values():
            reasons[r] = reasons.get(r, 0) + 1
        text = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
        console.print(f"[yellow]{pop}: skipped {len(sk)} model(s) ({text})[/]")
    for p in summary.populations:
        for cell, note in p.cells_without_pairs.items():
            console.print(f"[yellow]{p.population} cell {cell}: {note}[/]")
    for task, counts in summary.phases.items():
        text = ", ".join(f"{k}: {v}" for k, v in counts.items())
        console.print(f"phases of {task} cells: {text}")
