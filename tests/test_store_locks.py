"""``modelstore.store.locks``: flock-based locks, and removing a lock file nobody holds without
ever taking a lock away from its holder."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from modelstore.store import locks


def test_a_free_lock_file_is_removed_and_a_held_one_is_kept(tmp_path: Path) -> None:
    path = str(tmp_path / "token-1-a.lock")
    with locks.hold(path, removable=True):
        assert locks.is_held(path)
        assert locks.remove_if_free(path) is False
        assert os.path.exists(path)
    assert locks.remove_if_free(path) is True  # released: nobody holds it any more
    assert not os.path.exists(path)


def test_removing_a_missing_lock_file_is_a_no_op(tmp_path: Path) -> None:
    assert locks.remove_if_free(str(tmp_path / "token-gone.lock")) is False


def test_a_lock_file_removed_between_its_creation_and_its_locking_is_created_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """doctor may find a just-created lock file still free and remove it; the creator must then
    lock a file that the path names, or a second holder could lock the path meanwhile."""
    path = str(tmp_path / "token-1-a.lock")
    real_flock = fcntl.flock
    removed: list[bool] = []
    calls = 0

    def remove_first(fd: int, operation: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:  # the creator's first flock: doctor removes the file right before it
            monkeypatch.setattr(fcntl, "flock", real_flock)
            removed.append(locks.remove_if_free(path))
            monkeypatch.setattr(fcntl, "flock", remove_first)
        real_flock(fd, operation)

    monkeypatch.setattr(fcntl, "flock", remove_first)
    with locks.hold(path, removable=True):
        monkeypatch.undo()
        assert removed == [True]
        assert os.path.exists(path) and locks.is_held(path)
        assert locks.remove_if_free(path) is False
