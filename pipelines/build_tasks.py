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
from zoo.task_store import TASKS_GROUP, check_tasks, register_store_tasks, spec_tasks, write_tasks
from zoo.tasks import TaskData
from zoo.training import Status


def _existing(location: str) -> zarr.Group | None:
    try:
        root = open_group(location, mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError):
        return None
    return root if ATTR_KEY in root.attrs else None


def _trained_any(root: zarr.Group) -> bool:
    names = root.attrs[ATTR_KEY].get("populations", [])
    return any(n in root and (root[n]["status"][:] != Status.PENDING).any() for n in names)


def check_build_tasks(location: str, spec: ZooSpec) -> dict[str, TaskData] | None:
    """The spec's tasks, checked against an existing store at ``location`` (nothing written);
    None for a store written before tasks were stored: its nets were trained on splits that
    cannot be told from today's, so no fingerprint is recorded for them after the fact."""
    root = _existing(location)
    if root is not None:
        register_store_tasks(root, location)
    tasks = spec_tasks(spec.tasks, spec.split_seed, spec.data_root)
    if root is not None:
        if TASKS_GROUP not in root and _trained_any(root):
            return None
        check_tasks(root, tasks, location)
    return tasks


def write_build_tasks(location: str, spec: ZooSpec, tasks: dict[str, TaskData] | None) -> None:
    """Store the spec's tasks (arrays of registered and file tasks; name and parameters of
    built-in ones), each with its fingerprint; tasks already stored are kept."""
    if tasks is not None:
        write_tasks(open_group(location, mode="r+"), tasks, spec.split_seed, spec.heldout_tasks)
