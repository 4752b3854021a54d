"""HyperGenerator: a hypernetwork from a task's conditioning to the full weights of a target net.

Conditioning (:mod:`generators.hyper.encoding`): the task's parameters (a sinusoid's amplitude
and phase, a rotation angle; scaled to [0, 1] over the training tasks, optionally MIP-encoded), or
a learned embedding per training task for tasks without parameters, plus the width. The chunked
head (:mod:`generators.hyper.head`) emits every weight of the widest layout as a residual on a
base net theta_0, and a group's layout is cut out of it (:mod:`generators.padding`).

Training: each row of a batch (a training model, hence a (task, width) group) gets its own
generated net, and the nets of one layout run as one batched population forward
(``arch.forward`` with per-model inputs: every net its own task's training examples, drawn with
the step's rng); the loss is the target task's loss (cross-entropy or MSE) of those nets,
optionally plus ``objective.recon_weight`` x a reconstruction loss towards the row's own (by
default canonical) zoo weights.

Diversity: the hypernetwork gives one net per task by construction; ``model.noise_dim`` noise
inputs, uniform in [0, 1] in training, make draws for one task differ. The task loss alone does
not ask the noise to matter, so draws differ only as much as training left the net sensitive to
it (``sampling.temperature`` scales its spread; 0 gives the single net per task).

Held-out tasks: a task given by its parameters (``task_params``) or by a parametrized name not
in training (``"sinusoid:amplitude=2.5,phase=1.0"``) is embedded from those parameters
(:meth:`resolve_unseen`); a generator conditioned on per-task embeddings cannot embed one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from generators.base import ExtraNets, WeightGenerator
from generators.config import with_options
from generators.dataset import WeightDataset
from generators.hyper.config import HyperConfig, HyperSamplingConfig
from generators.hyper.encoding import ParamScaler
from generators.hyper.head import fan_in_scale
from generators.hyper.network import HyperNetwork
from zoo.architectures import Architecture
from zoo.tasks import TaskData, get_task, parse_task_name
from zoo.training import task_loss

if TYPE_CHECKING:
    from generators.conditions import Conditions, Request, Resolved

SAMPLE_CHUNK = 256  # nets generated at a time
TASK_TABLE = "hyper.task_params"  # safetensors key: (T, K) raw parameters of the training tasks


def task_parameters(tasks: list[str]) -> list[dict[str, float]]:
    """The parameters of every task (``{}`` for a task without any)."""
    return [dict(get_task(t).params) for t in tasks]


def uses_params(mode: str, tasks: list[str], params: list[dict[str, float]]) -> bool:
    """Whether the generator conditions on task parameters (else on per-task embeddings), or a
    ValueError where ``params`` mode is asked for tasks that cannot give them."""
    shared = bool(params) and all(params) and all(p.keys() == params[0].keys() for p in params)
    if mode == "params" and not shared:
        bad = [
            t for t, p in zip(tasks, params, strict=True) if not p or p.keys() != params[0].keys()
        ]
        raise ValueError(
            f"model.conditioning = 'params' needs tasks with the same parameters; "
            f"{bad[0]!r} has {sorted(params[tasks.index(bad[0])]) or 'none'}"
        )
    return mode == "params" or (mode == "auto" and shared)


class HyperGenerator(WeightGenerator):
    """Hypernetwork generator; see the module docstring. ``config``: :class:`HyperConfig`."""

    kind = "hyper"
    config_class = HyperConfig
    config: HyperConfig
    accepts = frozenset({"task", "width", "task_params"})

    def __init__(self, config: HyperConfig | None = None) -> None:
        super().__init__(config)
        self._net: HyperNetwork | None = None
        self.scaler = ParamScaler((), torch.zeros(0), torch.zeros(0))
        self.task_table = torch.zeros(0, 0)  # (T, K) raw parameters of the training tasks
        self._train: dict[str, Tensor] = {}
        self._tasks: dict[str, TaskData] = {}

    @property
    def network(self) -> HyperNetwork:
        if self._net is None:
            raise ValueError("this hyper generator is not trained yet: call fit() first")
        return self._net

    @property
    def conditioned_on_params(self) -> bool:
        return len(self.scaler.names) > 0

    # ----- building -----------------------------------------------------------------------
    def width_groups(self) -> list[int]:
        """Per width id, the first group of that width: whose layout that width's nets take."""
        info = self.require_info()
        return [next(i for i, g in enumerate(info.groups) if g.width == w) for w in info.widths]

    def _base(self, dataset: WeightDataset) -> tuple[Tensor, Tensor]:
        """(W, D) theta_0 and (W, D) fan-aware scales per width, zero on padding."""
        info = self.require_info()
        padded = info.padded
        theta0 = torch.zeros(len(info.widths), padded.dim)
        scale = torch.zeros(len(info.widths), padded.dim)
        for w, g in enumerate(self.width_groups()):
            arch = info.groups[g].arch
            scale[w] = padded.pad(fan_in_scale(arch.layout)[None], g)[0]
            if self.config.model.theta0 == "init":
                theta0[w] = padded.pad(arch.init_weights([0]), g)[0]
            else:  # the mean training net of this width, over all its tasks
                rows = dataset.train & (dataset.group_width[dataset.group] == w)
                theta0[w] = dataset.weights[rows].mean(dim=0)
        return theta0, scale

    def _build_network(self, theta0: Tensor, scale: Tensor) -> None:
        info = self.require_info()
        embed = 0 if self.conditioned_on_params else len(info.tasks)
        self._net = HyperNetwork(theta0, scale, len(self.scaler.names), embed, self.config.model)

    def _prepare(self, dataset: WeightDataset, extra: ExtraNets | None = None) -> None:
        """Conditioning vocabulary, theta_0, the training rows' groups and targets, and the
        tasks' training data; ``extra`` nets are not used (the loss needs no samples)."""
        info = self.require_info()
        params = task_parameters(info.tasks)
        if uses_params(self.config.model.conditioning, info.tasks, params):
            self.scaler = ParamScaler.fit(params)
            self.task_table = torch.stack([self.scaler.vector(p, t) for p, t in
                                           zip(params, info.tasks, strict=True)])  # fmt: skip
        else:
            self.scaler = ParamScaler((), torch.zeros(0), torch.zeros(0))
            self.task_table = torch.zeros(len(info.tasks), 0)
        rows = dataset.train_index
        group = dataset.group[rows]
        self._train = {
            "group": group, "task": dataset.group_task[group], "width": dataset.group_width[group],
        }  # fmt: skip
        if self.config.objective.recon_weight > 0:  # the rows' own (padded) weights
            self._train["weights"] = dataset.weights[rows]
        self._tasks = {t: get_task(t) for t in info.tasks}
        self._build_network(*self._base(dataset))

    def _restore(self, tensors: dict[str, Tensor]) -> None:
        info = self.require_info()
        self.scaler = ParamScaler.from_state_dict(tensors)
        self.task_table = tensors[TASK_TABLE].float()
        d = info.padded.dim
        # theta_0 and the scales are buffers of the network: load_state_dict fills them in
        self._build_network(torch.zeros(len(info.widths), d), torch.zeros(len(info.widths), d))

    def extra_tensors(self) -> dict[str, Tensor]:
        return {**self.scaler.state_dict(), TASK_TABLE: self.task_table}

    # ----- generating ---------------------------------------------------------------------
    def generate(
        self, raw_params: Tensor, task: Tensor | None, width: Tensor, noise: Tensor
    ) -> Tensor:
        """(B, D) padded weights: raw_params (B, K) task parameters (unscaled), task (B,) ids or
        None, width (B,) ids, noise (B, noise_dim) in [0, 1]."""
        net = self.network
        dev = next(net.parameters()).device
        scaled = self.scaler.scale(raw_params).to(dev)
        task = None if task is None else task.to(dev)
        return net(scaled, task, width.to(dev), noise.to(dev))

    # ----- training -----------------------------------------------------------------------
    def training_loss(self, index: Tensor, rng: torch.Generator) -> Tensor:
        info = self.require_info()
        b = {k: v[index] for k, v in self._train.items()}
        n = len(index)
        noise = torch.rand(n, self.config.model.noise_dim, generator=rng)
        ids = None if self.conditioned_on_params else b["task"]
        theta = self.generate(self.task_table[b["task"]], ids, b["width"], noise)  # (B, D)
        total = theta.new_zeros(())
        for arch, groups in self._layouts().items():
            pos = torch.nonzero(torch.isin(b["group"], groups)).flatten()  # this layout's rows
            if len(pos) == 0:
                continue
            w = info.padded.crop(theta[pos], int(groups[0]))  # (P, N)
            total = total + self._task_loss(arch, w, b["group"][pos], rng).sum()
        loss = total / n
        recon = self.config.objective.recon_weight
        if recon > 0:  # mean squared distance in the zoo's normalized units, real coordinates
            mask = info.padded.masks[b["group"]]  # (B, D)
            inv = (mask / info.normalizer.std[b["group"]]).to(theta.device)  # (B, D)
            z = (theta - b["weights"].to(theta.device)) * inv
            loss = loss + recon * (z.pow(2).sum(1) / mask.sum(1).to(theta.device)).mean()
        return loss

    def _layouts(self) -> dict[Architecture, Tensor]:
        """Group ids per architecture (one layout, one batched forward)."""
        out: dict[Architecture, list[int]] = {}
        for g, grp in enumerate(self.require_info().groups):
            out.setdefault(grp.arch, []).append(g)
        return {a: torch.tensor(gs) for a, gs in out.items()}

    def _task_loss(
        self, arch: Architecture, w: Tensor, group: Tensor, rng: torch.Generator
    ) -> Tensor:
        """(P,) each net's loss on ``objective.examples`` training examples of its own task, all
        P nets in one forward on per-model inputs (P, S, *input_shape)."""
        info = self.require_info()
        s = self.config.objective.examples
        tasks = [info.groups[g].task for g in group.tolist()]
        xs, ys = [], []
        for t in tasks:
            x, y = self._tasks[t].split("train")
            pick = torch.randint(len(x), (s,), generator=rng)
            xs.append(x[pick])
            ys.append(y[pick])
        dev = w.device
        out = arch.forward(w, torch.stack(xs).to(dev))  # (P, S, outputs)
        y = torch.stack(ys).to(dev)  # (P, S) labels or (P, S, outputs)
        losses = torch.empty(len(tasks), device=dev)
        for t in set(tasks):
            sel = torch.tensor([u == t for u in tasks], device=dev)
            losses[sel] = task_loss(self._tasks[t], out[sel], y[sel])
        return losses

    # ----- sampling -----------------------------------------------------------------------
    def _sampling(self, options: dict[str, Any]) -> HyperSamplingConfig:
        """The preset's sampling settings with ``options`` applied (a ValueError naming
        unknown ones)."""
        return with_options(self.config.sampling, options, self.kind)

    def check_sample_options(self, options: dict[str, Any]) -> None:
        self._sampling(options)

    def task_vector(self, params: dict[str, float], what: str) -> Tensor:
        """(K,) raw parameters of a task this generator can embed, or a one-line ValueError."""
        info = self.require_info()
        if not self.conditioned_on_params:
            raise ValueError(
                f"cannot embed {what}: this hyper generator was trained with one embedding per "
                f"task ({', '.join(info.tasks)}), not on task parameters"
            )
        return self.scaler.vector(params, what)

    def resolve_unseen(self, cond: Conditions) -> Resolved:
        """A task outside the training groups, by its parameters (``task_params``) or by a
        parametrized task name, at a trained width (default: the widest); a ValueError for a
        task it cannot embed. Parameters equal to a training task's resolve to that group."""
        from generators.conditions import Resolved

        info = self.require_info()
        if cond.task is not None and cond.task in info.tasks and cond.task_params is None:
            info.resolve(cond.task, cond.width)  # a seen task at an untrained width: its error
        if cond.task_params is not None:
            params, what = dict(cond.task_params), f"task parameters {dict(cond.task_params)}"
        elif cond.task is not None:
            params, what = self._named_params(cond.task), f"task {cond.task!r}"
        else:
            raise ValueError("pass task= or task_params= to sample a hyper generator")
        vec = self.task_vector(params, what)
        width = max(info.widths) if cond.width is None else int(cond.width)
        if width not in info.widths:
            raise ValueError(
                f"width {width} is not available (trained widths: {', '.join(map(str, info.widths))})"
            )
        w = info.widths.index(width)
        for t, row in enumerate(self.task_table):  # a training task's parameters: its group
            if torch.equal(row, vec):
                for g, grp in enumerate(info.groups):
                    if grp.task == info.tasks[t] and grp.width == width:
                        return Resolved(grp.arch, grp.task, g)
        family = parse_task_name(info.tasks[0])[0]
        name = cond.task or family + ":" + ",".join(f"{k}={v:g}" for k, v in zip(
            self.scaler.names, vec.tolist(), strict=True))  # fmt: skip
        return Resolved(info.groups[self.width_groups()[w]].arch, name, None)

    @staticmethod
    def _named_params(task: str) -> dict[str, float]:
        try:
            params = dict(get_task(task).params)
        except ValueError as e:
            raise ValueError(f"cannot embed task {task!r}: {e}") from None
        if not params:
            raise ValueError(f"cannot embed task {task!r}: it has no parameters")
        return params

    def _conditioning(self, request: Request) -> tuple[Tensor, int | None]:
        """(K,) raw task parameters and the training-task id (None: an unseen task) of a draw."""
        info = self.require_info()
        if request.group is not None:
            t = info.tasks.index(info.groups[request.group].task)
            return self.task_table[t], t
        cond = request.conditions
        if cond.task_params is not None:
            return self.task_vector(dict(cond.task_params), "these task parameters"), None
        return self.task_vector(self._named_params(request.task), f"task {request.task!r}"), None

    def layout_group(self, request: Request) -> int:
        """The training group whose layout the draws take: the request's own, else one with its
        architecture, else the first of its width."""
        if request.group is not None:
            return request.group
        info = self.require_info()
        same = [g for g, grp in enumerate(info.groups) if grp.arch == request.arch]
        return same[0] if same else self.width_groups()[info.widths.index(request.arch.width)]

    def _sample(
        self, n: int, request: Request, rng: torch.Generator, out: Tensor | None = None,
        **options: Any,
    ) -> Tensor:  # fmt: skip
        sc = self._sampling(options)
        info = self.require_info()
        raw, t = self._conditioning(request)
        if t is None and not self.conditioned_on_params:
            raise ValueError(f"cannot embed task {request.task!r}: not a training task")
        w = info.widths.index(request.arch.width)
        index = info.padded.indices[self.layout_group(request)]  # (N,) its coordinates
        if out is None:
            out = torch.empty(n, len(index))
        elif out.shape != (n, len(index)):
            raise ValueError(f"out must have shape {(n, len(index))}, got {tuple(out.shape)}")
        u = torch.rand(n, self.config.model.noise_dim, generator=rng)  # all draws, chunk-free
        noise = 0.5 + sc.temperature * (u - 0.5)
        for a in range(0, n, SAMPLE_CHUNK):
            m = min(SAMPLE_CHUNK, n - a)
            task = None if self.conditioned_on_params else torch.full((m,), t)
            theta = self.generate(raw.expand(m, -1), task, torch.full((m,), w), noise[a : a + m])
            out[a : a + m] = theta[:, index].cpu()
        return out
