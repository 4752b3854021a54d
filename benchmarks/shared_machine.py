"""Benchmark: `zoo demo` alone on the machine vs two `zoo demo` side by side.

Each process sizes its torch threads and Dask workers to the cores it may use; two jobs sharing
a machine should then each run at about half speed (each within 2.5x of one alone), not the
35-40x slowdown seen when every process claimed the whole machine and the threads fought.

    python benchmarks/shared_machine.py [--kind flow] [--max-steps N]

Runs one demo alone, then two at once, each in its own temporary folder, all in one run, and
writes ``benchmarks/results/shared_machine.json`` with the wall times and their ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "shared_machine.json"
ROOT = Path(__file__).resolve().parent.parent


def demo_command(out: Path, kinds: list[str], max_steps: int | None) -> list[str]:
    command = [sys.executable, "-m", "pipelines.cli", "demo", "--out", str(out)]
    for kind in kinds:
        command += ["--kind", kind]
    if max_steps is not None:
        command += ["--max-steps", str(max_steps)]
    return command


def run_demos(folder: Path, copies: int, kinds: list[str], max_steps: int | None) -> list[float]:
    """Start ``copies`` demos at once; each one's wall time in seconds (raises if one fails)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    started, processes = [], []
    for i in range(copies):
        log = open(folder / f"demo-{copies}-{i}.log", "w")
        started.append(time.perf_counter())
        command = demo_command(folder / f"demo-{copies}-{i}", kinds, max_steps)
        processes.append((subprocess.Popen(command, stdout=log, stderr=log, env=env), log))
    walls = []
    for (process, log), start in zip(processes, started):
        code = process.wait()
        walls.append(time.perf_counter() - start)
        log.close()
        if code != 0:
            raise SystemExit(f"demo exited {code}; see {log.name}")
    return walls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", action="append", default=[], help="kinds to train (default all)")
    parser.add_argument("--max-steps", type=int, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shared-machine-") as tmp:
        folder = Path(tmp)
        alone = run_demos(folder, 1, args.kind, args.max_steps)[0]
        print(f"one demo alone: {alone:.1f} s", flush=True)
        pair = run_demos(folder, 2, args.kind, args.max_steps)
        print(f"two side by side: {pair[0]:.1f} s and {pair[1]:.1f} s", flush=True)
    ratios = [wall / alone for wall in pair]
    result = {
        "command": "zoo demo" + "".join(f" --kind {k}" for k in args.kind),
        "cores": len(os.sched_getaffinity(0)),
        "load_average_at_end": os.getloadavg()[0],
        "machine": platform.processor() or platform.machine(),
        "alone_s": round(alone, 1),
        "side_by_side_s": [round(w, 1) for w in pair],
        "ratio_to_alone": [round(r, 2) for r in ratios],
        "target_ratio": 2.5,
        "met": all(r <= 2.5 for r in ratios),
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
