"""Issue #24's acceptance scenario, end to end on the CLI in fresh processes: a task registered
from arrays in one process (and a task from a .npz named by a spec) is stored with the zoo, and
every later command reads it from there with nothing registered."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

PROCESS_1 = """
import sys
import numpy as np
from sklearn.datasets import load_wine
from zoo import register_task
from zoo.spec import ZooSpec
from pipelines.build import build_zoo

d = load_wine()
x = ((d.data - d.data.mean(0)) / d.data.std(0)).astype(np.float32)
o = np.random.default_rng(0).permutation(len(x))
te, tr = o[:36], o[36:]
shift = float(sys.argv[2])
register_task("wine", x[tr] + shift, d.target[tr], x[te] + shift, d.target[te])
spec = ZooSpec.from_dict({
    "name": "wine", "tasks": ["wine"], "architecture": {"family": "mlp", "depth": 1},
    "load": {"axis": "width", "values": [8, 16]},
    "temperature": {"axis": "learning_rate", "values": [0.05, 0.1]},
    "seeds": 3, "epochs": 8, "checkpoints": [0, 8],
})
build_zoo(spec, sys.argv[1], workers=0)
"""

GENERATOR = """kind = "flow"
[data]
exclude_phases = ["collapsed"]
[training]
max_steps = 10
[model]
hidden = 32
cond_dim = 16
pca = 4
[sampling]
steps = 2
[calibrate]
candidates = 4
per_net = 2
options = { steps = 2, solver = "euler" }
"""


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    out = _run([sys.executable, "-m", "pipelines.cli", *args], cwd)
    assert out.returncode == 0, f"zoo {' '.join(args)}: {out.stderr[-2000:]}"
    return out


def _every_command(store: str, tmp: Path) -> dict:
    """metrics, canonicalize, train-generator flow, sample --calibrated, evaluate: each in a
    fresh process with nothing registered; returns evaluation.json."""
    (tmp / "flow.toml").write_text(GENERATOR)
    _cli(tmp, "metrics", store, "--workers", "0")
    _cli(tmp, "canonicalize", store, "--workers", "0")
    run = str(tmp / "gen")
    _cli(tmp, "train-generator", "flow", "--zoo", store, "--out", run, "--config", "flow.toml")
    _cli(tmp, "sample", run, "--out", str(tmp / "s.safetensors"), "--n", "4", "--calibrated")
    _cli(tmp, "evaluate", run, "--zoo", store, "--n", "4", "--out", str(tmp / "ev"))
    return json.loads((tmp / "ev" / "evaluation.json").read_text())


def _store_files(store: Path) -> dict[str, int]:
    return {str(p.relative_to(store)): p.stat().st_mtime_ns for p in store.rglob("*")}


@pytest.mark.slow
def test_registered_task_survives_its_process(tmp_path: Path) -> None:
    (tmp_path / "p1.py").write_text(PROCESS_1)
    store = tmp_path / "wine.zarr"
    out = _run([sys.executable, "p1.py", str(store), "0"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    report = _every_command(str(store), tmp_path)
    assert report["groups"][0]["task"] == "wine"
    assert "heldout_task_acc_ratio" in report["summary"]
    # another process registers the name with other data: refused before anything is written
    before = _store_files(store)
    out = _run([sys.executable, "p1.py", str(store), "1.0"], tmp_path)
    assert out.returncode != 0
    assert "task 'wine'" in out.stderr and "fingerprint" in out.stderr
    assert _store_files(store) == before


@pytest.mark.slow
def test_npz_task_from_the_cli_alone(tmp_path: Path) -> None:
    from sklearn.datasets import load_wine

    d = load_wine()
    x = ((d.data - d.data.mean(0)) / d.data.std(0)).astype(np.float32)
    o = np.random.default_rng(1).permutation(len(x))
    te, tr = o[:36], o[36:]
    np.savez(tmp_path / "wine.npz", x_train=x[tr], y_train=d.target[tr], x_test=x[te],
             y_test=d.target[te])  # fmt: skip
    (tmp_path / "wine.toml").write_text(
        'name = "wine-file"\nseeds = 3\nepochs = 8\ncheckpoints = [0, 8]\n'
        '[tasks.wine]\nfile = "wine.npz"\n'
        '[architecture]\nfamily = "mlp"\ndepth = 1\n'
        '[load]\naxis = "width"\nvalues = [8, 16]\n'
        '[temperature]\naxis = "learning_rate"\nvalues = [0.05, 0.1]\n'
    )
    store = str(tmp_path / "wine.zarr")
    _cli(tmp_path, "build", "wine.toml", "--store", store, "--workers", "0")
    (tmp_path / "wine.npz").unlink()  # every later command reads the task from the store
    info = _cli(tmp_path, "info", store).stdout
    assert "wine" in info and "arrays" in info
    report = _every_command(store, tmp_path)
    assert report["groups"][0]["task"] == "wine"


UNGUARDED = """
from pipelines.build import build_zoo
from tests.zoo_fixtures import tiny_spec_dict
from zoo.spec import ZooSpec

build_zoo(ZooSpec.from_dict(tiny_spec_dict()), "unguarded.zarr", workers=1, metrics=False)
"""


def test_unguarded_script_stops_before_creating_anything(tmp_path: Path) -> None:
    (tmp_path / "script.py").write_text(UNGUARDED)
    out = _run([sys.executable, "script.py"], tmp_path)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert "script.py line 6 calls build_zoo outside 'if __name__ == \"__main__\":'" in last
    assert not (tmp_path / "unguarded.zarr").exists()


GUARDED = """
from pipelines.build import build_zoo
from tests.zoo_fixtures import tiny_spec_dict
from zoo.spec import ZooSpec

if __name__ == "__main__":
    z = build_zoo(ZooSpec.from_dict(tiny_spec_dict()), "guarded.zarr", workers=1, metrics=False)
    print(sum(len(p) for p in z.populations.values()))
"""


@pytest.mark.slow
def test_guarded_script_builds_with_dask_workers(tmp_path: Path) -> None:
    (tmp_path / "script.py").write_text(GUARDED)
    out = _run([sys.executable, "script.py"], tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "8"
