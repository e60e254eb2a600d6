"""Small file-system operations the store needs in several places."""

from __future__ import annotations

import contextlib
import os
import shutil

READ_ONLY_FILE = 0o444
READ_ONLY_DIR = 0o555
WRITABLE_DIR = 0o755


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or creation inside ``path`` durable (a no-op where dirs cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs_read_only(root: str | os.PathLike[str]) -> None:
    """Folders of a stored entry become 0o555 (their files were made 0o444 when copied)."""
    if not os.path.isdir(root):
        return
    folders = [dirpath for dirpath, _dirs, _files in os.walk(root)]
    for folder in reversed(folders):
        os.chmod(folder, READ_ONLY_DIR)


def remove_tree(path: str | os.PathLike[str], *, best_effort: bool = False) -> None:
    """Remove a file or folder even if it was made read-only (a read-only folder blocks removing
    its children, so folders are made writable first); missing is fine. Links are removed,
    never followed. ``best_effort``: remove what can be, raise nothing (a clean-up that must not
    mask the error it follows)."""
    path = os.fspath(path)
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        with contextlib.suppress(OSError) if best_effort else contextlib.nullcontext():
            os.unlink(path)
        return
    for dirpath, _dirs, _files in os.walk(path):
        with contextlib.suppress(OSError):
            os.chmod(dirpath, WRITABLE_DIR)
    shutil.rmtree(path, ignore_errors=best_effort)


def tree_size(path: str | os.PathLike[str]) -> int:
    if not os.path.isdir(path):
        return os.lstat(path).st_size if os.path.lexists(path) else 0
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total
