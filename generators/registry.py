"""Generator kinds by name, for loading saved run dirs and for the CLI.

A new kind subclasses :class:`generators.base.WeightGenerator` and adds its class to
``GENERATORS``; the CLI, ``zoo demo`` and ``benchmarks/generators.py`` then offer it.
"""

from __future__ import annotations

from pathlib import Path

from generators.base import WeightGenerator
from generators.config import GeneratorConfig
from generators.diffusion import DiffusionGenerator
from generators.flow import FlowGenerator
from generators.gaussian import GaussianGenerator
from generators.hyper import HyperGenerator
from generators.neumeta import NeuMetaGenerator
from generators.run_dir import read_run_dir

GENERATORS: dict[str, type[WeightGenerator]] = {
    cls.kind: cls
    for cls in (
        FlowGenerator,
        GaussianGenerator,
        HyperGenerator,
        NeuMetaGenerator,
        DiffusionGenerator,
    )
}


def generator_class(kind: str) -> type[WeightGenerator]:
    if kind not in GENERATORS:
        raise ValueError(f"unknown generator kind {kind!r} (known: {', '.join(GENERATORS)})")
    return GENERATORS[kind]


def make_generator(
    kind: str, config: GeneratorConfig | str | Path | None = None
) -> WeightGenerator:
    """A fresh generator of ``kind``, with its default config, a config object or a config file."""
    cls = generator_class(kind)
    if isinstance(config, str | Path):
        config = cls.config_class.load(config)
    return cls(config)


def load_generator(run_dir: str | Path) -> WeightGenerator:
    """The trained generator saved in ``run_dir`` (``generator.json`` + ``generator.safetensors``)."""
    meta, tensors = read_run_dir(run_dir)  # clear errors for a missing or foreign directory
    return generator_class(meta["kind"]).from_saved(meta, tensors, run_dir)
