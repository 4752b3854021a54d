"""One shared smooth order for the nets of a width: align them to a smooth-ordered reference.

``zoo canonicalize --method smooth`` orders every net on its own (NeuMeta fits one net, so its
order needs nothing else). A field over many nets also needs their units to correspond, or a
code between two nets mixes unrelated units. Each width's smooth-ordered training nets are
therefore weight-matched (Git Re-Basin) to the width's medoid, which keeps its own smooth order:
the medoid's neighbouring units stay neighbours, and every other net's units sit where they best
match them. The per-net permutations change no net's function.
"""

from __future__ import annotations

from torch import Tensor

from canonicalize import WeightMatching, medoid_index
from canonicalize.methods import method_from_name
from canonicalize.population import align_to_reference
from zoo.architectures import Architecture


def shared_order(arch: Architecture, weights: Tensor, seed: int = 0) -> Tensor:
    """(M, N) the smooth-ordered nets ``weights`` (M, N) weight-matched to their medoid (the
    Transformer's heads by TransFusion)."""
    if len(weights) < 2:
        return weights
    method = (method_from_name("transfusion", seed=seed) if arch.family == "transformer"
              else WeightMatching(seed=seed))  # fmt: skip
    aligned, _ = align_to_reference(arch, weights, method, weights[medoid_index(weights)])
    return aligned
