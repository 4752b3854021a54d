"""DiffusionGenerator: latent diffusion over weight tokens (D2NWG), conditioned on a task's data.

Training, in two stages. In ``prepare``: the training nets (plus any interpolated or distilled
ones) are normalized per layout (pooled over the tasks that share it, so a latent carries the
task and an unseen task decodes with the statistics of its width), cut into per-layer tokens
(:mod:`generators.diffusion.tokens`), and a KL autoencoder is trained on them for a fixed number
of steps with its own seeded draws; its posterior means, rescaled to unit std (the scale is saved
with the generator), are the diffusion's data. Then, under the framework's loop
(``training_loss``): the denoiser, the task encoder and the conditioning learn DDPM's velocity
regression (v-prediction), conditioned on a task embedding read from ``task_encoder.examples`` training pairs of
the net's task (a fresh draw every step), its width and its property, with the task and the
property dropped together at random for classifier-free guidance, plus a CLIP-style loss that
aligns task embeddings with the nets' latents when a batch holds several tasks.

Sampling: a fast diffusers scheduler (DPM-Solver++ or DDIM) from Gaussian latents, the
autoencoder's decoder, and the layout's statistics. The task comes as a task of the zoo, a task
``get_task`` knows (one the zoo never trained on), or ``task_data=(x, y)``. Options act on each
step's predicted clean latents: ``project_steps`` keeps them on the span of the width's training
latents, ``data_guidance`` moves them against the loss on the task's examples
(:mod:`generators.diffusion.data_guidance`): the embedding alone reads an unseen task coarsely.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from generators.augmentation import interpolate_models
from generators.base import ExtraNets, WeightGenerator
from generators.conditions import DATA_TASK, Conditions, Request, Resolved
from generators.config import with_options
from generators.dataset import WeightDataset
from generators.diffusion.autoencoder import latent_scale, train_autoencoder
from generators.diffusion.config import DiffusionConfig, DiffusionSamplingConfig
from generators.diffusion.data_guidance import DataGuidance
from generators.diffusion.network import DiffusionNetwork
from generators.diffusion.schedule import denoise, diffusion_loss, training_scheduler
from generators.diffusion.span import LatentSpan
from generators.diffusion.task_data import check_task_data, draw_examples, encoder_features
from generators.diffusion.task_encoder import SetFeatures
from generators.diffusion.tokens import TokenLayout
from generators.normalization import Normalizer
from zoo.tasks import get_task

if TYPE_CHECKING:
    from diffusers import DDPMScheduler

SAMPLE_CHUNK = 256  # nets denoised and decoded at a time
PROGRESS_EVERY = 100


class DiffusionGenerator(WeightGenerator):
    """Latent diffusion generator; see the module docstring. ``config``: :class:`DiffusionConfig`."""

    kind = "diffusion"
    config_class = DiffusionConfig
    config: DiffusionConfig
    accepts = frozenset({"task", "width", "target", "task_data"})

    def __init__(self, config: DiffusionConfig | None = None) -> None:
        super().__init__(config)
        self._net: DiffusionNetwork | None = None
        self.tokens: TokenLayout | None = None
        self.norm: Normalizer | None = None  # per layout: (L, D)
        self.layout_row: Tensor | None = None  # (G,) each group's row of ``norm``
        self.scale = torch.ones(())
        self.span: LatentSpan | None = None
        self._train: dict[str, Tensor] = {}
        self._task_pairs: dict[str, tuple[Tensor, Tensor]] = {}
        self.schedule: DDPMScheduler | None = None

    @property
    def network(self) -> DiffusionNetwork:
        if self._net is None:
            raise ValueError("this diffusion generator is not trained yet: call fit() first")
        return self._net

    # ----- data-derived state ---------------------------------------------------------------
    @property
    def latent(self) -> int:
        """Latent values per token: the chunk size / ``autoencoder.compression`` (at least 1)."""
        return max(1, self.tokens.size // self.config.autoencoder.compression)

    def _layouts(self) -> None:
        """Tokens of the padded layout, each group's layout row (the first group with its
        layout: groups of several tasks that share a layout share statistics) and the DDPM
        training schedule."""
        dc = self.config.denoiser
        self.schedule = training_scheduler(dc.timesteps, dc.beta_schedule)
        padded = self.require_info().padded
        self.tokens = TokenLayout.of(padded, self.config.autoencoder.max_tokens)
        firsts = [padded.index_of(lay) for lay in padded.layouts]  # (G,) first group per layout
        reps = sorted(set(firsts))
        self.layout_row = torch.tensor([reps.index(f) for f in firsts])

    def _build_network(self, features: SetFeatures) -> None:
        info = self.require_info()
        self._net = DiffusionNetwork(
            self.tokens.count, self.tokens.size, self.latent, len(info.widths), features,
            self.config, info.has_property,
        )  # fmt: skip

    def _prepare(self, dataset: WeightDataset, extra: ExtraNets | None = None) -> None:
        info = self.require_info()
        self._layouts()
        rows = dataset.train_index
        w, group = dataset.weights[rows], dataset.group[rows]
        batch = dataset.batch(rows)
        prop, has_prop = batch.prop, batch.has_prop
        rep = self.layout_row
        masks = dataset.padded.masks[[padded_first(rep, r) for r in range(int(rep.max()) + 1)]]
        self.norm = Normalizer.fit(w, rep[group], masks, dataset.padded.union,
                                   dataset.config.normalization)  # fmt: skip
        extras: list[ExtraNets] = []
        if self.config.augment.interpolations > 0:  # synthetic nets between real ones
            seed = self.config.training.seed
            extras.append(interpolate_models(dataset, self.config.augment, seed))
        if extra is not None:  # e.g. the previous round's best samples
            extras.append(extra)
        for more in extras:
            w, group = torch.cat([w, more.weights]), torch.cat([group, more.group])
            extra_prop, extra_has = dataset.conditioning_prop(more.prop)
            prop, has_prop = torch.cat([prop, extra_prop]), torch.cat([has_prop, extra_has])
        tasks = {t: get_task(t) for t in info.tasks}
        self._task_pairs = {t: (d.x_train, d.y_train) for t, d in tasks.items()}
        self._build_network(encoder_features(list(tasks.values())))
        z = self.norm.normalize(w, rep[group])  # (M, D)
        tok, tmask = self.tokens.split(z), self.tokens.masks[group]  # (M, T, C) each
        ac = self.config.autoencoder
        net = self.network
        train_autoencoder(net.autoencoder, tok, tmask.float(), ac.steps, ac.batch_size,
                          ac.learning_rate, ac.kl_weight, self.config.training.seed,
                          progress("autoencoder", ac.steps))  # fmt: skip
        net.freeze_autoencoder()
        with torch.no_grad():
            mean, logvar = net.autoencoder.encode(tok)  # (M, T, latent)
        token_mask = self.tokens.token_masks[group]  # (M, T)
        self.scale = latent_scale(mean, token_mask)
        self.span = LatentSpan.fit(mean * self.scale, rep[group], int(rep.max()) + 1)
        self._train = {
            "mean": mean * self.scale, "std": (0.5 * logvar).exp() * self.scale,
            "token_mask": token_mask, "task": dataset.group_task[group],
            "width": dataset.group_width[group], "prop": prop, "has_prop": has_prop,
        }  # fmt: skip

    @property
    def num_examples(self) -> int:
        return len(self._train["mean"]) if self._train else self.num_train

    def _restore(self, tensors: dict[str, Tensor]) -> None:
        self._layouts()
        self.norm = Normalizer(tensors["diffusion.norm.mean"], tensors["diffusion.norm.std"],
                               tensors["diffusion.norm.masks"].bool())  # fmt: skip
        self.scale = tensors["diffusion.scale"].reshape(())
        self.span = LatentSpan.from_state_dict(tensors)
        in_dim, out_dim, classification = tensors["diffusion.task_dims"].tolist()
        self._build_network(SetFeatures(int(in_dim), int(out_dim), bool(classification)))
        self.network.freeze_autoencoder()

    def extra_tensors(self) -> dict[str, Tensor]:
        if self.norm is None:
            return {}
        f = self.network.task_encoder.features
        return {
            "diffusion.norm.mean": self.norm.mean, "diffusion.norm.std": self.norm.std,
            "diffusion.norm.masks": self.norm.masks, "diffusion.scale": self.scale.reshape(1),
            "diffusion.task_dims": torch.tensor([f.in_dim, f.out_dim, int(f.classification)]),
            **self.span.state_dict(),
        }  # fmt: skip

    # ----- training -------------------------------------------------------------------------
    def training_loss(self, index: Tensor, rng: torch.Generator) -> Tensor:
        b = {k: v[index] for k, v in self._train.items()}
        net, tc = self.network, self.config.task_encoder
        x0 = b["mean"] + b["std"] * torch.randn(b["mean"].shape, generator=rng)  # (B, T, l)
        present, row = b["task"].unique(return_inverse=True)
        info = self.require_info()
        emb = torch.stack(
            [
                net.task_encoder(
                    *draw_examples(*self._task_pairs[info.tasks[int(t)]], tc.examples, rng)
                )
                for t in present
            ]
        )  # fmt: skip  (K, dim)
        drop = torch.rand(len(index), generator=rng) < self.config.denoiser.cfg_dropout
        c = net.condition(emb[row], b["width"], b["prop"], b["has_prop"], drop)
        mask = b["token_mask"].unsqueeze(-1).float()  # (B, T, 1)
        # padding tokens enter the denoiser as 0, as they do when sampling
        loss = diffusion_loss(
            lambda x, t: net.velocity(x * mask, t, c), x0, mask, self.schedule, rng
        )
        if len(present) > 1 and tc.contrastive_weight > 0:
            loss = loss + tc.contrastive_weight * net.contrastive_loss(
                b["mean"], b["token_mask"], row, emb, tc.contrastive_temperature
            )
        return loss

    # ----- sampling -------------------------------------------------------------------------
    def _sampling(self, options: dict[str, Any]) -> DiffusionSamplingConfig:
        """The preset's sampling settings with ``options`` applied (a ValueError naming
        unknown ones)."""
        return with_options(self.config.sampling, options, self.kind)

    def check_sample_options(self, options: dict[str, Any]) -> None:
        self._sampling(options)

    def resolve_unseen(self, cond: Conditions) -> Resolved:
        """Tasks beyond the zoo's: ``task_data`` given, or a task name ``get_task`` knows; the
        width one the generator was trained on (default: the widest)."""
        info = self.require_info()
        if cond.task_data is not None:
            x, _ = check_task_data(cond.task_data)
            name, shape = cond.task or DATA_TASK, tuple(x.shape[1:])
        elif cond.task is not None and cond.task not in info.tasks:
            try:
                data = get_task(cond.task)
            except (ValueError, KeyError) as err:
                raise ValueError(
                    f"unknown task {cond.task!r}: not a task of this generator's zoo "
                    f"({', '.join(info.tasks)}), not a task get_task knows ({err}), and no "
                    "task_data=(x, y) given"
                ) from None
            name, shape = cond.task, data.input_shape
        else:
            return super().resolve_unseen(cond)
        widths = sorted({g.width for g in info.groups})
        width = widths[-1] if cond.width is None else int(cond.width)
        for grp in info.groups:
            if grp.width == width and tuple(grp.arch.input_shape) == shape:
                return Resolved(arch=grp.arch, task=name, group=None)
        raise ValueError(
            f"no trained layout of width {width} takes inputs of shape {shape} "
            f"(trained widths: {', '.join(map(str, widths))})"
        )

    def _examples(self, request: Request, rng: torch.Generator) -> tuple[Tensor, Tensor]:
        """The (x, y) pairs the task encoder reads for this request: all of the given task
        data (so the draws do not depend on its order), else ``task_encoder.examples`` pairs
        of the task's training split."""
        k = self.config.task_encoder.examples
        if request.conditions.task_data is not None:
            return check_task_data(request.conditions.task_data)
        pairs = self._task_pairs.get(request.task)
        if pairs is None:
            data = get_task(request.task)
            pairs = self._task_pairs[request.task] = (data.x_train, data.y_train)
        return draw_examples(*pairs, k, rng)

    @torch.no_grad()
    def _sample(
        self, n: int, request: Request, rng: torch.Generator, out: Tensor | None = None,
        **options: Any,
    ) -> Tensor:  # fmt: skip
        sc = self._sampling(options)
        info, net = self.require_info(), self.network
        padded = info.padded
        g = padded.index_of(request.arch.layout)  # a group with this layout
        index = self.tokens.group_index(g)  # (N_g,)
        if out is None:
            out = torch.empty(n, len(index))
        elif out.shape != (n, len(index)):
            raise ValueError(f"out must have shape {(n, len(index))}, got {tuple(out.shape)}")
        width = torch.tensor(info.widths.index(request.arch.width))
        examples = self._examples(request, rng)
        emb = net.task_encoder(*examples)  # (dim,)
        tmask = self.tokens.token_masks[g].float().unsqueeze(-1)  # (T, 1)
        noise = torch.randn(n, self.tokens.count, self.latent, generator=rng)  # (n, T, l)
        row, coords = int(self.layout_row[g]), padded.indices[g]
        std, mean = self.norm.std[row, coords], self.norm.mean[row, coords]  # (N_g,) each
        # padding tokens (0 while denoising) take the training latents' mean, as the decoder
        # saw them, before any projection
        fill = self.span.mean[row].reshape(noise.shape[1:]) * (1 - tmask)  # (T, l)

        def decodable(x: Tensor) -> Tensor:
            x = x * tmask + fill
            return self.span.project(x, row) if sc.project else x

        def weights(x: Tensor) -> Tensor:  # (m, T, l) latents -> (m, N_g), differentiable
            tok = net.autoencoder.decode(decodable(x) / self.scale).reshape(len(x), -1)
            return tok[:, index] * std + mean

        guide = (
            DataGuidance(request.arch, *examples, sc.data_guidance, sc.data_guidance_steps)
            if sc.data_guidance > 0 else None
        )  # fmt: skip
        on_span = sc.project and sc.project_steps
        for a in range(0, n, SAMPLE_CHUNK):
            m = min(SAMPLE_CHUNK, n - a)
            target = request.target[a : a + m] if request.target is not None else None
            prop = info.standardize(target) if target is not None else torch.zeros(m)
            has = torch.full((m,), target is not None)
            c = net.condition(emb.expand(m, -1), width.expand(m), prop, has,
                              torch.zeros(m, dtype=torch.bool))  # fmt: skip
            if sc.guidance != 1.0:
                cu = net.condition(emb.expand(m, -1), width.expand(m), prop, has,
                                   torch.ones(m, dtype=torch.bool))  # fmt: skip
                c = torch.cat([c, cu])

            def velocity(x: Tensor, t: Tensor, c: Tensor = c) -> Tensor:
                if sc.guidance == 1.0:
                    v = net.velocity(x, t, c) * tmask
                else:
                    ec, eu = net.velocity(torch.cat([x, x]), torch.cat([t, t]), c).chunk(2)
                    v = (eu + sc.guidance * (ec - eu)) * tmask
                if not (on_span or guide):
                    return v
                # through the predicted clean latents: x0 = sqrt(abar) x_t - sqrt(1 - abar) v,
                # moved, and back by v = (sqrt(abar) x_t - x0) / sqrt(1 - abar)
                abar = self.schedule.alphas_cumprod[t].reshape(-1, 1, 1)  # (m, 1, 1)
                r, s = abar.sqrt(), (1 - abar).sqrt()
                x0 = r * x - s * v  # (m, T, l)
                if on_span:  # decodable projects: on_span needs sc.project
                    x0 = decodable(x0) * tmask
                if guide is not None:
                    x0 = guide.move(x0, weights, tmask)
                return (r * x - x0) / s

            x = noise[a : a + m] * (sc.temperature * tmask)
            x = denoise(velocity, x, self.schedule, sc.sampler, sc.steps, rng, sc.eta)
            tok = net.decode(decodable(x) / self.scale).reshape(m, -1)  # (m, T * C)
            rows = out[a : a + m]  # (m, N_g): gathered and de-standardized in place
            torch.index_select(tok, 1, index, out=rows)
            rows.mul_(std).add_(mean)
        return out


def padded_first(layout_row: Tensor, r: int) -> int:
    """The first group whose layout has row ``r``."""
    return int(torch.nonzero(layout_row == r)[0])


def progress(label: str, steps: int):
    """A callback that prints training progress every ``PROGRESS_EVERY`` steps (to stderr)."""

    def report(step: int, loss: float) -> None:
        if (step + 1) % PROGRESS_EVERY == 0 or step + 1 == steps:
            print(f"{label}: step {step + 1}/{steps}, loss {loss:.4f}", file=sys.stderr)

    return report
