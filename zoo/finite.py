"""Finiteness checks of weight matrices (diverged models, bad input), fast on the CPU.

torch's ``isfinite`` builds full-size float and bool temporaries with OpenMP threads (14 ms for a
64 x 85k matrix on 2 cores); numpy's runs in one pass (1.4 ms). GPU tensors stay on torch.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def _numpy_view(w: Tensor) -> np.ndarray | None:
    """A zero-copy numpy view of a CPU tensor numpy can read, else None."""
    if w.device.type != "cpu" or w.dtype == torch.bfloat16:
        return None
    return w.detach().numpy()


def all_finite(w: Tensor) -> bool:
    """Whether every entry of w is finite (no NaN, no inf)."""
    view = _numpy_view(w)
    return bool(np.isfinite(view).all()) if view is not None else bool(torch.isfinite(w).all())


def finite_rows(w: Tensor) -> Tensor:
    """(P,) bool on w's device: whether each row of w (P, ...) is entirely finite."""
    view = _numpy_view(w)
    if view is None:
        return torch.isfinite(w).flatten(1).all(dim=1)
    return torch.from_numpy(np.isfinite(view.reshape(len(view), -1)).all(axis=1))
