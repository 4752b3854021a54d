"""The hypernetwork as one module: conditioning encoder + chunked head (saved by name)."""

from __future__ import annotations

from torch import Tensor, nn

from generators.hyper.config import HyperModelConfig
from generators.hyper.encoding import TaskEncoder
from generators.hyper.head import ChunkedHead


class HyperNetwork(nn.Module):
    """(scaled task parameters, task ids, width ids, noise) -> (B, D) padded weights.

    Every row is its own net: nothing mixes rows, so a batch of different tasks gives each task
    the weights it would get alone."""

    def __init__(
        self, theta0: Tensor, scale: Tensor, num_params: int, num_tasks: int,
        cfg: HyperModelConfig,
    ) -> None:  # fmt: skip
        super().__init__()
        self.encoder = TaskEncoder(
            num_params, num_tasks, theta0.shape[0], cfg.noise_dim, cfg.cond_dim, cfg.mip
        )
        self.head = ChunkedHead(
            theta0, scale, cfg.cond_dim, cfg.hidden, cfg.chunk_size, cfg.chunk_dim, cfg.delta_init
        )

    def forward(self, params: Tensor, task: Tensor | None, width: Tensor, noise: Tensor) -> Tensor:
        """params (B, K) scaled to [0, 1] over the training tasks; task (B,) long or None;
        width (B,) long; noise (B, noise_dim) -> (B, D)."""
        return self.head(self.encoder(params, task, width, noise), width)
