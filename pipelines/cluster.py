"""Dask clusters: a LocalCluster sized to the machine, or an existing cluster by address.

Sized to the cores this process may use (its CPU affinity, or ``--threads``), not the whole
machine: two jobs sharing a machine each get their share instead of fighting over every core
with oversubscribed torch threads. Joining a cluster is bounded by a timeout, also for an
address where a socket accepts and never answers (``Client``'s own timeout does not cover that).
The dashboard listens on loopback unless given another address.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dask
from distributed import Client, Future, LocalCluster

# Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536 so that they hand freed memory
# back to the OS early. Torch's CPU kernels allocate and free many mid-sized temporaries, and
# with that setting every one becomes an mmap/munmap pair: measuring the landscape of the
# default zoo's width-128 population took 5.3 s in a worker against 2.1 s in-process (4.2 s
# in-process with the variable set). Local clusters leave glibc's default instead; a value set
# in the environment still wins (Dask reads it first).
WORKER_ENVIRON = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


def broadcast(client: Client, value: Any) -> Future:
    """``value`` copied to every worker, under a key of its own.

    ``scatter`` names data by its content by default, so the stages of one ``zoo build`` (train,
    then measure landscapes) scatter the same task under the same key. The scheduler may still
    be releasing the first stage's copy when the second scatters it again, and the second
    stage's tasks then fail with "lost dependencies" (dask/distributed#8576; it broke a clean
    ``zoo demo`` here once). A random key per call (``hash=False``) keeps the two apart."""
    return client.scatter(value, broadcast=True, hash=False)


_THREADS: int | None = None  # --threads, for this process and the workers it starts


def set_thread_budget(threads: int | None) -> int:
    """Cap the cores this process (and the Dask workers it starts) may use at ``threads``
    (None: its CPU affinity); sets torch's intra-op threads to match. Returns the budget."""
    global _THREADS
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    _THREADS = threads
    n = cpu_count()
    import torch

    torch.set_num_threads(n)
    return n


def cpu_count() -> int:
    """Cores this process may use: ``--threads`` if set, else its CPU affinity."""
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:
        available = os.cpu_count() or 1
    return min(available, _THREADS) if _THREADS else available


def threads_per_worker(n_workers: int) -> int:
    """Torch threads each worker process should use so workers together fill this process's
    share of the machine."""
    return max(1, cpu_count() // max(1, n_workers))


def _set_torch_threads(n: int) -> int:
    import torch

    torch.set_num_threads(n)
    return torch.get_num_threads()


def join_cluster(address: str, timeout: float) -> Client:
    """A Client of the scheduler at ``address``, or a TimeoutError naming it after ``timeout``
    seconds (nothing listening, or a socket that accepts and never answers)."""
    if not timeout > 0:
        raise ValueError(f"--timeout must be > 0 seconds, got {timeout}")
    out: dict[str, Any] = {}

    def connect() -> None:
        try:
            out["client"] = Client(address, timeout=timeout)
        except BaseException as e:  # CancelledError, OSError, TimeoutError...
            out["error"] = e

    thread = threading.Thread(target=connect, daemon=True, name="join-dask-cluster")
    thread.start()
    thread.join(timeout)
    if "client" in out:
        return out["client"]
    why = f" ({type(out['error']).__name__})" if "error" in out else ""
    raise TimeoutError(
        f"could not join the Dask scheduler at {address} within {timeout:g} s{why}; "
        "check the address, or raise --timeout"
    )


@contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """Worker processes started inside inherit an ignored SIGINT: Ctrl-C in a terminal reaches
    the whole process group, and workers dying mid-import each printed a traceback; the driver
    alone handles it (exit 130) and shuts its cluster down."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


@contextmanager
def dask_client(
    workers: int | None = None, scheduler: str | None = None, max_workers: int | None = None,
    timeout: float | None = None, dashboard: str | None = None,
) -> Iterator[Client]:  # fmt: skip
    """A distributed Client: joins ``scheduler`` if given (within ``timeout`` seconds, default
    30), else starts a LocalCluster.

    The local cluster has ``workers`` single-threaded worker processes (default: one per core
    this process may use, capped at ``max_workers``, e.g. the number of tasks), each with its
    share of those cores as torch threads; glibc's memory trimming is left at its default (see
    ``WORKER_ENVIRON``). Its dashboard listens on ``dashboard`` (default: loopback only).
    """
    if scheduler:
        client = join_cluster(scheduler, 30.0 if timeout is None else timeout)
        try:
            yield client
        finally:
            client.close()
        return
    n = workers or cpu_count()
    if max_workers:
        n = max(1, min(n, max_workers))
    with dask.config.set(WORKER_ENVIRON):
        with _workers_ignore_ctrl_c():  # only while the worker processes start
            cluster = LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                dashboard_address=dashboard or "127.0.0.1:0", silence_logs=logging.ERROR,
            )  # fmt: skip
        with cluster, Client(cluster) as client:
            client.run(_set_torch_threads, threads_per_worker(n))  # each worker its share
            yield client
