"""Per-group PCA of normalized weights, with a residual noise model for the orthogonal complement.

Large nets make a velocity MLP over the full vector expensive (its first and last layers are
``D x hidden``), so the flow can run on PCA coefficients instead: for every group (task x width)
the training models' normalized vectors are decomposed, and coefficient ``j`` of group ``g``
is the projection on its ``j``-th principal direction divided by that direction's std (unit
variance). Decoding maps coefficients back to the padded space.

The trap (see DeepWeightFlow): with as many components as training models, every decoded
sample lies in the span of the training set, and a flow that memorises its few coefficient
vectors returns near-copies. Real new models do not lie in that span: a held-out model keeps a
residual orthogonal to it. :class:`GroupPCA` measures that residual by leave-one-out (each
training model against the PCA of the others) and :meth:`GroupPCA.complement_noise` draws
isotropic noise of that size in the orthogonal complement, so samples leave the span the way
real models do (scaled by a sampling knob, 0 = stay in the span).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class GroupPCA:
    """basis: (G, k, D) orthonormal principal directions per group (zero rows past its rank);
    scale: (G, k) std of the training coefficients along them (0 past the rank);
    residual: (G,) per-coordinate std of the leave-one-out residual of the group's models."""

    basis: Tensor
    scale: Tensor
    residual: Tensor

    @classmethod
    def fit(
        cls, z: Tensor, group: Tensor, masks: Tensor, components: int, whiten: str = "group",
        ranks: Tensor | None = None, residual: bool = True,
    ) -> GroupPCA:  # fmt: skip
        """z: (M, D) normalized training vectors (mean 0 per group), group: (M,) -> per-group PCA
        with ``components`` directions, or ``ranks[g]`` (<= components) for group g.
        ``residual=False`` skips the leave-one-out residual (left at 0), the costly part, for a
        fit that only serves to choose the ranks."""
        n_groups, dim = masks.shape
        sizes = [int((group == g).sum()) for g in range(n_groups)]
        k = max(1, min(components, max(sizes) - 1)) if max(sizes) > 1 else 1
        basis = torch.zeros(n_groups, k, dim)
        scale = torch.zeros(n_groups, k)
        residuals = torch.zeros(n_groups)
        for g in range(n_groups):
            zg = z[group == g].double()  # (M_g, D)
            zg = zg - zg.mean(dim=0)
            _, s, vh = torch.linalg.svd(zg, full_matrices=False)
            kg = k if ranks is None else min(k, int(ranks[g]))
            r = min(kg, int((s > 1e-6 * s.max().clamp_min(1e-12)).sum()))
            basis[g, :r] = vh[:r].float()
            comp_std = s[:r] / max(len(zg) - 1, 1) ** 0.5
            scale[g, :r] = (
                comp_std.pow(2).mean().sqrt().float() if whiten == "group" else comp_std.float()
            )
            if residual:
                residuals[g] = loo_residual(zg, kg, int(masks[g].sum()))
        return cls(basis, scale, residuals)

    @property
    def components(self) -> int:
        return self.basis.shape[1]

    @property
    def component_mask(self) -> Tensor:
        """(G, k) bool: components that exist for each group."""
        return self.scale > 0

    def encode(self, z: Tensor, g: int) -> Tensor:
        """(B, D) normalized vectors of group g -> (B, k) unit-variance coefficients."""
        c = z @ self.basis[g].T  # (B, k)
        s = self.scale[g]
        return torch.where(s > 0, c / s.clamp_min(1e-12), 0.0)

    def decode(self, c: Tensor, g: int) -> Tensor:
        """(B, k) coefficients of group g -> (B, D) normalized vectors in the span."""
        return (c * self.scale[g]) @ self.basis[g]

    def complement_noise(self, n: int, g: int, mask: Tensor, generator: torch.Generator) -> Tensor:
        """(n, D) Gaussian noise of the group's residual std, orthogonal to its principal span."""
        eps = torch.randn(n, mask.shape[-1], generator=generator) * mask  # (n, D)
        eps = eps - (eps @ self.basis[g].T) @ self.basis[g]
        return eps * self.residual[g]

    def state_dict(self) -> dict[str, Tensor]:
        return {"pca.basis": self.basis, "pca.scale": self.scale, "pca.residual": self.residual}

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor]) -> GroupPCA:
        return cls(state["pca.basis"], state["pca.scale"], state["pca.residual"])


def loo_residual(zg: Tensor, k: int, real_dim: int) -> float:
    """Per-coordinate std of each model's residual against the PCA (k comps) of the others."""
    m = len(zg)
    if m < 3:
        return 0.0
    total = 0.0
    for i in range(m):
        others = torch.cat([zg[:i], zg[i + 1 :]])
        mu = others.mean(dim=0)
        _, s, vh = torch.linalg.svd(others - mu, full_matrices=False)
        r = min(k, int((s > 1e-6 * s.max().clamp_min(1e-12)).sum()))
        d = zg[i] - mu
        d = d - (d @ vh[:r].T) @ vh[:r]
        total += float(d.pow(2).sum())
    free = max(real_dim - min(k, m - 1), 1)
    return (total / m / free) ** 0.5


@dataclass
class FullSpace:
    """No projection: the flow runs on the full padded vector (masks: (G, D) real coordinates)."""

    masks: Tensor

    @property
    def components(self) -> int:
        return self.masks.shape[1]

    @property
    def component_mask(self) -> Tensor:
        return self.masks

    def encode(self, z: Tensor, g: int) -> Tensor:
        return z

    def decode(self, c: Tensor, g: int) -> Tensor:
        return c * self.masks[g]

    def complement_noise(self, n: int, g: int, mask: Tensor, generator: torch.Generator) -> Tensor:
        return torch.zeros(n, self.masks.shape[1])

    def state_dict(self) -> dict[str, Tensor]:
        return {}
