"""Torchvision-style image datasets read from a user's local ``data_root`` (never downloaded).

Reads the original file formats directly (no torchvision needed, no pickle): MNIST and
Fashion-MNIST IDX files under ``ROOT/MNIST/raw`` / ``ROOT/FashionMNIST/raw`` (torchvision's
layout, optionally gzipped), CIFAR-10's binary batches under ``ROOT/cifar-10-batches-bin``.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from zoo.tasks.base import TaskData, builtin, task_from_arrays


def _find(root: Path, folder: str, name: str, task: str) -> Path:
    for cand in (root / folder / "raw" / name, root / folder / name, root / name):
        for p in (cand, cand.with_name(cand.name + ".gz")):
            if p.exists():
                return p
    raise FileNotFoundError(
        f"task {task!r}: {name} not found under data_root {str(root)!r} (expected {folder}/raw/{name})"
    )


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (the MNIST format): magic, dims, then big-endian uint8 data."""
    raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(int)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _root(data_root: str | None, task: str) -> Path:
    if data_root is None:
        raise FileNotFoundError(f"task {task!r} needs --data-root pointing at local dataset files")
    root = Path(data_root)
    if not root.is_dir():
        raise FileNotFoundError(f"task {task!r}: data_root {data_root!r} is not a directory")
    return root


def _idx_task(task: str, folder: str, seed: int, data_root: str | None) -> TaskData:
    root = _root(data_root, task)
    parts = {
        k: read_idx(_find(root, folder, f"{k}-idx{3 if 'images' in k else 1}-ubyte", task))
        for k in ("train-images", "train-labels", "t10k-images", "t10k-labels")
    }
    x = np.concatenate([parts["train-images"], parts["t10k-images"]])[:, None] / np.float32(255)
    y = np.concatenate([parts["train-labels"], parts["t10k-labels"]]).astype(np.int64)
    n_test = len(parts["t10k-labels"])
    return _fixed_test_split(task, x.astype(np.float32), y, n_test, seed)


def _fixed_test_split(task: str, x: np.ndarray, y: np.ndarray, n_test: int, seed: int) -> TaskData:
    """Keep the official test set; draw validation from the official training set."""
    n_train = len(x) - n_test
    data = task_from_arrays(
        task, x[:n_train], y[:n_train], seed, "classification", 10, val=0.1, test=0.0
    )
    test = task_from_arrays(
        task, x[n_train:], y[n_train:], seed, "classification", 10, val=0.0, test=0.0
    )
    data.x_test, data.y_test = test.x_train, test.y_train
    return data


@builtin("mnist")
def mnist(seed: int = 0, data_root: str | None = None) -> TaskData:
    return _idx_task("mnist", "MNIST", seed, data_root)


@builtin("fashion_mnist")
def fashion_mnist(seed: int = 0, data_root: str | None = None) -> TaskData:
    return _idx_task("fashion_mnist", "FashionMNIST", seed, data_root)


@builtin("cifar10")
def cifar10(seed: int = 0, data_root: str | None = None) -> TaskData:
    """CIFAR-10 binary version: records of 1 label byte + 3072 pixel bytes (3x32x32)."""
    root = _root(data_root, "cifar10")
    folder = root / "cifar-10-batches-bin"
    files = [folder / f"data_batch_{i}.bin" for i in range(1, 6)] + [folder / "test_batch.bin"]
    missing = [f.name for f in files if not f.exists()]
    if missing:
        raise FileNotFoundError(f"task 'cifar10': {missing[0]} not found under {str(folder)!r}")
    recs = np.concatenate([np.fromfile(f, dtype=np.uint8).reshape(-1, 3073) for f in files])
    x = (recs[:, 1:].reshape(-1, 3, 32, 32) / np.float32(255)).astype(np.float32)
    y = recs[:, 0].astype(np.int64)
    n_test = len(np.fromfile(files[-1], dtype=np.uint8)) // 3073
    return _fixed_test_split("cifar10", x, y, n_test, seed)
