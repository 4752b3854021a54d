"""NeuMetaGenerator: one implicit weight field for every width, every layer generated.

NeuMeta (Yang & Wang, ECCV 2024) learns a network's weights as a continuous function of their
coordinates (:mod:`generators.neumeta.coordinates`), trained on smoothly ordered weights
(``zoo canonicalize --method smooth``) so that neighbouring units have neighbouring values; a
net of any width is then read off the field at that width's coordinates. This kind generates
every tensor of the net (NeuMeta's CIFAR models learn only their last block), learns from a
whole zoo of several widths rather than one net, and gives many nets per width: every training
model has an auto-decoder code, the field is read out affinely by it
(:mod:`generators.neumeta.field`), and new nets draw their code from the Gaussian fitted to the
training codes of their task.

Loss per step: the magnitude-weighted reconstruction of the batch's models (a sample of each
tensor's coordinates, with uniform coordinate noise), plus the task loss of nets of one random
width inside the trained range (log-uniform), with the batch's codes (noised), run as one
batched population forward, plus a small L2 on their weights and a prior on the codes.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from generators.affine_code import AffineCode
from generators.base import ExtraNets, WeightGenerator
from generators.coded_draws import CodedDraws
from generators.conditions import Conditions, Request, Resolved
from generators.config import with_options
from generators.dataset import WeightDataset
from generators.neumeta.config import NeuMetaConfig, NeuMetaSamplingConfig
from generators.neumeta.coordinates import LayoutCoordinates, check_family, encode, positions
from generators.neumeta.field import WeightField, with_one
from generators.neumeta.ordering import shared_order
from generators.neumeta.scale import fit_scale, scale_of
from zoo.architectures import Architecture
from zoo.tasks import TaskData, get_task
from zoo.training import task_loss

SCALE_KEY = "neumeta.scale"
SMOOTH = "smooth"
COV_JITTER = 1e-6


def smooth_command_hint(dataset: WeightDataset) -> str | None:
    """The one-line refusal of a dataset whose weights are not smooth-ordered, else None."""
    if not dataset.config.canonical:
        return ("neumeta trains on smooth-ordered canonical weights, not raw ones: drop --raw "
                "and run `zoo canonicalize STORE --method smooth --overwrite` first")  # fmt: skip
    bad = sorted(n for n, m in dataset.canonical.items() if m != SMOOTH)
    if not bad:
        return None
    method = dataset.canonical[bad[0]] or "no recorded"
    return (f"neumeta needs smooth-ordered weights, but population {bad[0]} has {method} "
            "canonical weights: run `zoo canonicalize STORE --method smooth --overwrite`")  # fmt: skip


class NeuMetaGenerator(WeightGenerator, CodedDraws):
    """NeuMeta implicit weight field; see the module docstring. ``config``: NeuMetaConfig."""

    kind = "neumeta"
    config_class = NeuMetaConfig
    config: NeuMetaConfig
    accepts = frozenset({"task", "width"})
    canonical_method = SMOOTH

    def __init__(self, config: NeuMetaConfig | None = None) -> None:
        super().__init__(config)
        self._net: WeightField | None = None
        self.scale: Tensor | None = None  # (tasks, vocab, 2)
        self._train: dict[str, Tensor] = {}
        self._weights: dict[int, Tensor] = {}  # group -> (M_g, N_g) training nets
        self._coords: dict[tuple[int, int], LayoutCoordinates] = {}
        self._codes: dict[tuple[int, int], tuple[tuple[int, ...], AffineCode]] = {}
        self._data: dict[int, TaskData] = {}

    @property
    def network(self) -> WeightField:
        if self._net is None:
            raise ValueError("this neumeta generator is not trained yet: call fit() first")
        return self._net

    # ----- what the zoo fixes -------------------------------------------------------------
    @property
    def vocabulary(self) -> list[str]:
        """Sorted ``family:name`` of every tensor of the zoo's layouts: the layer embedding."""
        info = self.require_info()
        return sorted({k for g in info.groups for k in LayoutCoordinates(g.arch).tensor_keys})

    def base_arch(self, task: int) -> Architecture:
        """The architecture of ``task``'s groups (their widths aside)."""
        info = self.require_info()
        return next(g.arch for g in info.groups if g.task == info.tasks[task])

    def width_range(self, task: int) -> tuple[int, int]:
        """(narrowest, widest) width of ``task`` in the zoo: the range ``sample`` takes."""
        info = self.require_info()
        widths = [g.width for g in info.groups if g.task == info.tasks[task]]
        return min(widths), max(widths)

    def check_width(self, task: int, width: int) -> Architecture:
        """``task``'s architecture at ``width``, or a one-line ValueError naming the range."""
        lo, hi = self.width_range(task)
        if not lo <= int(width) <= hi:
            raise ValueError(
                f"width {width} is outside the trained range [{lo}, {hi}] of task "
                f"{self.require_info().tasks[task]!r}: neumeta generates widths inside it only"
            )
        return self.base_arch(task).with_width(int(width))

    def coordinates(self, task: int, width: int) -> LayoutCoordinates:
        key = (task, int(width))
        if key not in self._coords:
            self._coords[key] = LayoutCoordinates(self.check_width(task, width))
        return self._coords[key]

    def layer_ids(self, coords: LayoutCoordinates) -> Tensor:
        """(n_layers,) vocabulary id of each tensor of a layout."""
        vocab = {k: i for i, k in enumerate(self.vocabulary)}
        return torch.tensor([vocab[k] for k in coords.tensor_keys])

    def task_data(self, task: int) -> TaskData:
        if task not in self._data:
            self._data[task] = get_task(self.require_info().tasks[task])
        return self._data[task]

    # ----- building -----------------------------------------------------------------------
    def _build_network(self) -> None:
        info = self.require_info()
        self._net = WeightField(
            len(self.vocabulary), len(info.tasks), len(info.train_origin), self.config.model
        )
        self._codes.clear()

    def _prepare(self, dataset: WeightDataset, extra: ExtraNets | None = None) -> None:
        refusal = smooth_command_hint(dataset)
        if refusal is not None:
            raise ValueError(refusal)
        if extra is not None or self.config.augment.interpolations > 0:
            raise ValueError("neumeta trains on the zoo's nets only: set augment.interpolations "
                             "= 0 and distill.per_net = 0")  # fmt: skip
        for grp in dataset.groups:
            check_family(grp.arch)
            LayoutCoordinates(grp.arch)  # every tensor placeable, else a ValueError now
        info = self.require_info()
        rows = dataset.train_index
        group = dataset.group[rows]  # (M,)
        position = torch.zeros(len(rows), dtype=torch.long)  # row within its group's nets
        self._weights = {}
        for g in range(len(dataset.groups)):
            sel = group == g
            position[sel] = torch.arange(int(sel.sum()))
            w = dataset.group_weights(g, True)  # (M_g, N_g), train_index order
            if self.config.model.align:
                w = shared_order(dataset.groups[g].arch, w, self.config.training.seed)
            self._weights[g] = w
        task = torch.tensor([info.tasks.index(dataset.groups[g].task) for g in group.tolist()])
        self._train = {"group": group, "position": position, "task": task}
        self.scale = self._fit_scale()
        self._coords.clear()
        self._build_network()

    def _fit_scale(self) -> Tensor:
        """The output-scale law per (task, tensor) (:mod:`generators.neumeta.scale`)."""
        info = self.require_info()
        vocab = {k: i for i, k in enumerate(self.vocabulary)}
        points: dict[tuple[int, int], list[tuple[int, float]]] = {}
        for g, grp in enumerate(info.groups):
            coords = LayoutCoordinates(grp.arch)
            params = grp.arch.layout.unflatten(self._weights[g])
            for key, name in zip(coords.tensor_keys, coords.names, strict=True):
                per_model = params[name].double().flatten(1).pow(2).mean(dim=1).sqrt()  # (M_g,)
                rms = float(per_model.median())  # robust to a blown-up net
                points.setdefault((info.tasks.index(grp.task), vocab[key]), []).append(
                    (grp.width, rms)
                )
        return fit_scale(points, len(info.tasks), len(vocab))

    @property
    def num_examples(self) -> int:
        return len(self._train["group"]) if self._train else self.num_train

    def _restore(self, tensors: dict[str, Tensor]) -> None:
        self.scale = tensors[SCALE_KEY]
        self._coords.clear()
        self._build_network()

    def extra_tensors(self) -> dict[str, Tensor]:
        return {SCALE_KEY: self.scale} if self.scale is not None else {}

    # ----- the field at a layout ----------------------------------------------------------
    def _basis(self, task: int, coords: LayoutCoordinates, rows: Tensor,
               rng: torch.Generator | None = None) -> Tensor:  # fmt: skip
        """(R, K + 1) the field's readout at the layout's flat indices ``rows`` (R,), times
        their tensor's scale: a net with code z has the weights ``basis @ [z, 1]`` there.
        ``rng``: uniform coordinate noise of +- coord_noise / 2 cells (training) on the axes
        that follow the width (the others' units are not points of a continuum)."""
        table = coords.table[rows]  # (R, 7)
        noise = None
        if rng is not None:
            moves = torch.tensor(coords.width_axes)[table[:, 0]][:, [1, 0]]  # (R, 2): in, out
            noise = (torch.rand(len(rows), 2, generator=rng) - 0.5) * self.config.loss.coord_noise
            noise = noise * moves
        features = encode(table, self.config.model.frequencies, noise)
        layers = self.layer_ids(coords)  # (n_layers,)
        scale = scale_of(self.scale, task, layers, coords.arch.width)  # (n_layers,)
        u = positions(table, noise)  # (R, 2)
        basis = self.network.basis(features, u, layers[table[:, 0]], task)  # (R, K + 1)
        return basis * scale[table[:, 0]].unsqueeze(1)

    def layout_code(self, task: int, width: int) -> AffineCode:
        """Every net of ``task`` at ``width`` as ``offset + z @ basis`` of its code z: the field
        at each of the layout's coordinates, computed once per layout (cached while the
        network's parameters are unchanged)."""
        key = (task, int(width))
        version = tuple(p._version for p in self.network.parameters())
        hit = self._codes.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        coords = self.coordinates(task, width)
        with torch.no_grad():
            basis = self._basis(task, coords, torch.arange(len(coords.table)))  # (N, K + 1)
        code = AffineCode(basis[:, -1].contiguous(), basis[:, :-1].T.contiguous())
        self._codes[key] = (version, code)
        return code

    # ----- training -----------------------------------------------------------------------
    def training_loss(self, index: Tensor, rng: torch.Generator) -> Tensor:
        lc = self.config.loss
        loss = self._reconstruction(index, rng)
        if lc.task_weight > 0 or lc.l2 > 0:
            task, l2 = self._task_loss(index, rng)
            loss = loss + lc.task_weight * task + lc.l2 * l2
        codes = self.network.codes[index]
        return loss + lc.code_l2 * codes.pow(2).sum(dim=1).mean()

    def _reconstruction(self, index: Tensor, rng: torch.Generator) -> Tensor:
        """Magnitude-weighted squared error of the batch's models at a sample of each tensor's
        coordinates, relative to the weighted energy of the target per tensor (every tensor
        counts alike; the zero net scores 1), averaged over the batch."""
        lc, info, tr = self.config.loss, self.require_info(), self._train
        groups = tr["group"][index]
        total = torch.zeros(())
        for g in groups.unique().tolist():
            sel = index[groups == g]  # (m,)
            grp = info.groups[g]
            task = info.tasks.index(grp.task)
            coords = self.coordinates(task, grp.width)
            rows = self._coordinate_sample(coords, lc.recon_coords, rng)  # (R,)
            basis = self._basis(task, coords, rows, rng)  # (R, K + 1)
            pred = with_one(self.network.codes[sel]) @ basis.T  # (m, R)
            target = self._weights[g][tr["position"][sel]][:, rows]  # (m, R)
            layer = coords.table[rows, 0]
            unit = scale_of(self.scale, task, self.layer_ids(coords), grp.width)[layer]  # (R,)
            weight = 1 + lc.magnitude * (target / unit).abs()
            err = (weight * ((pred - target) / unit) ** 2).mean(0)  # (R,)
            energy = (weight * (target / unit) ** 2).mean(0)  # (R,)
            n = len(coords.shapes)
            per = torch.zeros(n).index_add(0, layer, err)
            ref = torch.zeros(n).index_add(0, layer, energy).clamp(min=1e-12)
            total = total + (per / ref).mean() * len(sel)
        return total / len(index)

    @staticmethod
    def _coordinate_sample(coords: LayoutCoordinates, per_tensor: int,
                           rng: torch.Generator) -> Tensor:  # fmt: skip
        """(R,) flat indices: ``per_tensor`` drawn (with replacement) from each tensor bigger
        than that, all of the others (0: every coordinate)."""
        if per_tensor == 0:
            return torch.arange(len(coords.table))
        parts = []
        for start, shape in zip(coords.offsets.tolist(), coords.shapes, strict=True):
            size = math.prod(shape)
            if size <= per_tensor:
                parts.append(torch.arange(start, start + size))
            else:
                parts.append(start + torch.randint(size, (per_tensor,), generator=rng))
        return torch.cat(parts)

    def random_width(self, task: int, rng: torch.Generator) -> int:
        """A width log-uniform in ``task``'s trained range, rounded to one its family takes."""
        lo, hi = self.width_range(task)
        u = float(torch.rand((), generator=rng))
        width = int(round(math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))))
        heads = getattr(self.base_arch(task), "heads", 1)  # a Transformer's width: heads x k
        return min(hi, max(lo, heads * max(1, round(width / heads))))

    def _task_loss(self, index: Tensor, rng: torch.Generator) -> tuple[Tensor, Tensor]:
        """(task loss, mean squared weight) of nets of one random width, the codes of the batch
        models of one task (noised), as one batched population forward."""
        lc, tr = self.config.loss, self._train
        task = int(tr["task"][index[0]])
        sel = index[tr["task"][index] == task][: lc.task_nets]
        width = self.random_width(task, rng)
        coords = self.coordinates(task, width)
        codes = self.network.codes[sel]
        spread = self.network.codes.detach().std(dim=0) if len(tr["group"]) > 1 else 0.0
        codes = codes + lc.code_noise * spread * torch.randn(codes.shape, generator=rng)
        basis = self._basis(task, coords, torch.arange(len(coords.table)), rng)  # (N, K + 1)
        weights = with_one(codes) @ basis.T  # (P, N)
        data = self.task_data(task)
        pick = torch.randint(len(data.x_train), (lc.task_batch,), generator=rng)
        out = coords.arch.forward(weights, data.x_train[pick])  # (P, B, outputs)
        return task_loss(data, out, data.y_train[pick]).mean(), weights.pow(2).mean()

    # ----- sampling -----------------------------------------------------------------------
    def _sampling(self, options: dict[str, Any]) -> NeuMetaSamplingConfig:
        """The preset's sampling settings with ``options`` applied (a ValueError naming
        unknown ones)."""
        return with_options(self.config.sampling, options, self.kind)

    def check_sample_options(self, options: dict[str, Any]) -> None:
        self._sampling(options)

    def code_distribution(self, task: int) -> tuple[Tensor, Tensor]:
        """(mean (K,), Cholesky factor (K, K)) of the Gaussian fitted to ``task``'s training
        codes: the distribution new nets draw their code from."""
        codes = self.network.codes.detach().double()[self._task_rows(task)]  # (M_t, K)
        mean = codes.mean(dim=0)
        k = codes.shape[1]
        cov = torch.zeros(k, k, dtype=torch.float64)
        if len(codes) > 1:
            centred = codes - mean
            cov = centred.T @ centred / (len(codes) - 1)
        chol = torch.linalg.cholesky(cov + COV_JITTER * torch.eye(k, dtype=torch.float64))
        return mean.float(), chol.float()

    def _task_rows(self, task: int) -> Tensor:
        """Rows (of the training models) of ``task``'s models, from the saved split."""
        info = self.require_info()
        name = info.tasks[task]
        groups = {grp.key: g for g, grp in enumerate(info.groups)}
        source = {s: groups[grp.key] for grp in info.groups for s in grp.sources}
        rows = [i for i, (pop, _) in enumerate(info.train_origin)
                if info.groups[source[pop]].task == name]  # fmt: skip
        return torch.tensor(rows, dtype=torch.long)

    def draw_codes(self, n: int, task: int, rng: torch.Generator, temperature: float) -> Tensor:
        """(n, K) codes drawn from the task's code Gaussian, its spread times ``temperature``."""
        mean, chol = self.code_distribution(task)
        eps = torch.randn(n, len(mean), generator=rng)
        return mean + temperature * eps @ chol.T

    def _request_task(self, request: Request) -> tuple[int, int]:
        """(task id, width) of a request."""
        return self.require_info().tasks.index(request.task), request.arch.width

    def resolve_unseen(self, conditions: Conditions) -> Resolved:
        """A width in no population of the zoo, inside its range: the layout of
        ``arch.with_width(width)``; outside the range (or an unknown task) a one-line error."""
        info = self.require_info()
        task = conditions.task
        if task is None:
            if len(info.tasks) > 1:
                raise ValueError(f"this generator knows several tasks ({', '.join(info.tasks)}): "
                                 "pass task=")  # fmt: skip
            task = info.tasks[0]
        if task not in info.tasks:
            raise ValueError(
                f"unknown task {task!r} for this generator (trained on: {', '.join(info.tasks)})"
            )
        arch = self.check_width(info.tasks.index(task), int(conditions.width))
        return Resolved(arch, task, None)

    def affine_code(self, request: Request, **options: Any) -> AffineCode:
        self._sampling(options)
        return self.layout_code(*self._request_task(request))

    def sample_codes(
        self, n: int, request: Request, rng: torch.Generator, **options: Any
    ) -> Tensor:
        task, _ = self._request_task(request)
        return self.draw_codes(n, task, rng, self._sampling(options).temperature)

    def sample_coded(
        self, n: int, request: Request, rng: torch.Generator, out: Tensor | None,
        codes: Tensor, **options: Any,
    ) -> Tensor:  # fmt: skip
        drawn = self.sample_codes(n, request, rng, **options)
        codes.copy_(drawn)
        return self.affine_code(request).decode(drawn, out=out)

    def _sample(
        self, n: int, request: Request, rng: torch.Generator, out: Tensor | None = None,
        **options: Any,
    ) -> Tensor:  # fmt: skip
        drawn = self.sample_codes(n, request, rng, **options)
        return self.affine_code(request).decode(drawn, out=out)
