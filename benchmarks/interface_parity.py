"""Before / after the generator interface refactor, side by side in one run: the same flow run dir
sampled by an older revision of the code and by this checkout, plain and calibrated best of 16,
1,000 nets of the widest width. Checks that the draws are identical to the bit and compares the
sampling time (ratio after / before; medians of interleaved repeats, so that the machine's drift
hits both sides alike).

    python benchmarks/interface_parity.py --run demo/flow --before cf86829

writes benchmarks/results/interface_parity.json. The older revision is checked out into a
temporary git worktree; each side samples in its own process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]

# run in a child process with one side's code first on sys.path: sample, time, save the draws
CHILD = r"""
import json, sys, time
import torch
from safetensors.torch import save_file
import generators
from generators import load_generator
torch.set_num_threads(1)
run, out, n, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
gen = load_generator(run)
if hasattr(generators, "calibrated_sampling"):  # after: strategies composed over the kind
    def draw(n, seed, best):
        if best:
            return generators.sample(gen, n, seed=seed, **generators.calibrated_sampling(gen))
        return gen.sample(n, seed=seed)
else:  # before: strategies were methods of the generator
    def draw(n, seed, best):
        return gen.sample(n, seed=seed, **(gen.calibrated_sampling() if best else {}))
times, tensors = {}, {}
for name, best in (("plain", False), ("best_of_16", True)):
    draw(8, 0, best)  # warm-up
    t = []
    for rep in range(repeats):
        t0 = time.perf_counter()
        pop = draw(n, rep, best)
        t.append(time.perf_counter() - t0)
    times[name] = t
    tensors[name] = pop.weights().contiguous()
save_file(tensors, out)
print(json.dumps(times))
"""


def side(code: Path, run: str, out: Path, n: int, repeats: int) -> dict[str, list[float]]:
    """Sampling times of one side's code (its draws saved to ``out``)."""
    env = {"PYTHONPATH": str(code), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", CHILD, run, str(out), str(n), str(repeats)],
                         capture_output=True, text=True, env=env, cwd=code)  # fmt: skip
    if res.returncode:
        raise SystemExit(f"{code}: {res.stderr.strip().splitlines()[-1]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a trained, calibrated flow run dir")
    ap.add_argument("--before", default="cf86829", help="git revision before the refactor")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3, help="timed draws per side and round")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved before/after rounds")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/interface_parity.json"))
    args = ap.parse_args()
    run = str(Path(args.run).resolve())
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old),
                        args.before], check=True, capture_output=True)  # fmt: skip
        try:
            times: dict[str, dict[str, list[float]]] = {"before": {}, "after": {}}
            for _ in range(args.rounds):
                for name, code in (("before", old), ("after", ROOT)):
                    got = side(code, run, Path(tmp) / f"{name}.safetensors", args.n, args.repeats)
                    for k, v in got.items():
                        times[name].setdefault(k, []).extend(v)
            before = load_file(Path(tmp) / "before.safetensors")
            after = load_file(Path(tmp) / "after.safetensors")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)],
                           check=False, capture_output=True)  # fmt: skip
    result = {"run": args.run, "before": args.before, "nets": args.n, "rows": {}}
    for k in before:
        med = {s: statistics.median(times[s][k]) for s in times}
        result["rows"][k] = {
            "identical_draws": bool(torch.equal(before[k], after[k])),
            "seconds_before": med["before"], "seconds_after": med["after"],
            "ratio_after_over_before": med["after"] / med["before"],
            "all_seconds": {s: times[s][k] for s in times},
        }  # fmt: skip
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for k, r in result["rows"].items():
        print(f"{k}: identical {r['identical_draws']}, {r['seconds_before']:.2f} s -> "
              f"{r['seconds_after']:.2f} s (x{r['ratio_after_over_before']:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
