"""Canonicalization methods behind one interface, chosen by name on the command line.

A method turns one model (and, for alignment methods, a reference) into a
:class:`~canonicalize.permutation.Permutation`. Alignment methods bring models close to a shared
reference (weight matching, TransFusion); smoothing orders each model on its own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from canonicalize.permutation import Permutation
from canonicalize.smoothing import smooth
from canonicalize.transfusion import transfusion
from canonicalize.weight_matching import weight_matching
from zoo.architectures import Architecture


class Canonicalizer(ABC):
    """Chooses the permutation of one model (flat (N,)), given a reference (N,) if it needs one."""

    name: ClassVar[str]
    needs_reference: ClassVar[bool] = True

    @abstractmethod
    def permutation(self, arch: Architecture, w: Tensor, reference: Tensor | None) -> Permutation:
        """The permutation that canonicalizes ``w``."""


@dataclass(frozen=True)
class WeightMatching(Canonicalizer):
    """Git Re-Basin weight matching to the reference."""

    name: ClassVar[str] = "weight-matching"
    seed: int = 0
    residual: bool = False
    max_iter: int = 100

    def permutation(self, arch: Architecture, w: Tensor, reference: Tensor | None) -> Permutation:
        assert reference is not None
        return weight_matching(arch, reference, w, self.seed, self.residual, self.max_iter)


@dataclass(frozen=True)
class TransFusion(Canonicalizer):
    """Head-aware matching (TransFusion) to the reference; weight matching without attention."""

    name: ClassVar[str] = "transfusion"
    seed: int = 0
    residual: bool = False
    max_iter: int = 100

    def permutation(self, arch: Architecture, w: Tensor, reference: Tensor | None) -> Permutation:
        assert reference is not None
        return transfusion(arch, reference, w, self.seed, self.residual, self.max_iter)


@dataclass(frozen=True)
class Smoothing(Canonicalizer):
    """NeuMeta smoothing order of each model on its own (no reference)."""

    name: ClassVar[str] = "smooth"
    needs_reference: ClassVar[bool] = False

    def permutation(self, arch: Architecture, w: Tensor, reference: Tensor | None) -> Permutation:
        return smooth(arch, w)


METHODS: tuple[type[Canonicalizer], ...] = (WeightMatching, TransFusion, Smoothing)
METHOD_NAMES = tuple(m.name for m in METHODS)


def method_from_name(name: str, seed: int = 0, residual: bool = False) -> Canonicalizer:
    """``weight-matching`` | ``transfusion`` | ``smooth`` -> a configured method."""
    if name == Smoothing.name:
        return Smoothing()
    for m in (WeightMatching, TransFusion):
        if name == m.name:
            return m(seed=seed, residual=residual)
    raise ValueError(f"unknown canonicalization method {name!r} ({', '.join(METHOD_NAMES)})")
