"""One build at a time per store: an exclusive lock held for the whole build.

Local stores use ``fcntl.flock`` on ``<store>/.build.lock``: the kernel releases it when the
process dies, so a SIGKILLed build never leaves a stale lock. Stores behind fsspec URLs get a
``build.lock`` key created with ``set_if_not_exists``; a lock left by a dead process on this
host is taken over, any other is refused.

``reentrant=True`` lets a stage that the build runs while holding the lock (the landscape
metrics inside ``zoo build``) go ahead in the same process instead of refusing itself.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
import warnings
from pathlib import Path
from types import TracebackType

from zoo.store import StoreError, is_url, open_group

LOCK_KEY = "build.lock"
LOCK_FILE = ".build.lock"

# The lock file sits in the store's root folder; Zarr lists it as an unknown object.
warnings.filterwarnings("ignore", message=rf"Object at {re.escape(LOCK_FILE)} is not recognized")
warnings.filterwarnings("ignore", message=rf"Object at {re.escape(LOCK_KEY)} is not recognized")


_HELD: dict[str, int] = {}  # locations this process holds the lock of -> nesting depth


class BuildLock:
    def __init__(self, location: str | Path, reentrant: bool = False) -> None:
        self.location = str(location)
        self._fd: int | None = None
        self._nested = False
        self._reentrant = reentrant

    def __enter__(self) -> BuildLock:
        if self._reentrant and _HELD.get(self.location):
            _HELD[self.location] += 1
            self._nested = True
            return self
        if is_url(self.location) and not self.location.startswith("file://"):
            self._acquire_key()
        else:
            self._acquire_flock()
        _HELD[self.location] = _HELD.get(self.location, 0) + 1
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        _HELD[self.location] -= 1
        if not _HELD[self.location]:
            del _HELD[self.location]
        if self._nested:
            return
        if self._fd is not None:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
        else:
            _run(open_group(self.location, mode="r+").store.delete(LOCK_KEY))

    def _acquire_flock(self) -> None:
        import fcntl

        folder = Path(self.location.removeprefix("file://"))
        folder.mkdir(parents=True, exist_ok=True)  # the lock comes before the store
        path = folder / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = Path(path).read_text().strip() or "another process"
            os.close(fd)
            raise StoreError(
                f"{self.location} is being built by {holder}; wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode())
        self._fd = fd

    def _acquire_key(self) -> None:
        from zarr.core.buffer import default_buffer_prototype

        store = open_group(self.location, mode="a").store  # the lock comes before the store
        me = {"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}
        buf = default_buffer_prototype().buffer.from_bytes(json.dumps(me).encode())
        for _ in range(2):
            existing = _run(store.get(LOCK_KEY, prototype=default_buffer_prototype()))
            if existing is None:
                _run(store.set_if_not_exists(LOCK_KEY, buf))
                got = _run(store.get(LOCK_KEY, prototype=default_buffer_prototype()))
                if got is not None and json.loads(got.to_bytes()) == me:
                    return
                continue
            holder = json.loads(existing.to_bytes())
            if holder.get("host") == me["host"] and not _alive(int(holder.get("pid", -1))):
                _run(store.delete(LOCK_KEY))  # left by a dead build on this host
                continue
            if holder == me:
                return
            raise StoreError(
                f"{self.location} is being built by pid {holder.get('pid')} on {holder.get('host')}"
            )
        raise StoreError(f"could not take the build lock of {self.location}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _run(coro):
    from zarr.core.sync import sync

    return sync(coro)
