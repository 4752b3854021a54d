"""Orchestration: the Dask build pipeline, stages over stores, and the ``zoo`` CLI."""

from pipelines.build import build_zoo

__all__ = ["build_zoo"]
