"""Per-group PCA rank chosen by what the projection does to the networks, not to the vectors.

A fixed number of principal components is a poor fit for a zoo of several widths: decoding a
wide net from a few components keeps its function (and even denoises it), while a narrow net,
whose nets lie in separate basins that weight matching cannot merge, loses most of its accuracy
(on the default zoo, 6 components take width-8 nets from 0.68 to 0.48 mean test accuracy).
Samples can never be better than the projection of the training nets they are drawn around, so
the rank of each group is set to the fewest components whose projected-and-decoded training nets
keep their validation metric (accuracy; relative loss for regression) within ``max_drop`` of the
originals. Only the validation split is used.
"""

from __future__ import annotations

import torch
from torch import Tensor

from generators.dataset import WeightDataset, measure_property
from generators.flow.projection import GroupPCA
from zoo.tasks import get_task


def reconstruction_drop(dataset: WeightDataset, space: GroupPCA, g: int, k: int) -> float:
    """How much worse group g's training nets get when kept to their first k components: the
    drop of mean validation accuracy (classification) or the relative rise of mean validation
    loss (regression)."""
    grp = dataset.groups[g]
    rows = dataset.group_rows(g, True)
    z = dataset.normalized[rows]  # (M_g, D)
    c = space.encode(z, g)  # (M_g, K)
    c[:, k:] = 0.0
    rec = dataset.normalizer.denormalize(space.decode(c, g), torch.full((len(rows),), g))
    w0, w1 = dataset.padded.crop(dataset.weights[rows], g), dataset.padded.crop(rec, g)
    if get_task(grp.task).kind == "classification":
        a0 = measure_property("val_acc", grp.arch, grp.task, w0).mean()
        a1 = measure_property("val_acc", grp.arch, grp.task, w1).mean()
        return float(a0 - a1)
    l0 = measure_property("val_loss", grp.arch, grp.task, w0).mean()
    l1 = measure_property("val_loss", grp.arch, grp.task, w1).mean()
    return float((l1 - l0) / l0.abs().clamp_min(1e-12))


def choose_ranks(dataset: WeightDataset, space: GroupPCA, max_drop: float) -> Tensor:
    """(G,) per group, the fewest components (at most the group's own rank in ``space``) whose
    reconstructions lose at most ``max_drop`` (see :func:`reconstruction_drop`)."""
    full = space.component_mask.sum(dim=1)  # (G,)
    ranks = full.clone()
    for g in range(len(dataset.groups)):
        for k in range(1, int(full[g])):
            if reconstruction_drop(dataset, space, g, k) <= max_drop:
                ranks[g] = k
                break
    return ranks
