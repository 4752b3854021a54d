"""The Zarr v3 store of a zoo: one group per population, every weight in chunked, sharded arrays.

Layout of ``zoo.zarr`` (a local path or any fsspec URL)::

    zarr.json                 attrs["weightzoo"] = {format, spec, versions, populations}
    <population>/             attrs: task, arch, layout, checkpoints, model_chunk
        weights               (models, checkpoints, params) float32
        status                (models,) int8: 0 pending, 1 done, 2 failed, 3 diverged
        checksums             (models, checkpoints) uint32 CRC-32 of each weight vector, written
                              before status (:mod:`zoo.integrity`)
        hparams/<name>        (models,) seed, width, learning_rate, batch_size, ...
        metrics/<name>        (models, checkpoints) train/val/test loss and accuracy
        canonical/weights     (models, params), after ``zoo canonicalize``

Chunking of ``weights``: inner chunks of one model at one checkpoint ``(1, 1, params)``, inside
shards of ``(model_chunk, checkpoints, params)``. Reading "all models at one checkpoint" touches
one small chunk per model and no other checkpoint; reading "one model's trajectory" touches one
shard. The shard is the unit of writing, so a Dask task owns whole shards: ``model_chunk`` models
per task, and every other per-model array is chunked by ``model_chunk`` too. Workers never race,
and a task's ``status`` chunk is written last, so a killed build leaves that chunk pending and a
re-run retrains exactly the unfinished chunks.
"""

from __future__ import annotations

import os
import platform
import tempfile
from dataclasses import dataclass
from functools import cached_property
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
import zarr
from torch import Tensor

from zoo.architectures import architecture_from_dict
from zoo.integrity import (
    CHECKSUMS,
    Damage,
    DamagedStoreError,
    read_canonical_checked,
    read_checked,
    read_status,
    row_checksums,
    verify_population,
)
from zoo.layout import Layout
from zoo.population import Population
from zoo.spec import PopulationPlan, ZooSpec
from zoo.task_store import register_store_tasks
from zoo.training import METRIC_NAMES, Status, TrainResult

FORMAT_VERSION = 1
ATTR_KEY = "weightzoo"
MAX_INNER_CHUNK = 1 << 18  # floats per inner chunk of a weight vector (1 MiB)


class StoreError(ValueError):
    """A store that cannot be used as asked (not a weightzoo store, other spec, locked...)."""


def is_url(location: str | Path) -> bool:
    return "://" in str(location)


def open_group(location: str | Path, mode: str) -> zarr.Group:
    """Open a Zarr group at a local path or fsspec URL (``file://``, ``memory://``, ``s3://``...)."""
    loc = str(location)
    opts = {"auto_mkdir": True} if loc.startswith("file://") else None
    kwargs = {"storage_options": opts} if is_url(loc) else {}
    return zarr.open_group(loc, mode=mode, **kwargs)


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("weightzoo", "torch", "numpy", "zarr", "dask", "distributed"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "unknown"
    return out


def _is_weightzoo(group: zarr.Group) -> bool:
    return ATTR_KEY in group.attrs


def _check_writable(location: str | Path) -> None:
    """Fail early, before anything is written, if a local store location cannot be written."""
    if is_url(location) and not str(location).startswith("file://"):
        return
    path = Path(str(location).removeprefix("file://")).resolve()
    if path.exists() and not path.is_dir():
        raise StoreError(f"{location} exists and is not a directory, so not a weightzoo store")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise PermissionError(
            f"cannot write the store at {location}: {existing} is not a directory"
        )
    if not os.access(existing, os.W_OK):
        raise PermissionError(f"cannot write the store at {location}: {existing} is not writable")
    try:
        probe = tempfile.NamedTemporaryFile(dir=existing, prefix=".weightzoo-probe-")
        probe.close()
    except OSError as e:
        raise PermissionError(f"cannot write the store at {location}: {e.strerror}") from None


def model_chunk_for(plan: PopulationPlan, spec: ZooSpec) -> int:
    """Models per Dask task and Zarr shard: the spec's choice, else at most 64 per chunk."""
    m = plan.num_models
    if spec.models_per_chunk:
        return min(spec.models_per_chunk, m)
    n_chunks = -(-m // 64)
    return -(-m // n_chunks)


# files the build itself puts in a store's folder before the store exists (zoo.store_lock)
OWN_FILES = (".build.lock",)


def create_or_check(location: str | Path, spec: ZooSpec, overwrite: bool = False) -> zarr.Group:
    """Create the store for ``spec``, or check that an existing one was made from the same spec.

    Call it holding the build lock. Never wipes finished models unless ``overwrite``: a store
    built from another spec, an interrupted creation that nevertheless holds trained or
    canonical models, or a non-empty location that is not a weightzoo store raises
    :class:`StoreError` before anything is written. With ``overwrite`` a weightzoo store is
    emptied (the lock file stays) and created afresh.
    """
    _check_writable(location)
    try:
        root = open_group(location, mode="r")
        exists = True
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError):
        exists = False
    except Exception as e:  # a garbled zarr.json
        raise StoreError(f"{location}: unreadable store metadata ({type(e).__name__})") from None
    if exists and _is_weightzoo(root):
        try:
            stored = ZooSpec.from_stored(root.attrs[ATTR_KEY]["spec"])
            diff = stored.diff(spec)
        except (KeyError, TypeError, ValueError):
            stored, diff = None, ["the stored spec is unreadable"]
        finished = _finished_models(root)
        if overwrite:
            return _create(location, spec, wipe=True)
        if diff:
            raise StoreError(
                f"{location} was built from a different spec (differs in: {', '.join(diff)}); "
                "use another --store, or --overwrite to discard it"
            )
        if not root.attrs[ATTR_KEY].get("complete", False):
            if finished:
                raise StoreError(
                    f"{location} is marked incomplete but holds {finished} finished model(s) or "
                    "canonical weights; refusing to wipe them (--overwrite discards the store)"
                )
            return _create(location, spec, wipe=True)  # creation was interrupted: nothing trained
        return open_group(location, mode="r+")
    if exists and not overwrite and _members(location):
        raise StoreError(f"{location} is a Zarr group but not a weightzoo store")
    if not exists and not overwrite and _members(location):
        raise StoreError(f"{location} is not empty and not a weightzoo store")
    return _create(location, spec, wipe=exists or overwrite)


def _members(location: str | Path) -> list[str]:
    """Entries of a local store folder other than the build's own files (and zarr.json)."""
    if is_url(location) and not str(location).startswith("file://"):
        try:
            root = open_group(location, mode="r")
        except Exception:
            return []
        return [k for k, _ in root.members()]
    path = Path(str(location).removeprefix("file://"))
    if not path.is_dir():
        return []
    return [p.name for p in path.iterdir() if p.name not in (*OWN_FILES, "zarr.json")]


def _finished_models(root: zarr.Group) -> int:
    """Models trained (done, diverged or failed) or canonicalized anywhere in the store."""
    n = 0
    for _, node in root.members():
        if not isinstance(node, zarr.Group):
            continue
        try:
            status = np.asarray(node["status"][:]) if "status" in node else np.zeros(0)
        except Exception:  # unreadable status: count the population as holding models
            return max(n, 1)
        n += int((status != Status.PENDING).sum()) + int("canonical" in node)
    return n


def _create(location: str | Path, spec: ZooSpec, wipe: bool = False) -> zarr.Group:
    """Write a fresh store. Never ``mode="w"``: that deletes the folder, and with it the lock
    file another process may be waiting on; ``wipe`` deletes the members one by one instead."""
    root = open_group(location, mode="a")
    if wipe:
        for name in [k for k, _ in root.members()]:
            del root[name]
    plans = spec.plan()
    attrs = {
        "format": FORMAT_VERSION,
        "spec": spec.to_dict(),
        "versions": package_versions(),
        "populations": [p.name for p in plans],
        "complete": False,  # set once every array exists; an interrupted creation is redone
    }
    root.attrs[ATTR_KEY] = attrs
    for plan in plans:
        _create_population(root, plan, spec)
    root.attrs[ATTR_KEY] = {**attrs, "complete": True}
    return root


def _create_population(root: zarr.Group, plan: PopulationPlan, spec: ZooSpec) -> None:
    m, c, n = plan.num_models, len(spec.checkpoints), plan.arch.num_params
    k = model_chunk_for(plan, spec)
    g = root.create_group(plan.name)
    inner = min(n, MAX_INNER_CHUNK)
    g.create_array(
        "weights", shape=(m, c, n), dtype="float32", chunks=(1, 1, inner),
        shards=(k, c, inner * -(-n // inner)), fill_value=np.nan,
    )  # fmt: skip
    g.create_array("status", shape=(m,), dtype="int8", chunks=(k,), fill_value=Status.PENDING)
    g.create_array(CHECKSUMS, shape=(m, c), dtype="uint32", chunks=(k, c), fill_value=0)
    hp = g.create_group("hparams")
    for name, values in plan.hparams.items():
        hp.create_array(name, shape=(m,), dtype=values.dtype, chunks=(k,))[:] = values
    mg = g.create_group("metrics")
    for name in METRIC_NAMES:
        mg.create_array(name, shape=(m, c), dtype="float32", chunks=(k, c), fill_value=np.nan)
    g.attrs.update(
        {
            "task": plan.task,
            "arch": plan.arch.to_dict(),
            "layout": plan.arch.layout.to_dict(),
            "checkpoints": list(spec.checkpoints),
            "model_chunk": k,
        }
    )


def write_chunk(location: str | Path, population: str, start: int, result: TrainResult) -> None:
    """Write one trained chunk (whole shards): weights, metrics, their checksums, and ``status``
    last, so a kill leaves it pending and a done model always has its checksums."""
    g = open_group(location, mode="r+")[population]
    stop = start + len(result.status)
    weights = result.weights.numpy()  # (k, C, N)
    g["weights"][start:stop] = weights
    for name, values in result.metrics.items():
        g["metrics"][name][start:stop] = values.numpy()
    if CHECKSUMS in g:  # stores written before checksums existed have none
        g[CHECKSUMS][start:stop] = row_checksums(weights)
    g["status"][start:stop] = result.status.numpy()


@dataclass
class StoredPopulation(Population):
    """A population read lazily from the store; ``final`` is unused (weights come from Zarr)."""

    group: zarr.Group | None = None

    @classmethod
    def from_group(cls, name: str, group: zarr.Group) -> StoredPopulation:
        arch = architecture_from_dict(group.attrs["arch"])
        stored = Layout.from_dict(group.attrs["layout"])
        if stored != arch.layout:
            raise StoreError(f"population {name}: stored layout differs from its architecture's")
        return cls(
            arch=arch, final=torch.empty(0), task=group.attrs["task"], name=name, group=group
        )

    @property
    def checkpoints(self) -> list[int]:
        return list(self.group.attrs["checkpoints"])

    @property
    def model_chunk(self) -> int:
        return int(self.group.attrs["model_chunk"])

    @property
    def num_models(self) -> int:
        return int(self.group["status"].shape[0])

    def __len__(self) -> int:
        return self.num_models

    @property
    def status(self) -> np.ndarray:
        """(M,) int8 status codes, see :class:`zoo.training.Status`."""
        return read_status(self.group, self.name)

    @cached_property
    def hparams(self) -> dict[str, np.ndarray]:
        """{name: (M,)}: seed, width, data_fraction, learning_rate, batch_size, weight_decay, ..."""
        hp = self.group["hparams"]
        return {name: hp[name][:] for name in sorted(hp.array_keys())}

    @property
    def metrics(self) -> dict[str, np.ndarray]:
        """{name: (M, C)} per kept checkpoint (NaN where not trained), plus any (M,) stage metrics."""
        mg = self.group["metrics"]
        return {name: mg[name][:] for name in sorted(mg.array_keys())}

    def frame(self):
        """hparams, status and final-checkpoint metrics as one pandas DataFrame (a row per model)."""
        import pandas as pd

        cols = dict(self.hparams)
        cols["status"] = [Status.NAMES[int(s)] for s in self.status]
        for name, v in self.metrics.items():
            cols[name] = v[:, -1] if v.ndim == 2 else v
        return pd.DataFrame(cols)

    def _checkpoint_index(self, checkpoint: int) -> int:
        n = len(self.checkpoints)
        if not -n <= checkpoint < n:
            raise IndexError(
                f"checkpoint index {checkpoint} out of range: kept epochs {self.checkpoints}"
            )
        return checkpoint % n

    def weights(self, checkpoint: int = -1, canonical: bool = False) -> Tensor:
        """(M, N) float32 weights at a kept checkpoint (index into ``checkpoints``); NaN if untrained."""
        if canonical:
            self._canonical()
            return torch.from_numpy(read_canonical_checked(self.group, self.name))
        c = self._checkpoint_index(checkpoint)
        return torch.from_numpy(read_checked(self.group, self.name, (slice(None), c)))

    def _canonical(self) -> zarr.Group:
        """The ``canonical`` group, only once ``zoo canonicalize`` finished writing it."""
        g = self.group.get("canonical")
        if g is None or "weights" not in g or not g.attrs.get("complete", False):
            raise StoreError(
                f"population {self.name} has no (complete) canonical weights: run `zoo canonicalize`"
            )
        return g

    @property
    def canonical_info(self) -> dict:
        """How the canonical weights were made: method, reference, distances before/after."""
        return dict(self._canonical().attrs)

    def trajectory(self, i: int) -> Tensor:
        """(C, N) weights of model ``i`` at every kept checkpoint."""
        if not 0 <= i < self.num_models:
            raise IndexError(f"model index {i} out of range for {self.num_models} models")
        return torch.from_numpy(read_checked(self.group, self.name, (i, slice(None))))

    def model(self, i: int, checkpoint: int = -1, canonical: bool = False) -> torch.nn.Module:
        if not 0 <= i < self.num_models:
            raise IndexError(f"model index {i} out of range for {self.num_models} models")
        if canonical:
            return self.arch.module(self.weights(canonical=True)[i])
        c = self._checkpoint_index(checkpoint)
        return self.arch.module(torch.from_numpy(read_checked(self.group, self.name, (i, c))))


class Zoo:
    """A weightzoo store opened for reading (and for the stages that add to it)."""

    def __init__(self, location: str | Path, mode: str = "r") -> None:
        self.location = str(location)
        try:
            self.root = open_group(location, mode=mode)
        except (
            FileNotFoundError,
            zarr.errors.GroupNotFoundError,
            zarr.errors.NodeTypeValidationError,
        ):
            raise StoreError(f"{location} is not a weightzoo store (no Zarr group there)") from None
        except Exception as e:  # a garbled zarr.json
            raise StoreError(
                f"{location}: unreadable store metadata ({type(e).__name__})"
            ) from None
        if not _is_weightzoo(self.root):
            raise StoreError(f"{location} is not a weightzoo store (no weightzoo attributes)")
        self.attrs: dict = dict(self.root.attrs[ATTR_KEY])
        if not self.attrs.get("complete", False):
            raise StoreError(f"{location}: store creation was interrupted; run `zoo build` again")
        register_store_tasks(self.root, self.location)  # its tasks, by name, in this process

    @cached_property
    def spec(self) -> ZooSpec:
        return ZooSpec.from_stored(self.attrs["spec"])

    @cached_property
    def populations(self) -> dict[str, StoredPopulation]:
        out = {}
        for name in self.attrs["populations"]:
            try:
                group = self.root[name]
            except Exception:
                raise StoreError(
                    f"{self.location}: population {name} is missing or unreadable; run "
                    "`zoo build` on the store to heal it"
                ) from None
            out[name] = StoredPopulation.from_group(name, group)
        return out

    def fingerprint(self) -> str:
        """A digest of what this zoo holds: its spec, every population's status codes and
        weight checksums, and its canonical checksums. Equal for a copy of the store, different
        once a model is re-trained or re-aligned differently. Stores without checksums digest
        the weights themselves."""
        import hashlib
        import json

        h = hashlib.sha256(json.dumps(self.attrs["spec"], sort_keys=True).encode())
        for name, pop in self.populations.items():
            g = pop.group
            h.update(name.encode())
            h.update(np.ascontiguousarray(pop.status).tobytes())
            sums = g[CHECKSUMS][:] if CHECKSUMS in g else row_checksums(g["weights"][:])
            h.update(np.ascontiguousarray(sums).tobytes())
            cg = g.get("canonical")
            if cg is not None and cg.attrs.get("complete", False):
                csums = cg[CHECKSUMS][:] if CHECKSUMS in cg else row_checksums(cg["weights"][:])
                h.update(b"canonical" + np.ascontiguousarray(csums).tobytes())
        return h.hexdigest()[:16]

    def population(self, name: str) -> StoredPopulation:
        if name not in self.populations:
            raise KeyError(
                f"no population {name!r} in this zoo (has: {', '.join(self.populations)})"
            )
        return self.populations[name]

    def __repr__(self) -> str:
        return f"Zoo({self.location!r}, populations={list(self.attrs['populations'])})"

    def verify(self) -> list[Damage]:
        """Every population's :class:`zoo.integrity.Damage` (checked shard by shard)."""
        return [verify_population(p.group, n) for n, p in self.populations.items()]

    def check_intact(self) -> None:
        """Raise :class:`DamagedStoreError` (one line) if any model fails its checksums."""
        damaged = [d for d in self.verify() if d.damaged]
        if damaged:
            more = f" (and {len(damaged) - 1} more population(s))" if len(damaged) > 1 else ""
            raise DamagedStoreError(
                f"{self.location} is damaged: {damaged[0].describe()}{more}; run `zoo build` "
                "on it to re-train the damaged models"
            )

    def summary(self) -> list[dict]:
        """One row per population: task, architecture, width, params, models by status, accuracy;
        a :class:`DamagedStoreError` instead of fill values if any model is damaged."""
        self.check_intact()
        rows = []
        for name, pop in self.populations.items():
            status = pop.status
            acc = pop.group["metrics"]["test_acc"][:, -1]
            done = status == Status.DONE
            row = {
                "population": name, "task": pop.task, "arch": pop.arch.family, "width": pop.arch.width,
                "params": pop.arch.num_params, "models": len(status),
            }  # fmt: skip
            for code, label in Status.NAMES.items():
                row[label] = int((status == code).sum())
            accs = acc[done & np.isfinite(acc)]
            row["test_acc_mean"] = float(accs.mean()) if len(accs) else float("nan")
            row["test_acc_min"] = float(accs.min()) if len(accs) else float("nan")
            row["test_acc_max"] = float(accs.max()) if len(accs) else float("nan")
            rows.append(row)
        return rows


def open_zoo(location: str | Path) -> Zoo:
    """Open a zoo for reading: ``z.populations`` maps names to :class:`StoredPopulation`."""
    return Zoo(location, mode="r")
