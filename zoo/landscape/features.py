"""Penultimate features (the input of the classification head) of a population, batched.

A separate, read-only path: a copy of the architecture's module with its head replaced by the
identity, evaluated with the population's weights through ``vmap`` + ``functional_call``. The
architectures themselves are not changed.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from zoo.architectures import CNN, MLP, Architecture, Transformer

HEADS: dict[type[Architecture], str] = {MLP: "out", CNN: "head", Transformer: "head"}


def has_features(arch: Architecture) -> bool:
    """Whether :func:`penultimate_features` knows the head of this architecture family."""
    return type(arch) in HEADS


@lru_cache(maxsize=32)
def _headless(arch: Architecture) -> nn.Module:
    module = arch.build().requires_grad_(False)
    setattr(module, HEADS[type(arch)], nn.Identity())
    return module


@torch.no_grad()
def penultimate_features(arch: Architecture, weights: Tensor, x: Tensor) -> Tensor:
    """weights (P, N), x (B, *input_shape) shared -> (P, B, F) features entering the head."""
    if not has_features(arch):
        raise ValueError(f"no penultimate features defined for architecture {arch.family!r}")
    head = HEADS[type(arch)] + "."
    params = {n: t for n, t in arch.layout.unflatten(weights).items() if not n.startswith(head)}
    template = _headless(arch)
    if next(template.parameters()).device != weights.device:
        template = template.to(weights.device)

    def one(p: dict[str, Tensor]) -> Tensor:
        return functional_call(template, p, (x,))

    return vmap(one)(params)
