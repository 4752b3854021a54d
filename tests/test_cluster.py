"""Local Dask clusters: worker processes keep glibc's memory trimming default (torch speed)."""

from __future__ import annotations

import os

import pytest

from pipelines.cluster import broadcast, dask_client


def _trim_threshold() -> str | None:
    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


def test_local_workers_do_not_get_dasks_trim_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    with dask_client(workers=1) as client:
        assert list(client.run(_trim_threshold).values()) == [None]


def test_a_threshold_set_in_the_environment_still_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "131072")
    with dask_client(workers=1) as client:
        assert list(client.run(_trim_threshold).values()) == ["131072"]


def _plus_one(x: int) -> int:
    return x + 1


def test_broadcast_survives_the_same_value_scattered_again_at_once() -> None:
    """Scattering a value, using it, dropping it and scattering the same value again is what two
    stages of one build do. With content-hashed keys the second scatter races the release of the
    first (dask/distributed#8576: "lost dependencies" on the second round, here); broadcast's
    own keys do not."""
    from distributed import Client

    with Client(processes=False, n_workers=2, threads_per_worker=1, dashboard_address=None) as c:
        keys = set()
        for _ in range(20):
            shipped = broadcast(c, 123)
            keys.add(shipped.key)
            assert c.submit(_plus_one, shipped, pure=False).result(timeout=30) == 124
            del shipped
        assert len(keys) == 20
