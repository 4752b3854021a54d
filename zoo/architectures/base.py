"""The architecture interface: a single-model ``nn.Module`` factory plus layout and symmetries.

A population of P models with one layout is a ``(P, N)`` float32 matrix. :meth:`forward`
evaluates all P models at once with ``torch.func.vmap`` over ``functional_call`` of one template
module, so a population trains and evaluates as one batched computation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from typing import ClassVar

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from zoo.layout import Layout
from zoo.permutation import PermutationSpec


@dataclass(frozen=True)
class Architecture(ABC):
    """Base class of architecture configs. Subclasses are frozen dataclasses of hyperparameters."""

    family: ClassVar[str]
    width: int

    @abstractmethod
    def build(self) -> nn.Module:
        """A fresh single model with PyTorch's default initialization (uses the global RNG)."""

    @abstractmethod
    def permutation_spec(self) -> PermutationSpec:
        """Which permutation group acts on each axis of each parameter."""

    @property
    @abstractmethod
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input example (without batch axis)."""

    @property
    def input_dtype(self) -> torch.dtype:
        return torch.float32

    def with_width(self, width: int) -> Architecture:
        return replace(self, width=width)

    def to_dict(self) -> dict:
        return {"family": self.family, **asdict(self)}

    @cached_property
    def _template(self) -> nn.Module:
        return self.build().requires_grad_(False)

    def _template_on(self, device: torch.device) -> nn.Module:
        """The template module on ``device`` (copied once per device; its values are unused)."""
        cache = self.__dict__.setdefault("_templates", {})
        if device not in cache:
            cache[device] = self._template if device.type == "cpu" else self.build().to(device)
        return cache[device]

    @cached_property
    def layout(self) -> Layout:
        return Layout.from_module(self._template)

    @property
    def num_params(self) -> int:
        return self.layout.num_params

    def init_weights(self, seeds: list[int] | Tensor) -> Tensor:
        """(P,) seeds -> (P, N) initial weights; row p is exactly ``build()`` under seed p."""
        rows = []
        with torch.random.fork_rng(devices=[]):
            for s in seeds:
                torch.manual_seed(int(s))
                m = self.build()
                rows.append(self.layout.flatten(dict(m.named_parameters())).detach())
        return torch.stack(rows)

    def forward(self, weights: Tensor, x: Tensor) -> Tensor:
        """Batched forward of P models.

        weights: (P, N); x: (B, *input_shape) shared by all models, or (P, B, *input_shape).
        Returns (P, B, outputs).
        """
        return self.forward_params(self.layout.unflatten(weights), x)

    def forward_params(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        """Like :meth:`forward` with weights given per parameter, {name: (P, *shape)}.

        Training differentiates with respect to these views of the flat matrix: it avoids the
        zero-filled (P, N) gradient buffer that autograd builds for every slice of a flat leaf.
        """
        template = self._template_on(next(iter(params.values())).device)

        def one(p: dict[str, Tensor], xb: Tensor) -> Tensor:
            return functional_call(template, p, (xb,))

        shared = x.dim() == len(self.input_shape) + 1
        return vmap(one, in_dims=(0, None if shared else 0))(params, x)

    @property
    def input_layer(self) -> tuple[str, ...]:
        """The parameters of the input layer, where :meth:`forward_params` factors as
        ``forward_from_response(input_response(params, x), params)`` with a response linear in
        these parameters jointly (a first layer's pre-activation, bias included); () where the
        architecture does not factor. Nets that are an affine function of a short code then get
        that layer's response from the code, computed once per basis vector
        (:class:`generators.coded_forward.CodedForward`): worth it where each output of the layer
        reads more inputs than a code has units (an MLP on 64 pixels, not a 3 x 3 conv on one
        channel or an embedding lookup)."""
        return ()

    def input_response(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        """(P, *R) the input layer's response to x (B, *input_shape) shared by the P models, from
        ``params`` holding (at least) the :attr:`input_layer` parameters, {name: (P, *shape)}."""
        raise NotImplementedError(f"{type(self).__name__} does not factor out its input layer")

    def forward_from_response(self, response: Tensor, params: dict[str, Tensor]) -> Tensor:
        """(P, B, outputs) from the input layer's ``response`` (overwritten) and the other
        parameters of ``params``."""
        raise NotImplementedError(f"{type(self).__name__} does not factor out its input layer")

    def module(self, flat: Tensor) -> nn.Module:
        """A standalone ``nn.Module`` holding the weights of one flat row (N,)."""
        m = self.build()
        params = self.layout.unflatten(flat.detach().to(torch.float32))
        with torch.no_grad():
            for name, p in m.named_parameters():
                p.copy_(params[name])
        return m.eval()
