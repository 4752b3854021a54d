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


def mean_metric(dataset: WeightDataset, g: int, metric: str, w: Tensor) -> float:
    """Mean ``metric`` (``val_acc`` or ``val_loss``) of group g's nets w (M, D), padded."""
    grp = dataset.groups[g]
    return float(measure_property(metric, grp.arch, grp.task, dataset.padded.crop(w, g)).mean())


def choose_ranks(dataset: WeightDataset, space: GroupPCA, max_drop: float) -> Tensor:
    """(G,) per group, the fewest components (at most the group's own rank in ``space``) whose
    decoded training nets lose at most ``max_drop``: of mean validation accuracy
    (classification), or relative mean validation loss (regression)."""
    full = space.component_mask.sum(dim=1)  # (G,)
    ranks = full.clone()
    for g, grp in enumerate(dataset.groups):
        classify = get_task(grp.task).kind == "classification"
        metric = "val_acc" if classify else "val_loss"
        rows = dataset.group_rows(g, True)
        base = mean_metric(dataset, g, metric, dataset.weights[rows])
        coef = space.encode(dataset.normalized[rows], g)  # (M_g, K)
        gid = torch.full((len(rows),), g)
        for k in range(1, int(full[g])):
            kept = torch.cat([coef[:, :k], torch.zeros_like(coef[:, k:])], dim=1)  # first k
            decoded = dataset.normalizer.denormalize(space.decode(kept, g), gid)  # (M_g, D)
            value = mean_metric(dataset, g, metric, decoded)
            drop = base - value if classify else (value - base) / max(abs(base), 1e-12)
            if drop <= max_drop:
                ranks[g] = k
                break
    return ranks
