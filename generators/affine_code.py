"""Samples that are an affine function of a short code: ``weights = offset + code @ basis``.

A flow over per-group principal components decodes every draw this way (the PCA decode and the
de-standardization fused). Knowing it lets work that needs only inner products with the weights,
such as the search for each candidate's nearest training net in best-of-k sampling, run on the
(m, K) codes instead of the (m, N) weights: with K of a few dozen at most and N up to 26,122 on
the default zoo, that search stops reading every candidate's weights a second time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class AffineCode:
    """offset: (N,) weights of the zero code; basis: (K, N) what each code unit adds."""

    offset: Tensor
    basis: Tensor

    def __post_init__(self) -> None:
        if self.offset.dim() != 1 or self.basis.dim() != 2:
            raise ValueError(
                f"an affine code needs an (N,) offset and a (K, N) basis, got shapes "
                f"{tuple(self.offset.shape)} and {tuple(self.basis.shape)}"
            )
        if self.basis.shape[1] != self.offset.shape[0]:
            raise ValueError(
                f"offset has {self.offset.shape[0]} weights, basis rows {self.basis.shape[1]}"
            )

    @property
    def dim(self) -> int:
        """K, the length of a code."""
        return self.basis.shape[0]

    def decode(self, codes: Tensor, out: Tensor | None = None) -> Tensor:
        """(m, K) codes -> (m, N) weights, in one addmm; ``out``: an (m, N) tensor to write to."""
        return torch.addmm(self.offset, codes, self.basis, out=out)

    def dots(self, reference: Tensor) -> tuple[Tensor, Tensor]:
        """(offset . r (R,), basis @ r (K, R)) for the rows r of reference (R, N): with them,
        ``decode(c) @ reference.T`` is ``offset_dots + c @ basis_dots``, an (m, K) x (K, R)
        product."""
        return self.offset @ reference.T, self.basis @ reference.T
