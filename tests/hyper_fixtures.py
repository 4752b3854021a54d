"""Tiny in-memory zoos for the hyper generator tests: random nets of a few tasks and widths
(the hypernetwork trains on the tasks' own loss, so the zoo's nets need not be trained)."""

from __future__ import annotations

import torch

from generators import DataConfig, WeightDataset
from generators.hyper import HyperConfig, HyperGenerator
from zoo import Population
from zoo.architectures import CNN, MLP, Architecture, Transformer

SINUSOIDS = ("sinusoid:amplitude=1,phase=0", "sinusoid:amplitude=2,phase=1",
             "sinusoid:amplitude=3,phase=2")  # fmt: skip


def family_zoo(family: str) -> tuple[list[Architecture], tuple[str, ...]]:
    """Two widths of one architecture family and the tasks it runs on."""
    if family == "mlp":
        return [MLP(width=w, in_shape=(1,), num_outputs=1, depth=2) for w in (3, 5)], SINUSOIDS
    if family == "cnn":
        return [CNN(width=w, in_shape=(1, 8, 8), num_outputs=10, depth=2) for w in (2, 3)], (
            "digits",
        )
    arch = [Transformer(width=w, vocab=12, seq_len=3, num_outputs=11, heads=2) for w in (4, 6)]
    return arch, ("modadd:p=11",)


def dataset(archs: list[Architecture], tasks: tuple[str, ...], models: int = 3) -> WeightDataset:
    pops = []
    for a in archs:
        for i, t in enumerate(tasks):
            w = a.init_weights(list(range(10 * i, 10 * i + models)))
            pops.append(Population(a, w, t, f"{t}-w{a.width}"))
    return WeightDataset.from_populations(pops, DataConfig(property="", heldout=0.0))


def trained(
    ds: WeightDataset, steps: int = 2, **over: object
) -> tuple[HyperGenerator, list[float]]:
    cfg = HyperConfig().with_overrides({
        "training.max_steps": steps, "training.batch_size": 6, "objective.examples": 8,
        "model.cond_dim": 16, "model.hidden": 32, "model.chunk_size": 32, "model.chunk_dim": 8,
        "model.delta_init": 0.5, **over,
    })  # fmt: skip
    gen = HyperGenerator(cfg)
    return gen, gen.fit(ds)


def generate(gen: HyperGenerator, task: str, width: int, noise: torch.Tensor) -> torch.Tensor:
    """(n, N) weights of ``task`` at ``width`` for the noise rows (n, noise_dim), through the
    network directly."""
    info = gen.require_info()
    t = info.tasks.index(task)
    w = info.widths.index(width)
    n = len(noise)
    ids = None if gen.conditioned_on_params else torch.full((n,), t)
    theta = gen.generate(gen.task_table[t].expand(n, -1), ids, torch.full((n,), w), noise)
    return info.padded.crop(theta, gen.width_groups()[w])
