"""Shared fixtures: small tasks built once per test session (building them costs seconds)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from zoo.tasks import TaskData, get_task


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Tests use small tensors: one intra-op thread is faster on a shared 2-core machine (idle
    OpenMP threads spin) and keeps float results repeatable. Restored after each test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def digits() -> TaskData:
    """The digits task, split with seed 0. Shared: never modify it, use dataclasses.replace."""
    return get_task("digits", seed=0)


@pytest.fixture(scope="session")
def modadd() -> TaskData:
    """Modular addition mod 11 (121 sequences), split with seed 0. Shared: never modify it."""
    return get_task("modadd:p=11", seed=0)


@pytest.fixture(scope="session")
def tiny_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    """``zoo demo`` run once on a tiny digits zoo (tests/demo_fixtures.py): (the folder holding
    its output as ``demo/``, its result, its printed text). Shared: never modify it."""
    from demo_fixtures import run_tiny_demo
    from rich.console import Console

    root = tmp_path_factory.mktemp("demo-run")
    console = Console(record=True, width=100)
    result = run_tiny_demo(root / "demo", console)
    return root, result, console.export_text()
