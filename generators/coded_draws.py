"""An optional capability of a generator kind: draws that are an affine function of a short code.

A kind whose draws decode as ``offset + code @ basis`` (the flow and the Gaussian on per-group
principal components) offers it by subclassing :class:`CodedDraws` next to
:class:`generators.base.WeightGenerator`. Sampling strategies use it when it is there: best-of-k
measures its candidates from their codes (:class:`generators.coded_forward.CodedForward`) and
searches the nearest training net on the codes, decoding only the kept nets. Nothing else
depends on it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor

from generators.affine_code import AffineCode
from generators.conditions import Request


class CodedDraws(ABC):
    """Draws with a code: :meth:`affine_code` says how they decode (None for options where they
    do not), :meth:`sample_codes` draws codes only, and :meth:`sample_coded` draws weights and
    writes their codes; all three draw the same nets from the same rng."""

    @abstractmethod
    def affine_code(self, request: Request, **options: Any) -> AffineCode | None:
        """How the draws of ``request`` under ``options`` decode from their codes, or None."""

    @abstractmethod
    def sample_codes(
        self, n: int, request: Request, rng: torch.Generator, **options: Any
    ) -> Tensor:
        """(n, K) the codes of the draws ``_sample`` makes with the same rng, not decoded (a
        ValueError where :meth:`affine_code` is None)."""

    @abstractmethod
    def sample_coded(
        self, n: int, request: Request, rng: torch.Generator, out: Tensor | None,
        codes: Tensor, **options: Any,
    ) -> Tensor:  # fmt: skip
        """``_sample``'s (n, N) weights, writing their (n, K) codes into ``codes``."""


def affine_code_of(generator: object, request: Request, **options: Any) -> AffineCode | None:
    """The draws' affine code where ``generator`` offers the capability and these options have
    one; None otherwise."""
    if isinstance(generator, CodedDraws):
        return generator.affine_code(request, **options)
    return None
