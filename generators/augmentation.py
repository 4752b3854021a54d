"""Weight-space interpolation augmentation: synthetic training nets between pairs of real ones.

In a canonical (permutation-aligned) zoo, the nets of a group sit in one basin, so the segment
between two of them stays low-loss (the linear mode connectivity that Git Re-Basin restores);
in raw weights the same segment crosses a loss barrier. Points drawn on such segments, each
labelled with its *measured* property (the validation accuracy by default), give a generator
many nets between the ~10 real ones per group instead of only the real ones: without them a
flow learns little more than the training points (the near-copy regime of DeepWeightFlow).
Held-out models are never used, and the property prompt at sampling time still comes from the
real training nets, so a generator is asked for nets as good as real ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from generators.config import AugmentConfig
from generators.dataset import WeightDataset, is_measurable, measure_property


@dataclass(frozen=True)
class Interpolated:
    """Synthetic nets. weights: (K, D) padded, unnormalized; group: (K,) group ids; prop: (K,)
    measured property (NaN where the dataset has none); parents: (K, 2) dataset rows; t: (K,)
    position on the segment (0: first parent)."""

    weights: Tensor
    group: Tensor
    prop: Tensor
    parents: Tensor
    t: Tensor

    def __len__(self) -> int:
        return len(self.weights)


def worse_than_parents(child: Tensor, pa: Tensor, pb: Tensor, name: str, max_drop: float) -> Tensor:
    """(K,) bool: the child's property is more than ``max_drop`` worse than its worse parent's
    (a higher ``*_loss``, a lower ``*_acc``). Unknown parent values (NaN) never reject."""
    higher_is_better = name.endswith("_acc")
    sign = 1.0 if higher_is_better else -1.0
    floor = torch.minimum(sign * pa, sign * pb) - max_drop  # in "higher is better" units
    return (sign * child < floor) & torch.isfinite(floor)


def interpolate_models(dataset: WeightDataset, cfg: AugmentConfig, seed: int) -> Interpolated:
    """``cfg.interpolations`` candidate nets per training net of every group with >= 2 of them:
    w = (1 - t) w_a + t w_b for two distinct training nets a, b and t ~ U[t_min, 1 - t_min];
    with ``cfg.max_drop`` set, the candidates worse than their parents are dropped."""
    prop_name = dataset.config.property
    if prop_name and not is_measurable(prop_name):
        raise ValueError(
            f"augment.interpolations needs a property measurable from the weights "
            f"({{train,val,test}}_{{acc,loss}}) or none, got data.property = {prop_name!r}"
        )
    rng = torch.Generator().manual_seed(seed)
    weights, groups, props, parents, ts = [], [], [], [], []
    for g, grp in enumerate(dataset.groups):
        rows = dataset.group_rows(g, True)
        m = len(rows)
        k = cfg.interpolations * m
        if m < 2 or k == 0:
            continue
        ia = torch.randint(m, (k,), generator=rng)
        ib = (ia + 1 + torch.randint(m - 1, (k,), generator=rng)) % m  # a partner != a
        a, b = rows[ia], rows[ib]
        t = cfg.t_min + (1 - 2 * cfg.t_min) * torch.rand(k, generator=rng)
        w = torch.lerp(dataset.weights[a], dataset.weights[b], t[:, None])  # (k, D); pads stay 0
        prop = (
            measure_property(prop_name, grp.arch, grp.task, dataset.padded.crop(w, g))
            if prop_name
            else torch.full((k,), float("nan"))
        )
        if cfg.max_drop is not None and prop_name:
            keep = ~worse_than_parents(prop, dataset.prop[a], dataset.prop[b], prop_name,
                                       cfg.max_drop)  # fmt: skip
            w, prop, a, b, t, k = w[keep], prop[keep], a[keep], b[keep], t[keep], int(keep.sum())
        weights.append(w)
        groups.append(torch.full((k,), g, dtype=torch.long))
        props.append(prop.float())
        parents.append(torch.stack([a, b], dim=1))
        ts.append(t)
    if not weights:
        d = dataset.dim
        return Interpolated(torch.zeros(0, d), torch.zeros(0, dtype=torch.long), torch.zeros(0),
                            torch.zeros(0, 2, dtype=torch.long), torch.zeros(0))  # fmt: skip
    return Interpolated(torch.cat(weights), torch.cat(groups), torch.cat(props),
                        torch.cat(parents), torch.cat(ts))  # fmt: skip
