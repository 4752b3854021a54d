"""Lightning checkpoints as safetensors, not pickles: loading a checkpoint never runs code.

A checkpoint is a nested structure (dicts, lists, tuples, numbers, strings, tensors). Tensors go
into the safetensors file; the structure, with tensor placeholders, goes into its JSON metadata.
Anything else (an arbitrary Python object) is refused with the path to it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric.plugins.io.checkpoint_io import CheckpointIO
from safetensors import safe_open
from safetensors.torch import save_file

from generators.run_dir import safetensors_header

TREE_KEY = "weightzoo_tree"


def encode(obj: Any, tensors: dict[str, torch.Tensor], where: str = "") -> Any:
    """JSON-able form of ``obj``; tensors are moved into ``tensors`` under generated keys."""
    if isinstance(obj, torch.Tensor | np.ndarray):
        key = f"t{len(tensors)}"
        tensors[key] = torch.as_tensor(obj).detach().cpu().clone().contiguous()
        return {"__tensor__": key}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, dict):
        return {"__dict__": [[encode(k, tensors, where), encode(v, tensors, f"{where}.{k}")]
                             for k, v in obj.items()]}  # fmt: skip
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(
        f"checkpoint entry {where or 'root'} of type {type(obj).__name__} is not storable"
    )


def decode(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(decode(v, tensors) for v in obj["__tuple__"])
        return {_key(decode(k, tensors)): decode(v, tensors) for k, v in obj["__dict__"]}
    return obj


def _key(k: Any) -> Any:
    return tuple(k) if isinstance(k, list) else k


class SafetensorsCheckpointIO(CheckpointIO):
    """Lightning ``CheckpointIO`` writing one safetensors file per checkpoint."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path,
                        storage_options: Any | None = None) -> None:  # fmt: skip
        tensors: dict[str, torch.Tensor] = {}
        tree = encode(checkpoint, tensors)
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        save_file(tensors, tmp, metadata={TREE_KEY: json.dumps(tree)})
        tmp.replace(p)  # atomic: a killed run never leaves a half-written checkpoint

    def load_checkpoint(self, path: str | Path, map_location: Any | None = None,
                        weights_only: bool | None = None) -> dict[str, Any]:  # fmt: skip
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"checkpoint {p} does not exist")
        safetensors_header(p)  # a pickle, empty, truncated or garbage file: refused, not read
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
            if TREE_KEY not in meta:
                raise ValueError(f"{p} is not a weightzoo checkpoint")
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        return decode(json.loads(meta[TREE_KEY]), tensors)

    def remove_checkpoint(self, path: str | Path) -> None:
        Path(path).unlink(missing_ok=True)
