"""Fixed-step ODE integrators for sampling a flow: Euler, Heun (2nd order), RK4 (4th order).

All integrate ``dx/dt = v(x, t)`` from t = 0 to t = 1 over a whole batch at once; the number of
velocity evaluations is ``steps`` (Euler), ``2 * steps`` (Heun) or ``4 * steps`` (RK4).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Velocity = Callable[[Tensor, Tensor], Tensor]  # (x (B, D), t (B,)) -> (B, D)
SOLVERS = ("euler", "heun", "rk4")
EVALS_PER_STEP = {"euler": 1, "heun": 2, "rk4": 4}


@torch.no_grad()
def integrate(v: Velocity, x0: Tensor, steps: int, solver: str = "heun") -> Tensor:
    """x(1) from x(0) = x0 (B, D) with ``steps`` equal steps of ``solver``."""
    if solver not in SOLVERS:
        raise ValueError(f"unknown ODE solver {solver!r} ({', '.join(SOLVERS)})")
    if steps < 1:
        raise ValueError(f"the ODE needs at least one step, got {steps}")
    x, h = x0, 1.0 / steps
    ones = x0.new_ones(len(x0))
    for i in range(steps):
        t = ones * (i * h)
        if solver == "euler":
            x = x + h * v(x, t)
        elif solver == "heun":
            k1 = v(x, t)
            k2 = v(x + h * k1, t + h)
            x = x + 0.5 * h * (k1 + k2)
        else:
            k1 = v(x, t)
            k2 = v(x + 0.5 * h * k1, t + 0.5 * h)
            k3 = v(x + 0.5 * h * k2, t + 0.5 * h)
            k4 = v(x + h * k3, t + h)
            x = x + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x
