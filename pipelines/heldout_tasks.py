"""Held-out tasks in ``zoo evaluate``: generated nets for tasks a generator never saw, against
the real nets of those tasks, on their test splits.

A zoo built from a task family names some members as held out (the spec's ``heldout_tasks``);
they are trained and stored, but a generator's data config leaves them out of its training
set. Per held-out population (task x width) of the zoo: the real nets (the generator's own data
filter and weight space) and ``n`` nets the generator draws for that task and width, when it
can (a kind that only samples its training groups refuses, and the reason is recorded).
Summary: ``heldout_task_acc_ratio`` (classification: mean generated test accuracy over mean
real test accuracy, pooled over held-out populations) and ``heldout_task_loss_ratio``
(regression: mean generated test loss over mean real test loss); NaN when no held-out
population of that kind could be generated.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from generators import WeightGenerator
from generators.dataset import read_source
from zoo.store import Zoo, open_zoo
from zoo.tasks import get_task
from zoo.training import evaluate

NAN = float("nan")


def finite_mean(rows: list[dict[str, Any]], key: str) -> float:
    """Mean of ``key`` over the rows where it is present and finite (NaN where none is)."""
    vals = [r[key] for r in rows if math.isfinite(r.get(key, NAN))]
    return float(np.mean(vals)) if vals else NAN


def heldout_task_rows(
    gen: WeightGenerator, zoo: Zoo | str | Path, n: int, seed: int, options: dict[str, Any]
) -> list[dict[str, Any]]:
    """One row per held-out population of the zoo (see the module docstring)."""
    info = gen.require_info()
    held = set(info.data.heldout_tasks or [])
    z = zoo if isinstance(zoo, Zoo) else open_zoo(zoo)
    rows = []
    for name, pop in z.populations.items():
        if pop.task not in held:
            continue
        task = get_task(pop.task)
        real = read_source(pop, info.data).weights  # (M, N) in the generator's weight space
        r_loss, r_acc = evaluate(pop.arch, task, real, "test")
        row: dict[str, Any] = {
            "population": name, "task": pop.task, "width": pop.arch.width, "kind": task.kind,
            "params": dict(task.params), "real_models": len(real),
            "real_test_acc": float(r_acc.mean()), "real_test_loss": float(r_loss.mean()),
        }  # fmt: skip
        try:
            w = gen.sample(n, task=pop.task, width=pop.arch.width, seed=seed, **options).weights()
        except ValueError as e:  # this kind does not generate for tasks it was not trained on
            row.update(generated_models=0, refused=str(e))
        else:
            g_loss, g_acc = evaluate(pop.arch, task, w, "test")
            row.update(generated_models=len(w), generated_test_acc=float(g_acc.mean()),
                       generated_test_loss=float(g_loss.mean()))  # fmt: skip
        rows.append(row)
    return rows


def heldout_task_summary(rows: list[dict[str, Any]], count: int) -> dict[str, Any]:
    """Seen vs held-out headline numbers for ``evaluation.json``'s summary; ``count``: the
    held-out tasks the data config names (some may have no population in the zoo)."""
    cls = [r for r in rows if r["kind"] == "classification" and r["generated_models"]]
    reg = [r for r in rows if r["kind"] == "regression" and r["generated_models"]]

    def ratio(rs: list[dict[str, Any]], gen_key: str, real_key: str) -> float:
        g, r = finite_mean(rs, gen_key), finite_mean(rs, real_key)
        return g / r if math.isfinite(g) and math.isfinite(r) and r != 0 else NAN

    return {
        "heldout_task_count": count,
        "heldout_task_generated_count": len({r["task"] for r in rows if r["generated_models"]}),
        "heldout_task_acc_ratio": ratio(cls, "generated_test_acc", "real_test_acc"),
        "heldout_task_loss_ratio": ratio(reg, "generated_test_loss", "real_test_loss"),
        "heldout_task_generated_acc": finite_mean(cls, "generated_test_acc"),
        "heldout_task_real_acc": finite_mean(cls, "real_test_acc"),
        "heldout_task_generated_loss": finite_mean(reg, "generated_test_loss"),
        "heldout_task_real_loss": finite_mean(reg, "real_test_loss"),
    }


def pool_heldout_task_rows(folds: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Each fold's held-out task rows (one per population, in the same order), pooled: the real
    nets' figures are the same in every fold; the generated ones are averaged over the folds
    that generated (each fold's generator samples its own nets) and their counts summed."""
    pooled = []
    for rows in zip(*folds, strict=True):
        row = dict(rows[0])
        made = [r for r in rows if r["generated_models"]]
        row["generated_models"] = sum(r["generated_models"] for r in made)
        if made:
            row.update({key: float(np.mean([r[key] for r in made]))
                        for key in ("generated_test_acc", "generated_test_loss")})  # fmt: skip
            row.pop("refused", None)
        pooled.append(row)
    return pooled
