"""Dask clusters: a LocalCluster sized to the machine, or an existing cluster by address."""

from __future__ import annotations

import logging
import os
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


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def threads_per_worker(n_workers: int) -> int:
    """Torch threads each worker process should use so workers together fill the machine."""
    return max(1, cpu_count() // max(1, n_workers))


@contextmanager
def dask_client(
    workers: int | None = None, scheduler: str | None = None, max_workers: int | None = None
) -> Iterator[Client]:
    """A distributed Client: joins ``scheduler`` if given, else starts a LocalCluster.

    The local cluster has ``workers`` single-threaded worker processes (default: one per core,
    capped at ``max_workers``, e.g. the number of tasks); torch threads are set per task, and
    glibc's memory trimming is left at its default (see ``WORKER_ENVIRON``).
    """
    if scheduler:
        client = Client(scheduler)
        try:
            yield client
        finally:
            client.close()
        return
    n = workers or cpu_count()
    if max_workers:
        n = max(1, min(n, max_workers))
    with (
        dask.config.set(WORKER_ENVIRON),
        LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):  # fmt: skip
        yield client
