"""Local Dask clusters: worker processes keep glibc's memory trimming default (torch speed)."""

from __future__ import annotations

import os

import pytest

from pipelines.cluster import dask_client


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
