"""The catalog's tables, as typed SQLAlchemy 2.x declarative classes.

A version row goes through ``pending`` (its number is taken, its folder may be on the way into
the tree) -> ``ready`` (visible to every reader) -> ``deleting`` (invisible again, its folder on
the way out). Only ``ready`` rows are ever returned to users; the other states exist so that a
crash at any moment leaves a row that ``doctor`` can finish or roll back.

The migrations in ``migrations/versions`` must produce exactly these tables; a test compares them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

INT64 = BigInteger().with_variant(Integer(), "sqlite")
"""Every number in the catalog (ids, versions, sizes, counts) is 64-bit on every backend. SQLite's
INTEGER already is, and an id must be declared exactly INTEGER there to be the rowid, so SQLite
keeps INTEGER; other databases get BIGINT (a 32-bit ``size`` overflows at 2 GiB)."""

PENDING = "pending"
READY = "ready"
DELETING = "deleting"


class Base(DeclarativeBase):
    pass


class ModelName(Base):
    """One row per name ever registered; ``last_version`` is the high-water mark, kept even when
    every version is deleted, so that a number is never handed out twice."""

    __tablename__ = "model_names"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    last_version: Mapped[int] = mapped_column(INT64, nullable=False)


class VersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("name", "version", name="uq_model_versions_name_version"),
        Index("ix_model_versions_state", "state"),
    )

    id: Mapped[int] = mapped_column(INT64, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(ForeignKey("model_names.name"), nullable=False)
    version: Mapped[int] = mapped_column(INT64, nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)
    token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    entry: Mapped[str] = mapped_column(Text, nullable=False)
    kind: Mapped[str] = mapped_column(String(8), nullable=False)
    size: Mapped[int] = mapped_column(INT64, nullable=False)
    file_count: Mapped[int] = mapped_column(INT64, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(nullable=False)
    tags: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    framework: Mapped[str | None] = mapped_column(Text, nullable=True)
    framework_version: Mapped[str | None] = mapped_column(Text, nullable=True)


class FileRow(Base):
    """The manifest: one row per stored file, path relative to the version folder (so it starts
    with the entry name), as registered."""

    __tablename__ = "version_files"

    version_id: Mapped[int] = mapped_column(
        INT64, ForeignKey("model_versions.id", ondelete="CASCADE"), primary_key=True
    )
    relpath: Mapped[str] = mapped_column(Text, primary_key=True)
    size: Mapped[int] = mapped_column(INT64, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)


class CatalogInfo(Base):
    """Facts about the catalog itself (which release created it), for support and ``doctor``."""

    __tablename__ = "catalog_info"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class ModelAlias(Base):
    """A movable name for one version of a model (``NAME@ALIAS``); at most one version per alias.

    No foreign key to ``model_versions``: a version row goes away in several steps (deleting,
    then forgotten), and the delete itself refuses or removes the aliases pointing at it."""

    __tablename__ = "model_aliases"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(INT64, nullable=False)


class AliasHistoryRow(Base):
    """Every move of an alias, written in the same transaction as the move: set (from_version
    None), moved, or removed (to_version None), when and by whom (user@host)."""

    __tablename__ = "alias_history"
    __table_args__ = (Index("ix_alias_history_name", "name"),)

    id: Mapped[int] = mapped_column(INT64, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    alias: Mapped[str] = mapped_column(String(64), nullable=False)
    from_version: Mapped[int | None] = mapped_column(INT64, nullable=True)
    to_version: Mapped[int | None] = mapped_column(INT64, nullable=True)
    at: Mapped[datetime] = mapped_column(nullable=False)
    by: Mapped[str] = mapped_column(Text, nullable=False)


class LeaseRow(Base):
    """A registration or deletion under way, and who runs it (see ``modelstore.catalog.leases``):
    written before the operation's first catalog change, removed with its last one. Its
    ``token`` is the one its pending or deleting rows carry."""

    __tablename__ = "leases"

    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    operation: Mapped[str] = mapped_column(String(16), nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    home: Mapped[str] = mapped_column(Text, nullable=False)
    host: Mapped[str] = mapped_column(String(255), nullable=False)
    host_id: Mapped[str] = mapped_column(String(255), nullable=False)
    pid: Mapped[int] = mapped_column(INT64, nullable=False)
    started: Mapped[str] = mapped_column(String(64), nullable=False)
    heartbeat: Mapped[int] = mapped_column(INT64, nullable=False)


# The same tables as SQLAlchemy Core sees them, for statements built without the ORM.
VERSIONS = cast(Table, VersionRow.__table__)
FILES = cast(Table, FileRow.__table__)
NAMES = cast(Table, ModelName.__table__)
INFO = cast(Table, CatalogInfo.__table__)
ALIASES = cast(Table, ModelAlias.__table__)
ALIAS_HISTORY = cast(Table, AliasHistoryRow.__table__)
LEASES = cast(Table, LeaseRow.__table__)
