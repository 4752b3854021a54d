"""Checksums of a store's weights, and the checks that refuse damaged data.

Every trained model carries one CRC-32 per kept checkpoint, over the exact float32 bytes of its
weight vector: ``<population>/checksums`` (models, checkpoints) uint32, chunked like ``status``
and written before it (weights, metrics, checksums, status), so a model whose status says done
has its checksums on disk. After ``zoo canonicalize``, ``canonical/checksums`` (models,) covers
the canonical weights the same way.

A shard file deleted, truncated or overwritten reads back as fill values (NaN) or fails to
decode; either way the rows no longer match their checksums. :func:`verify_population` finds
such models, :func:`read_checked` is what every reader uses instead of reading ``weights``
directly: it raises :class:`DamagedStoreError` (one line, naming the models) instead of
handing out fill values. Stores written before checksums existed have no ``checksums`` array:
they read as before and ``zoo verify`` says they cannot be checked.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
import zarr

CHECKSUMS = "checksums"
FINAL_CODES = (1, 3)  # zoo.training.Status.DONE, DIVERGED: models whose weights are final


class DamagedStoreError(ValueError):
    """Stored weights that fail their checksums or cannot be read; the message names them."""


def row_checksums(weights: np.ndarray) -> np.ndarray:
    """(..., N) float32 -> (...) uint32: CRC-32 of each row's bytes (NaN payloads included)."""
    w = np.ascontiguousarray(weights, dtype=np.float32)
    rows = w.reshape(-1, w.shape[-1]) if w.shape[-1] else w.reshape(-1, 0)
    out = np.fromiter((zlib.crc32(r.tobytes()) for r in rows), dtype=np.uint32, count=len(rows))
    return out.reshape(w.shape[:-1])


def has_checksums(group: zarr.Group) -> bool:
    return CHECKSUMS in group


@dataclass
class Damage:
    """What is wrong with one population: damaged model rows and why; ``problems`` are
    population-wide (a missing array), ``unchecked`` is set for a store without checksums."""

    population: str
    models: list[int] = field(default_factory=list)
    reasons: dict[int, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    canonical: list[int] = field(default_factory=list)
    unchecked: bool = False

    @property
    def damaged(self) -> bool:
        return bool(self.models or self.problems or self.canonical)

    def describe(self) -> str:
        parts = list(self.problems)
        if self.models:
            parts.append(f"{len(self.models)} model(s) fail their checksums: {_rows(self.models)}")
        if self.canonical:
            parts.append(
                f"canonical weights of {len(self.canonical)} model(s) fail their checksums: "
                f"{_rows(self.canonical)}"
            )
        return f"population {self.population}: " + "; ".join(parts)


def _rows(rows: list[int], most: int = 8) -> str:
    shown = ", ".join(map(str, rows[:most]))
    return shown + (f" and {len(rows) - most} more" if len(rows) > most else "")


def read_status(group: zarr.Group, name: str) -> np.ndarray:
    """(M,) status codes, or a DamagedStoreError if the array is missing or unreadable."""
    try:
        return np.asarray(group["status"][:])
    except Exception as e:  # a deleted array raises KeyError, a garbled one a codec error
        raise DamagedStoreError(
            f"population {name}: status array is missing or unreadable ({type(e).__name__}); "
            "run `zoo build` on the store to heal it"
        ) from None


def _read_rows(arr: zarr.Array, sel: tuple) -> np.ndarray | None:
    """The selection, or None if the shard cannot be decoded (truncated or overwritten file)."""
    try:
        return np.asarray(arr[sel])
    except Exception:  # codec and index errors of a damaged shard: reported as damage
        return None


def verify_population(group: zarr.Group, name: str, canonical: bool = True) -> Damage:
    """Check every final model's weights (all kept checkpoints), shard by shard, and the
    canonical weights if complete."""
    damage = Damage(name)
    try:
        status = read_status(group, name)
    except DamagedStoreError:
        damage.problems.append("status array is missing or unreadable")
        return damage
    if not has_checksums(group):
        damage.unchecked = True
        return damage
    try:
        sums = np.asarray(group[CHECKSUMS][:])  # (M, C)
        weights = group["weights"]
    except Exception:
        damage.problems.append("checksums or weights array is missing or unreadable")
        return damage
    k = int(group.attrs.get("model_chunk", len(status)) or 1)
    final = np.isin(status, FINAL_CODES)
    for start in range(0, len(status), k):
        stop = min(start + k, len(status))
        if not final[start:stop].any():
            continue
        w = _read_rows(weights, (slice(start, stop),))  # (k, C, N)
        for i in range(start, stop):
            if not final[i]:
                continue
            if w is None:
                damage.models.append(i)
                damage.reasons[i] = "unreadable"
            elif not np.array_equal(row_checksums(w[i - start]), sums[i]):
                damage.models.append(i)
                damage.reasons[i] = "checksum mismatch"
    if canonical:
        damage.canonical = _verify_canonical(group, status)
    return damage


def _verify_canonical(group: zarr.Group, status: np.ndarray) -> list[int]:
    cg = group.get("canonical")
    if cg is None or not cg.attrs.get("complete", False) or CHECKSUMS not in cg:
        return []
    keep = status == FINAL_CODES[0]  # only done models are aligned
    try:
        sums = np.asarray(cg[CHECKSUMS][:])
    except Exception:
        return [int(i) for i in np.flatnonzero(keep)]
    w = _read_rows(cg["weights"], (slice(None),))
    if w is None:
        return [int(i) for i in np.flatnonzero(keep)]
    bad = keep & (row_checksums(w) != sums)
    return [int(i) for i in np.flatnonzero(bad)]


def read_checked(
    group: zarr.Group, name: str, sel: tuple, checkpoints: int | slice | None = None
) -> np.ndarray:
    """``weights[sel]`` (``sel`` = (models, checkpoint(s), ...)) checked against the stored
    checksums for every final model it covers; a DamagedStoreError names the damaged rows.

    ``sel`` selects along models first (an int or a slice), then checkpoints (an int or a
    slice); anything else of the weight vector is read whole. Without a ``checksums`` array
    (an older store) the read is unchecked.
    """
    models, ckpt = sel
    out = _read_rows(group["weights"], (models, ckpt))
    rows = np.atleast_1d(np.arange(group["weights"].shape[0])[models])  # model indices covered
    status = read_status(group, name)[rows]
    final = np.isin(status, FINAL_CODES)
    if out is None:
        if final.any() or not has_checksums(group):
            raise DamagedStoreError(
                f"population {name}: weights of models {_rows(rows.tolist())} cannot be read "
                "(damaged shard); run `zoo verify` and `zoo build` to heal the store"
            )
        return np.full(_shape(group["weights"].shape, models, ckpt), np.nan, dtype=np.float32)
    if not has_checksums(group):
        return out
    mismatch = np.asarray(row_checksums(out) != np.asarray(group[CHECKSUMS][models, ckpt]))
    if isinstance(models, int):  # one model: any of its checkpoints
        mismatch = np.atleast_1d(mismatch.any())
    elif mismatch.ndim == 2:  # (models, checkpoints)
        mismatch = mismatch.any(axis=1)
    bad = rows[final & mismatch]
    if len(bad):
        raise DamagedStoreError(
            f"population {name}: {len(bad)} model(s) fail their checksums ({_rows(bad.tolist())})"
            "; run `zoo verify` and `zoo build` to heal the store"
        )
    return out


def _shape(full: tuple[int, ...], models, ckpt) -> tuple[int, ...]:
    dims = []
    for size, s in zip(full[:2], (models, ckpt), strict=True):
        if isinstance(s, slice):
            dims.append(len(range(*s.indices(size))))
    return (*dims, full[2])


def read_canonical_checked(group: zarr.Group, name: str) -> np.ndarray:
    """(M, N) canonical weights, checked against ``canonical/checksums`` where present."""
    cg = group["canonical"]
    status = read_status(group, name)
    w = _read_rows(cg["weights"], (slice(None),))
    if w is None:
        raise DamagedStoreError(
            f"population {name}: canonical weights cannot be read (damaged shard); "
            "run `zoo canonicalize --overwrite` again"
        )
    if CHECKSUMS in cg:
        bad = np.flatnonzero((status == FINAL_CODES[0]) & (row_checksums(w) != cg[CHECKSUMS][:]))
        if len(bad):
            raise DamagedStoreError(
                f"population {name}: canonical weights of {len(bad)} model(s) fail their "
                f"checksums ({_rows(bad.tolist())}); run `zoo canonicalize --overwrite`"
            )
    return w
