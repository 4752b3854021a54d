"""The task step of ``zoo build``: every task a zoo trains on is written into its store.

Before anything is written, the tasks as this process has them (registered, read from spec
files, built-in) are compared with the ones an existing store holds: a task of one name with
other data is refused in one line naming both fingerprints. A store's own stored tasks are
registered first, so resuming a build in a fresh process needs nothing registered.
"""

from __future__ import annotations

import zarr

from zoo.spec import ZooSpec
from zoo.store import ATTR_KEY, open_group
from zoo.task_store import check_tasks, register_store_tasks, spec_tasks, write_tasks
from zoo.tasks import TaskData


def _existing(location: str) -> zarr.Group | None:
    try:
        root = open_group(location, mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError):
        return None
    return root if ATTR_KEY in root.attrs else None


def check_build_tasks(location: str, spec: ZooSpec) -> dict[str, TaskData]:
    """The spec's tasks, checked against an existing store at ``location`` (nothing written)."""
    root = _existing(location)
    if root is not None:
        register_store_tasks(root, location)
    tasks = spec_tasks(spec.tasks, spec.split_seed, spec.data_root)
    if root is not None:
        check_tasks(root, tasks, location)
    return tasks


def write_build_tasks(location: str, spec: ZooSpec, tasks: dict[str, TaskData]) -> None:
    """Store the spec's tasks (arrays of registered and file tasks; name and parameters of
    built-in ones), each with its fingerprint; tasks already stored are kept."""
    write_tasks(open_group(location, mode="r+"), tasks, spec.split_seed, spec.heldout_tasks)
