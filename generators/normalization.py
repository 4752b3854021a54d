"""Per-parameter normalization of padded weight vectors, one set of statistics per group.

Weights of different layers differ in scale by orders of magnitude, and every group (task x
width) has its own distribution, so a generator works on standardized vectors:
``z = (w - mean[g]) / std[g]`` on the group's real coordinates, 0 on its padding.

``coordinate`` (the default) takes the mean and std of every single weight over the group's
training models. On canonical weights the mean is the "average aligned network" and a
generator only has to learn the deviations around it; with few models per group the std is
noisy, so it is floored at ``STD_FLOOR`` times the std of its whole parameter tensor.
``tensor`` takes one mean and std per parameter tensor (the usual choice for raw weights,
whose coordinates have no shared meaning across models).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from zoo.layout import Layout

STD_FLOOR = 0.05
EPS = 1e-8


@dataclass
class Normalizer:
    """mean, std: (G, D) statistics per group; masks: (G, D) bool real coordinates per group."""

    mean: Tensor
    std: Tensor
    masks: Tensor

    @classmethod
    def fit(
        cls, weights: Tensor, group: Tensor, masks: Tensor, union: Layout, kind: str
    ) -> Normalizer:
        """weights (M, D) padded training weights, group (M,) long -> statistics per group."""
        n_groups, dim = masks.shape
        mean = torch.zeros(n_groups, dim)
        std = torch.ones(n_groups, dim)
        for g in range(n_groups):
            rows = weights[group == g].double()  # (M_g, D)
            if len(rows) == 0:
                raise ValueError(f"group {g} has no training models to normalize with")
            for a, b in union.offsets.values():
                sub = rows[:, a:b]  # (M_g, size)
                real = masks[g, a:b]
                tensor_mean = sub[:, real].mean()
                tensor_std = sub[:, real].std(unbiased=False).clamp_min(EPS)
                if kind == "tensor":
                    mean[g, a:b] = tensor_mean.float()
                    std[g, a:b] = tensor_std.float()
                elif kind == "coordinate":
                    mean[g, a:b] = sub.mean(dim=0).float()
                    coord_std = sub.std(dim=0, unbiased=False) if len(sub) > 1 else tensor_std
                    std[g, a:b] = torch.maximum(coord_std, STD_FLOOR * tensor_std).float()
                elif kind == "robust":
                    med = sub.median(dim=0).values
                    mad = (sub - med).abs().median(dim=0).values * 1.4826
                    tmad = (sub[:, real] - sub[:, real].median()).abs().median() * 1.4826
                    mean[g, a:b] = med.float()
                    std[g, a:b] = torch.maximum(mad, STD_FLOOR * tmad.clamp_min(EPS)).float()
                else:
                    raise ValueError(f"unknown normalization {kind!r} (coordinate, tensor)")
        mean[~masks] = 0.0
        std[~masks] = 1.0
        return cls(mean, std, masks)

    def normalize(self, weights: Tensor, group: Tensor) -> Tensor:
        """(M, D) padded weights of groups (M,) -> (M, D) standardized, 0 on padding."""
        z = (weights - self.mean[group]) / self.std[group]
        return z * self.masks[group]

    def denormalize(self, z: Tensor, group: Tensor) -> Tensor:
        """Inverse of :meth:`normalize` on real coordinates; padding becomes 0."""
        return (z * self.std[group] + self.mean[group]) * self.masks[group]

    def denormalize_layout(self, z: Tensor, g: int, index: Tensor) -> Tensor:
        """(M, D) standardized vectors, all of group ``g`` -> (M, N_g) weights in the group's own
        layout (``index``: its N_g coordinates in the padded vector, ``PaddedLayout.indices``).
        Equals ``crop(denormalize(z, full(M, g)))`` without building (M, D) copies of the
        statistics: sampling many nets of one group is then a gather and two passes."""
        return z[:, index] * self.std[g, index] + self.mean[g, index]

    def state_dict(self) -> dict[str, Tensor]:
        return {"norm.mean": self.mean, "norm.std": self.std, "norm.masks": self.masks}

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor]) -> Normalizer:
        return cls(state["norm.mean"], state["norm.std"], state["norm.masks"].bool())
