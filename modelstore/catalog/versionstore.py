"""Where version numbers are taken and ready versions are found: one interface, one
implementation per way a backend does it best.

These are the catalog's hot operations (``Registry.path`` is one ``locate``; a registration is
a lease, one ``linkable_files``, one ``reserve`` and one ``set_state``), so each backend may run
them its own way. The portable implementation here runs SQLAlchemy Core statements on any
backend; ``fastpath`` runs the same work as prepared statements on SQLite's DBAPI connection,
because SQLAlchemy's statement construction alone costs more than ``Registry.path``'s whole
budget, and ``pgfastpath`` as one autocommit statement per operation on PostgreSQL, to save
round trips. ``Catalog`` picks one when it opens and then calls it without knowing which: a
backend with its own way to hand out numbers atomically is one more class, not a branch in the
catalog.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import fields, replace
from datetime import timezone
from typing import Any, NamedTuple, Protocol

from sqlalchemy import ColumnElement, Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from modelstore.catalog.errors import catalog_error
from modelstore.catalog.leases import LeaseRecord, Owner, database_now, lease_lost
from modelstore.catalog.records import NewVersion, VersionRecord
from modelstore.catalog.tables import ALIASES, FILES, LEASES, NAMES, READY, VERSIONS


class LinkableFile(NamedTuple):
    """A file of one of a name's newest ready versions (see ``VersionStore.linkable_files``)."""

    version: int
    relpath: str
    size: int
    sha256: str


class VersionStore(Protocol):
    def locate(self, name: str, version: int | None) -> tuple[int, str] | None:
        """(version, entry) of a ready version, the latest when ``version`` is None."""
        ...

    def locate_alias(self, name: str, alias: str) -> tuple[int, str] | None:
        """(version, entry) of the ready version ``name@alias`` points at."""
        ...

    def linkable_files(self, name: str, limit: int, but: int | None) -> list[LinkableFile]:
        """The files of ``name``'s ``limit`` newest ready versions other than ``but``, newest
        first: what a new version of the name may hard-link from a home's cache, read on every
        registration with a shared store (so bounded, whatever the number of versions)."""
        ...

    def reserve(self, new: NewVersion, leased: bool = False) -> VersionRecord:
        """Take the next number for ``new.name`` and record the version as pending, in one
        transaction: the number is spent even if the publish never completes. ``leased``: the
        registration holds the lease of ``new.token``, renewed in the same transaction, and
        LeaseLostError (nothing written) if a doctor took it away."""
        ...

    def set_state(self, row_id: int, state: str, expected: str, release: str | None = None) -> bool:
        """Move a row from ``expected`` to ``state``; False if it is no longer in ``expected``
        (another process finished or removed it meanwhile). ``release``: the token whose lease
        is removed in the same transaction (the operation's last step)."""
        ...

    def take_lease(self, lease: LeaseRecord) -> None:
        """Record the lease, its heartbeat the database's clock now."""
        ...

    def close(self) -> None:
        """Release what the store itself holds (a connection of its own)."""
        ...


def row_values(record: VersionRecord) -> dict[str, Any]:
    """The record as its row's column values, without the id (the database assigns it).
    ``created_at`` becomes naive UTC: how a DateTime column keeps it on every backend."""
    values = {f.name: getattr(record, f.name) for f in fields(record) if f.name != "id"}
    values["created_at"] = record.created_at.astimezone(timezone.utc).replace(tzinfo=None)
    return values


@contextlib.contextmanager
def writing(engine: Engine, db_url: str | None = None) -> Iterator[Connection]:
    """One immediate (write-locked) transaction; commits on success. ``db_url`` lets a failure
    be told apart as damage or a full disk."""
    try:
        with engine.begin() as connection:
            yield connection
    except SQLAlchemyError as exc:
        raise catalog_error(exc, "writing to", db_url) from exc


@contextlib.contextmanager
def reading(engine: Engine, db_url: str | None = None) -> Iterator[Connection]:
    """One read transaction on ``engine``, which should carry ``modelstore_read=True`` (a
    deferred ``BEGIN``: readers take no write lock)."""
    try:
        with engine.connect() as connection:
            yield connection
            connection.rollback()
    except SQLAlchemyError as exc:
        raise catalog_error(exc, "reading", db_url) from exc


class CoreVersionStore:
    """The portable implementation: SQLAlchemy Core statements, one transaction each."""

    def __init__(self, engine: Engine, db_url: str | None = None) -> None:
        self._engine = engine
        self._url = db_url
        self._reads = engine.execution_options(modelstore_read=True)

    def locate(self, name: str, version: int | None) -> tuple[int, str] | None:
        query = select(VERSIONS.c.version, VERSIONS.c.entry).where(
            VERSIONS.c.name == name, VERSIONS.c.state == READY
        )
        query = (
            query.order_by(VERSIONS.c.version.desc()).limit(1)
            if version is None
            else query.where(VERSIONS.c.version == version)
        )
        with reading(self._reads, self._url) as connection:
            rows = [tuple(r) for r in connection.execute(query).all()]
        if not rows:
            return None
        return int(rows[0][0]), str(rows[0][1])

    def locate_alias(self, name: str, alias: str) -> tuple[int, str] | None:
        query = (
            select(VERSIONS.c.version, VERSIONS.c.entry)
            .join(
                ALIASES,
                (ALIASES.c.name == VERSIONS.c.name) & (ALIASES.c.version == VERSIONS.c.version),
            )
            .where(ALIASES.c.name == name, ALIASES.c.alias == alias, VERSIONS.c.state == READY)
        )
        with reading(self._reads, self._url) as connection:
            rows = [tuple(r) for r in connection.execute(query).all()]
        if not rows:
            return None
        return int(rows[0][0]), str(rows[0][1])

    def linkable_files(self, name: str, limit: int, but: int | None) -> list[LinkableFile]:
        newest = select(VERSIONS.c.id, VERSIONS.c.version).where(
            VERSIONS.c.name == name, VERSIONS.c.state == READY
        )
        if but is not None:
            newest = newest.where(VERSIONS.c.version != but)
        # A derived table, not IN (... LIMIT): the portable spelling (MySQL refuses the other).
        chosen = newest.order_by(VERSIONS.c.version.desc()).limit(limit).subquery()
        query = (
            select(chosen.c.version, FILES.c.relpath, FILES.c.size, FILES.c.sha256)
            .join(FILES, FILES.c.version_id == chosen.c.id)
            .order_by(chosen.c.version.desc(), FILES.c.relpath)
        )
        with reading(self._reads, self._url) as connection:
            return [LinkableFile(*row) for row in connection.execute(query).all()]

    def reserve(self, new: NewVersion, leased: bool = False) -> VersionRecord:
        with writing(self._engine, self._url) as connection:
            if leased and not renew(connection, [new.token]):
                raise lease_lost(new.name, new.token)
            version = next_number(connection, new.name)
            pending = new.pending(0, version)  # its id is the row's, known once inserted
            inserted = connection.execute(
                insert(VERSIONS).values(**row_values(pending))
            ).inserted_primary_key
            assert inserted is not None
            row_id = int(inserted[0])
            connection.execute(
                insert(FILES),
                [
                    {"version_id": row_id, "relpath": f.relpath, "size": f.size, "sha256": f.sha256}
                    for f in new.files
                ],
            )
        return replace(pending, id=row_id)

    def set_state(self, row_id: int, state: str, expected: str, release: str | None = None) -> bool:
        with writing(self._engine, self._url) as connection:
            result = connection.execute(
                update(VERSIONS)
                .where(VERSIONS.c.id == row_id, VERSIONS.c.state == expected)
                .values(state=state)
            )
            if release is not None:
                connection.execute(delete(LEASES).where(LEASES.c.token == release))
        return bool(result.rowcount)

    def take_lease(self, lease: LeaseRecord) -> None:
        with writing(self._engine, self._url) as connection:
            connection.execute(insert(LEASES).values(**lease_values(lease, connection)))

    def close(self) -> None:
        pass  # every statement ran on a connection of the engine's pool


def lease_values(lease: LeaseRecord, connection: Connection) -> dict[str, Any]:
    """The lease's row, its heartbeat the database's clock."""
    return {**lease.columns(), "heartbeat": database_now(connection.dialect.name)}


def renew(connection: Connection, tokens: list[str], owner: Owner | None = None) -> int:
    """Set the heartbeat of these leases (held by ``owner``, when given) to the database's
    clock; how many still exist."""
    held: list[ColumnElement[bool]] = [LEASES.c.token.in_(tokens)]
    if owner is not None:
        held += [LEASES.c.pid == owner.pid, LEASES.c.host == owner.host]
    result = connection.execute(
        update(LEASES).where(*held).values(heartbeat=database_now(connection.dialect.name))
    )
    return int(result.rowcount)


def next_number(connection: Connection, name: str) -> int:
    """Increment ``name``'s high-water mark and return it, atomically on any backend: the
    increment is computed by the database in one UPDATE (which locks the row until commit), never
    from a value read earlier. A new name is inserted in a savepoint; if another transaction
    inserted it meanwhile, the insert fails once that one has committed, and the UPDATE then
    applies to its row."""
    bump = update(NAMES).where(NAMES.c.name == name).values(last_version=NAMES.c.last_version + 1)
    if not connection.execute(bump).rowcount:
        if insert_name(connection, name, 1):
            return 1
        connection.execute(bump)
    return int(
        connection.execute(select(NAMES.c.last_version).where(NAMES.c.name == name)).scalar_one()
    )


def raise_high_water(connection: Connection, name: str, version: int) -> None:
    """Make ``name``'s high-water mark at least ``version``, atomically: the comparison is in the
    UPDATE itself, so a mark raised meanwhile by another process is never lowered."""
    raise_it = (
        update(NAMES)
        .where(NAMES.c.name == name, NAMES.c.last_version < version)
        .values(last_version=version)
    )
    if connection.execute(raise_it).rowcount:
        return
    if not insert_name(connection, name, version):
        connection.execute(raise_it)  # the row exists now: raise it if it is still lower


def insert_name(connection: Connection, name: str, version: int) -> bool:
    """Insert the name's row; False, changing nothing, if it exists already."""
    try:
        with connection.begin_nested():
            connection.execute(insert(NAMES).values(name=name, last_version=version))
    except IntegrityError:
        return False
    return True
