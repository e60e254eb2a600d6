"""Plain records the catalog hands out, independent of SQLAlchemy sessions and of the store."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class FileRecord:
    relpath: str
    """Relative to the version folder, '/'-separated, starting with the entry name."""
    size: int
    sha256: str


@dataclass(frozen=True)
class NewVersion:
    """What a registration asks the catalog to record (everything but the number)."""

    name: str
    entry: str
    kind: str
    size: int
    file_count: int
    sha256: str
    created_at: datetime
    token: str
    files: list[FileRecord]
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    description: str | None = None
    framework: str | None = None
    framework_version: str | None = None


@dataclass(frozen=True)
class VersionRecord:
    id: int
    name: str
    version: int
    state: str
    token: str | None
    entry: str
    kind: str
    size: int
    file_count: int
    sha256: str
    created_at: datetime
    tags: dict[str, str]
    properties: dict[str, str]
    description: str | None
    framework: str | None
    framework_version: str | None
