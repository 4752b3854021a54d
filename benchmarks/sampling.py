"""What does a generated net cost relative to a trained one?

On the default zoo (built and canonicalized if the store is missing), with the flow generator
trained on canonical weights: nets per second sampled (1,000 nets of the widest width, Heun) for
10 / 32 / 100 ODE steps, against the seconds needed to train one net of the same zoo from
scratch (the spec's own optimizer, schedule and epochs, the best learning rate of the grid,
one model). The headline is ``nets_per_trained_net``: how many nets are sampled in the time one
is trained. Also the mean test accuracy of the sampled nets at each step count (prompts drawn
from the training models, and prompted with the best validation accuracy seen in training),
next to the real nets of that width, and the generator's training time. A second table prices
best-of-k sampling (``candidates=k``, :mod:`generators.selection`) at the preset's own steps:
seconds per 1,000 kept nets, their accuracy and how far their measured validation accuracy
lands from the prompt, for k = 1, 4, 8 (the candidate closest to the prompt) and for the demo's
setting (best of 8, the highest validation accuracy + 0.45 x disagreement with the nearest
training net, temperature 1, 4 steps; with that mean disagreement on the validation split), the
same at 8 steps, the most novel of those at least as good as the prompt (rule ``novel``), best
of 16 and of 32 of that rule at temperature 0.75 and 4 steps, and best of 16 and of 32 of the
demo's rule (weight 0.6). A third table prices plain, best-of-8 (the demo's), -16 and -32
sampling at every width of the zoo: the cost grows with the nets' size, and width 32 is
DeepWeightFlow's own digits MLP (64-32-32-10). Last, best of 8 and 16 at the widest width three
ways, run by run in turn: the candidates' outputs from their codes with only the kept ones
decoded (the default, :mod:`generators.coded_forward`), every candidate decoded with the
nearest-training-net search on the codes, and the same with the search on the weights.

    python benchmarks/sampling.py [--quick] [--device cpu|cuda] [--zoo STORE] [--run RUN_DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

# Run as a script, this folder comes first on sys.path, and benchmarks/canonicalize.py would
# shadow the ``canonicalize`` package that the pipeline imports: drop the folder first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from generators import (  # noqa: E402
    WeightDataset,
    WeightGenerator,
    calibrated_sampling,
    calibration_of,
    load_generator,
    make_generator,
    sample,
)
from pipelines.demo import WEIGHTED_8  # noqa: E402
from pipelines.evaluate import accuracy, dataset_for  # noqa: E402
from pipelines.presets import generator_preset  # noqa: E402
from zoo import get_task, train_population  # noqa: E402
from zoo.population import Population  # noqa: E402
from zoo.store import open_zoo  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "sampling.json"


def ensure_zoo(store: Path) -> None:
    if store.exists():
        return
    from pipelines.build import build_zoo
    from pipelines.canonicalize_stage import canonicalize_zoo

    build_zoo(None, str(store))  # with phase labels: the default generator filters on them
    canonicalize_zoo(str(store), reference="barycenter", workers=0)


def seconds_to_train_one(store: Path, width: int, repeats: int) -> tuple[float, float]:
    """(seconds, learning rate) to train one model of ``width`` with the zoo's own settings."""
    zoo = open_zoo(store)
    pop = next(p for p in zoo.populations.values() if p.arch.width == width)
    spec = zoo.spec
    lr = pop.hparams["learning_rate"]
    acc = pop.metrics["test_acc"][:, -1]
    best = float(lr[np.nanargmax(acc)])
    task = get_task(pop.task, seed=spec.split_seed)
    config = replace(spec.train_config(), checkpoints=(spec.epochs,))  # no intermediate evals
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        train_population(pop.arch, task, config, np.array([r]), np.array([best]),
                         np.array([spec.training.weight_decay]),
                         np.array([spec.training.batch_size]))  # fmt: skip
        times.append(time.perf_counter() - t0)
    return min(times), best


def timed_sample(
    gen: WeightGenerator, n: int, repeats: int, device: str, **options: Any
) -> tuple[float, Population]:
    """(seconds, population) of ``gen.sample(n, seed=rep, **options)`` after a warm-up: the
    fastest of ``repeats`` runs (the machine is shared: the fastest is the least disturbed)."""
    sample(gen, 8, **options)  # warm-up
    times = []
    for rep in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        pop = sample(gen, n, seed=rep, **options)
        times.append(time.perf_counter() - t0)
    return min(times), pop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer nets and repeats")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--zoo", type=Path, default=Path("demo/zoo.zarr"))
    ap.add_argument("--run", type=Path, default=None, help="trained flow run dir (else trained)")
    args = ap.parse_args()
    ensure_zoo(args.zoo)
    train_seconds = train_cpu = None
    if args.run is None:
        gen = make_generator("flow", generator_preset("flow"))
        ds = WeightDataset.from_zoo(str(args.zoo), None, gen.config.data)
        t0, c0 = time.perf_counter(), time.process_time()
        gen.fit(ds)
        train_seconds, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    else:
        gen = load_generator(args.run)
        ds = dataset_for(gen, str(args.zoo))
    gen.network.to(args.device)
    width = max(gen.info.widths)
    g = next(i for i, grp in enumerate(ds.groups) if grp.width == width)
    grp = ds.groups[g]
    task = get_task(grp.task)
    held = float(accuracy(grp.arch, task, ds.group_weights(g, False)).mean())
    real = float(accuracy(grp.arch, task, ds.padded.crop(ds.weights[ds.group == g], g)).mean())
    best = max(gen.info.group_props[g]) if gen.info.has_property else None
    n = 200 if args.quick else 1000
    one, lr = seconds_to_train_one(args.zoo, width, 1 if args.quick else 3)
    rows = []
    repeats = 1 if args.quick else 3
    for steps in (10, 32, 100):
        sec, pop = timed_sample(gen, n, repeats, args.device, width=width, steps=steps)
        acc = float(accuracy(grp.arch, task, pop.weights()).mean())
        prompted = gen.sample(n, width=width, seed=0, steps=steps, target=best)
        acc_best = float(accuracy(grp.arch, task, prompted.weights()).mean())
        rows.append({"steps": steps, "solver": gen.config.sampling.solver, "nets": n,
                     "seconds": sec, "nets_per_second": n / sec,
                     "nets_per_trained_net": n / sec * one, "generated_acc": acc,
                     "generated_acc_prompted_best": acc_best})  # fmt: skip
    selection = []
    temperature = gen.config.sampling.temperature
    # the demo's setting (best of 8, weighted), the same at 8 steps, and rule novel
    # (best of 8, novel), and two and four times that at temperature 0.75 (the settings of
    # generator_variants.py that met the accuracy target with the pairs reading before the
    # weighted rule, at pca_max_drop 0.125; timed here with the preset's generator, the cost
    # hardly depends on the rank)
    eight_steps = {**WEIGHTED_8, "steps": 8}
    novel = {
        **{k: v for k, v in WEIGHTED_8.items() if k != "disagreement_weight"},
        "select": "novel",
    }
    sixteen = {**novel, "candidates": 16, "temperature": 0.75}
    thirty_two = {**sixteen, "candidates": 32}  # generator_variants.py's best-of-32 rows
    # weighted with two and four times the demo's candidates: with the distilled preset, the
    # settings of generator_variants.py that reach the held-out reading, or nearly
    weighted_16 = {**WEIGHTED_8, "candidates": 16, "disagreement_weight": 0.6}
    weighted_32 = {**WEIGHTED_8, "candidates": 32, "disagreement_weight": 0.6}
    # zoo demo's setting: best of 16 at the weight the generator calibrated (the preset's)
    calibrated = [calibrated_sampling(gen)] if calibration_of(gen) is not None else []
    for opts in ({"candidates": 1}, {"candidates": 4}, {"candidates": 8}, WEIGHTED_8, eight_steps,
                 novel, sixteen, thirty_two, weighted_16, weighted_32, *calibrated):  # fmt: skip
        opts = {"select": "closest", "temperature": temperature,
                "steps": gen.config.sampling.steps, **opts}  # fmt: skip
        sec, pop = timed_sample(gen, n, repeats, args.device, width=width, **opts)
        measured = pop.conditioning.get("measured_val_acc")  # kept nets of k > 1 come measured
        val = measured if measured is not None else pop.evaluate(split="val")
        novelty = pop.conditioning.get("nearest_train_disagreement")  # novel and weighted only
        selection.append({**opts, "nets": n,
                          "seconds": sec, "nets_per_second": n / sec,
                          "nets_per_trained_net": n / sec * one,
                          "generated_acc": float(accuracy(grp.arch, task, pop.weights()).mean()),
                          "val_acc_minus_prompt": float((val - pop.conditioning["target"]).mean()),
                          "abs_val_acc_minus_prompt":
                              float((val - pop.conditioning["target"]).abs().mean()),
                          "nearest_train_disagreement_val":
                              None if novelty is None else float(novelty.mean())})  # fmt: skip
    # the cost grows with the nets' size: every width of the zoo, plain and best of 8 / 16 / 32
    # (width 32 is DeepWeightFlow's own digits MLP, 64-32-32-10: its 1,000 nets took 3.05 s)
    per_width = []
    for w in gen.info.widths:
        gw = next(i for i, grp in enumerate(ds.groups) if grp.width == w)
        arch_w, task_w = ds.groups[gw].arch, get_task(ds.groups[gw].task)
        held_w = float(accuracy(arch_w, task_w, ds.group_weights(gw, False)).mean())
        for opts in ({}, WEIGHTED_8, weighted_16, weighted_32, *calibrated):
            sec, pop = timed_sample(gen, n, repeats, args.device, width=w, **opts)
            per_width.append({"width": w, "params_per_net": arch_w.num_params,
                              "candidates": opts.get("candidates", 1),
                              "disagreement_weight": opts.get("disagreement_weight"),
                              "seconds": sec, "nets": n,
                              "generated_acc": float(accuracy(arch_w, task_w, pop.weights())
                                                     .mean()),
                              "heldout_acc": held_w})  # fmt: skip
    # best-of-k's candidates three ways, interleaved run by run on the same draws: outputs from
    # their codes with only the kept ones decoded (the default), decoded with the nearest-net
    # search on their codes (the input-layer split hidden), and decoded with the search on their
    # weights (the generator's affine code hidden too)
    arch_class = type(grp.arch)
    split = arch_class.__dict__["input_layer"]  # the MLP's own property
    search = []
    for opts in (WEIGHTED_8, weighted_16):
        times: dict[str, list[float]] = {"coded": [], "codes": [], "weights": []}
        for _ in range(repeats):
            for how in times:
                if how != "coded":  # a class attribute, restored below
                    arch_class.input_layer = property(lambda self: ())  # type: ignore[assignment]
                if how == "weights":  # an instance attribute: this generator only
                    gen.affine_code = lambda *a, **k: None  # type: ignore[method-assign]
                sec, _ = timed_sample(gen, n, 1, args.device, width=width, **opts)
                if how == "weights":
                    del gen.affine_code
                arch_class.input_layer = split  # type: ignore[method-assign]
                times[how].append(sec)
        fastest = {how: min(t) for how, t in times.items()}
        search.append({"candidates": opts["candidates"], "width": width, "nets": n,
                       "seconds_coded": fastest["coded"], "seconds_codes": fastest["codes"],
                       "seconds_weights": fastest["weights"],
                       "coded_ratio": fastest["coded"] / fastest["codes"],
                       "ratio": fastest["codes"] / fastest["weights"]})  # fmt: skip
    result = {"device": args.device, "threads": torch.get_num_threads(), "quick": args.quick,
              "width": width, "params_per_net": grp.arch.num_params,
              "seconds_to_train_one_net": one, "train_one_lr": lr,
              "real_acc": real, "heldout_acc": held, "prompt_best_val_acc": best,
              "generator_train_seconds": train_seconds, "generator_train_cpu_seconds": train_cpu,
              "rows": rows, "selection": selection, "per_width": per_width,
              "nearest_search": search}  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"width {width} ({grp.arch.num_params} params); one net trained from scratch: {one:.2f} s;"
        f" real nets' accuracy {real:.3f} (held-out {held:.3f}); generator training: "
        f"{train_seconds if train_seconds is not None else float('nan'):.1f} s"
    )
    print(
        f"{'steps':>5} {'s / 1000 nets':>14} {'nets/s':>9} {'nets per trained net':>21} "
        f"{'acc':>6} {'acc, asked for best':>20}"
    )
    for r in rows:
        print(
            f"{r['steps']:>5} {r['seconds'] * 1000 / n:>14.3f} {r['nets_per_second']:>9.0f} "
            f"{r['nets_per_trained_net']:>21.0f} {r['generated_acc']:>6.3f} "
            f"{r['generated_acc_prompted_best']:>20.3f}"
        )
    print(
        f"best of k: {'k':>3} {'rule':>8} {'T':>5} {'steps':>5} {'s / 1000 nets':>14} {'acc':>6} "
        f"{'val acc - prompt':>17} {'|...|':>6}"
    )
    for r in selection:
        print(f"{'':>11}{r['candidates']:>3} {r['select']:>8} {r['temperature']:>5.2f} "
              f"{r['steps']:>5} {r['seconds'] * 1000 / n:>14.3f} "
              f"{r['generated_acc']:>6.3f} {r['val_acc_minus_prompt']:>17.3f} "
              f"{r['abs_val_acc_minus_prompt']:>6.3f}")  # fmt: skip
    print(f"per width: {'width':>5} {'params':>7} {'k':>3} {'s / 1000 nets':>14} {'acc':>6} "
          f"{'held-out':>8}")  # fmt: skip
    for r in per_width:
        print(f"{'':>11}{r['width']:>5} {r['params_per_net']:>7} {r['candidates']:>3} "
              f"{r['seconds'] * 1000 / n:>14.3f} {r['generated_acc']:>6.3f} "
              f"{r['heldout_acc']:>8.3f}")  # fmt: skip
    for r in search:
        print(f"best of {r['candidates']}, width {r['width']}, s / 1000 nets: candidates run "
              f"from codes {r['seconds_coded'] * 1000 / n:.3f}, decoded "
              f"{r['seconds_codes'] * 1000 / n:.3f} ({r['coded_ratio']:.2f}x); decoded, "
              f"nearest-net search on weights {r['seconds_weights'] * 1000 / n:.3f} "
              f"(search on codes: {r['ratio']:.2f}x)")  # fmt: skip
    print(f"-> {RESULTS}")


if __name__ == "__main__":
    main()
