"""Per-weight coordinates of a layout, NeuMeta's input: which tensor, which units, of what sizes.

Every scalar of a layout (in layout order) gets one integer row
``[layer, in, out, n_layers, in_size, out_size, kernel]``: ``layer`` is the parameter tensor's
index in the layout (``n_layers`` tensors); ``out`` / ``in`` index its first and second axis
(``out_size`` / ``in_size`` long; a 1-D tensor has ``in = 0``, ``in_size = 1``); ``kernel`` is the
position inside a convolution's kernel (row-major, 0 elsewhere). Every parameter of the MLP, the
CNN and the Transformer families has such a row (1-, 2- and 4-D tensors): the table is exact (one
row per weight, no two alike) and invertible (:meth:`LayoutCoordinates.flat_index`).

The network sees positions, not indices: ``u = (index + 1/2) / size`` on each axis, so a unit
keeps its relative place when the width changes (what lets one field serve every width), Fourier
encoded (``sin, cos(pi 2^k u)``, k < ``frequencies``), plus ``log2`` of both sizes and a one-hot
kernel position. :func:`decode_positions` inverts the encoding back to the integer table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from zoo.architectures import Architecture

COLUMNS = ("layer", "in", "out", "n_layers", "in_size", "out_size", "kernel")
FAMILIES = ("mlp", "cnn", "transformer")
KERNEL_SLOTS = 9  # a 3 x 3 kernel, the largest the supported families use
SIZE_SCALE = 1.0 / 8.0  # log2 sizes up to 256 land in [0, 1]


def check_family(arch: Architecture) -> None:
    """A one-line ValueError for an architecture family NeuMeta has no coordinates for."""
    if arch.family not in FAMILIES:
        raise ValueError(
            f"neumeta has coordinates for the {', '.join(FAMILIES)} families, not {arch.family!r}"
        )


@dataclass(frozen=True)
class LayoutCoordinates:
    """The integer coordinate table of one architecture's layout."""

    arch: Architecture

    def __post_init__(self) -> None:
        check_family(self.arch)
        for name, shape in zip(self.names, self.shapes, strict=True):
            if len(shape) not in (1, 2, 4):
                raise ValueError(f"neumeta cannot place the {len(shape)}-D parameter {name}")
            if len(shape) == 4 and shape[2] * shape[3] > KERNEL_SLOTS:
                raise ValueError(
                    f"neumeta takes kernels of at most {KERNEL_SLOTS} elements, {name} has "
                    f"{shape[2]} x {shape[3]}"
                )

    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(self.arch.layout.names)

    @cached_property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(p.shape) for p in self.arch.layout.params)

    @cached_property
    def tensor_keys(self) -> tuple[str, ...]:
        """``family:name`` of every tensor: the same key at every width (the layer vocabulary)."""
        return tuple(f"{self.arch.family}:{n}" for n in self.names)

    @cached_property
    def table(self) -> Tensor:
        """(N, 7) int64 rows ``COLUMNS`` of every weight, in layout order."""
        parts = []
        n_layers = len(self.shapes)
        for layer, shape in enumerate(self.shapes):
            out_size = shape[0]
            in_size = shape[1] if len(shape) > 1 else 1
            kernel = shape[2] * shape[3] if len(shape) == 4 else 1
            o, i, k = torch.meshgrid(
                torch.arange(out_size), torch.arange(in_size), torch.arange(kernel), indexing="ij"
            )  # row-major over (out, in, kernel): the tensor's own flattening order
            m = o.numel()
            parts.append(torch.stack([
                torch.full((m,), layer), i.flatten(), o.flatten(), torch.full((m,), n_layers),
                torch.full((m,), in_size), torch.full((m,), out_size), k.flatten(),
            ], dim=1))  # fmt: skip
        return torch.cat(parts)

    @cached_property
    def width_axes(self) -> tuple[tuple[bool, bool], ...]:
        """Per tensor, whether its (out, in) sizes follow the width (hidden units, channels,
        d_model), found by comparing with the layout at twice the width; the others (inputs,
        classes, vocabulary, kernel) are the same at every width."""
        other = LayoutCoordinates(self.arch.with_width(2 * self.arch.width)).shapes
        return tuple(
            (a[0] != b[0], len(a) > 1 and a[1] != b[1])
            for a, b in zip(self.shapes, other, strict=True)
        )

    @cached_property
    def offsets(self) -> Tensor:
        """(n_layers,) flat index of every tensor's first weight."""
        sizes = torch.tensor([math.prod(s) for s in self.shapes])
        return torch.cumsum(sizes, 0) - sizes

    @cached_property
    def fan_in(self) -> Tensor:
        """(n_layers,) the inputs each output unit of a tensor reads (a bias: its weight's)."""
        fans = []
        for shape in self.shapes:
            fans.append(math.prod(shape[1:]) if len(shape) > 1 else (fans[-1] if fans else 1))
        return torch.tensor(fans, dtype=torch.float32)

    def flat_index(self, table: Tensor) -> Tensor:
        """(R,) the flat layout index of each row of ``table`` (R, 7): the inverse of
        :attr:`table` (a ValueError for rows that name no weight of this layout)."""
        layer, i, o, nl, ins, outs, k = table.long().unbind(1)
        if len(table) and (
            int(layer.min()) < 0 or int(layer.max()) >= len(self.shapes)
            or bool((nl != len(self.shapes)).any())
        ):  # fmt: skip
            raise ValueError("coordinate rows name layers outside this layout")
        sizes = torch.tensor([[s[0], s[1] if len(s) > 1 else 1] for s in self.shapes])
        kernels = torch.tensor([s[2] * s[3] if len(s) == 4 else 1 for s in self.shapes])
        out_s, in_s, ker = sizes[layer, 0], sizes[layer, 1], kernels[layer]
        if bool(((outs != out_s) | (ins != in_s) | (o < 0) | (o >= out_s) | (i < 0) | (i >= in_s)
                 | (k < 0) | (k >= ker)).any()):  # fmt: skip
            raise ValueError("coordinate rows do not fit this layout's tensor shapes")
        return self.offsets[layer] + (o * in_s + i) * ker + k


def fourier(u: Tensor, frequencies: int) -> Tensor:
    """(R,) positions in (0, 1) -> (R, 2F): sin and cos of pi 2^k u, k < F."""
    angles = u.unsqueeze(-1) * (math.pi * 2.0 ** torch.arange(frequencies, dtype=u.dtype))
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def positions(table: Tensor, noise: Tensor | None = None) -> Tensor:
    """(R, 2) relative positions ``(index + 1/2 + noise) / size`` on the in and out axes;
    ``noise``: (R, 2) offsets in units of one cell (uniform in [-1/2, 1/2) while training)."""
    idx = table[:, [1, 2]].to(torch.float32) + 0.5
    if noise is not None:
        idx = idx + noise
    return idx / table[:, [4, 5]].to(torch.float32)


def encode(table: Tensor, frequencies: int, noise: Tensor | None = None) -> Tensor:
    """(R, 7) integer rows -> (R, encoded_dim(frequencies)) float features: Fourier features of
    the in and out positions, log2 of both sizes, one-hot kernel position. The layer enters the
    field as a learned embedding, not here."""
    u = positions(table, noise)
    sizes = torch.log2(table[:, [4, 5]].to(torch.float32)) * SIZE_SCALE
    kernel = torch.nn.functional.one_hot(table[:, 6], KERNEL_SLOTS).to(torch.float32)
    return torch.cat([fourier(u[:, 0], frequencies), fourier(u[:, 1], frequencies), sizes, kernel],
                     dim=1)  # fmt: skip


def encoded_dim(frequencies: int) -> int:
    return 4 * frequencies + 2 + KERNEL_SLOTS


def decode_positions(features: Tensor, layer: Tensor, n_layers: int, frequencies: int) -> Tensor:
    """The inverse of :func:`encode` (without noise): features (R, encoded_dim) and the rows'
    layer ids (R,) -> the (R, 7) integer table. The lowest frequency gives each position on
    (0, 1) as an angle in (0, pi), the sizes come back from their log2."""
    f = frequencies
    sizes = torch.round(torch.exp2(features[:, 4 * f : 4 * f + 2].double() / SIZE_SCALE)).long()
    rows = []
    for axis in range(2):  # in, out
        s, c = features[:, 2 * f * axis].double(), features[:, 2 * f * axis + f].double()
        u = torch.atan2(s, c) / math.pi  # (R,) in (0, 1)
        rows.append(torch.round(u * sizes[:, axis] - 0.5).long())
    kernel = features[:, 4 * f + 2 :].argmax(dim=1)
    nl = torch.full_like(layer, n_layers)
    return torch.stack([layer.long(), rows[0], rows[1], nl, sizes[:, 0], sizes[:, 1], kernel], 1)
