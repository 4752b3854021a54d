"""Built-in offline tasks: digits, mnist1d, moons, blobs, sinusoid regression, modular addition."""

from __future__ import annotations

import numpy as np
import torch

from zoo.tasks.base import TaskData, builtin, task_from_arrays


@builtin("digits")
def digits(seed: int = 0, data_root: str | None = None) -> TaskData:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images), scaled to [0, 1], shape (1, 8, 8)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8)
    return task_from_arrays("digits", x, d.target, seed, "classification", 10)


@builtin("mnist1d")
def mnist1d(seed: int = 0, data_root: str | None = None, num_samples: float = 4000) -> TaskData:
    """MNIST-1D, generated procedurally by the ``mnist1d`` package (never downloaded); (N, 40)."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = int(num_samples), 42
    d = make_dataset(args)
    x = np.concatenate([d["x"], d["x_test"]]).astype(np.float32)
    y = np.concatenate([d["y"], d["y_test"]])
    return task_from_arrays("mnist1d", x, y, seed, "classification", 10)


@builtin("moons")
def moons(
    seed: int = 0, data_root: str | None = None, noise: float = 0.2, n: float = 1000
) -> TaskData:
    from sklearn.datasets import make_moons

    x, y = make_moons(int(n), noise=noise, random_state=1234)
    return task_from_arrays("moons", x.astype(np.float32), y, seed, "classification", 2)


@builtin("blobs")
def blobs(
    seed: int = 0, data_root: str | None = None, centers: float = 4, n: float = 1000
) -> TaskData:
    from sklearn.datasets import make_blobs

    x, y = make_blobs(
        int(n), n_features=2, centers=int(centers), cluster_std=1.5, random_state=1234
    )
    return task_from_arrays("blobs", x.astype(np.float32), y, seed, "classification", int(centers))


@builtin("sinusoid")
def sinusoid(
    seed: int = 0, data_root: str | None = None, amplitude: float = 1.0, phase: float = 0.0,
    n: float = 1000,
) -> TaskData:  # fmt: skip
    """y = amplitude * sin(x + phase), x ~ U(-5, 5): a continuum of regression tasks."""
    rng = np.random.default_rng(1234)
    x = rng.uniform(-5.0, 5.0, size=(int(n), 1)).astype(np.float32)
    y = (amplitude * np.sin(x + phase)).astype(np.float32)  # (N, 1)
    params = {"amplitude": amplitude, "phase": phase}
    return task_from_arrays("sinusoid", x, y, seed, "regression", 1, params)


@builtin("modadd")
def modadd(seed: int = 0, data_root: str | None = None, p: float = 23) -> TaskData:
    """(a + b) mod p from the token sequence [a, b, =] (token p is '='); all p^2 pairs."""
    p = int(p)
    a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    x = np.stack([a.ravel(), b.ravel(), np.full(p * p, p)], axis=1).astype(np.int64)  # (p^2, 3)
    y = (a.ravel() + b.ravel()) % p
    # modadd's training fraction is what it is about: no small-set floor on its validation split
    data = task_from_arrays(
        "modadd", x, y, seed, "classification", p, {"p": p}, val=0.1, test=0.3, small_floor=False
    )
    data.x_train = data.x_train.to(torch.long)
    return data
