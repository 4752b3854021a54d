"""Tasks stored with a zoo (and with a saved generator), so that no later process needs them
registered.

Layout in the store::

    tasks/                    attrs: {"order": [task names]}
      <key>/                  attrs: name, kind, num_outputs, params, fingerprint, source,
                              split_seed, heldout, sizes
        x_train, y_train, x_val, y_val, x_test, y_test     (arrays tasks only, compressed)

``source`` is ``builtin`` for a built-in family member (name and parameters are enough to
rebuild it; only the fingerprint is kept, to see whether the code still builds the same data)
or ``arrays`` for a registered or file task, whose split arrays are stored. Opening a zoo
registers its arrays tasks in the process (:func:`zoo.tasks.register_stored`), checked against
what is registered there; a saved generator carries its arrays tasks the same way
(:func:`task_tensors` / :func:`register_task_tensors`).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import numpy as np
import torch
import zarr
from torch import Tensor

from zoo.tasks import TaskData, get_task, register_stored, user_task
from zoo.tasks.fingerprint import SPLITS

TASKS_GROUP = "tasks"


def task_key(name: str) -> str:
    """A group name for task ``name``: its slug plus a short hash (slugs of two names may meet)."""
    slug = re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_")[:60]
    return f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def task_record(data: TaskData, name: str, split_seed: int, heldout: bool) -> dict[str, Any]:
    """What is stored about a task besides its arrays."""
    return {
        "name": name, "kind": data.kind, "num_outputs": int(data.num_outputs),
        "params": {k: float(v) for k, v in data.params.items()},
        "fingerprint": data.fingerprint,
        "source": "builtin" if user_task(name) is None else "arrays",
        "split_seed": int(split_seed), "heldout": bool(heldout),
        "sizes": {s: len(data.split(s)[0]) for s in ("train", "val", "test")},
    }  # fmt: skip


def stored_tasks(root: zarr.Group) -> dict[str, dict[str, Any]]:
    """{task name: record} of a store's ``tasks/`` group ({} for stores written before it)."""
    if TASKS_GROUP not in root:
        return {}
    g = root[TASKS_GROUP]
    order = list(g.attrs.get("order", []))
    return {name: dict(g[task_key(name)].attrs) for name in order if task_key(name) in g}


def check_tasks(root: zarr.Group, tasks: dict[str, TaskData], where: str) -> None:
    """ValueError naming the task and both fingerprints if ``tasks`` (as this process has them)
    differ from the ones stored in ``root``."""
    stored = stored_tasks(root)
    for name, data in tasks.items():
        rec = stored.get(name)
        if rec is not None and rec["fingerprint"] != data.fingerprint:
            raise ValueError(
                f"task {name!r}: the data here (fingerprint {data.fingerprint}) differ from the "
                f"task stored in {where} (fingerprint {rec['fingerprint']})"
            )


def write_tasks(
    root: zarr.Group, tasks: dict[str, TaskData], split_seed: int, heldout: tuple[str, ...]
) -> None:
    """Store every task of ``tasks`` not stored yet (refusing ones stored with other data)."""
    check_tasks(root, tasks, "this store")
    g = root.require_group(TASKS_GROUP)
    order = list(g.attrs.get("order", []))
    for name, data in tasks.items():
        key = task_key(name)
        if name in order and key in g:
            continue
        rec = task_record(data, name, split_seed, name in heldout)
        sub = g.require_group(key)
        if rec["source"] == "arrays":
            for split in SPLITS:
                a = np.ascontiguousarray(getattr(data, split).numpy())
                sub.create_array(split, shape=a.shape, dtype=a.dtype, overwrite=True)[...] = a
        sub.attrs.update(rec)  # the record last: a task without one is not stored
        order.append(name)
        g.attrs["order"] = order


def read_task(root: zarr.Group, name: str) -> TaskData:
    """The arrays task ``name`` of a store, as stored."""
    sub = root[TASKS_GROUP][task_key(name)]
    rec = dict(sub.attrs)
    t = {s: torch.from_numpy(np.asarray(sub[s][...])) for s in SPLITS}
    return TaskData(
        name, rec["kind"], int(rec["num_outputs"]), t["x_train"], t["y_train"], t["x_val"],
        t["y_val"], t["x_test"], t["y_test"], dict(rec.get("params", {})),
    )  # fmt: skip


def register_store_tasks(root: zarr.Group, origin: str) -> None:
    """Make a store's arrays tasks available by name in this process (loaded on first use)."""
    for name, rec in stored_tasks(root).items():
        if rec.get("source") == "arrays":
            register_stored(name, rec["fingerprint"], origin, lambda n=name: read_task(root, n))


def spec_tasks(
    names: tuple[str, ...], split_seed: int, data_root: str | None
) -> dict[str, TaskData]:
    """{name: data} of a spec's tasks as this process builds (or has registered) them."""
    return {t: get_task(t, seed=split_seed, data_root=data_root) for t in names}


# ----- tasks carried by a saved generator -----------------------------------------------------
TASK_TENSORS = "task"  # safetensors key prefix: task.<i>.<split>


def task_tensors(names: list[str]) -> tuple[list[dict[str, Any]], dict[str, Tensor]]:
    """(records, tensors) of the arrays tasks among ``names`` (built-ins are rebuilt by name)."""
    records, tensors = [], {}
    for name in names:
        data = user_task(name)
        if data is None:
            continue
        i = len(records)
        records.append(task_record(data, name, 0, False))
        for split in SPLITS:
            tensors[f"{TASK_TENSORS}.{i}.{split}"] = getattr(data, split).contiguous()
    return records, tensors


def register_task_tensors(
    records: list[dict[str, Any]], tensors: dict[str, Tensor], origin: str
) -> None:
    """Register the tasks :func:`task_tensors` saved (checked against this process's tasks)."""
    for i, rec in enumerate(records):

        def load(i: int = i, rec: dict[str, Any] = rec) -> TaskData:
            t = {s: tensors[f"{TASK_TENSORS}.{i}.{s}"] for s in SPLITS}
            return TaskData(
                rec["name"], rec["kind"], int(rec["num_outputs"]), t["x_train"], t["y_train"],
                t["x_val"], t["y_val"], t["x_test"], t["y_test"], dict(rec["params"]),
            )  # fmt: skip

        register_stored(rec["name"], rec["fingerprint"], origin, load)
