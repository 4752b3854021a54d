"""Write and read generated populations: safetensors (one file) or Zarr (a directory), no pickle.

Both hold ``weights`` (n, N) float32, the conditioning tensors, and as metadata the
architecture, the layout and the task, so a file alone turns back into a
:class:`zoo.population.Population`.
"""

from __future__ import annotations

import json
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
