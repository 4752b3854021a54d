"""``zoo evaluate``: how good and how new are a generator's networks, on held-out real models.

Per group (task x width) of the generator, with T its training models, H its held-out models and
G freshly sampled nets (no fine-tuning), all on the task's test split:

* accuracy of G vs H (mean, median, min, max; share of G within 5 points of H's mean), with G
  sampled two ways: ``matched`` (prompted with the held-out models' own validation accuracy, a
  like-for-like comparison) and ``free`` (prompt drawn from the training models, the default of
  ``sample``). Generators without a property have only ``free``;
* novelty: L2 distance of each G to its nearest T (in the generator's weight space: canonical
  or raw) against the mean nearest-neighbour distance among T (``distance_ratio``), and the
  same per net relative to that neighbour's own nearest-neighbour distance (``local_ratio``);
  prediction disagreement of each G with its nearest T, against the disagreement of each H with
  its nearest T (two real nets), the mean disagreement over all pairs of real nets of the group,
  over pairs of replicates (real nets of one recipe: the same hyperparameters, another seed),
  and over all pairs of real nets of the task, whatever their widths (``summary`` only);
* diversity: mean pairwise disagreement among G;
* ensembles of K nets: generated vs real vs one net;
* conditioning fidelity: nets generated for task A evaluated on every task B of the generator
  whose inputs and outputs fit;
* sampling time per net.

A sweep over one sampling knob (the source-noise ``temperature`` by default) gives the
accuracy / novelty trade-off curve. Results go to ``evaluation.json`` plus PNGs (accuracy
histograms, trade-off curve).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from generators import WeightDataset, WeightGenerator, sample
from zoo.architectures import Architecture
from zoo.tasks import TaskData, get_task
from zoo.training import predicted_class, prediction_disagreement, split_predictions

WITHIN = 0.05  # "within 5 points of the real mean"
# the trade-off curve of select="weighted": from the most accurate candidate (0) to one point of
# accuracy per point of disagreement
WEIGHT_SWEEP = (0.0, 0.25, 0.45, 0.6, 1.0)


@dataclass
class EvalSettings:
    n: int = 100
    seed: int = 0
    ensemble_k: int = 10
    knob: str = "temperature"
    sweep: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5)
    sample_options: dict[str, Any] = field(default_factory=dict)


def accuracy(arch: Architecture, task: TaskData, w: Tensor) -> Tensor:
    """(M,) test accuracy of the rows of w (M, N)."""
    return predictions(arch, task, w).eq(task.y_test).float().mean(dim=1)


@torch.no_grad()
def predictions(arch: Architecture, task: TaskData, w: Tensor) -> Tensor:
    """(M, B) predicted test labels of the rows of w."""
    return split_predictions(arch, task, w, "test")


def summary(acc: Tensor) -> dict[str, float]:
    a = acc.double()
    return {"mean": float(a.mean()), "median": float(a.median()), "min": float(a.min()),
            "max": float(a.max())}  # fmt: skip


def share_within(acc: Tensor, mean: float) -> float:
    """Share of the accuracies ``acc`` (M,) within ``WITHIN`` (5 points) of ``mean``."""
    return float(((acc - mean).abs() <= WITHIN).float().mean())


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


def pairwise_disagreement(p: Tensor) -> Tensor:
    """(M, M) share of test points where the predictions of rows i and j of p (M, B) differ."""
    return torch.stack([prediction_disagreement(p, row) for row in p])


def mean_pairwise_disagreement(p: Tensor) -> float:
    m = len(p)
    if m < 2:
        return float("nan")
    return float(pairwise_disagreement(p).sum() / (m * (m - 1)))


def task_pair_disagreement(ds: WeightDataset, tasks: dict[str, TaskData]) -> float:
    """Mean disagreement over all pairs of the dataset's real nets (training and held-out) that
    share a task, whatever their group, averaged over tasks: "two real nets of the zoo" across
    widths. The same in every fold of a cross-validation, to the bit: all real nets, in the
    dataset's order whatever the split."""
    per_task: dict[str, list[Tensor]] = {}
    for g, grp in enumerate(ds.groups):
        w = ds.padded.crop(ds.weights[ds.group == g], g)  # (M_g, N_g) every model of the group
        per_task.setdefault(grp.task, []).append(predictions(grp.arch, tasks[grp.task], w))
    return float(np.mean([mean_pairwise_disagreement(torch.cat(p)) for p in per_task.values()]))


def replicate_disagreement(p: Tensor, recipe: Tensor) -> float:
    """Mean disagreement over pairs of replicates: rows of p (M, B) whose recipe (M,) ids are
    equal and known (>= 0), i.e. nets trained alike but for the seed. NaN without such pairs."""
    same = recipe[:, None].eq(recipe[None, :]) & recipe[:, None].ge(0)  # (M, M)
    same.fill_diagonal_(False)
    if not same.any():
        return float("nan")
    return float(pairwise_disagreement(p)[same].mean())


def group_replicate_disagreement(ds: WeightDataset, g: int, real_p: Tensor) -> float:
    """:func:`replicate_disagreement` of group ``g``'s real nets, whose predictions real_p
    (M_g, B) list its training models first, then its held-out ones (as ``group_weights``)."""
    recipe = torch.cat([ds.recipe[ds.group_rows(g, True)], ds.recipe[ds.group_rows(g, False)]])
    return replicate_disagreement(real_p, recipe)


def nn_distances(a: Tensor, b: Tensor, exclude_self: bool = False) -> tuple[Tensor, Tensor]:
    """Distance of each row of a to its nearest row of b and that row's index."""
    d = torch.cdist(a.double(), b.double())
    if exclude_self:
        d.fill_diagonal_(float("inf"))
    v, i = d.min(dim=1)
    return v.float(), i


def novelty(gen_w: Tensor, train_w: Tensor, gen_p: Tensor, train_p: Tensor) -> dict[str, float]:
    """Distance and disagreement of generated nets to their nearest training net."""
    tt, _ = nn_distances(train_w, train_w, exclude_self=True)
    d, i = nn_distances(gen_w, train_w)
    return {
        "nn_distance": float(d.mean()),
        "train_nn_distance": float(tt.mean()),
        "distance_ratio": float(d.mean() / tt.mean()),
        "local_ratio": float((d / tt[i].clamp_min(1e-12)).mean()),
        "nn_disagreement": float(prediction_disagreement(gen_p, train_p[i]).mean()),
    }


def heldout_vs_nearest(
    held_w: Tensor, train_w: Tensor, held_p: Tensor, train_p: Tensor
) -> tuple[Tensor, Tensor]:
    """Each held-out real net (H, N) against its nearest training net: (H,) L2 distances and
    (H,) prediction disagreements (held_p, train_p: predicted test labels), the real nets'
    reference for the novelty of generated ones."""
    d, i = nn_distances(held_w, train_w)
    return d, prediction_disagreement(held_p, train_p[i])


def ensemble_accuracy(arch: Architecture, task: TaskData, w: Tensor) -> float:
    with torch.no_grad():
        probs = torch.softmax(arch.forward(w, task.x_test), dim=-1).mean(dim=0)
    return float(predicted_class(probs).eq(task.y_test).float().mean())


def compatible(a: TaskData, b: TaskData) -> bool:
    return (a.kind == b.kind == "classification" and a.input_shape == b.input_shape
            and a.num_outputs == b.num_outputs)  # fmt: skip


def evaluate_group(
    gen: WeightGenerator, ds: WeightDataset, g: int, s: EvalSettings, tasks: dict[str, TaskData]
) -> dict[str, Any]:
    """Every metric of the module docstring for group ``g``."""
    grp = ds.groups[g]
    arch, task = grp.arch, tasks[grp.task]
    train_w, held_w = ds.group_weights(g, True), ds.group_weights(g, False)
    train_p = predictions(arch, task, train_w)
    real = {"train": summary(accuracy(arch, task, train_w))}
    out: dict[str, Any] = {"group": grp.key, "task": grp.task, "width": grp.width,
                           "train_models": len(train_w), "heldout_models": len(held_w)}  # fmt: skip
    t0 = time.perf_counter()
    pop = sample(gen, s.n, task=grp.task, width=grp.width, seed=s.seed, **s.sample_options)
    out["seconds_per_net"] = (time.perf_counter() - t0) / s.n
    gen_w = pop.weights()
    gen_p = predictions(arch, task, gen_w)
    gen_acc = gen_p.eq(task.y_test).float().mean(dim=1)
    out["generated"] = {"free": summary(gen_acc)}
    out["generated_acc"] = gen_acc.tolist()
    out["real_acc"] = torch.cat(
        [accuracy(arch, task, train_w), accuracy(arch, task, held_w)]
    ).tolist()
    if len(held_w):
        held_acc = accuracy(arch, task, held_w)
        held_p = predictions(arch, task, held_w)
        real["heldout"] = summary(held_acc)
        hmean = float(held_acc.mean())
        out["generated"]["free"]["within_5_points"] = share_within(gen_acc, hmean)
        if gen.info.has_property and "target" in gen.accepts:  # a kind prompted by it
            props = ds.prop[ds.group_rows(g, False)]
            targets = props[torch.arange(s.n) % len(props)]
            matched = []
            for v in targets.unique():
                k = int((targets == v).sum())
                p = sample(gen, k, task=grp.task, width=grp.width, seed=s.seed + 1,
                           target=float(v), **s.sample_options)  # fmt: skip
                matched.append(p.weights())
            mw = torch.cat(matched)
            macc = accuracy(arch, task, mw)
            out["matched_acc"] = macc.tolist()
            out["generated"]["matched"] = summary(macc)
            out["generated"]["matched"]["within_5_points"] = share_within(macc, hmean)
            out["novelty_matched"] = novelty(mw, train_w, predictions(arch, task, mw), train_p)
        hd, held_dis = heldout_vs_nearest(held_w, train_w, held_p, train_p)
        out["heldout_acc"] = held_acc.tolist()
        out["heldout_nn_disagreement"] = held_dis.tolist()
        out["real_nn_disagreement"] = float(held_dis.mean())
        out["real_heldout_nn_distance"] = float(hd.mean())
        all_p = torch.cat([train_p, held_p])
    else:
        all_p = train_p
    out["real"] = real
    out["real_pair_disagreement"] = mean_pairwise_disagreement(all_p)
    out["real_replicate_disagreement"] = group_replicate_disagreement(ds, g, all_p)
    out["novelty"] = novelty(gen_w, train_w, gen_p, train_p)
    out["diversity"] = mean_pairwise_disagreement(gen_p)
    k = min(s.ensemble_k, len(gen_w), len(train_w) + len(held_w))
    real_all = torch.cat([train_w, held_w])
    pick = torch.randperm(len(real_all), generator=torch.Generator().manual_seed(s.seed))[:k]
    out["ensemble"] = {"k": k, "generated": ensemble_accuracy(arch, task, gen_w[:k]),
                       "real": ensemble_accuracy(arch, task, real_all[pick]),
                       "single_generated": float(gen_acc[:k].mean())}  # fmt: skip
    out["fidelity"] = {b: float(accuracy(arch, tb, gen_w).mean())
                       for b, tb in tasks.items() if compatible(task, tb)}  # fmt: skip
    return out


def tradeoff(gen: WeightGenerator, ds: WeightDataset, s: EvalSettings,
             tasks: dict[str, TaskData]) -> list[dict[str, float]]:  # fmt: skip
    """Pooled accuracy ratio and novelty for each value of ``s.knob``."""
    rows = []
    for value in s.sweep:
        accs, held, ratios, local, dis = [], [], [], [], []
        for g, grp in enumerate(ds.groups):
            arch, task = grp.arch, tasks[grp.task]
            train_w, held_w = ds.group_weights(g, True), ds.group_weights(g, False)
            opts = {**s.sample_options, s.knob: value}
            w = sample(gen, s.n, task=grp.task, width=grp.width, seed=s.seed, **opts).weights()
            p, tp = predictions(arch, task, w), predictions(arch, task, train_w)
            accs.append(p.eq(task.y_test).float().mean(dim=1))
            if len(held_w):
                held.append(accuracy(arch, task, held_w))
            nv = novelty(w, train_w, p, tp)
            ratios.append(nv["distance_ratio"])
            local.append(nv["local_ratio"])
            dis.append(nv["nn_disagreement"])
        gen_mean = float(torch.cat(accs).mean())
        held_mean = float(torch.cat(held).mean()) if held else float("nan")
        rows.append({s.knob: value, "generated_acc": gen_mean, "heldout_acc": held_mean,
                     "acc_ratio": ratio(gen_mean, held_mean), "distance_ratio": float(np.mean(ratios)),
                     "local_ratio": float(np.mean(local)), "nn_disagreement": float(np.mean(dis))})  # fmt: skip
    return rows


def aggregate(groups: list[dict[str, Any]]) -> dict[str, Any]:
    """Pooled headline numbers over groups (every group has the same number of generated nets)."""

    def mean(key: str, sub: str | None = None) -> float:
        vals = [g[key][sub] if sub else g[key] for g in groups if key in g]
        return float(np.mean(vals)) if vals else float("nan")

    replicates = [g["real_replicate_disagreement"] for g in groups
                  if np.isfinite(g.get("real_replicate_disagreement", float("nan")))]  # fmt: skip

    gen_acc = float(np.mean([np.mean(g["generated_acc"]) for g in groups]))
    held = [
        g["real"]["heldout"]["mean"] * g["heldout_models"] for g in groups if "heldout" in g["real"]
    ]
    n_held = sum(g["heldout_models"] for g in groups if "heldout" in g["real"])
    held_mean = float(sum(held) / n_held) if n_held else float("nan")
    out = {
        "generated_acc_free": gen_acc, "heldout_acc": held_mean, "acc_ratio_free": ratio(gen_acc, held_mean),
        "distance_ratio": mean("novelty", "distance_ratio"), "local_ratio": mean("novelty", "local_ratio"),
        "nn_disagreement": mean("novelty", "nn_disagreement"),
        "real_nn_disagreement": mean("real_nn_disagreement"),
        "real_pair_disagreement": mean("real_pair_disagreement"),
        "real_replicate_disagreement": float(np.mean(replicates)) if replicates else float("nan"),
        "diversity": mean("diversity"),
        "seconds_per_net": mean("seconds_per_net"),
        "ensemble_generated": mean("ensemble", "generated"), "ensemble_real": mean("ensemble", "real"),
        "single_generated": mean("ensemble", "single_generated"),
    }  # fmt: skip
    if all("matched" in g["generated"] for g in groups):
        m = float(np.mean([g["generated"]["matched"]["mean"] for g in groups]))
        out.update(generated_acc_matched=m, acc_ratio_matched=ratio(m, held_mean),
                   distance_ratio_matched=mean("novelty_matched", "distance_ratio"),
                   nn_disagreement_matched=mean("novelty_matched", "nn_disagreement"))  # fmt: skip
    return out


def per_group(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per group: where a generator loses accuracy and where it copies. Generated and
    held-out real mean test accuracy and their ratio, the distance ratio, and the disagreement
    of generated nets with their nearest training net beside the real nets' own (a held-out net
    vs its nearest training net, the mean over pairs of real nets, and over pairs of
    replicates); NaN where a group has no held-out models (or no replicates)."""
    nan = float("nan")
    rows = []
    for g in groups:
        gen = float(np.mean(g["generated_acc"]))
        held = g["real"]["heldout"]["mean"] if "heldout" in g["real"] else nan
        rows.append({
            "group": g["group"], "task": g["task"], "width": g["width"],
            "generated_acc": gen, "heldout_acc": held, "acc_ratio": ratio(gen, held),
            "distance_ratio": g["novelty"]["distance_ratio"],
            "nn_disagreement": g["novelty"]["nn_disagreement"],
            "real_nn_disagreement": g.get("real_nn_disagreement", nan),
            "real_pair_disagreement": g["real_pair_disagreement"],
            "real_replicate_disagreement": g.get("real_replicate_disagreement", nan),
        })  # fmt: skip
    return rows


def evaluate_generator(
    gen: WeightGenerator, ds: WeightDataset, settings: EvalSettings | None = None,
    out_dir: str | Path | None = None, label: str = "", zoo: Any = None,
) -> dict[str, Any]:  # fmt: skip
    """All metrics for every group plus the trade-off sweep; writes JSON and PNGs to out_dir.

    With ``zoo``, also the generator's held-out tasks (:mod:`pipelines.heldout_tasks`): the
    report's ``heldout_tasks`` rows and ``heldout_task_acc_ratio`` / ``heldout_task_loss_ratio``
    in the summary (NaN without held-out tasks)."""
    from pipelines.heldout_tasks import heldout_task_rows, heldout_task_summary
    from pipelines.regression_evaluation import regression_group, regression_summary

    s = settings or EvalSettings()
    tasks = {t: get_task(t) for t in ds.tasks}
    held = list(ds.config.heldout_tasks or [])
    held_rows = (heldout_task_rows(gen, zoo, s.n, s.seed, s.sample_options)
                 if zoo is not None and held else [])  # fmt: skip
    kinds = {t.kind for t in tasks.values()}
    if kinds == {"regression"}:  # compared by test loss: pipelines.regression_evaluation
        rows = [regression_group(gen, ds, g, s.n, s.seed, s.sample_options,
                                 tasks[ds.groups[g].task]) for g in range(len(ds.groups))]  # fmt: skip
        report = {"label": label, "kind": gen.kind, "task_kind": "regression",
                  "canonical": ds.config.canonical, "settings": {**s.__dict__, "sweep": []},
                  "summary": {**regression_summary(rows), **heldout_task_summary(held_rows, len(held))},
                  "per_group": rows, "heldout_tasks": held_rows, "tradeoff": []}  # fmt: skip
        return write_report(report, out_dir) if out_dir is not None else report
    if len(kinds) > 1:
        raise ValueError("zoo evaluate compares a zoo of classification or of regression tasks, "
                         f"not both (tasks: {', '.join(ds.tasks)})")  # fmt: skip
    groups = [evaluate_group(gen, ds, g, s, tasks) for g in range(len(ds.groups))]
    summary = {
        **aggregate(groups),
        "real_task_pair_disagreement": task_pair_disagreement(ds, tasks),
        **heldout_task_summary(held_rows, len(held)),
    }
    report = {"label": label, "kind": gen.kind, "canonical": ds.config.canonical,
              "settings": {**s.__dict__, "sweep": list(s.sweep)},
              "summary": summary, "per_group": per_group(groups), "groups": groups,
              "heldout_tasks": held_rows,
              "tradeoff": tradeoff(gen, ds, s, tasks) if s.sweep else []}  # fmt: skip
    return write_report(report, out_dir) if out_dir is not None else report


def write_report(report: dict[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """Write ``evaluation.json`` and the PNGs (histograms, per-group breakdown; trade-off curve
    if swept) to out_dir; returns the report with their paths under ``plots``."""
    from pipelines.evaluation_plots import plot_histograms, plot_per_group, plot_tradeoff

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "evaluation.json").write_text(json.dumps(report, indent=2) + "\n")
    if report.get("task_kind") == "regression":  # a table of losses: nothing to plot
        report["plots"] = []
        return report
    report["plots"] = [str(plot_histograms(report, out / "accuracy_hist.png")),
                       str(plot_per_group(report, out / "per_group.png"))]  # fmt: skip
    if report["tradeoff"]:
        report["plots"].append(str(plot_tradeoff([report], out / "tradeoff.png")))
    return report


def dataset_for(gen: WeightGenerator, zoo: Any, read: WeightDataset | None = None) -> WeightDataset:
    """The generator's own dataset (same populations, config and split) re-read from a zoo;
    or, given ``read``, a dataset of the same populations read with the same data config but
    the fold (another fold's generator), that one split as this generator was: the folds of one
    cross-validated run read the zoo once."""
    info = gen.require_info()
    names = list(dict.fromkeys(n for g in info.groups for n in g.sources))
    same = (
        read is not None
        and read.reads_like(info.data)
        and [tuple(g.sources) for g in read.groups] == [tuple(g.sources) for g in info.groups]
    )
    ds = read if same else WeightDataset.from_zoo(zoo, names, info.data)
    info.check_zoo(ds.zoo_fingerprint, str(getattr(zoo, "location", zoo)))  # not another zoo
    return ds.with_split(info.train_origin, info.data)
