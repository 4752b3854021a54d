"""Task conditioning of the hypernetwork: a task's parameters, a learned per-task embedding, the
width, and the noise input, encoded into one vector.

Magnitude-invariant parametrization (MIP, Ortiz et al., ICLR 2024): every scalar input is first
scaled to [0, 1] and then entered as the pair [cos(pi z / 2), sin(pi z / 2)], whose norm is 1
whatever z is, so the encoder's input norm is constant and the first layer's pre-activation scale
does not depend on the task. Without MIP the scaled z enter as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn


def mip_encode(z: Tensor) -> Tensor:
    """(..., K) scalars, meant in [0, 1] -> (..., 2K) [cos(pi z / 2), sin(pi z / 2)] (pairs
    concatenated: all cosines, then all sines); every pair has norm 1."""
    angle = (math.pi / 2) * z
    return torch.cat([torch.cos(angle), torch.sin(angle)], dim=-1)


@dataclass(frozen=True)
class ParamScaler:
    """Task parameters -> [0, 1] by the range each spans over the training tasks.

    names: the parameters, sorted; low / high: (K,) their smallest and largest training values.
    A parameter with one training value maps to 0.5; held-out values outside the training range
    map outside [0, 1] (MIP's angle then lies beyond [0, pi / 2]: extrapolation, not clamping).
    """

    names: tuple[str, ...]
    low: Tensor
    high: Tensor

    @classmethod
    def fit(cls, params: list[dict[str, float]]) -> ParamScaler:
        names = tuple(sorted(params[0])) if params else ()
        table = torch.tensor([[p[k] for k in names] for p in params], dtype=torch.float32)
        table = table.reshape(len(params), len(names))
        return cls(names, table.min(dim=0).values, table.max(dim=0).values)

    def vector(self, params: dict[str, float], what: str) -> Tensor:
        """(K,) raw values of ``params`` in ``names`` order; a ValueError naming what is missing
        or unknown (``what``: the task, for the message)."""
        missing = [k for k in self.names if k not in params]
        extra = sorted(set(params) - set(self.names))
        if missing or extra:
            raise ValueError(
                f"cannot embed {what}: this hyper generator is conditioned on parameters "
                f"({', '.join(self.names)}), got ({', '.join(sorted(params)) or 'none'})"
            )
        return torch.tensor([float(params[k]) for k in self.names], dtype=torch.float32)

    def scale(self, raw: Tensor) -> Tensor:
        """(B, K) raw values -> (B, K) scaled: low -> 0, high -> 1."""
        span = self.high - self.low
        safe = torch.where(span > 0, span, torch.ones_like(span))
        return torch.where(span > 0, (raw - self.low) / safe, torch.full_like(raw, 0.5))

    def state_dict(self) -> dict[str, Tensor]:
        """One (2,) tensor [low, high] per parameter, its name in the key."""
        return {
            f"hyper.param.{k}": torch.stack([self.low[i], self.high[i]])
            for i, k in enumerate(self.names)
        }

    @classmethod
    def from_state_dict(cls, tensors: dict[str, Tensor]) -> ParamScaler:
        prefix = "hyper.param."
        names = tuple(sorted(k[len(prefix) :] for k in tensors if k.startswith(prefix)))
        pairs = [tensors[prefix + k] for k in names]
        low = torch.stack([p[0] for p in pairs]) if pairs else torch.zeros(0)
        high = torch.stack([p[1] for p in pairs]) if pairs else torch.zeros(0)
        return cls(names, low.float(), high.float())


class TaskEncoder(nn.Module):
    """(scaled task parameters, task id, width id, noise) -> (B, dim) conditioning vector.

    The scalar inputs (parameters in [0, 1] and noise in [0, 1]) go through an MLP, MIP-encoded
    if ``mip``; a learned embedding per width (structural: it picks the layout) and, with
    ``num_tasks`` > 0, a learned embedding per training task are added to its output.
    """

    def __init__(
        self, num_params: int, num_tasks: int, num_widths: int, noise_dim: int, dim: int,
        mip: bool,
    ) -> None:  # fmt: skip
        super().__init__()
        self.mip = mip
        self.num_params, self.noise_dim = num_params, noise_dim
        scalars = num_params + noise_dim
        self.mlp = (
            nn.Sequential(
                nn.Linear(scalars * (2 if mip else 1), dim), nn.GELU(), nn.Linear(dim, dim)
            )
            if scalars
            else None
        )
        self.task = nn.Embedding(num_tasks, dim) if num_tasks else None
        self.width = nn.Embedding(num_widths, dim)
        for emb in (self.task, self.width):
            if emb is not None:
                nn.init.normal_(emb.weight, std=0.5)

    def encode_scalars(self, params: Tensor, noise: Tensor) -> Tensor:
        """(B, K) scaled parameters, (B, noise_dim) noise -> (B, S) the MLP's input."""
        z = torch.cat([params, noise], dim=-1)
        return mip_encode(z) if self.mip else z

    def forward(self, params: Tensor, task: Tensor | None, width: Tensor, noise: Tensor) -> Tensor:
        """params (B, K) scaled; task (B,) long or None (tasks without an embedding); width (B,)
        long; noise (B, noise_dim) in [0, 1] -> (B, dim)."""
        out = self.width(width)
        if self.mlp is not None:
            out = out + self.mlp(self.encode_scalars(params, noise))
        if self.task is not None:
            if task is None:
                raise ValueError("this hyper generator embeds training tasks only: pass a task id")
            out = out + self.task(task)
        return out
