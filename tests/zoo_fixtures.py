"""Tiny zoos shared by the tests (fast on 2 cores): a spec for the store, build and CLI tests,
and directly trained moons MLP populations for the generator tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import Tensor

from zoo import MLP, Population, TrainConfig, get_task, train_population


def moons_mlp(width: int) -> MLP:
    """A 1-hidden-layer MLP for moons (2 inputs, 2 classes)."""
    return MLP(width=width, in_shape=(2,), num_outputs=2, depth=1)


def trained_moons(
    width: int, models: int, epochs: int = 1, seed_offset: int = 0, batch_size: int = 64
) -> tuple[MLP, Tensor]:
    """(arch, final weights (models, N)) of moons MLPs trained with SGD at learning rate 0.1 and
    no weight decay; model i has seed ``seed_offset + i``."""
    arch = moons_mlp(width)
    r = train_population(
        arch, get_task("moons"), TrainConfig(epochs=epochs, checkpoints=(epochs,)),
        np.arange(models) + seed_offset, np.full(models, 0.1), np.zeros(models),
        np.full(models, batch_size),
    )  # fmt: skip
    return arch, r.weights[:, -1]


def moons_populations(widths: tuple[int, ...] = (3, 5), models: int = 6) -> list[Population]:
    """One trained moons population per width (``models`` each, 2 epochs), named moons-wW."""
    return [
        Population(*trained_moons(w, models, epochs=2, seed_offset=10 * w), "moons", f"moons-w{w}")
        for w in widths
    ]


def tiny_spec_dict(**over: object) -> dict:
    """2 widths x 2 learning rates x 2 seeds of 1-hidden-layer MLPs on moons, 2 epochs."""
    d: dict = {
        "name": "tiny",
        "tasks": ["moons"],
        "architecture": {"family": "mlp", "depth": 1},
        "load": {"axis": "width", "values": [4, 8]},
        "temperature": {"axis": "learning_rate", "values": [0.05, 0.5]},
        "seeds": 2,
        "epochs": 2,
        "checkpoints": [0, 1, 2],
        "models_per_chunk": 2,
    }
    d.update(over)
    return d


def built_tiny_zoo(directory: str | Path, **over: object) -> str:
    """Build ``tiny_spec_dict(**over)`` in-process (no landscape metrics) into
    ``directory/zoo.zarr``; returns the store's path."""
    from pipelines.build import build_zoo
    from zoo.spec import ZooSpec

    path = str(Path(directory) / "zoo.zarr")
    build_zoo(ZooSpec.from_dict(tiny_spec_dict(**over)), path, workers=0, metrics=False)
    return path


def tiny_flow(max_steps: int, hidden: int = 32, **extra: object) -> dict[str, object]:
    """Dotted overrides of a tiny flow config for tests: ``max_steps`` steps of a velocity MLP
    of ``hidden`` units (batch size and conditioning width scale with it), plus ``extra``
    (dotted keys passed as a dict: ``**{"model.pca": 0}``)."""
    return {"training.max_steps": max_steps, "training.batch_size": hidden // 2,
            "model.hidden": hidden, "model.cond_dim": hidden // 2, **extra}  # fmt: skip
