"""Offline tasks. Importing this package registers the built-in families."""

from zoo.tasks import builtin as _builtin  # noqa: F401  (registers built-ins)
from zoo.tasks import families as _families  # noqa: F401
from zoo.tasks import vision as _vision  # noqa: F401
from zoo.tasks.base import (
    TaskData,
    check_task_name,
    get_task,
    known_tasks,
    parse_task_name,
    register_data,
    register_stored,
    register_task,
    user_task,
)
from zoo.tasks.files import task_from_file
from zoo.tasks.fingerprint import task_fingerprint

__all__ = [
    "TaskData",
    "get_task",
    "register_task",
    "known_tasks",
    "check_task_name",
    "parse_task_name",
    "register_data",
    "register_stored",
    "user_task",
    "task_from_file",
    "task_fingerprint",
]
