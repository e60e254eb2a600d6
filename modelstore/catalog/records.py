"""Plain records the catalog hands out, independent of SQLAlchemy sessions and of the store.

A version's fields are written out once, in ``VersionFields``; the request to register one and
the catalog's record of one both extend it, and everything else takes the fields from these
classes by name: the row's columns (``tables.VersionRow`` must have exactly ``VersionRecord``'s
fields, a test checks it), the statements that write a row, and the public ``ModelVersion``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime

from modelstore.catalog.tables import PENDING


@dataclass(frozen=True)
class FileRecord:
    relpath: str
    """Relative to the version folder, '/'-separated, starting with the entry name."""
    size: int
    sha256: str


@dataclass(frozen=True, kw_only=True)
class VersionFields:
    """What describes a version, from the moment a registration asks for it on."""

    name: str
    entry: str
    kind: str
    size: int
    file_count: int
    sha256: str
    created_at: datetime
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    description: str | None = None
    framework: str | None = None
    framework_version: str | None = None


@dataclass(frozen=True, kw_only=True)
class NewVersion(VersionFields):
    """What a registration asks the catalog to record (everything but the number)."""

    token: str
    files: list[FileRecord]

    def pending(self, row_id: int, version: int) -> VersionRecord:
        """The catalog's record of this version once its number and row are taken."""
        described = {f.name: getattr(self, f.name) for f in _DESCRIBING}
        described["tags"] = dict(self.tags)
        described["properties"] = dict(self.properties)
        return VersionRecord(
            id=row_id, version=version, state=PENDING, token=self.token, **described
        )


@dataclass(frozen=True, kw_only=True)
class VersionRecord(VersionFields):
    """A version row: the fields plus the row's bookkeeping (id, number, state, token)."""

    id: int
    version: int
    state: str
    token: str | None


_DESCRIBING = fields(VersionFields)


@dataclass(frozen=True)
class AliasRecord:
    name: str
    alias: str
    version: int


@dataclass(frozen=True)
class AliasMoveRecord:
    """One row of the alias history: set (``from_version`` None), moved, or removed
    (``to_version`` None)."""

    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    at: datetime
    by: str
