"""Compare a stored version folder with the manifest recorded at registration."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from modelstore.store.hashing import hash_file, new_buffer


@dataclass
class TreeCheck:
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    foreign_entries: list[str] = field(default_factory=list)
    """Items in the version folder besides the entry: they break Azure ML's one-entry rule."""

    @property
    def ok(self) -> bool:
        return not (self.missing or self.changed or self.extra or self.foreign_entries)


def stored_files(version_dir: str, entry: str) -> set[str]:
    """Relative ('/'-separated, entry-prefixed) paths of every non-folder under the entry."""
    root = os.path.join(version_dir, entry)
    if not os.path.lexists(root):
        return set()
    if os.path.islink(root) or not os.path.isdir(root):
        return {entry}
    found: set[str] = set()
    for dirpath, dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, version_dir).replace(os.sep, "/")
        found.update(f"{rel}/{name}" for name in files)
        found.update(
            f"{rel}/{name}" for name in dirs if os.path.islink(os.path.join(dirpath, name))
        )
    return found


def check_version(
    version_dir: str,
    entry: str,
    expected: Mapping[str, tuple[int, str]],
    *,
    deep: bool = True,
    buffer: bytearray | None = None,
) -> TreeCheck:
    """Missing, changed (size, or sha256 when ``deep``), extra files and foreign entries.
    Pass one ``buffer`` when checking many versions: allocating it is the costly part for
    small files."""
    check = TreeCheck()
    try:
        listing = os.listdir(version_dir)
    except (FileNotFoundError, NotADirectoryError):
        listing = []
    check.foreign_entries = sorted(name for name in listing if name != entry)
    actual = stored_files(version_dir, entry)
    if deep and buffer is None:
        buffer = new_buffer()
    for relpath in sorted(expected):
        size, sha256 = expected[relpath]
        if relpath not in actual:
            check.missing.append(relpath)
            continue
        path = os.path.join(version_dir, *relpath.split("/"))
        try:
            if os.path.getsize(path) != size or (deep and hash_file(path, buffer)[1] != sha256):
                check.changed.append(relpath)
        except OSError:
            check.changed.append(relpath)  # unreadable now: it no longer matches
    check.extra = sorted(actual - set(expected))
    return check
