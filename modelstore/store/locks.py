"""Inter-process locks on files in ``.modelstore/locks``.

On POSIX a lock is ``flock(2)`` on an open file: blocking waits sleep in the kernel (no polling),
and the kernel releases the lock when its holder dies, however it dies, which is how ``doctor``
recognises the leftovers of a killed process. Elsewhere the ``filelock`` package provides the
same contract. Locking a file costs ~20 µs this way, against ~300 µs through ``filelock``'s
generic machinery, and a registration takes two locks.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def hold(path: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed), waiting for it if taken."""
    if fcntl is None:  # pragma: no cover - Windows
        from filelock import FileLock

        with FileLock(path, thread_local=False):
            yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def is_held(path: str) -> bool:
    """True while another open file holds ``path``'s lock; never waits."""
    if fcntl is None:  # pragma: no cover - Windows
        from filelock import FileLock, Timeout

        lock = FileLock(path, thread_local=False)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return True
        lock.release()
        return False
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
