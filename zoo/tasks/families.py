"""Task families over the bundled digits: every member is a task with parameters.

* ``digits_rotated:angle=A``: the 8x8 digits rotated by ``A`` degrees (bilinear, about the image
  centre, zeros outside), 10 classes. Every angle uses the same images and the same split, so
  tasks differ only by the rotation.
* ``digits_pair:a=I,b=J``: the binary task "digit I (label 0) or digit J (label 1)" on the
  images of those two classes.

Members are rebuilt from their names, so a zoo stores only name and parameters for them.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from zoo.tasks.base import TaskData, builtin, task_from_arrays


@cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)  # (N, 8, 8), (N,)


def rotate_images(images: np.ndarray, angle: float) -> np.ndarray:
    """(N, H, W) images rotated counter-clockwise by ``angle`` degrees about their centre."""
    from scipy.ndimage import rotate

    if angle % 360 == 0:
        return images.copy()
    out = rotate(images, angle, axes=(2, 1), reshape=False, order=1, mode="constant", cval=0.0)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


@builtin("digits_rotated")
def digits_rotated(seed: int = 0, data_root: str | None = None, angle: float = 0.0) -> TaskData:
    """The digits rotated by ``angle`` degrees, shape (1, 8, 8)."""
    images, labels = _digits()
    x = rotate_images(images, angle)[:, None]  # (N, 1, 8, 8)
    params = {"angle": float(angle)}
    return task_from_arrays("digits_rotated", x, labels, seed, "classification", 10, params)


@builtin("digits_pair")
def digits_pair(
    seed: int = 0, data_root: str | None = None, a: float = 0, b: float = 1
) -> TaskData:
    """Digit ``a`` (label 0) against digit ``b`` (label 1), shape (1, 8, 8)."""
    if a != int(a) or b != int(b) or not (0 <= a <= 9 and 0 <= b <= 9) or a == b:
        raise ValueError(f"digits_pair needs two different digits 0-9, got a={a:g}, b={b:g}")
    images, labels = _digits()
    keep = (labels == a) | (labels == b)
    x = images[keep][:, None]  # (N_ab, 1, 8, 8)
    y = (labels[keep] == b).astype(np.int64)
    params = {"a": float(int(a)), "b": float(int(b))}
    return task_from_arrays("digits_pair", x, y, seed, "classification", 2, params)
