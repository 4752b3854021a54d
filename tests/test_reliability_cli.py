"""One error path for the CLI (one line, exit 2 / 1 / 130, ``--debug`` for the traceback),
bounded cluster waits, threads sized to the cores a process may use, a loopback dashboard."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import torch
from test_reliability_specs import write_toml
from zoo_fixtures import tiny_spec_dict

import pipelines.build
from pipelines import cluster
from pipelines.cli import main
from pipelines.cluster import (
    cpu_count,
    dask_client,
    join_cluster,
    set_thread_budget,
    threads_per_worker,
)

ROOT = Path(__file__).parents[1]


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    return write_toml(tmp_path / "spec.toml", tiny_spec_dict())


@pytest.fixture
def silent_socket() -> Iterator[str]:
    """A socket on 127.0.0.1 that accepts connections (the kernel's backlog) and never
    answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield f"tcp://127.0.0.1:{s.getsockname()[1]}"
    s.close()


@pytest.fixture(autouse=True)
def _reset_budget() -> Iterator[None]:
    yield
    cluster._THREADS = None


def test_unexpected_error_is_one_line_with_a_hint(
    spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("worker exploded\nsecond line\nthird")

    monkeypatch.setattr(pipelines.build, "build_zoo", boom)
    args = ["build", str(spec), "--store", str(tmp_path / "z.zarr")]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: unexpected RuntimeError: worker exploded (rerun with --debug for the traceback)"
    )
    with pytest.raises(RuntimeError, match="worker exploded"):
        main([*args, "--debug"])


def test_user_error_is_exit_2_and_debug_reraises(tmp_path: Path, capsys) -> None:
    assert main(["info", str(tmp_path / "nowhere.zarr")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    with pytest.raises(ValueError, match="not a weightzoo store"):
        main(["--debug", "info", str(tmp_path / "nowhere.zarr")])


def test_ctrl_c_inside_a_command_exits_130(
    spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    def interrupted(*a: object, **k: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(pipelines.build, "build_zoo", interrupted)
    assert main(["build", str(spec), "--store", str(tmp_path / "z.zarr")]) == 130
    assert capsys.readouterr().err.strip() == "interrupted"


@pytest.mark.slow
def test_sigint_during_a_build_exits_130(tmp_path: Path) -> None:
    """A real SIGINT to the process group of a running ``zoo build`` (as a terminal sends it):
    exit 130, one line, no traceback."""
    spec = write_toml(tmp_path / "spec.toml", tiny_spec_dict(epochs=5000, checkpoints=[0, 5000]))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "pipelines.cli", "build", str(spec), "--store",
            str(tmp_path / "z.zarr"), "--workers", "0", "--no-metrics"]  # fmt: skip
    p = subprocess.Popen(
        args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env,
        preexec_fn=lambda: (signal.signal(signal.SIGINT, signal.SIG_DFL), os.setpgrp()),
    )  # fmt: skip
    deadline = time.time() + 120
    while not (tmp_path / "z.zarr" / "zarr.json").exists() and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(2)
    os.killpg(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130
    assert err.strip().splitlines()[-1] == "interrupted" and "Traceback" not in err


@pytest.mark.parametrize("kind", ["nothing listening", "never answers"])
def test_joining_a_cluster_is_bounded(silent_socket: str, kind: str) -> None:
    address = "tcp://127.0.0.1:1" if kind == "nothing listening" else silent_socket
    t0 = time.perf_counter()
    with pytest.raises(TimeoutError, match=f"Dask scheduler at {address} within 1 s"):
        join_cluster(address, timeout=1.0)
    assert time.perf_counter() - t0 < 5


def test_build_with_a_silent_scheduler_fails_in_one_line(
    spec: Path, tmp_path: Path, silent_socket: str, capsys
) -> None:
    args = ["build", str(spec), "--store", str(tmp_path / "z.zarr"), "--scheduler",
            silent_socket, "--timeout", "1"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"could not join the Dask scheduler at {silent_socket}" in err


def test_thread_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cores = the process's CPU affinity, capped by --threads; workers split them."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(6)))
    assert cpu_count() == 6 and threads_per_worker(2) == 3 and threads_per_worker(4) == 1
    assert set_thread_budget(4) == 4 and torch.get_num_threads() == 4
    assert cpu_count() == 4 and threads_per_worker(2) == 2
    assert set_thread_budget(None) == 6
    with pytest.raises(ValueError, match="--threads must be >= 1"):
        set_thread_budget(0)


def test_threads_option_reaches_torch(tmp_path: Path, capsys) -> None:
    assert main(["--threads", "1", "info", str(tmp_path / "nowhere.zarr")]) == 2
    assert torch.get_num_threads() == 1 and cpu_count() == 1


def test_local_workers_get_their_share_and_dashboard_is_loopback() -> None:
    set_thread_budget(2)
    with dask_client(workers=2) as client:
        threads = client.run(torch.get_num_threads)
        assert sorted(threads.values()) == [1, 1]  # 2 cores / 2 workers
        assert client.dashboard_link.startswith("http://127.0.0.1:")
        port = int(client.dashboard_link.split(":")[2].split("/")[0])
        bound = [c.laddr.ip for c in psutil.Process().net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == port]  # fmt: skip
        assert bound == ["127.0.0.1"]
