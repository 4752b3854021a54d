"""The forward pass of nets given as codes of an affine code, without decoding their input layer.

Best-of-k sampling runs every candidate over the validation split, and the candidates of a flow
on principal components are ``offset + code @ basis`` (:class:`AffineCode`). An input layer's
response (a first layer's pre-activation ``W x + b``) is linear in that layer's parameters, so
for fixed inputs it is ``response(offset) + code @ response(basis)``: computed once per basis
vector, it costs each candidate a (K,) x (K, width * B) product instead of a (width, in) x
(in, B) one (K is a dozen, ``in`` 64 on the default zoo), and the input layer's weights are
never written. Only the kept candidates are decoded in full.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from generators.affine_code import AffineCode
from zoo.architectures import Architecture
from zoo.layout import Layout
from zoo.training import eval_batch


class CodedForward:
    """Outputs on fixed inputs x (B, *input_shape) of nets ``code.decode(codes)`` of ``arch``,
    in chunks of the points as :func:`zoo.training.split_outputs` chunks them for ``models``
    nets at a time. Holds one scratch buffer for the decoded parameters beyond the input layer,
    reused by every call; the outputs equal the forward of the decoded weights up to float
    rounding (the products are summed in another order)."""

    def __init__(self, arch: Architecture, code: AffineCode, x: Tensor, models: int) -> None:
        first = set(arch.input_layer)
        if not first:
            raise ValueError(f"{type(arch).__name__} does not factor out its input layer")
        layout = arch.layout
        if code.offset.shape[0] != layout.num_params:
            raise ValueError(
                f"the code decodes {code.offset.shape[0]} weights, {arch} has {layout.num_params}"
            )
        spans = layout.offsets
        input_params = tuple(p for p in layout.params if p.name in first)
        rest_params = tuple(p for p in layout.params if p.name not in first)
        input_cols, rest_cols = (
            torch.cat([torch.arange(*spans[p.name]) for p in part])
            for part in (input_params, rest_params)
        )
        self.arch = arch
        self.code = code
        self.rest_layout = Layout(rest_params)
        self.rest = AffineCode(code.offset[rest_cols], code.basis[:, rest_cols])
        ends = torch.cat([code.offset[None], code.basis])[:, input_cols]  # (1 + K, N_in)
        params = Layout(input_params).unflatten(ends)
        batch = eval_batch(arch, models)
        k = code.dim
        # per chunk of the points: the offset's response flattened (R,) and the basis' (K, R)
        self.chunks: list[tuple[Tensor, Tensor, tuple[int, ...]]] = []
        with torch.no_grad():
            for a in range(0, len(x), batch):
                r = arch.input_response(params, x[a : a + batch])  # (1 + K, *shape)
                self.chunks.append((r[0].reshape(-1), r[1:].reshape(k, -1), tuple(r.shape[1:])))
        self._scratch = torch.empty(0)

    def outputs(self, codes: Tensor) -> Iterator[Tensor]:
        """(M, b, outputs) per chunk of the points, for the nets of codes (M, K); under
        ``torch.no_grad`` where the codes require a gradient."""
        m = len(codes)
        if self._scratch.shape[0] < m:
            rest = self.rest.offset
            self._scratch = torch.empty(m, rest.shape[0], dtype=rest.dtype)  # (M, N_rest)
        rest = self.rest_layout.unflatten(self.rest.decode(codes, out=self._scratch[:m]))
        for const, per_unit, shape in self.chunks:
            response = torch.addmm(const, codes, per_unit).view(m, *shape)  # (M, *shape)
            yield self.arch.forward_from_response(response, rest)
