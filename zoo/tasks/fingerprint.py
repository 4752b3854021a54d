"""A task's content fingerprint: what tells two tasks of one name apart.

SHA-256 over the task's kind, outputs, parameters and every split's dtype, shape and bytes, cut
to 16 hex digits. The name is not part of it (the same data under two names has one
fingerprint); any change of data, labels or split changes it.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from zoo.tasks.base import TaskData

SPLITS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def task_fingerprint(data: TaskData) -> str:
    h = hashlib.sha256()
    head = {"kind": data.kind, "num_outputs": int(data.num_outputs),
            "params": {k: float(v) for k, v in sorted(data.params.items())}}  # fmt: skip
    h.update(json.dumps(head, sort_keys=True).encode())
    for key in SPLITS:
        a = np.ascontiguousarray(getattr(data, key).detach().cpu().numpy())
        h.update(f"{key}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]
