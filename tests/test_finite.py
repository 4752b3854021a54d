"""Finiteness checks: the numpy fast path on the CPU equals torch.isfinite, for every dtype."""

from __future__ import annotations

import pytest
import torch

from zoo.finite import all_finite, finite_rows


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_finite_rows_and_all_finite_equal_torch(dtype: torch.dtype) -> None:
    w = torch.randn(5, 3, 4).to(dtype)
    w[1, 2, 3] = float("nan")
    w[3, 0, 0] = float("inf")
    w[4, 1, 1] = -float("inf")
    want = torch.isfinite(w).flatten(1).all(dim=1)
    assert torch.equal(finite_rows(w), want)
    assert finite_rows(w).tolist() == [True, False, True, False, False]
    assert not all_finite(w)
    assert all_finite(w[[0, 2]])
    assert all_finite(w[0, :, 1:].T)  # a strided view
