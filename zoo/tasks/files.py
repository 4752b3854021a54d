"""Tasks read from files, declared in a spec with no Python: ``.npz`` arrays or a CSV table.

``[tasks.NAME] file = "data.npz"``: arrays ``x_train``, ``y_train``, ``x_test``, ``y_test``
and optionally ``x_val``, ``y_val`` (read with ``allow_pickle=False``: nothing is executed).

``[tasks.NAME] file = "data.csv", label = "COLUMN"``: a header row, one example per row; the
label column is the target, every other column a numeric feature. ``test_file`` names a second
CSV with the same columns as the test split; without it a seeded ``test_fraction`` of the rows
is the test split.

Classification or regression: ``kind`` states it; otherwise integer labels (and CSV labels that
are all whole numbers or not numbers at all, mapped to 0..K-1 in sorted order) make a
classification task, anything else a regression task. Validation is carved from the training
split by the rule of :mod:`zoo.tasks.split` unless given.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from zoo.tasks.base import TaskData, TaskKind, task_from_tensors

NPZ_REQUIRED = ("x_train", "y_train", "x_test", "y_test")
FILE_OPTIONS = ("file", "label", "kind", "test_file", "val_fraction", "test_fraction")


def task_from_file(
    name: str, file: str | Path, label: str | None = None, kind: TaskKind | None = None,
    test_file: str | Path | None = None, val_fraction: float = 0.1, test_fraction: float = 0.2,
    seed: int = 0,
) -> TaskData:  # fmt: skip
    """The task ``name`` read from ``file`` (``.npz`` or ``.csv``), split with ``seed``."""
    path = Path(file)
    if not path.is_file():
        raise FileNotFoundError(f"task {name!r}: file {str(path)!r} not found")
    if path.suffix == ".npz":
        if label is not None or test_file is not None:
            raise ValueError(f"task {name!r}: label and test_file are for CSV files, not .npz")
        return _npz_task(name, path, kind, val_fraction, seed)
    if path.suffix == ".csv":
        if label is None:
            raise ValueError(f'task {name!r}: a CSV task needs label = "COLUMN" (its target)')
        return _csv_task(name, path, label, kind, test_file, val_fraction, test_fraction, seed)
    raise ValueError(f"task {name!r}: {path.name} is neither .npz nor .csv")


def _npz_task(
    name: str, path: Path, kind: TaskKind | None, val_fraction: float, seed: int
) -> TaskData:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:
        raise ValueError(
            f"task {name!r}: {path.name} cannot be read without pickle ({e})"
        ) from None
    missing = [k for k in NPZ_REQUIRED if k not in arrays]
    if missing:
        raise ValueError(
            f"task {name!r}: {path.name} lacks array(s) {', '.join(missing)} "
            f"(has: {', '.join(sorted(arrays)) or 'none'})"
        )
    for k, a in arrays.items():
        if a.dtype.kind not in "biuf":
            raise ValueError(f"task {name!r}: array {k} of {path.name} is not numeric ({a.dtype})")
    a = arrays
    if kind is None:
        kind = "classification" if a["y_train"].dtype.kind in "biu" else "regression"
    return task_from_tensors(
        name, _features(a["x_train"]), a["y_train"], _features(a["x_test"]), a["y_test"],
        val_fraction, seed, _features(a["x_val"]) if "x_val" in a else None, a.get("y_val"), kind,
    )  # fmt: skip


def _features(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32) if x.dtype.kind == "f" else x.astype(np.int64)


def read_csv(path: Path, label: str, name: str) -> tuple[np.ndarray, list[str]]:
    """(features (N, F) float32, labels as strings) of a CSV with a header row."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"task {name!r}: {path.name} is empty")
    header = [h.strip() for h in rows[0]]
    if label not in header:
        raise ValueError(
            f"task {name!r}: {path.name} has no column {label!r} (columns: {', '.join(header)})"
        )
    li = header.index(label)
    body = [r for r in rows[1:] if any(c.strip() for c in r)]
    bad = next((i for i, r in enumerate(body) if len(r) != len(header)), None)
    if bad is not None:
        raise ValueError(
            f"task {name!r}: {path.name} row {bad + 2} has {len(body[bad])} fields, "
            f"the header {len(header)}"
        )
    try:
        x = np.array([[float(c) for j, c in enumerate(r) if j != li] for r in body], np.float32)
    except ValueError as e:
        raise ValueError(f"task {name!r}: {path.name} has a non-numeric feature ({e})") from None
    return x.reshape(len(body), len(header) - 1), [r[li].strip() for r in body]


def csv_targets(
    train: list[str], test: list[str], kind: TaskKind | None, name: str
) -> tuple[np.ndarray, np.ndarray, TaskKind]:
    """Labels (strings) -> targets: class ids in sorted order, or floats for regression."""
    values = train + test
    try:
        numbers = np.array([float(v) for v in values])
    except ValueError:
        numbers = None
    if kind is None:
        whole = numbers is not None and np.all(numbers == np.round(numbers))
        kind = "classification" if numbers is None or whole else "regression"
    if kind == "regression":
        if numbers is None:
            raise ValueError(f"task {name!r}: a regression target must be numeric")
        y = numbers.astype(np.float32)
    elif numbers is not None and np.all(numbers == np.round(numbers)) and numbers.min() >= 0:
        y = numbers.astype(np.int64)
    else:
        classes = sorted(set(values), key=lambda v: (numbers is None, v))
        y = np.array([classes.index(v) for v in values], dtype=np.int64)
    return y[: len(train)], y[len(train) :], kind


def _csv_task(
    name: str, path: Path, label: str, kind: TaskKind | None, test_file: str | Path | None,
    val_fraction: float, test_fraction: float, seed: int,
) -> TaskData:  # fmt: skip
    x, labels = read_csv(path, label, name)
    if test_file is not None:
        tpath = Path(test_file)
        if not tpath.is_file():
            raise FileNotFoundError(f"task {name!r}: test_file {str(tpath)!r} not found")
        x_te, labels_te = read_csv(tpath, label, name)
        if x_te.shape[1] != x.shape[1]:
            raise ValueError(f"task {name!r}: {tpath.name} has other columns than {path.name}")
        x_tr, labels_tr = x, labels
    else:
        if not 0 < test_fraction < 1:
            raise ValueError(f"task {name!r}: test_fraction must be in (0, 1), got {test_fraction}")
        order = np.random.default_rng(seed).permutation(len(x))
        n_test = int(round(test_fraction * len(x)))
        te, tr = order[:n_test], order[n_test:]
        x_tr, x_te = x[tr], x[te]
        labels_tr, labels_te = [labels[i] for i in tr], [labels[i] for i in te]
    y_tr, y_te, kind = csv_targets(labels_tr, labels_te, kind, name)
    return task_from_tensors(name, x_tr, y_tr, x_te, y_te, val_fraction, seed, kind=kind)
