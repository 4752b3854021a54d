"""Tasks: deterministic disjoint splits, task parameters, user tasks, local vision readers."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from zoo.tasks import TaskData, get_task, known_tasks, register_task

OFFLINE = ["digits", "mnist1d:num_samples=600", "moons", "blobs", "sinusoid", "modadd"]
INPUT_SHAPES = {
    "digits": (1, 8, 8), "mnist1d": (40,), "moons": (2,), "blobs": (2,),
    "sinusoid": (1,), "modadd": (3,),
}  # fmt: skip


def _rows(t: TaskData) -> torch.Tensor:
    """All examples of all splits as rows (N, features + targets), float64."""
    xs = [t.x_train, t.x_val, t.x_test]
    ys = [t.y_train, t.y_val, t.y_test]
    return torch.cat(
        [
            torch.cat([x.flatten(1).double(), y.reshape(len(y), -1).double()], 1)
            for x, y in zip(xs, ys)
        ]
    )


def _same_split(a: TaskData, b: TaskData) -> bool:
    return all(torch.equal(getattr(a, k), getattr(b, k)) for k in _SPLIT_KEYS)


_SPLIT_KEYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


@pytest.mark.parametrize("name", OFFLINE)
def test_offline_task_splits(name: str) -> None:
    a, b, c = get_task(name, seed=0), get_task(name, seed=0), get_task(name, seed=1)
    family = name.split(":")[0]
    assert a.name == name
    assert _same_split(a, b)  # same seed, same split
    assert not torch.equal(a.x_train, c.x_train)  # other seed, other split
    # dtypes and shapes
    assert a.input_shape == INPUT_SHAPES[family]
    assert a.x_train.dtype == (torch.long if family == "modadd" else torch.float32)
    for x, y in ((a.x_train, a.y_train), (a.x_val, a.y_val), (a.x_test, a.y_test)):
        assert len(x) == len(y) > 0
        assert x.shape[1:] == a.input_shape and x.dtype == a.x_train.dtype
        if a.kind == "classification":
            assert y.dtype == torch.long and y.shape == (len(x),)
            assert 0 <= int(y.min()) and int(y.max()) < a.num_outputs
        else:
            assert y.dtype == torch.float32 and y.shape == (len(x), a.num_outputs)
    # disjoint: every example of the data set appears in exactly one split
    rows = _rows(a)
    assert len(torch.unique(rows, dim=0)) == len(rows)
    # the other seed re-splits the same examples
    assert torch.equal(rows.unique(dim=0), _rows(c).unique(dim=0))


def test_digits_is_sklearn_digits() -> None:
    from sklearn.datasets import load_digits

    d = load_digits()
    t = get_task("digits")
    assert t.kind == "classification" and t.num_outputs == 10
    assert len(t.x_train) + len(t.x_val) + len(t.x_test) == len(d.images)
    assert (len(t.x_val), len(t.x_test)) == (180, 359)
    ref = torch.as_tensor(np.concatenate([d.images.reshape(-1, 64) / 16.0, d.target[:, None]], 1))
    assert torch.allclose(_rows(t).unique(dim=0), ref.unique(dim=0), atol=1e-7)


def test_mnist1d_default_size() -> None:
    t = get_task("mnist1d")
    assert len(t.x_train) + len(t.x_val) + len(t.x_test) == 4000
    assert t.num_outputs == 10


def test_sinusoid_parameters() -> None:
    base = get_task("sinusoid")
    t = get_task("sinusoid:amplitude=2,phase=0.5")
    assert t.kind == "regression" and t.num_outputs == 1
    assert t.params == {"amplitude": 2.0, "phase": 0.5}
    assert base.params == {"amplitude": 1.0, "phase": 0.0}
    assert torch.equal(t.x_train, base.x_train)  # same inputs, other targets
    assert not torch.allclose(t.y_train, base.y_train)
    for x, y in ((t.x_train, t.y_train), (t.x_test, t.y_test)):
        torch.testing.assert_close(y, 2.0 * torch.sin(x + 0.5), rtol=0, atol=1e-5)
    torch.testing.assert_close(base.y_val, torch.sin(base.x_val), rtol=0, atol=1e-6)


def test_modadd_targets() -> None:
    t = get_task("modadd:p=7")
    assert t.num_outputs == 7
    x, y = t.x_train, t.y_train
    assert torch.equal(y, (x[:, 0] + x[:, 1]) % 7)
    assert x[:, 2].eq(7).all()
    assert len(t.x_train) + len(t.x_val) + len(t.x_test) == 49


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("imagenet", "unknown task 'imagenet'"),
        ("sinusoid:amplitude", "parameter 'amplitude' is not key=value"),
        ("sinusoid:amplitude=big", "parameter 'amplitude' is not a number"),
        ("digits:noise=1", "task 'digits:noise=1'"),
    ],
)
def test_bad_task_names(name: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        get_task(name)


def test_register_classification_task() -> None:
    g = torch.Generator().manual_seed(0)
    x_tr, x_te = torch.randn(50, 6, generator=g), torch.randn(20, 6, generator=g)
    y_tr, y_te = torch.randint(0, 3, (50,), generator=g), torch.randint(0, 3, (20,), generator=g)
    y_tr[0] = 2  # num_outputs from the labels
    name = register_task("test-tasks-cls", x_tr, y_tr, x_te, y_te, val_fraction=0.2)
    assert name == "test-tasks-cls" and name in known_tasks()
    t = get_task(name)
    assert t.kind == "classification" and t.num_outputs == 3
    # stratified, with the small-set floor: 5 validation examples of each of the 3 classes
    assert (len(t.x_train), len(t.x_val)) == (35, 15)
    assert torch.bincount(t.y_val, minlength=3).tolist() == [5, 5, 5]
    assert torch.equal(t.x_test, x_te) and torch.equal(t.y_test, y_te)
    # train + val is a re-split of the user's training data
    mine = torch.cat([x_tr, y_tr[:, None].float()], 1)
    got = torch.cat([torch.cat([t.x_train, t.x_val]), torch.cat([t.y_train, t.y_val])[:, None]], 1)
    assert torch.equal(mine.unique(dim=0), got.unique(dim=0))


def test_register_regression_task() -> None:
    x = np.linspace(-1, 1, 30, dtype=np.float64)[:, None]
    y = 3 * x
    name = register_task("test-tasks-reg", x, y, x[:5], y[:5])
    t = get_task(name)
    assert t.kind == "regression" and t.num_outputs == 1
    assert t.x_train.dtype == torch.float32 and t.y_train.dtype == torch.float32
    torch.testing.assert_close(t.y_train, 3 * t.x_train, rtol=1e-6, atol=0)


def test_register_errors() -> None:
    x, y = torch.zeros(4, 2), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match="taken by a built-in task"):
        register_task("digits", x, y, x, y)
    with pytest.raises(ValueError, match="inputs and targets differ in length"):
        register_task("test-tasks-bad", x, y[:3], x, y)
    with pytest.raises(ValueError, match="train and test inputs differ in shape"):
        register_task("test-tasks-bad", x, y, torch.zeros(4, 3), y)


# --- local torchvision-style data sets -------------------------------------------------------


def _idx(data: np.ndarray) -> bytes:
    head = bytes([0, 0, 8, data.ndim]) + np.asarray(data.shape, dtype=">u4").tobytes()
    return head + data.astype(np.uint8).tobytes()


def _write_idx_set(root: Path, folder: str, n_train: int, n_test: int, zipped: bool) -> None:
    """Image i has every pixel = i and label i % 10, so each example can be traced."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    ids = {"train": np.arange(n_train), "t10k": np.arange(n_train, n_train + n_test)}
    for split, i in ids.items():
        files = {
            f"{split}-images-idx3-ubyte": np.broadcast_to(i[:, None, None], (len(i), 28, 28)),
            f"{split}-labels-idx1-ubyte": i % 10,
        }
        for fname, arr in files.items():
            blob = _idx(np.ascontiguousarray(arr))
            if zipped:
                (raw / (fname + ".gz")).write_bytes(gzip.compress(blob))
            else:
                (raw / fname).write_bytes(blob)


def _check_traced(t: TaskData, n_train: int, n_test: int, shape: tuple[int, ...]) -> None:
    def ids(x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1)[:, 0] * 255).round().long()

    assert t.input_shape == shape and t.x_train.dtype == torch.float32
    assert t.kind == "classification" and t.num_outputs == 10
    tr, va, te = ids(t.x_train), ids(t.x_val), ids(t.x_test)
    for x, i in ((t.x_train, tr), (t.x_val, va), (t.x_test, te)):
        assert torch.equal(x, (i.float() / 255).reshape(-1, *[1] * len(shape)).expand_as(x))
    assert torch.equal(t.y_train, tr % 10) and torch.equal(t.y_test, te % 10)
    assert sorted(torch.cat([tr, va]).tolist()) == list(range(n_train))  # official train set
    assert sorted(te.tolist()) == list(range(n_train, n_train + n_test))  # official test set
    # stratified rule of zoo.tasks.split on a small set: per class 20%, at least 5, at most half
    per_class = torch.bincount(torch.arange(n_train) % 10).tolist()
    assert len(va) == sum(min(max(round(0.2 * n), 5), n // 2) for n in per_class)
    assert torch.bincount(va % 10, minlength=10).tolist() == [
        min(max(round(0.2 * n), 5), n // 2) for n in per_class
    ]


@pytest.mark.parametrize("zipped", [False, True])
@pytest.mark.parametrize(
    ("task", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")]
)
def test_idx_readers(tmp_path: Path, task: str, folder: str, zipped: bool) -> None:
    _write_idx_set(tmp_path, folder, n_train=40, n_test=12, zipped=zipped)
    t = get_task(task, seed=0, data_root=str(tmp_path))
    _check_traced(t, 40, 12, (1, 28, 28))
    assert _same_split(t, get_task(task, seed=0, data_root=str(tmp_path)))
    assert not torch.equal(t.x_train, get_task(task, seed=1, data_root=str(tmp_path)).x_train)


def test_cifar10_reader(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    per_batch, n_test = 6, 8
    files = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    start = 0
    for fname in files:
        n = n_test if fname == "test_batch.bin" else per_batch
        i = np.arange(start, start + n)
        recs = np.empty((n, 3073), dtype=np.uint8)
        recs[:, 0] = i % 10
        recs[:, 1:] = i[:, None]
        (folder / fname).write_bytes(recs.tobytes())
        start += n
    t = get_task("cifar10", seed=0, data_root=str(tmp_path))
    _check_traced(t, 5 * per_batch, n_test, (3, 32, 32))


@pytest.mark.parametrize("task", ["mnist", "fashion_mnist", "cifar10"])
def test_missing_data_root(tmp_path: Path, task: str) -> None:
    where, nowhere = re.escape(str(tmp_path)), re.escape(str(tmp_path / "nowhere"))
    cases = [
        (None, f"task '{task}' needs --data-root"),
        (str(tmp_path / "nowhere"), f"task '{task}': data_root '{nowhere}' is not a directory"),
        (str(tmp_path), f"task '{task}': .* not found under (data_root )?'{where}"),
    ]
    for root, match in cases:
        with pytest.raises(FileNotFoundError, match=match) as e:
            get_task(task, data_root=root)
        assert "\n" not in str(e.value)
