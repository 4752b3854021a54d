"""GaussianGenerator: the floor every learned kind must beat.

For each (task, width) group, the training nets' canonical weights are normalized and projected
on the group's principal components exactly as the flow does (:class:`GroupPCA`, ranks by
:func:`choose_ranks`); a Gaussian with a shrunk full covariance is fitted to those codes, in
closed form, and sampled. Conditioned on nothing but the group. Its draws are an affine function
of a short code, so best-of-k runs its candidates from their codes (:class:`CodedDraws`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from generators.affine_code import AffineCode
from generators.base import ExtraNets, WeightGenerator
from generators.coded_draws import CodedDraws
from generators.conditions import Request
from generators.config import with_options
from generators.dataset import WeightDataset
from generators.flow.generator import pca_code
from generators.flow.projection import GroupPCA
from generators.flow.rank import choose_ranks
from generators.gaussian.config import GaussianConfig, GaussianSamplingConfig


def shrunk_covariance(x: Tensor, shrinkage: float) -> Tensor:
    """(K, K) covariance of rows x (M, K): (1 - a) S + a (tr S / K) I, S the unbiased sample
    covariance (zero for a single row)."""
    k = x.shape[1]
    xc = x - x.mean(dim=0)
    s = xc.T @ xc / max(len(x) - 1, 1)  # (K, K)
    return (1 - shrinkage) * s + shrinkage * (torch.trace(s) / k) * torch.eye(k, dtype=x.dtype)


class GaussianNetwork(nn.Module):
    """Per group: mean (G, K) and lower Cholesky factor (G, K, K) of the codes' Gaussian (zero
    rows and columns past the group's rank). Buffers: nothing is trained by gradient."""

    def __init__(self, groups: int, components: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(groups, components))
        self.register_buffer("chol", torch.zeros(groups, components, components))


class GaussianGenerator(WeightGenerator, CodedDraws):
    """See the module docstring. ``config``: :class:`GaussianConfig`."""

    kind = "gaussian"
    config_class = GaussianConfig
    config: GaussianConfig
    accepts = frozenset({"task", "width"})
    iterative = False

    def __init__(self, config: GaussianConfig | None = None) -> None:
        super().__init__(config)
        self._net: GaussianNetwork | None = None
        self.space: GroupPCA | None = None
        self._codes: Tensor | None = None  # (M, K) training codes, for training_loss
        self._groups: Tensor | None = None  # (M,) their groups

    @property
    def network(self) -> GaussianNetwork:
        if self._net is None:
            raise ValueError("this gaussian generator is not fitted yet: call fit() first")
        return self._net

    def _prepare(self, dataset: WeightDataset, extra: ExtraNets | None = None) -> None:
        cfg = self.config.model
        rows = dataset.train_index
        z, group = dataset.normalized[rows], dataset.group[rows]
        masks = dataset.padded.masks
        ranks = None
        if cfg.pca_max_drop is not None:  # the flow's per-group ranks
            probe = GroupPCA.fit(z, group, masks, cfg.pca, "group", residual=False)
            ranks = choose_ranks(dataset, probe, cfg.pca_max_drop)
        self.space = GroupPCA.fit(z, group, masks, cfg.pca, "group", ranks, residual=False)
        if extra is not None:
            z = torch.cat([z, dataset.normalizer.normalize(extra.weights, extra.group)])
            group = torch.cat([group, extra.group])
        codes = torch.zeros(len(z), self.space.components)  # (M, K)
        for g in group.unique().tolist():
            codes[group == g] = self.space.encode(z[group == g], g)
        self._codes, self._groups = codes, group
        net = GaussianNetwork(len(dataset.groups), self.space.components)
        for g in range(len(dataset.groups)):
            active = self.space.component_mask[g]  # (K,)
            x = codes[group == g][:, active].double()  # (M_g, r)
            if len(x) == 0 or not active.any():
                continue
            cov = shrunk_covariance(x, cfg.shrinkage)
            cov = cov + 1e-9 * torch.eye(len(cov), dtype=cov.dtype)  # a net alone: S = 0
            idx = active.nonzero().squeeze(1)
            net.mean[g, idx] = x.mean(dim=0).float()
            net.chol[g, idx[:, None], idx[None, :]] = torch.linalg.cholesky(cov).float()
        self._net = net

    def _restore(self, tensors: dict[str, Tensor]) -> None:
        self.space = GroupPCA.from_state_dict(tensors)
        self._net = GaussianNetwork(len(self.require_info().groups), self.space.components)

    def extra_tensors(self) -> dict[str, Tensor]:
        return self.space.state_dict() if self.space is not None else {}

    def training_loss(self, index: Tensor, rng: torch.Generator) -> Tensor:
        """Mean negative log-likelihood (per active component) of the training codes ``index``
        under their group's fitted Gaussian: a diagnostic (the fit is closed form)."""
        if self._codes is None:
            raise ValueError("training_loss needs a prepared generator (prepare or fit)")
        x, g = self._codes[index], self._groups[index]  # (B, K), (B,)
        net = self.network
        total = x.new_zeros(())
        for gi in g.unique().tolist():
            active = self.space.component_mask[gi]
            chol = net.chol[gi][active][:, active]  # (r, r)
            d = (x[g == gi][:, active] - net.mean[gi, active]).T  # (r, b)
            white = torch.linalg.solve_triangular(chol, d, upper=False)
            nll = 0.5 * white.pow(2).sum(dim=0) + chol.diagonal().log().sum()
            total = total + (nll / active.sum()).sum()
        return total / len(index)

    # ----- sampling -----------------------------------------------------------------------
    def _sampling(self, options: dict[str, Any]) -> GaussianSamplingConfig:
        """The preset's sampling settings with ``options`` applied (a ValueError naming
        unknown ones)."""
        return with_options(self.config.sampling, options, self.kind)

    def check_sample_options(self, options: dict[str, Any]) -> None:
        self._sampling(options)

    def affine_code(self, request: Request, **options: Any) -> AffineCode | None:
        self._sampling(options)
        return self._code(request)

    def _code(self, request: Request) -> AffineCode:
        """Decodes the draws of ``request``'s group: the flow's fused PCA decode."""
        g = request.require_group()
        info = self.require_info()
        return pca_code(self.space, info.normalizer, g, info.padded.indices[g])

    def sample_codes(
        self, n: int, request: Request, rng: torch.Generator, **options: Any
    ) -> Tensor:
        sc = self._sampling(options)
        g = request.require_group()
        net = self.network
        eps = torch.randn(n, self.space.components, generator=rng)  # (n, K)
        x = net.mean[g] + sc.temperature * eps @ net.chol[g].T  # (n, K)
        return x * self.space.scale[g]

    def sample_coded(
        self, n: int, request: Request, rng: torch.Generator, out: Tensor | None,
        codes: Tensor, **options: Any,
    ) -> Tensor:  # fmt: skip
        c = self.sample_codes(n, request, rng, **options)
        if codes.shape != c.shape:
            raise ValueError(f"codes must be an {tuple(c.shape)} tensor, got {tuple(codes.shape)}")
        codes.copy_(c)
        return self._code(request).decode(c, out=out)

    def _sample(
        self, n: int, request: Request, rng: torch.Generator, out: Tensor | None = None,
        **options: Any,
    ) -> Tensor:  # fmt: skip
        c = self.sample_codes(n, request, rng, **options)
        return self._code(request).decode(c, out=out)
