"""Benchmark: `zoo sample --n 1000000 --out x.zarr` keeps its memory bounded.

Streams a million sampled nets of one width into Zarr through the CLI, in a child process, and
reads the child's peak resident memory (``getrusage(RUSAGE_CHILDREN)``) and wall time; the output
is read back (shape, finite values) and deleted. The default zoo's widest nets (26,122
parameters) need about 97 GiB for a million, which `zoo sample` refuses up front on a smaller
disk, so the default width here is 64 (8,970 parameters, about 33 GiB).

    python benchmarks/large_sample.py RUN_DIR [--n 1000000] [--width 64] [--out-dir /tmp]

Writes ``benchmarks/results/large_sample.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

RESULTS = Path(__file__).resolve().parent / "results" / "large_sample.json"
ROOT = Path(__file__).resolve().parent.parent
LIMIT_BYTES = 2 * 1024**3  # the target: peak memory under 2 GiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--out-dir", default=tempfile.gettempdir())
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(dir=args.out_dir, prefix="large-sample-")) / "x.zarr"
    command = [sys.executable, "-m", "pipelines.cli", "sample", args.run_dir, "--n", str(args.n),
               "--width", str(args.width), "--out", str(out)]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # kB on Linux
    weights = zarr.open_group(str(out), mode="r")["weights"]
    tail = np.asarray(weights[-100:])
    result = {
        "command": f"zoo sample RUN --n {args.n} --width {args.width} --out x.zarr",
        "nets": int(weights.shape[0]),
        "parameters": int(weights.shape[1]),
        "output_gib": round(
            sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**30, 2
        ),
        "peak_rss_mib": round(peak / 2**20, 1),
        "limit_mib": LIMIT_BYTES / 2**20,
        "met": peak < LIMIT_BYTES,
        "wall_s": round(wall, 1),
        "last_rows_finite": bool(np.isfinite(tail).all()),
        "load_average_at_end": os.getloadavg()[0],
    }
    shutil.rmtree(out.parent)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
