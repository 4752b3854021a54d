"""Per-layer chunking of a padded weight vector into fixed-size tokens (D2NWG's chunks).

The padded vector of a zoo (:mod:`generators.padding`, every width embedded in the widest
layout) is cut layer by layer: the parameters of one module (``hidden.0.weight`` and
``hidden.0.bias``: one *layer*) are concatenated and cut into chunks of ``size`` values, the last
chunk of a layer zero-filled, so that no token straddles two layers. The chunk size is derived
from the layout, not set by hand per architecture: the smallest power of two that cuts the whole
padded vector into at most ``max_tokens`` chunks. One token layout serves every width of the
zoo: a narrow net's real coordinates fill the leading corner of each tensor, the rest is padding
(``masks``), so its tokens are partly (or wholly) padding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

from generators.padding import PaddedLayout

MIN_CHUNK = 8


def chunk_size(dim: int, max_tokens: int) -> int:
    """The smallest power of two (at least ``MIN_CHUNK``) that cuts ``dim`` values into at most
    ``max_tokens`` chunks."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    return max(MIN_CHUNK, 1 << max(0, math.ceil(math.log2(max(1, math.ceil(dim / max_tokens))))))


def layer_of(name: str) -> str:
    """The module a parameter belongs to: ``hidden.0.weight`` -> ``hidden.0``."""
    return name.rsplit(".", 1)[0] if "." in name else name


@dataclass(frozen=True)
class TokenLayout:
    """Tokens of a padded layout. index: (T, size) long, each token's positions in the padded
    vector (``dim`` for zero fill); layer: (T,) long, the layer id of every token."""

    padded: PaddedLayout
    size: int
    index: Tensor
    layer: Tensor

    @classmethod
    def of(cls, padded: PaddedLayout, max_tokens: int) -> TokenLayout:
        union = padded.union
        size = chunk_size(union.num_params, max_tokens)
        layers: dict[str, list[Tensor]] = {}
        for p in union.params:
            a, b = union.offsets[p.name]
            layers.setdefault(layer_of(p.name), []).append(torch.arange(a, b))
        rows, layer_ids = [], []
        for i, parts in enumerate(layers.values()):
            pos = torch.cat(parts)
            fill = -len(pos) % size
            pos = torch.cat([pos, torch.full((fill,), union.num_params)]).reshape(-1, size)
            rows.append(pos)
            layer_ids.append(torch.full((len(pos),), i))
        return cls(padded, size, torch.cat(rows), torch.cat(layer_ids))

    @property
    def count(self) -> int:
        """T, the number of tokens."""
        return len(self.index)

    @property
    def dim(self) -> int:
        return self.padded.dim

    @cached_property
    def inverse(self) -> Tensor:
        """(D,) long: the position of every padded coordinate in the flattened (T * size) tokens."""
        flat = self.index.reshape(-1)
        real = flat < self.dim
        inv = torch.empty(self.dim, dtype=torch.long)
        inv[flat[real]] = torch.nonzero(real).flatten()
        return inv

    @cached_property
    def masks(self) -> Tensor:
        """(G, T, size) bool: the real coordinates of every group's tokens."""
        m = torch.cat([self.padded.masks, torch.zeros(len(self.padded.masks), 1, dtype=torch.bool)],
                      dim=1)  # fmt: skip
        return m[:, self.index]

    @cached_property
    def token_masks(self) -> Tensor:
        """(G, T) bool: the tokens of every group that hold at least one real coordinate."""
        return self.masks.any(dim=-1)

    def split(self, z: Tensor) -> Tensor:
        """(B, D) padded vectors -> (B, T, size) tokens (zero fill past each layer's end)."""
        ext = torch.cat([z, z.new_zeros(len(z), 1)], dim=1)  # (B, D + 1)
        return ext[:, self.index]

    def join(self, tokens: Tensor) -> Tensor:
        """(B, T, size) tokens -> (B, D) padded vectors (the zero fill dropped)."""
        return tokens.reshape(len(tokens), -1)[:, self.inverse]

    def group_index(self, g: int) -> Tensor:
        """(N_g,) positions of group g's own layout (in its order) in the flattened tokens: a
        draw's tokens go to the group's layout by one gather."""
        return self.inverse[self.padded.indices[g]]
