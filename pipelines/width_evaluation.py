"""``zoo evaluate --widths``: generated nets at chosen widths against the zoo's real nets.

For a generator that samples any width of its range (``neumeta``), per requested width W (one
task): the mean test accuracy of ``n`` sampled nets, and the real reference. At a zoo width the
reference is that width's held-out real nets (``ratio``: generated / held-out). At a width in no
population it is interpolated from the real nets of the two neighbouring zoo widths (every real
net of those widths: the generator saw none of width W), linearly in log(width):
``ratio`` is generated / interpolated. Widths outside the zoo's range are refused by the
generator in one line.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from generators import WeightDataset, WeightGenerator
from zoo.tasks import get_task
from zoo.training import evaluate


def parse_widths(text: str) -> list[int]:
    """``"24,48,96"`` -> [24, 48, 96]; a one-line ValueError for anything else."""
    try:
        widths = [int(w) for w in text.split(",") if w.strip()]
    except ValueError:
        raise ValueError(f"--widths takes comma-separated integers, got {text!r}") from None
    if not widths or min(widths) < 1:
        raise ValueError(f"--widths takes positive integers, got {text!r}")
    return widths


def real_accuracy(ds: WeightDataset, task: str, width: int, heldout_only: bool) -> torch.Tensor:
    """(M,) test accuracy of the dataset's real nets of (task, width): held-out ones or all."""
    g = next(i for i, grp in enumerate(ds.groups) if grp.task == task and grp.width == width)
    rows = ds.group_rows(g, False)
    if not heldout_only:
        rows = torch.nonzero(ds.group == g).flatten()
    w = ds.padded.crop(ds.weights[rows], g)
    return evaluate(ds.groups[g].arch, get_task(task), w, "test")[1]


def interpolate_log(width: int, lo: int, hi: int, a_lo: float, a_hi: float) -> float:
    """The value at ``width`` on the line through (log lo, a_lo) and (log hi, a_hi)."""
    t = (math.log(width) - math.log(lo)) / (math.log(hi) - math.log(lo))
    return a_lo + t * (a_hi - a_lo)


def evaluate_widths(
    gen: WeightGenerator, ds: WeightDataset, widths: list[int], n: int = 100, seed: int = 0,
    task: str | None = None, **options: Any,
) -> dict[str, Any]:  # fmt: skip
    """Per width: generated accuracy (mean, min, max), the real reference and their ratio
    (see the module docstring); ``options``: the generator's sampling options."""
    task = task or ds.tasks[0]
    if task not in ds.tasks:
        raise ValueError(f"unknown task {task!r} (the zoo has: {', '.join(ds.tasks)})")
    zoo_widths = sorted(g.width for g in ds.groups if g.task == task)
    data = get_task(task)
    rows = []
    for width in widths:
        t0 = time.perf_counter()
        pop = gen.sample(n, task=task, width=width, seed=seed, **options)
        seconds = time.perf_counter() - t0
        acc = evaluate(pop.arch, data, pop.weights(), "test")[1]
        row: dict[str, Any] = {"width": width, "seen": width in zoo_widths, "n": n,
                               "generated_mean": float(acc.mean()),
                               "generated_min": float(acc.min()),
                               "generated_max": float(acc.max()), "sample_seconds": seconds}  # fmt: skip
        if width in zoo_widths:
            real = real_accuracy(ds, task, width, heldout_only=True)
            row.update(reference="held-out real nets", real_mean=float(real.mean()),
                       real_count=len(real))  # fmt: skip
        else:
            lo = max(w for w in zoo_widths if w < width)
            hi = min(w for w in zoo_widths if w > width)
            a_lo, a_hi = (float(real_accuracy(ds, task, w, False).mean()) for w in (lo, hi))
            row.update(reference=f"interpolated between widths {lo} and {hi} (all real nets)",
                       neighbours=[lo, hi], neighbour_means=[a_lo, a_hi],
                       real_mean=interpolate_log(width, lo, hi, a_lo, a_hi))  # fmt: skip
        row["ratio"] = (
            row["generated_mean"] / row["real_mean"] if row["real_mean"] > 0 else math.nan
        )
        rows.append(row)
    return {"task": task, "zoo_widths": zoo_widths, "widths": rows}
