"""What a version's files say about it: total size, file count and the manifest digest, derived
in one place for every way a version comes in (register, import, adopting a tree)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

from modelstore.catalog import FileRecord
from modelstore.store import manifest_digest


class FileFields(TypedDict):
    """The ``NewVersion`` fields that follow from its files."""

    size: int
    file_count: int
    sha256: str
    files: list[FileRecord]


def file_fields(files: Sequence[FileRecord]) -> FileFields:
    return FileFields(
        size=sum(f.size for f in files),
        file_count=len(files),
        sha256=manifest_digest((f.relpath, f.size, f.sha256) for f in files),
        files=list(files),
    )
