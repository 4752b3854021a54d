"""A saved generator's run dir: ``generator.json`` (kind, config, dataset info) beside
``generator.safetensors`` (network and statistics); read without executing any code.

Nothing in a run dir is trusted. Before a single tensor is read, :func:`read_run_dir` checks
that the weights file is a well-formed safetensors file (header, offsets, size: a pickle, an
empty, truncated or garbage file is refused in one line), that ``generator.json`` has the
expected structure and types, that the config's sizes are within :data:`SIZE_LIMITS`, that
every group's training nets have the shape its architecture implies (counted on the meta
device, so a huge width allocates nothing), and, for run dirs written by
:func:`write_run_dir`, that the weights file is the one written with this JSON (its SHA-256 is
recorded there). :func:`check_tensors` then compares the tensors with the network the config
builds (names, shapes, dtypes) before they are loaded into it.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import Tensor

CONFIG_FILE = "generator.json"
WEIGHTS_FILE = "generator.safetensors"
FORMAT_VERSION = 1
WEIGHTS_DIGEST = "weights_sha256"  # generator.json key: the SHA-256 of generator.safetensors

# Largest value of a config field a run dir may set (dotted name -> limit): past these a
# generator is a typo or a hostile file (a hidden size of 1e9 would allocate exabytes).
SIZE_LIMITS = {
    "model.hidden": 1 << 14,
    "model.cond_dim": 1 << 14,
    "model.pca": 1 << 16,
    "training.max_steps": 10**7,
    "training.batch_size": 1 << 20,
    "sampling.steps": 10**5,
    "distill.per_net": 10**4,
    "distill.candidates": 1 << 12,
    "distill.rounds": 100,
    "calibrate.candidates": 1 << 12,
    "calibrate.per_net": 10**4,
}
MAX_HEADER = 100 * 2**20  # safetensors' own limit on the JSON header (100 MB)
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
               "U8": 1, "BOOL": 1, "U16": 2, "U32": 4, "U64": 8}  # fmt: skip


def safetensors_header(path: str | Path) -> dict[str, dict[str, Any]]:
    """{name: {"dtype", "shape"}} of a safetensors file, read from its header only; a
    ValueError (one line) unless the file is well formed: 8-byte header length, JSON header,
    known dtypes, every tensor's byte range inside the file and the file exactly that long."""
    p = Path(path)
    size = p.stat().st_size
    bad = f"{p} is not a valid safetensors file"
    if size < 8:
        raise ValueError(f"{bad} (empty or {size} bytes)")
    with p.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > MAX_HEADER or 8 + n > size:
            raise ValueError(f"{bad} (header length {n} does not fit a {size}-byte file)")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{bad} (garbled header)") from None
    if not isinstance(header, dict):
        raise ValueError(f"{bad} (header is not a table)")
    header.pop("__metadata__", None)
    end = 0
    for name, t in header.items():
        ok = isinstance(t, dict) and t.get("dtype") in DTYPE_BYTES
        shape, offsets = (t.get("shape"), t.get("data_offsets")) if ok else (None, None)
        ok = ok and isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)
        ok = ok and isinstance(offsets, list) and len(offsets) == 2
        if ok:
            a, b = offsets
            ok = 0 <= a <= b and b - a == math.prod(shape) * DTYPE_BYTES[t["dtype"]]
        if not ok:
            raise ValueError(f"{bad} (tensor {name!r} has a broken entry)")
        end = max(end, b)
    if 8 + n + end != size:
        raise ValueError(f"{bad} (truncated or padded: {size} bytes, header says {8 + n + end})")
    return {k: {"dtype": v["dtype"], "shape": tuple(v["shape"])} for k, v in header.items()}


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_run_dir(run_dir: str | Path, meta: dict[str, Any], tensors: dict[str, Tensor]) -> Path:
    """Write ``generator.safetensors`` and then ``generator.json`` (``meta`` plus the weights
    file's SHA-256), so that a weights file swapped for another run's is refused on load."""
    out = Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, out / WEIGHTS_FILE)
    meta = {**meta, WEIGHTS_DIGEST: file_sha256(out / WEIGHTS_FILE)}
    (out / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return out


def _expect(cond: bool, path: Path, what: str) -> None:
    if not cond:
        raise ValueError(f"{path}: {what}")


def check_meta(meta: Any, path: Path) -> None:
    """The structure and types of ``generator.json`` (what loading reads from it)."""
    _expect(
        isinstance(meta, dict) and meta.get("format") == FORMAT_VERSION,
        path, f"not a weightzoo generator file (format {FORMAT_VERSION})",
    )  # fmt: skip
    _expect(isinstance(meta.get("kind"), str), path, "'kind' must be a string")
    _expect(isinstance(meta.get("config"), dict), path, "'config' must be a table")
    ds = meta.get("dataset")
    _expect(isinstance(ds, dict), path, "'dataset' must be a table")
    types = {"groups": list, "data": dict, "prop_mean": (int, float), "prop_std": (int, float),
             "group_props": list, "train_origin": list, "heldout_origin": list}  # fmt: skip
    for key, tp in types.items():
        _expect(key in ds, path, f"dataset.{key} is missing")
        ok = isinstance(ds[key], tp) and not isinstance(ds[key], bool)
        _expect(ok, path, f"dataset.{key} has the wrong type ({type(ds[key]).__name__})")
    for key in ("prop_mean", "prop_std"):
        _expect(math.isfinite(ds[key]), path, f"dataset.{key} must be finite")
    for i, g in enumerate(ds["groups"]):
        ok = isinstance(g, dict) and isinstance(g.get("task"), str)
        ok = ok and isinstance(g.get("arch"), dict) and isinstance(g.get("sources"), list)
        _expect(ok, path, f"dataset.groups[{i}] must have a task, an arch table and sources")
    for key in ("train_origin", "heldout_origin"):
        for o in ds[key]:
            ok = isinstance(o, list) and len(o) == 2 and isinstance(o[0], str)
            ok = ok and isinstance(o[1], int) and not isinstance(o[1], bool)
            _expect(ok, path, f"dataset.{key} entries must be [population, row], got {o!r}")
    fp = ds.get("zoo_fingerprint", "")
    _expect(isinstance(fp, str), path, "dataset.zoo_fingerprint must be a string")
    if "calibration" in meta:
        _expect(isinstance(meta["calibration"], dict), path, "'calibration' must be a table")


def check_config_sizes(config: dict[str, Any], path: Path | str = "config") -> None:
    """Every field of :data:`SIZE_LIMITS` that ``config`` sets is a number within its limit."""
    for dotted, limit in SIZE_LIMITS.items():
        node: Any = config
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None or isinstance(node, bool) or not isinstance(node, int | float):
            continue  # absent, or of the wrong type: the config's own checks name it
        if not math.isfinite(node) or node > limit:
            raise ValueError(f"{path}: {dotted} = {node:g} is over its limit of {limit}")


def check_group_shapes(ds: dict[str, Any], header: dict[str, dict], path: Path) -> None:
    """Each group's saved training nets have as many columns as its architecture has
    parameters (counted on the meta device: a width set huge allocates nothing)."""
    from zoo.architectures import architecture_from_dict
    from zoo.spec_checks import count_params

    for g, group in enumerate(ds["groups"]):
        arch = architecture_from_dict(group["arch"])
        width = getattr(arch, "width", 1)
        if not isinstance(width, int) or isinstance(width, bool) or not 1 <= width <= 1 << 20:
            raise ValueError(f"{path}: dataset.groups[{g}] has width {width!r}")
        key = f"train_weights.{g}"
        if key in header:
            n = count_params(arch)
            got = header[key]["shape"]
            if len(got) != 2 or got[1] != n:
                raise ValueError(
                    f"{path}: group {g}'s training nets have shape {list(got)}, but its "
                    f"architecture has {n} parameters"
                )


def read_run_dir(run_dir: str | Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """(metadata, tensors) of a saved generator, or a FileNotFoundError / ValueError (one line)
    for anything missing, malformed, oversized or mismatched; see the module docstring."""
    d = Path(run_dir)
    if not d.is_dir():
        raise FileNotFoundError(f"generator run dir {d} does not exist")
    if not (d / CONFIG_FILE).is_file() or not (d / WEIGHTS_FILE).is_file():
        raise FileNotFoundError(
            f"{d} is not a weightzoo generator (expected {CONFIG_FILE} and {WEIGHTS_FILE}; "
            "train one with `zoo train-generator`)"
        )
    try:
        meta = json.loads((d / CONFIG_FILE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{d / CONFIG_FILE} is not valid JSON: {e}") from None
    check_meta(meta, d / CONFIG_FILE)
    check_config_sizes(meta["config"], d / CONFIG_FILE)
    header = safetensors_header(d / WEIGHTS_FILE)
    digest = meta.get(WEIGHTS_DIGEST)
    if digest is not None and digest != file_sha256(d / WEIGHTS_FILE):
        raise ValueError(
            f"{d / WEIGHTS_FILE} is not the weights file saved with {CONFIG_FILE} "
            "(its SHA-256 differs): the run dir was altered"
        )
    check_group_shapes(meta["dataset"], header, d / CONFIG_FILE)
    return meta, load_file(d / WEIGHTS_FILE)


def check_tensors(
    network_state: dict[str, Tensor], tensors: dict[str, Tensor], run_dir: str | Path,
    prefix: str = "net.",
) -> None:  # fmt: skip
    """The saved network tensors (``prefix`` + name) match the network the config builds
    (``network_state``, e.g. built on the meta device): the same names, shapes and dtypes;
    a ValueError naming the first difference."""
    saved = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    missing = sorted(set(network_state) - set(saved))
    extra = sorted(set(saved) - set(network_state))
    where = Path(run_dir) / WEIGHTS_FILE
    if missing or extra:
        what = f"missing {missing[0]!r}" if missing else f"unexpected {extra[0]!r}"
        raise ValueError(
            f"{where} does not match its config's network ({what}; "
            f"{len(missing)} missing, {len(extra)} unexpected tensors)"
        )
    for name, want in network_state.items():
        got = saved[name]
        if tuple(got.shape) != tuple(want.shape) or got.dtype != want.dtype:
            raise ValueError(
                f"{where}: tensor {name!r} is {tuple(got.shape)} {got.dtype}, its config's "
                f"network has {tuple(want.shape)} {want.dtype}"
            )
