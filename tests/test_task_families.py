"""Task families (rotated digits, digit pairs), the validation split rule and file tasks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from zoo.tasks import get_task, task_from_file
from zoo.tasks.split import stratified_val


def _rule(n: int, share: float, floor: int) -> int:
    """The documented rule, written out again: share, at least ``floor``, at most half."""
    return min(max(round(share * n), floor), n // 2)


# --- families --------------------------------------------------------------------------------
def test_rotated_digits_are_the_digits_rotated_on_one_split(digits) -> None:
    zero, quarter = get_task("digits_rotated:angle=0"), get_task("digits_rotated:angle=90")
    assert torch.equal(zero.x_train, digits.x_train) and torch.equal(zero.y_test, digits.y_test)
    assert quarter.params == {"angle": 90.0} and quarter.num_outputs == 10
    # a quarter turn of an 8x8 grid about its centre maps pixels onto pixels: exact
    turned = torch.rot90(digits.x_train, k=1, dims=(2, 3))
    assert torch.equal(quarter.x_train, turned) and torch.equal(quarter.y_train, digits.y_train)
    full = get_task("digits_rotated:angle=360")
    assert torch.equal(full.x_val, zero.x_val)
    tilted = get_task("digits_rotated:angle=15")
    assert not torch.equal(tilted.x_train, zero.x_train)
    assert tilted.x_train.min() >= 0 and tilted.x_train.max() <= 1
    assert tilted.fingerprint != zero.fingerprint != quarter.fingerprint


def test_digit_pairs_are_binary_tasks_on_two_classes(digits) -> None:
    t = get_task("digits_pair:a=3,b=8")
    assert t.kind == "classification" and t.num_outputs == 2 and t.params == {"a": 3.0, "b": 8.0}
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.as_tensor(d.images / 16.0, dtype=torch.float32)
    n3, n8 = int((d.target == 3).sum()), int((d.target == 8).sum())
    xs = torch.cat([t.x_train, t.x_val, t.x_test])[:, 0]
    ys = torch.cat([t.y_train, t.y_val, t.y_test])
    assert (int((ys == 0).sum()), int((ys == 1).sum())) == (n3, n8)
    for label, digit in ((0, 3), (1, 8)):  # every example is an image of its class
        mine = images[torch.as_tensor(d.target == digit)]
        got = xs[ys == label]
        assert torch.equal(got.flatten(1).unique(dim=0), mine.flatten(1).unique(dim=0))
    with pytest.raises(ValueError, match="two different digits"):
        get_task("digits_pair:a=3,b=3")


# --- the validation split rule ---------------------------------------------------------------
def test_stratified_split_follows_the_rule() -> None:
    rng = np.random.default_rng(0)
    y = rng.permutation(np.repeat([0, 1, 2], [50, 60, 32]))  # 142 examples, 3 classes
    tr, va = stratified_val(y, 0.1, classification=True)
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(142))
    counts = np.bincount(y[va], minlength=3).tolist()
    assert counts == [_rule(n, 0.2, 5) for n in (50, 60, 32)] == [10, 12, 6]
    # the first examples of each class in pool order are the validation ones
    for c in range(3):
        assert sorted(va[y[va] == c]) == np.flatnonzero(y == c)[: counts[c]].tolist()
    # large pools keep the given share; a class of 3 gives 1 (at most half)
    y = rng.permutation(np.repeat([0, 1, 2], [1000, 500, 3]))
    _, va = stratified_val(y, 0.1, classification=True)
    assert np.bincount(y[va], minlength=3).tolist() == [100, 50, 1]
    # regression: the whole pool, floor 20 on small sets
    _, va = stratified_val(np.zeros(60, np.float32), 0.1, classification=False)
    assert len(va) == 20
    _, va = stratified_val(np.zeros(5000, np.float32), 0.1, classification=False)
    assert len(va) == 500
    _, va = stratified_val(y, 0.0, classification=True)
    assert len(va) == 0


def test_builtin_splits_are_stratified(digits) -> None:
    pool = torch.cat([digits.y_train, digits.y_val])
    per_class = torch.bincount(pool, minlength=10).tolist()
    share = 0.1 * 1797 / len(pool)  # 10% of the data, drawn from the non-test examples
    assert torch.bincount(digits.y_val, minlength=10).tolist() == [
        _rule(n, share, 5) for n in per_class
    ]


# --- file tasks ----------------------------------------------------------------------------------
def test_npz_task(tmp_path: Path) -> None:
    g = np.random.default_rng(0)
    arrays = {
        "x_train": g.normal(size=(80, 4)).astype(np.float32), "y_train": g.integers(0, 3, 80),
        "x_test": g.normal(size=(20, 4)).astype(np.float32), "y_test": g.integers(0, 3, 20),
    }  # fmt: skip
    np.savez(tmp_path / "d.npz", **arrays)
    t = task_from_file("npz-a", tmp_path / "d.npz")
    assert t.kind == "classification" and t.num_outputs == 3
    assert len(t.x_train) + len(t.x_val) == 80 and torch.equal(
        t.x_test, torch.tensor(arrays["x_test"])
    )
    assert torch.bincount(t.y_val).tolist() == [
        _rule(int(n), 0.2, 5) for n in np.bincount(arrays["y_train"])
    ]
    # given validation arrays are used as they are; regression from float labels
    yr = arrays["x_train"][:, :1] * 2
    np.savez(tmp_path / "r.npz", x_train=arrays["x_train"], y_train=yr, x_test=arrays["x_test"],
             y_test=arrays["x_test"][:, 0] * 2, x_val=arrays["x_test"][:5], y_val=np.zeros(5))  # fmt: skip
    r = task_from_file("npz-r", tmp_path / "r.npz")
    assert r.kind == "regression" and r.y_test.shape == (20, 1) and len(r.x_val) == 5
    assert torch.equal(r.x_train, torch.tensor(arrays["x_train"]))
    # stated kind wins over the labels' type
    assert task_from_file("npz-c", tmp_path / "d.npz", kind="regression").kind == "regression"


def test_npz_task_errors(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", x_train=np.zeros((4, 2)), y_train=np.zeros(4, int))
    with pytest.raises(ValueError, match="lacks array\\(s\\) x_test, y_test"):
        task_from_file("bad", tmp_path / "a.npz")
    objects = np.array([{"a": 1}] * 4, dtype=object)
    np.savez(tmp_path / "o.npz", x_train=objects, y_train=np.zeros(4, int), x_test=objects,
             y_test=np.zeros(4, int))  # fmt: skip
    with pytest.raises(ValueError, match="cannot be read without pickle"):
        task_from_file("bad", tmp_path / "o.npz")
    with pytest.raises(FileNotFoundError, match="not found"):
        task_from_file("bad", tmp_path / "missing.npz")
    (tmp_path / "x.txt").write_text("1")
    with pytest.raises(ValueError, match="neither .npz nor .csv"):
        task_from_file("bad", tmp_path / "x.txt")


def test_csv_task(tmp_path: Path) -> None:
    rows = ["f1,kind,f2"] + [f"{i},{'cat' if i % 3 else 'dog'},{-i}" for i in range(60)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    t = task_from_file("csv-a", tmp_path / "t.csv", label="kind", test_fraction=0.25)
    assert t.kind == "classification" and t.num_outputs == 2 and t.input_shape == (2,)
    x = torch.cat([t.x_train, t.x_val, t.x_test])
    y = torch.cat([t.y_train, t.y_val, t.y_test])
    assert len(t.x_test) == 15 and sorted(x[:, 0].tolist()) == list(map(float, range(60)))
    assert torch.equal(x[:, 1], -x[:, 0])  # the label column is not a feature
    assert torch.equal(y, (x[:, 0] % 3 == 0).long())  # cat -> 0, dog -> 1 (sorted)
    # numeric non-integer labels: regression; a test file instead of a fraction
    (tmp_path / "r.csv").write_text("x,y\n" + "".join(f"{i},{i / 2}\n" for i in range(40)))
    (tmp_path / "rt.csv").write_text("x,y\n1,0.5\n3,1.5\n")
    r = task_from_file("csv-r", tmp_path / "r.csv", label="y", test_file=tmp_path / "rt.csv")
    assert r.kind == "regression" and r.y_test.flatten().tolist() == [0.5, 1.5]
    torch.testing.assert_close(r.y_train, r.x_train / 2)
    with pytest.raises(ValueError, match="has no column 'z'"):
        task_from_file("bad", tmp_path / "r.csv", label="z")
    with pytest.raises(ValueError, match="needs label"):
        task_from_file("bad", tmp_path / "r.csv")
