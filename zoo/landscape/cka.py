"""Linear CKA (Kornblith et al. 2019) between two sets of representations of the same inputs.

``CKA(X, Y) = ||Y_c^T X_c||_F^2 / (||X_c^T X_c||_F ||Y_c^T Y_c||_F)`` with column-centred
``X_c, Y_c``. It is 1 for identical representations, invariant to orthogonal transforms and
isotropic scaling of either side, and near 0 for independent random ones (about d / n).
"""

from __future__ import annotations

import torch
from torch import Tensor


def linear_cka(x: Tensor, y: Tensor) -> Tensor:
    """Batched linear CKA: x (..., n, d1), y (..., n, d2) -> (...).

    Computed in float64 through the Gram-free form (d x d cross-covariances), which is cheap
    when the feature dimensions are small next to the number of inputs. A constant
    representation (zero variance) gives NaN.
    """
    if x.shape[:-1] != y.shape[:-1]:
        raise ValueError(
            f"representations must share leading and input axes, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    x = x.to(torch.float64)
    y = y.to(torch.float64)
    x = x - x.mean(dim=-2, keepdim=True)
    y = y - y.mean(dim=-2, keepdim=True)
    xy = (y.transpose(-1, -2) @ x).square().sum(dim=(-2, -1))
    xx = (x.transpose(-1, -2) @ x).square().sum(dim=(-2, -1)).sqrt()
    yy = (y.transpose(-1, -2) @ y).square().sum(dim=(-2, -1)).sqrt()
    denom = xx * yy
    return torch.where(denom > 0, xy / denom.clamp_min(1e-300), torch.nan).to(torch.float32)
