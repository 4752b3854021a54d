"""Accuracy / novelty of flow-generator variants on the default zoo, 5-fold cross-validated.

Every variant is the default preset (``data/generators/flow.toml``) with a few fields overridden;
each is trained once per fold (:mod:`pipelines.crossval`), so every real model is held out once.
Side by side: the pooled accuracy ratio (generated / held-out real mean test accuracy), the
distance ratio and the prediction disagreement with the nearest training net, against the same
disagreement of held-out real nets; the spread of the accuracy ratio over the folds shows how
much one 80/20 split alone would move it. No timings: these are quality figures.

    python benchmarks/generator_variants.py [--zoo STORE] [--only NAME ...] [--folds K]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from functools import partial
from pathlib import Path

# Run as a script, this folder comes first on sys.path, and benchmarks/canonicalize.py would
# shadow the ``canonicalize`` package that the pipeline imports: drop the folder first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from rich.console import Console  # noqa: E402

from pipelines.crossval import cross_validate  # noqa: E402
from pipelines.demo import preset_flow  # noqa: E402
from pipelines.evaluate import EvalSettings  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "generator_variants.json"

# name -> (config overrides, sampling options)
VARIANTS: dict[str, tuple[dict, dict]] = {
    "default (augment 4, pca <= 16 within 5 points)": ({}, {}),
    "no augmentation": ({"augment.interpolations": 0}, {}),
    "guidance 2": ({}, {"guidance": 2.0}),
    "pca_max_drop 0.02": ({"model.pca_max_drop": 0.02}, {}),
    "pca_max_drop 0.1": ({"model.pca_max_drop": 0.1}, {}),
    "pca 6 in every group": ({"model.pca": 6, "model.pca_max_drop": None}, {}),
    "no max_norm_ratio": ({"data.max_norm_ratio": 0.0}, {}),
    "raw weights": ({"data.canonical": False}, {}),
    "raw weights, no augmentation": ({"data.canonical": False, "augment.interpolations": 0}, {}),
}
KEYS = ("acc_ratio_free", "acc_ratio_matched", "distance_ratio", "nn_disagreement",
        "real_nn_disagreement", "diversity")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", default="demo/zoo.zarr", help="default zoo (run `zoo demo` first)")
    ap.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    if not Path(args.zoo).exists():
        raise SystemExit(f"no zoo at {args.zoo}: run `zoo demo` (or `zoo build` + "
                         "`zoo canonicalize`) first")  # fmt: skip
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() and args.only else {}
    console = Console()
    for name, (overrides, sample) in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        with tempfile.TemporaryDirectory() as tmp:
            r = cross_validate(partial(preset_flow, overrides), args.zoo, args.folds, tmp,
                               EvalSettings(n=100, sweep=(), sample_options=sample),
                               label=name, console=Console(quiet=True))  # fmt: skip
        s = r["summary"]
        results[name] = {
            "overrides": overrides, "sample_options": sample, "folds": args.folds,
            **{k: s[k] for k in KEYS},
            "acc_ratio_per_fold": [f["acc_ratio_free"] for f in r["folds"]],
            "train_seconds_per_fold": r["train_seconds"],
        }  # fmt: skip
        console.print(name, {k: round(s[k], 3) for k in KEYS})
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"results: {RESULTS}")


if __name__ == "__main__":
    main()
