"""Write and read generated populations: safetensors (one file) or Zarr (a directory), no pickle.

Both hold ``weights`` (n, N) float32, the conditioning tensors, and as metadata the
architecture, the layout and the task, so a file alone turns back into a
:class:`zoo.population.Population`. :func:`stream_population` writes a large draw to Zarr chunk
by chunk (memory bounded whatever the number of nets), after :func:`check_free_disk`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from zoo.architectures import architecture_from_dict
from zoo.population import Population

FORMATS = (".safetensors", ".zarr")


def _meta(pop: Population) -> dict:
    return {"arch": pop.arch.to_dict(), "layout": pop.layout.to_dict(), "task": pop.task,
            "name": pop.name}  # fmt: skip


def save_population(pop: Population, path: str | Path) -> Path:
    """Write ``pop`` to ``path`` ending in .safetensors or .zarr."""
    p = Path(path)
    if p.suffix not in FORMATS:
        raise ValueError(f"output {p} must end in .safetensors or .zarr")
    p.parent.mkdir(parents=True, exist_ok=True)
    tensors = {"weights": pop.weights().float().contiguous()}
    tensors.update({f"conditioning.{k}": torch.as_tensor(v).contiguous()
                    for k, v in pop.conditioning.items()})  # fmt: skip
    if p.suffix == ".safetensors":
        save_file(tensors, p, metadata={"weightzoo_population": json.dumps(_meta(pop))})
        return p
    import zarr

    g = zarr.open_group(str(p), mode="w")
    for name, t in tensors.items():
        g.create_array(name, data=t.numpy())
    g.attrs["weightzoo_population"] = _meta(pop)
    return p


def load_population(path: str | Path) -> Population:
    """Read a population written by :func:`save_population`."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"population file {p} does not exist")
    if p.suffix == ".safetensors":
        with safe_open(str(p), framework="pt") as f:
            meta = (f.metadata() or {}).get("weightzoo_population")
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        if meta is None:
            raise ValueError(f"{p} is not a weightzoo population file")
        meta = json.loads(meta)
    elif p.suffix == ".zarr":
        import zarr

        g = zarr.open_group(str(p), mode="r")
        if "weightzoo_population" not in g.attrs:
            raise ValueError(f"{p} is not a weightzoo population store")
        meta = dict(g.attrs["weightzoo_population"])
        tensors = {k: torch.from_numpy(np.asarray(g[k][:])) for k in g.array_keys()}
    else:
        raise ValueError(f"population file {p} must end in .safetensors or .zarr")
    cond = {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith("conditioning.")}
    arch = architecture_from_dict(meta["arch"])
    return Population(arch, tensors["weights"], meta["task"], meta["name"], cond)


# floats per sampled chunk (64 MiB of weights): what streaming holds in memory at a time
STREAM_FLOATS = 1 << 24


def stream_rows(num_params: int, n: int) -> int:
    """Nets per chunk when streaming ``n`` nets of ``num_params`` parameters."""
    return max(1, min(n, STREAM_FLOATS // max(1, num_params)))


def chunk_seed(seed: int, index: int) -> int:
    """The sampling seed of chunk ``index`` of a streamed draw: chunk 0 uses ``seed`` itself (a
    draw that fits one chunk equals ``sample(n, seed=seed)``), later chunks a derived one."""
    return seed if index == 0 else (seed * 1_000_003 + index * 7_919) % (2**63 - 1)


def output_bytes(n: int, num_params: int) -> int:
    """Bytes of ``n`` nets' float32 weights (the bulk of a population file)."""
    return 4 * n * num_params


def check_free_disk(path: str | Path, needed: int) -> None:
    """A ValueError with both sizes if ``needed`` bytes do not fit the free disk at ``path``."""
    import shutil

    p = Path(path).absolute()
    existing = next(q for q in (p, *p.parents) if q.exists())
    free = shutil.disk_usage(existing).free
    if needed > free:
        raise ValueError(
            f"output {p} needs about {needed / 2**30:.2f} GiB but only {free / 2**30:.2f} GiB "
            f"are free on {existing}; sample fewer nets (--n) or write elsewhere"
        )


def stream_population(
    path: str | Path, n: int, draw: Callable[[int, int], Population], rows: int
) -> Population:
    """Write ``n`` nets to a ``.zarr`` store ``rows`` at a time, so memory stays bounded
    whatever ``n``: ``draw(count, index)`` returns chunk ``index`` (``count`` nets). Returns
    the first chunk (for its architecture and task); the file reads back with
    :func:`load_population` as if written whole."""
    import zarr

    p = Path(path)
    if p.suffix != ".zarr":
        raise ValueError(f"streamed output {p} must end in .zarr")
    g = zarr.open_group(str(p), mode="w")
    first = None
    for index, a in enumerate(range(0, n, rows)):
        pop = draw(min(rows, n - a), index)
        w = pop.weights().float()
        tensors = {"weights": w}
        tensors.update(
            {f"conditioning.{k}": torch.as_tensor(v) for k, v in pop.conditioning.items()}
        )
        if first is None:
            first = pop
            for name, t in tensors.items():
                g.create_array(name, shape=(n, *t.shape[1:]), dtype=t.numpy().dtype,
                               chunks=(rows, *t.shape[1:]))  # fmt: skip
            g.attrs["weightzoo_population"] = _meta(pop)
        for name, t in tensors.items():
            g[name][a : a + len(w)] = t.contiguous().numpy()
    return first
