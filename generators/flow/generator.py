"""FlowGenerator: conditional flow matching over (projected) normalized weight vectors.

DeepWeightFlow's recipe (a velocity MLP over canonical weights, straight paths, ODE sampling),
extended with conditioning on task, width and a scalar property, classifier-free guidance, and
a per-group PCA with an explicit model of what lies outside the training span (see
:mod:`generators.flow.projection`).

Width conditioning: every width is padded into the widest layout (:mod:`generators.padding`);
the flow state holds the group's coefficients and the width embedding tells the network which
group it is generating, so one network serves every (task, width) of the zoo.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from generators.affine_code import AffineCode
from generators.augmentation import Interpolated, interpolate_models
from generators.base import ExtraNets, WeightGenerator
from generators.coded_draws import CodedDraws
from generators.conditioning import Conditioner
from generators.conditions import Request
from generators.config import with_options
from generators.dataset import WeightDataset
from generators.flow.config import FlowConfig, FlowModelConfig, FlowSamplingConfig
from generators.flow.matching import flow_matching_loss
from generators.flow.ode import Velocity, integrate
from generators.flow.projection import FullSpace, GroupPCA
from generators.flow.rank import choose_ranks
from generators.flow.velocity import VelocityNet
from generators.normalization import Normalizer

# nets integrated and decoded at a time: (256, N) temporaries stay below glibc's mmap threshold
# for the default zoo's widest nets, and are not page-faulted afresh (1000 nets of width 128:
# 0.54 s in chunks of 256, 0.64 s in one chunk)
SAMPLE_CHUNK = 256


class FlowNetwork(nn.Module):
    """Conditioning encoder + velocity field, saved and trained as one module."""

    def __init__(
        self, dim: int, num_tasks: int, num_widths: int, cfg: FlowModelConfig, use_property: bool
    ) -> None:
        super().__init__()
        self.cond = Conditioner(num_tasks, num_widths, cfg.cond_dim, use_property)
        self.velocity = VelocityNet(dim, cfg.hidden, cfg.cond_dim, cfg.dropout)


def pca_code(space: GroupPCA, normalizer: Normalizer, g: int, index: Tensor) -> AffineCode:
    """Group g's decode from codes (flow coefficients x the group's ``space.scale``) to weights
    in its own layout (``index``: its coordinates in the padded vector), as one affine map: the
    PCA decode and the de-standardization fused into one (K, N_g) matrix and one offset, a single
    addmm without (m, D) padded temporaries (a third of the time of best-of-8 sampling went to
    those)."""
    return AffineCode(
        normalizer.mean[g, index], space.basis[g][:, index] * normalizer.std[g, index]
    )


class FlowGenerator(WeightGenerator, CodedDraws):
    """Flow matching generator; see the module docstring. ``config``: :class:`FlowConfig`."""

    kind = "flow"
    config_class = FlowConfig
    config: FlowConfig

    def __init__(self, config: FlowConfig | None = None) -> None:
        super().__init__(config)
        self._net: FlowNetwork | None = None
        self.space: GroupPCA | FullSpace | None = None
        self._train: dict[str, Tensor] = {}

    @property
    def network(self) -> FlowNetwork:
        if self._net is None:
            raise ValueError("this flow generator is not trained yet: call fit() first")
        return self._net

    # ----- building -----------------------------------------------------------------------
    def _build_network(self) -> None:
        info = self.require_info()
        self._net = FlowNetwork(
            self.space.components, len(info.tasks), len(info.widths), self.config.model,
            info.has_property,
        )  # fmt: skip

    def _prepare(self, dataset: WeightDataset, extra: ExtraNets | None = None) -> None:
        cfg = self.config.model
        rows = dataset.train_index
        z, group = dataset.normalized[rows], dataset.group[rows]
        masks = dataset.padded.masks
        if cfg.pca > 0:
            ranks = None
            if cfg.pca_max_drop is not None:  # per-group rank: as few as keep the nets working
                probe = GroupPCA.fit(z, group, masks, cfg.pca, cfg.whiten, residual=False)
                ranks = choose_ranks(dataset, probe, cfg.pca_max_drop)
            self.space = GroupPCA.fit(z, group, masks, cfg.pca, cfg.whiten, ranks)
        else:
            self.space = FullSpace(masks)
        batch = dataset.batch(rows)
        prop, has_prop = batch.prop, batch.has_prop
        extras: list[Interpolated | ExtraNets] = []
        if self.config.augment.interpolations > 0:  # synthetic nets between real ones
            extras.append(
                interpolate_models(dataset, self.config.augment, self.config.training.seed)
            )
        if extra is not None:  # e.g. the previous round's best samples
            extras.append(extra)
        for more in extras:
            z = torch.cat([z, dataset.normalizer.normalize(more.weights, more.group)])
            group = torch.cat([group, more.group])
            extra_prop, extra_has = dataset.conditioning_prop(more.prop)
            prop, has_prop = torch.cat([prop, extra_prop]), torch.cat([has_prop, extra_has])
        coef = torch.zeros(len(z), self.space.components)
        for g in group.unique().tolist():
            sel = group == g
            coef[sel] = self.space.encode(z[sel], g)
        self._train = {
            "x": coef, "mask": self.space.component_mask[group].float(),
            "task": dataset.group_task[group], "width": dataset.group_width[group],
            "prop": prop, "has_prop": has_prop,
        }  # fmt: skip
        self._build_network()

    @property
    def num_examples(self) -> int:
        return len(self._train["x"]) if self._train else self.num_train

    def _restore(self, tensors: dict[str, Tensor]) -> None:
        info = self.require_info()
        if self.config.model.pca > 0:
            self.space = GroupPCA.from_state_dict(tensors)
        else:
            self.space = FullSpace(info.padded.masks)
        self._build_network()

    def extra_tensors(self) -> dict[str, Tensor]:
        return self.space.state_dict() if self.space is not None else {}

    # ----- training -----------------------------------------------------------------------
    def training_loss(self, index: Tensor, rng: torch.Generator) -> Tensor:
        cfg = self.config.model
        b = {k: v[index] for k, v in self._train.items()}
        drop = torch.rand(len(index), generator=rng) < cfg.cfg_dropout
        net = self.network
        c = net.cond(b["task"], b["width"], b["prop"], b["has_prop"], drop)
        return flow_matching_loss(
            lambda x, t: net.velocity(x, t, c), b["x"], b["mask"], rng,
            source_std=cfg.source_std, sigma=cfg.path_sigma, ot=cfg.ot_pairing,
        )  # fmt: skip

    # ----- sampling -----------------------------------------------------------------------
    def _sampling(self, options: dict[str, Any]) -> FlowSamplingConfig:
        """The preset's sampling settings with ``options`` applied (a ValueError naming
        unknown ones)."""
        return with_options(self.config.sampling, options, self.kind)

    def affine_code(self, request: Request, **options: Any) -> AffineCode | None:
        return self._code(request.require_group(), self._sampling(options))

    def check_sample_options(self, options: dict[str, Any]) -> None:
        self._sampling(options)

    def _code(self, group: int, sc: FlowSamplingConfig) -> AffineCode | None:
        """Draws on per-group principal components, without novelty noise, are decoded by one
        affine map of their codes (:func:`pca_code`); others (the full space) are not."""
        if not isinstance(self.space, GroupPCA) or sc.novelty != 0:
            return None
        info = self.require_info()
        return pca_code(self.space, info.normalizer, group, info.padded.indices[group])

    def _draw(
        self, n: int, group: int, rng: torch.Generator, target: Tensor | None,
        sc: FlowSamplingConfig,
    ) -> Iterator[tuple[int, Tensor]]:  # fmt: skip
        """(first row, x1 (m, K) on CPU) per chunk of ``SAMPLE_CHUNK`` draws: the ODE's end
        points in the flow's space, before any decoding."""
        info = self.require_info()
        grp = info.groups[group]
        net, space = self.network, self.space
        dev = next(net.parameters()).device  # the ODE runs where the network is; the rest on CPU
        cmask = space.component_mask[group].float().to(dev)  # (K,)
        task_id = info.tasks.index(grp.task)
        width_id = info.widths.index(grp.width)
        # the source noise of all n at once (n x K is small): the draws do not depend on the chunks
        x0_all = torch.randn(n, space.components, generator=rng)  # (n, K)
        guided = sc.guidance != 1.0
        for a in range(0, n, SAMPLE_CHUNK):
            m = min(SAMPLE_CHUNK, n - a)
            ids = torch.full((m,), task_id, device=dev), torch.full((m,), width_id, device=dev)
            prop = info.standardize(target[a : a + m]) if target is not None else torch.zeros(m)
            prop, has = prop.to(dev), torch.full((m,), target is not None, device=dev)
            c = net.cond(*ids, prop, has, torch.zeros(m, dtype=torch.bool, device=dev))
            if guided:  # conditional and unconditional rows in one batch
                cu = net.cond(*ids, prop, has, torch.ones(m, dtype=torch.bool, device=dev))
                c = torch.cat([c, cu])
            v = net.velocity.conditioned(c)
            x0 = x0_all[a : a + m].to(dev) * cmask
            x0 = x0 * (self.config.model.source_std * sc.temperature)

            def field(x: Tensor, t: Tensor, v: Velocity = v) -> Tensor:
                if not guided:
                    return v(x, t) * cmask
                vc, vu = v(torch.cat([x, x]), torch.cat([t, t])).chunk(2)
                return (vu + sc.guidance * (vc - vu)) * cmask

            yield a, integrate(field, x0, sc.steps, sc.solver).cpu()

    def _sample(
        self, n: int, request: Request, rng: torch.Generator, out: Tensor | None = None,
        **options: Any,
    ) -> Tensor:  # fmt: skip
        return self._decode_draws(n, request, rng, out, None, **options)

    def sample_coded(
        self, n: int, request: Request, rng: torch.Generator, out: Tensor | None,
        codes: Tensor, **options: Any,
    ) -> Tensor:  # fmt: skip
        return self._decode_draws(n, request, rng, out, codes, **options)

    def _decode_draws(
        self, n: int, request: Request, rng: torch.Generator, out: Tensor | None,
        codes: Tensor | None, **options: Any,
    ) -> Tensor:  # fmt: skip
        """(n, N_g) draws of ``request``'s group into ``out`` (allocated if None), their codes
        into ``codes`` where given (then they must have one)."""
        group, target = request.require_group(), request.target
        sc = self._sampling(options)
        code = self._code(group, sc)
        if codes is not None and (code is None or codes.shape != (n, code.dim)):
            raise ValueError(
                f"codes must be an ({n}, K) tensor, and only where the draws have a code "
                f"(PCA, no novelty noise); got {tuple(codes.shape)}"
            )
        info = self.require_info()
        index = info.padded.indices[group]  # (N_g,) the group's coordinates
        if out is None:  # (n, N_g), written chunk by chunk: no final copy
            out = torch.empty(n, len(index), dtype=info.normalizer.mean.dtype)
        elif out.shape != (n, len(index)):
            raise ValueError(f"out must have shape {(n, len(index))}, got {tuple(out.shape)}")
        space = self.space
        for a, x1 in self._draw(n, group, rng, target, sc):
            m = len(x1)
            rows = out[a : a + m]  # (m, N_g)
            if code is not None:
                c = x1 * space.scale[group]  # (m, K)
                code.decode(c, out=rows)
                if codes is not None:
                    codes[a : a + m] = c
                continue
            z = space.decode(x1, group)  # (m, D)
            if sc.novelty > 0:
                z = z + sc.novelty * space.complement_noise(m, group, info.padded.masks[group], rng)
            rows.copy_(info.normalizer.denormalize_layout(z, group, index))
        return out

    def sample_codes(
        self, n: int, request: Request, rng: torch.Generator, **options: Any
    ) -> Tensor:
        group, target = request.require_group(), request.target
        sc = self._sampling(options)
        if self._code(group, sc) is None:
            raise ValueError("these draws have no code (a flow on the full space, or novelty > 0)")
        scale = self.space.scale[group]  # (K,)
        return torch.cat([x1 * scale for _, x1 in self._draw(n, group, rng, target, sc)])
