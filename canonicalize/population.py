"""Align a whole population (M, N) of one layout to a shared reference.

Reference ``medoid`` (default): the model with the smallest sum of L2 distances to the others;
every model is aligned to it. Reference ``barycenter``: start by aligning all to the medoid,
then repeatedly align the aligned models to their mean (warm-started: each descent starts from
the model's last alignment) until no model moves (so the mean stops moving) or ``max_rounds``. Smoothing needs no reference: each
model is ordered on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from canonicalize.methods import Canonicalizer, method_from_name
from canonicalize.permutation import Permutation
from zoo.architectures import Architecture
from zoo.finite import finite_rows

REFERENCES = ("medoid", "barycenter")
Progress = Callable[[int, int], None]  # (models done, models total)


@dataclass
class AlignedPopulation:
    """weights: (M, N) aligned weights (each row computes the same function as before);
    perms: {group: (M, size) long}, row m = the permutation applied to model m;
    reference_index: the medoid's row (also the barycenter's starting point), -1 if no reference;
    reference: (N,) the final reference (None for smoothing); distance_before / distance_after:
    mean pairwise L2 distance of the rows; rounds: barycenter rounds run (1 for medoid);
    median_before / median_after: the median pairwise L2 distance, which one blown-up model
    barely moves."""

    weights: Tensor
    perms: dict[str, Tensor]
    reference_index: int
    reference: Tensor | None
    distance_before: float
    distance_after: float
    rounds: int
    median_before: float
    median_after: float


def check_population(arch: Architecture, weights: Tensor | np.ndarray) -> Tensor:
    """(M, N) finite float weights for ``arch``, or a ValueError naming the problem."""
    w = torch.as_tensor(weights)
    if w.dim() != 2 or w.shape[0] == 0:
        raise ValueError(
            f"a population is a non-empty (models, params) matrix, got {tuple(w.shape)}"
        )
    if w.shape[1] != arch.num_params:
        raise ValueError(
            f"population weights have {w.shape[1]} parameters per model, but the "
            f"{arch.family} layout has {arch.num_params}"
        )
    finite = finite_rows(w)
    if not finite.all():
        bad = torch.nonzero(~finite).flatten().tolist()
        raise ValueError(f"population rows {bad[:10]} contain NaN or inf (diverged models?)")
    return w


def pairwise_distance_summary(weights: Tensor) -> tuple[float, float]:
    """(mean, median) L2 distance over all pairs of rows of (M, N), from one ``pdist``; zeros for
    fewer than two rows. Unlike the mean, one blown-up model barely moves the median."""
    if len(weights) < 2:
        return 0.0, 0.0
    d = torch.pdist(weights.double())  # (M (M - 1) / 2,)
    return float(d.mean()), float(d.median())


def mean_pairwise_distance(weights: Tensor) -> float:
    """Mean L2 distance over all pairs of rows of (M, N); 0 for fewer than two rows."""
    return pairwise_distance_summary(weights)[0]


def median_pairwise_distance(weights: Tensor) -> float:
    """Median L2 distance over all pairs of rows of (M, N); 0 for fewer than two rows."""
    return pairwise_distance_summary(weights)[1]


def medoid_index(weights: Tensor) -> int:
    """Row of (M, N) with the smallest sum of L2 distances to all rows."""
    w = weights.double()
    return int(torch.cdist(w, w).sum(dim=1).argmin())


def stack_perms(arch: Architecture, perms: list[Permutation]) -> dict[str, Tensor]:
    """[Permutation] * M -> {group: (M, size) long}, every group of the spec."""
    ident = arch.permutation_spec().identity()
    return {g: torch.stack([p.perms.get(g, ident[g]) for p in perms]) for g in ident}


def align_to_reference(
    arch: Architecture,
    weights: Tensor,
    method: Canonicalizer,
    reference: Tensor | None,
    progress: Progress | None = None,
) -> tuple[Tensor, list[Permutation]]:
    """Canonicalize every row of (M, N); returns the (M, N) permuted weights and the perms."""
    perms, rows = [], []
    for m, w in enumerate(weights):
        p = method.permutation(arch, w, reference)
        perms.append(p)
        rows.append(p.apply(w))
        if progress is not None:
            progress(m + 1, len(weights))
    return torch.stack(rows), perms


def align_population(
    arch: Architecture,
    weights: Tensor | np.ndarray,
    method: str | Canonicalizer = "weight-matching",
    reference: str = "medoid",
    seed: int = 0,
    max_rounds: int = 10,
    progress: Progress | None = None,
) -> AlignedPopulation:
    """Canonicalize a population (M, N); see the module docstring for the references."""
    w = check_population(arch, weights)
    if reference not in REFERENCES:
        raise ValueError(f"unknown reference {reference!r} ({', '.join(REFERENCES)})")
    meth = method_from_name(method, seed=seed) if isinstance(method, str) else method
    before = pairwise_distance_summary(w)  # (mean, median)
    if not meth.needs_reference:
        aligned, perms = align_to_reference(arch, w, meth, None, progress)
        return _aligned(arch, aligned, perms, -1, None, before, 1)
    idx = medoid_index(w)
    ref = w[idx]
    aligned, perms = align_to_reference(arch, w, meth, ref, progress)
    rounds = 1
    while reference == "barycenter" and rounds < max_rounds:
        # Align the aligned models again, to their mean: warm-started from the last alignment.
        ref = aligned.mean(dim=0)
        aligned, moves = align_to_reference(arch, aligned, meth, ref, progress)
        perms = [p.then(q) for p, q in zip(perms, moves, strict=True)]
        rounds += 1
        if all(q.is_identity() for q in moves):
            break  # nothing moved: the mean stays where it is
    return _aligned(arch, aligned, perms, idx, ref, before, rounds)


def _aligned(
    arch: Architecture, aligned: Tensor, perms: list[Permutation], idx: int, ref: Tensor | None,
    before: tuple[float, float], rounds: int,
) -> AlignedPopulation:  # fmt: skip
    after = pairwise_distance_summary(aligned)
    return AlignedPopulation(aligned, stack_perms(arch, perms), idx, ref, before[0], after[0],
                             rounds, before[1], after[1])  # fmt: skip
