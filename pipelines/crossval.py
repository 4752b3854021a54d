"""Cross-validated generator evaluation: K generators, one per fold, each real model held out once.

A group of the default zoo has about 13 models spread over loss-landscape phases (test accuracy
from 0.15 to 0.98), so one 80/20 split holds out 3 of them and its held-out mean depends mostly on
which 3 were drawn: on the default zoo the accuracy ratio of one generator moves by more than 10
points between split seeds. Here the models of every group are dealt into K folds
(``data.folds``/``data.fold``), one generator is trained per fold, and the per-net figures (real
held-out accuracies and their disagreement with the nearest training net, generated accuracies)
are pooled over folds, so every real model counts once; per-generator figures (novelty,
diversity, ensembles, timings, the trade-off sweep) are averaged over folds. The pooled report
has the layout of :func:`pipelines.evaluate.evaluate_generator`'s, plus ``folds`` (each fold's
own summary) and ``train_seconds``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from generators import WeightDataset, WeightGenerator
from pipelines.evaluate import (
    EvalSettings,
    aggregate,
    evaluate_generator,
    per_group,
    ratio,
    share_within,
    summary,
    write_report,
)
from pipelines.heldout_tasks import finite_mean, heldout_task_summary, pool_heldout_task_rows

# summary figures that do not depend on the fold (all real nets, whatever the split): pooled,
# the first fold's value
FOLD_INVARIANT = ("real_task_pair_disagreement",)
# a regression group's per-fold figures that are averaged over folds
REGRESSION_MEANS = ("train_models", "generated_loss", "train_loss", "generated_nn_distance",
                    "heldout_nn_distance", "seconds_per_net")  # fmt: skip


def _mean_dict(dicts: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([d[k] for d in dicts])) for k in dicts[0]}


def pool_group(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """One group's per-fold results (``evaluate_group`` dicts) pooled as described above."""
    first = folds[0]
    gen_acc = [a for f in folds for a in f["generated_acc"]]
    out: dict[str, Any] = {
        "group": first["group"], "task": first["task"], "width": first["width"],
        "train_models": float(np.mean([f["train_models"] for f in folds])),
        "heldout_models": sum(f["heldout_models"] for f in folds),
        "seconds_per_net": float(np.mean([f["seconds_per_net"] for f in folds])),
        "generated": {"free": summary(torch.tensor(gen_acc))}, "generated_acc": gen_acc,
        "real_acc": first["real_acc"],  # every fold sees all real models (train + held out)
        "real_pair_disagreement": first["real_pair_disagreement"],
        "real_replicate_disagreement": first.get("real_replicate_disagreement", float("nan")),
        "novelty": _mean_dict([f["novelty"] for f in folds]),
        "diversity": float(np.mean([f["diversity"] for f in folds])),
        "ensemble": {"k": first["ensemble"]["k"],
                     **_mean_dict([{k: v for k, v in f["ensemble"].items() if k != "k"}
                                   for f in folds])},
        "fidelity": _mean_dict([f["fidelity"] for f in folds]),
        "real": {"all": summary(torch.tensor(first["real_acc"]))},
    }  # fmt: skip
    held = [f for f in folds if "heldout_acc" in f]
    if held:
        held_acc = torch.tensor([a for f in held for a in f["heldout_acc"]])
        held_dis = [d for f in held for d in f["heldout_nn_disagreement"]]
        hmean = float(held_acc.mean())
        out["real"]["heldout"] = summary(held_acc)
        out["heldout_acc"] = held_acc.tolist()
        out["heldout_nn_disagreement"] = held_dis
        out["real_nn_disagreement"] = float(np.mean(held_dis))
        out["generated"]["free"]["within_5_points"] = share_within(torch.tensor(gen_acc), hmean)
        if all("matched_acc" in f for f in held):
            macc = torch.tensor([a for f in held for a in f["matched_acc"]])
            out["generated"]["matched"] = summary(macc)
            out["generated"]["matched"]["within_5_points"] = share_within(macc, hmean)
            out["novelty_matched"] = _mean_dict([f["novelty_matched"] for f in held])
    return out


def pool_tradeoff(folds: list[list[dict[str, float]]]) -> list[dict[str, float]]:
    """Trade-off rows averaged over folds; the accuracy ratio is recomputed from the means."""
    rows = []
    for per_fold in zip(*folds, strict=True):
        row = _mean_dict(list(per_fold))
        row["acc_ratio"] = ratio(row["generated_acc"], row["heldout_acc"])
        rows.append(row)
    return rows


def pool_regression_row(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """One regression group's per-fold rows (:func:`pipelines.regression_evaluation.
    regression_group`) pooled: held-out real MSE weighted by each fold's held-out models (every
    real model counts once), the generated and training figures averaged over folds."""
    held = [(r["heldout_loss"], r["heldout_models"]) for r in folds if r["heldout_models"]]
    n_held = sum(m for _, m in held)
    # finite means: a fold without held-out models of this group has no held-out distance
    row = {**folds[0], **{k: finite_mean(folds, k) for k in REGRESSION_MEANS}}
    row["heldout_models"] = n_held
    row["heldout_loss"] = sum(v * m for v, m in held) / n_held if n_held else float("nan")
    row["loss_ratio"] = ratio(row["generated_loss"], row["heldout_loss"])
    return row


def pool_reports(reports: list[dict[str, Any]], label: str = "") -> dict[str, Any]:
    """The per-fold reports of :func:`pipelines.evaluate.evaluate_generator` (classification or
    regression), pooled, their held-out task rows too."""
    from pipelines.regression_evaluation import regression_summary

    if not reports:
        raise ValueError("cross-validation needs at least one fold report")
    first = reports[0]
    held = pool_heldout_task_rows([r.get("heldout_tasks", []) for r in reports])
    # the count of held-out tasks is the data config's, the same in every fold
    held_summary = heldout_task_summary(held, first["summary"].get("heldout_task_count", 0))
    common = {
        "label": label or first["label"], "kind": first["kind"], "canonical": first["canonical"],
        "settings": {**first["settings"], "folds": len(reports)}, "heldout_tasks": held,
        "folds": [r["summary"] for r in reports],
    }  # fmt: skip
    if first.get("task_kind") == "regression":
        rows = [pool_regression_row(list(per_group))
                for per_group in zip(*[r["per_group"] for r in reports], strict=True)]  # fmt: skip
        return {**common, "task_kind": "regression", "per_group": rows, "tradeoff": [],
                "summary": {**regression_summary(rows), **held_summary}}  # fmt: skip
    groups = [pool_group(list(per_group)) for per_group in zip(*[r["groups"] for r in reports],
                                                                strict=True)]  # fmt: skip
    return {
        **common,
        "summary": {**aggregate(groups), **{k: first["summary"][k] for k in FOLD_INVARIANT
                                             if k in first["summary"]}, **held_summary},
        "per_group": per_group(groups), "groups": groups,
        "tradeoff": pool_tradeoff([r["tradeoff"] for r in reports]) if first["tradeoff"] else [],
    }  # fmt: skip


def cross_validate(
    make: Callable[[], WeightGenerator], zoo: str, folds: int, out_dir: str | Path,
    settings: EvalSettings | None = None, populations: list[str] | None = None,
    max_steps: int | None = None, label: str = "", console: Console | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Train ``folds`` generators (``make()`` gives each a fresh one; fold f is held out by the
    f-th), evaluate each on its own held-out models and pool; writes ``out_dir/fold-F`` (one
    generator run dir per fold) and ``out_dir/evaluation.json`` plus PNGs. Returns the pooled
    report, with ``train_seconds`` (per fold) and ``plots``."""
    from pipelines.generator_training import train_generator

    if folds < 2:
        raise ValueError(f"cross-validation needs folds >= 2, got {folds}")
    console = console or Console()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    reports, seconds = [], []
    read: WeightDataset | None = None
    for f in range(folds):
        gen = make()
        gen.config = gen.config.with_overrides({"data.folds": folds, "data.fold": f})
        if read is None or not read.reads_like(gen.config.data):  # else re-split, not re-read
            read = WeightDataset.from_zoo(zoo, populations, gen.config.data)
        ds = read.with_fold(folds, f)
        console.print(f"fold {f + 1}/{folds}: {len(ds.train_index)} training models, "
                      f"{len(ds) - len(ds.train_index)} held out")  # fmt: skip
        seconds.append(train_generator(gen, ds, out / f"fold-{f}", max_steps=max_steps).seconds)
        reports.append(evaluate_generator(gen, ds, settings, label=label, zoo=zoo))
    report = pool_reports(reports, label)
    report["train_seconds"] = seconds
    return write_report(report, out)


def fold_dirs(run_dir: str | Path, sub: str = "") -> list[Path]:
    """The ``fold-F`` generator run dirs of a cross-validated run, in fold order (``sub``: a
    folder inside each, e.g. a distilled generator's first round, ``round-0``)."""
    dirs = [d for d in Path(run_dir).glob("fold-*") if d.name[5:].isdigit() and d.is_dir()]
    dirs = [d / sub for d in sorted(dirs, key=lambda d: int(d.name[5:]))]
    return [d for d in dirs if d.is_dir()]


def evaluate_folds(
    run_dir: str | Path, zoo: str, settings: EvalSettings, out_dir: str | Path, label: str = "",
    sub: str = "",
) -> dict[str, Any]:  # fmt: skip
    """Evaluate the trained generators of a cross-validated run again (other sampling settings,
    e.g. ``candidates``; or, with ``sub="round-0"``, the first rounds of distilled ones),
    each on its own held-out models, pooled as by :func:`cross_validate`; writes
    ``out_dir/evaluation.json`` plus PNGs and returns the pooled report."""
    from generators import load_generator
    from pipelines.evaluate import dataset_for

    dirs = fold_dirs(run_dir, sub)
    if not dirs:
        raise FileNotFoundError(f"{run_dir} holds no fold-F generators "
                                "(cross-validate with `zoo train-generator --folds K`)")  # fmt: skip
    reports, ds = [], None
    for d in dirs:
        gen = load_generator(d)
        ds = dataset_for(gen, zoo, ds)  # the zoo is read once, then re-split per fold
        reports.append(evaluate_generator(gen, ds, settings, label=label, zoo=zoo))
    return write_report(pool_reports(reports, label), out_dir)
