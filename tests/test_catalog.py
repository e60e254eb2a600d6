"""The catalog: schema creation and migrations, the SQLite fast path against the Core path."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import fields
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from modelstore.catalog import Catalog, FileRecord, NewVersion, VersionRecord, migrate
from modelstore.catalog.engine import create_catalog_engine
from modelstore.catalog.fastpath import SqliteVersionStore
from modelstore.catalog.tables import DELETING, FILES, PENDING, READY, VERSIONS, Base
from modelstore.catalog.versionstore import CoreVersionStore
from modelstore.errors import CatalogError, PropertyImmutableError


def _new(name: str = "m", token: str = "t", **extra: object) -> NewVersion:
    values: dict[str, object] = {
        "name": name,
        "entry": "model.pkl",
        "kind": "file",
        "size": 3,
        "file_count": 1,
        "sha256": "0" * 64,
        "created_at": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc),
        "token": token,
        "files": [FileRecord("model.pkl", 3, "1" * 64)],
    }
    values.update(extra)
    return NewVersion(**values)  # type: ignore[arg-type]


def _schema(url: str) -> dict[str, str]:
    """name -> normalised CREATE statement of every table and index."""
    connection = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        rows = connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name"
        ).fetchall()
    finally:
        connection.close()
    return {name: re.sub(r"\(\s+|\s+\)", _strip, " ".join(sql.split())) for name, sql in rows}


def _strip(match: re.Match[str]) -> str:
    return match.group(0).strip()


@pytest.fixture(params=["fast", "core", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Catalog:
    """Both the SQLite prepared-statement path and the portable SQLAlchemy Core path, and a
    catalog on a PostgreSQL server."""
    if request.param == "postgresql":
        opened = Catalog(request.getfixturevalue("pg_url"))
        request.addfinalizer(opened.close)
        return opened
    opened = Catalog(f"sqlite:///{tmp_path / 'c.db'}")
    if request.param == "core":
        opened._versions = CoreVersionStore(opened._engine)
    else:
        assert isinstance(opened._versions, SqliteVersionStore)
    request.addfinalizer(opened.close)
    return opened


def test_a_new_catalog_has_the_same_schema_as_one_built_by_running_every_migration(
    tmp_path: Path,
) -> None:
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    Catalog(fresh).close()
    migrated = f"sqlite:///{tmp_path / 'migrated.db'}"
    engine = create_catalog_engine(migrated)
    migrate.upgrade(engine)
    engine.dispose()
    assert _schema(fresh) == _schema(migrated)
    assert migrate.current_revision(create_engine(fresh)) == migrate.HEAD_REVISION


def test_the_orm_tables_match_the_migrations(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = create_catalog_engine(f"sqlite:///{tmp_path / 'migrated.db'}")
    migrate.upgrade(engine)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_head_revision_is_the_newest_migration_script() -> None:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(migrate.MIGRATIONS_DIR))
    assert scripts.get_heads() == [migrate.HEAD_REVISION]
    assert [s.revision for s in scripts.walk_revisions()][::-1] == list(migrate.KNOWN_REVISIONS)


def test_opening_a_catalog_at_head_runs_no_migration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    Catalog(url).close()

    def forbidden(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a catalog at head must open without alembic")

    monkeypatch.setattr(migrate, "upgrade", forbidden)
    monkeypatch.setattr(migrate, "create_fresh", forbidden)
    before = _schema(url)
    Catalog(url).close()
    assert _schema(url) == before


def test_a_catalog_created_at_the_first_revision_is_upgraded_on_open_keeping_its_rows(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_catalog_engine(url)
    migrate.upgrade(engine, "0001")
    engine.dispose()
    connection = sqlite3.connect(tmp_path / "old.db")
    connection.execute("INSERT INTO model_names VALUES ('m', 1)")
    connection.execute(
        "INSERT INTO model_versions (name, version, state, entry, kind, size, file_count, "
        "sha256, created_at, tags, properties) VALUES ('m', 1, 'ready', 'model.pkl', 'file', "
        "3, 1, 'x', '2026-01-01 00:00:00.000000', '{\"a\": \"b\"}', '{}')"
    )
    connection.commit()
    connection.close()
    catalog = Catalog(url)
    try:
        assert migrate.current_revision(catalog._engine) == migrate.HEAD_REVISION
        record = catalog.get("m", 1)
        assert record is not None and record.tags == {"a": "b"}
        catalog.set_info_default("created_by", "test")
        assert catalog.info() == {"created_by": "test"}
    finally:
        catalog.close()


def test_a_catalog_made_by_the_previous_release_gains_aliases_and_keeps_its_data(
    tmp_path: Path,
) -> None:
    """Revision 0002 is the schema the release before aliases wrote; rows as it wrote them."""
    from modelstore import Registry

    home = tmp_path / "home"
    entry = home / "azureml-models" / "m" / "2" / "model.pkl"
    entry.parent.mkdir(parents=True)
    entry.write_bytes(b"abc")
    url = f"sqlite:///{home / 'registry.db'}"
    engine = create_catalog_engine(url)
    migrate.upgrade(engine, "0002")
    engine.dispose()
    connection = sqlite3.connect(home / "registry.db")
    connection.execute("INSERT INTO model_names VALUES ('m', 2)")
    connection.execute(
        "INSERT INTO model_versions (name, version, state, entry, kind, size, file_count, "
        "sha256, created_at, tags, properties, description) VALUES ('m', 2, 'ready', "
        "'model.pkl', 'file', 3, 1, 'x', '2026-01-01 00:00:00.000000', '{\"a\": \"b\"}', "
        "'{\"p\": \"q\"}', 'kept')"
    )
    connection.execute(
        "INSERT INTO version_files VALUES (1, 'model.pkl', 3, "
        "'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')"
    )
    connection.execute("INSERT INTO catalog_info VALUES ('created_by', 'modelstore 0.old')")
    connection.commit()
    connection.close()
    with Registry(home) as registry:  # a writing open upgrades it
        assert migrate.current_revision(registry._catalog._engine) == migrate.HEAD_REVISION
        model = registry.get("m", 2)
        assert (model.tags, model.properties, model.description) == ({"a": "b"}, {"p": "q"}, "kept")
        assert registry._catalog.info() == {
            "created_by": "modelstore 0.old",
            "model_store": "local",  # recorded by the first writing open
        }
        assert registry.aliases() == [] and registry.alias_history("m") == []
        registry.set_alias("m:2", "champion")
        assert registry.path("m@champion") == entry
        assert registry.verify().ok
    assert _schema(url) == _schema(_fresh_catalog(tmp_path))


def _fresh_catalog(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    Catalog(url).close()
    return url


def test_a_catalog_from_a_newer_release_is_refused_with_advice(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    Catalog(url).close()
    connection = sqlite3.connect(tmp_path / "c.db")
    connection.execute("UPDATE alembic_version SET version_num = '0099'")
    connection.commit()
    connection.close()
    with pytest.raises(CatalogError, match=r"unknown to this modelstore release.*upgrade"):
        Catalog(url)


def test_a_file_that_is_not_a_database_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "c.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CatalogError) as caught:
        Catalog(f"sqlite:///{tmp_path / 'c.db'}")
    assert "\n" not in str(caught.value)


def test_a_database_with_foreign_tables_is_refused(tmp_path: Path) -> None:
    connection = sqlite3.connect(tmp_path / "c.db")
    connection.execute("CREATE TABLE something (x)")
    connection.close()
    with pytest.raises(CatalogError, match="no modelstore schema revision"):
        Catalog(f"sqlite:///{tmp_path / 'c.db'}")


def test_a_new_catalog_records_the_release_that_created_it(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        assert catalog.info()["created_by"].startswith("modelstore ")
    finally:
        catalog.close()


def test_the_catalog_file_uses_wal_journaling(tmp_path: Path) -> None:
    Catalog(f"sqlite:///{tmp_path / 'c.db'}").close()
    connection = sqlite3.connect(tmp_path / "c.db")
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    connection.close()


def test_reserving_takes_consecutive_numbers_per_name(catalog: Catalog) -> None:
    assert [catalog.reserve(_new("a")).version for _ in range(3)] == [1, 2, 3]
    assert catalog.reserve(_new("b")).version == 1


def test_a_pending_version_is_invisible_until_marked_ready(catalog: Catalog) -> None:
    record = catalog.reserve(_new())
    assert record.state == PENDING
    assert catalog.locate("m", None) is None and catalog.get("m", 1) is None
    assert catalog.versions("m") == [] and catalog.ready_versions() == []
    assert catalog.set_state(record.id, READY, expected=PENDING)
    assert catalog.locate("m", None) == (1, "model.pkl") == catalog.locate("m", 1)
    assert not catalog.set_state(record.id, READY, expected=PENDING)  # already moved on


def test_rows_written_by_either_path_read_back_identically(catalog: Catalog) -> None:
    record = catalog.reserve(_new(tags={"t": "1"}, properties={"p": "2"}, description="d"))
    catalog.set_state(record.id, READY, expected=PENDING)
    read = catalog.get("m", 1)
    assert read is not None
    assert read.created_at == datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    assert (read.tags, read.properties, read.description) == ({"t": "1"}, {"p": "2"}, "d")
    assert catalog.files(record.id) == [FileRecord("model.pkl", 3, "1" * 64)]


def test_a_version_row_has_exactly_the_fields_of_a_version_record() -> None:
    assert {c.name for c in VERSIONS.columns} == {f.name for f in fields(VersionRecord)}
    assert {c.name for c in FILES.columns} == {"version_id"} | {f.name for f in fields(FileRecord)}


def test_linkable_files_are_those_of_the_newest_ready_versions_but_the_one_excluded(
    catalog: Catalog,
) -> None:
    """Bounded by the limit however many versions the name has, so that a registration's read
    costs the same at version 5 and at version 5000."""
    for number in range(1, 6):
        files = [
            FileRecord("m/a.bin", number, str(number) * 64),
            FileRecord("m/b.bin", 9, "f" * 64),
        ]
        record = catalog.reserve(_new(files=files, file_count=2))
        if number != 4:  # version 4 stays pending: not linkable
            catalog.set_state(record.id, READY, expected=PENDING)
    catalog.set_state(catalog.reserve(_new("other")).id, READY, expected=PENDING)
    found = catalog.linkable_files("m", 2)
    assert [(f.version, f.relpath, f.size, f.sha256) for f in found] == [
        (5, "m/a.bin", 5, "5" * 64),
        (5, "m/b.bin", 9, "f" * 64),
        (3, "m/a.bin", 3, "3" * 64),
        (3, "m/b.bin", 9, "f" * 64),
    ]
    assert [f.version for f in catalog.linkable_files("m", 2, but=5)] == [3, 3, 2, 2]
    assert [f.version for f in catalog.linkable_files("m", 10)] == [5, 5, 3, 3, 2, 2, 1, 1]
    assert catalog.linkable_files("none", 8) == []


def test_both_version_stores_write_identical_rows(tmp_path: Path) -> None:
    """Not only rows that each reads back alike: the stored values, so each reads the other's
    rows and those of catalogs written by earlier releases."""
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        new = _new(tags={"t": "1", "é": "ü"}, properties={"p": "2"}, description="d")
        catalog.reserve(new)
        catalog._versions = CoreVersionStore(catalog._engine)
        catalog.reserve(new)
    finally:
        catalog.close()
    connection = sqlite3.connect(tmp_path / "c.db")
    connection.row_factory = sqlite3.Row
    try:
        fast, core = map(dict, connection.execute("SELECT * FROM model_versions ORDER BY id"))
        files = connection.execute("SELECT relpath, size, sha256 FROM version_files").fetchall()
    finally:
        connection.close()
    assert (fast.pop("version"), core.pop("version")) == (1, 2)
    assert fast.pop("id") != core.pop("id")
    assert fast == core
    assert fast["created_at"] == "2026-01-02 03:04:05.678901"
    assert fast["state"] == PENDING
    assert [tuple(f) for f in files] == [("model.pkl", 3, "1" * 64)] * 2


def test_deleting_hides_versions_first_and_keeps_the_high_water_mark(catalog: Catalog) -> None:
    for _ in range(2):
        catalog.set_state(catalog.reserve(_new()).id, READY, expected=PENDING)
    doomed = catalog.start_delete("m", None, "tok")
    assert [r.state for r in doomed] == [DELETING, DELETING]
    assert catalog.versions("m") == []
    catalog.forget(r.id for r in doomed)
    assert catalog.rows() == []
    assert catalog.reserve(_new()).version == 3


def test_property_changes_are_refused_all_or_nothing(catalog: Catalog) -> None:
    catalog.set_state(catalog.reserve(_new(properties={"a": "1"})).id, READY, expected=PENDING)
    with pytest.raises(PropertyImmutableError, match=r"added/modified: a \("):
        catalog.add_properties("m", 1, {"b": "2", "a": "3"})
    read = catalog.get("m", 1)
    assert read is not None and read.properties == {"a": "1"}


def test_metadata_updates_ignore_versions_that_are_not_ready(catalog: Catalog) -> None:
    catalog.reserve(_new())
    assert catalog.update_tags("m", 1, {"a": "b"}, []) is None
    assert catalog.add_properties("m", 1, {"a": "b"}) is None
    assert catalog.set_description("m", 1, "x") is None


# --- reserve_exact: a number the caller chose (v2 model.yml's version:) ------------------------


def test_reserve_exact_takes_a_free_number_and_the_next_automatic_one_follows_it(
    catalog: Catalog,
) -> None:
    first = catalog.reserve(_new(token="a"))
    exact = catalog.reserve_exact(_new(token="b"), 5)
    assert (first.version, exact.version, exact.state) == (1, 5, PENDING)
    assert catalog.reserve(_new(token="c")).version == 6


def test_reserve_exact_refuses_an_existing_or_once_used_number(catalog: Catalog) -> None:
    from modelstore.errors import VersionTakenError

    catalog.reserve(_new(token="a"))
    catalog.reserve_exact(_new(token="b"), 3)
    with pytest.raises(VersionTakenError, match="version 3 of 'm' exists") as taken:
        catalog.reserve_exact(_new(token="c"), 3)
    assert (taken.value.name, taken.value.version, taken.value.last) == ("m", 3, 3)
    with pytest.raises(VersionTakenError, match="was used before"):
        catalog.reserve_exact(_new(token="d"), 2)  # skipped: never handed out later either
    assert [r.version for r in catalog.rows()] == [1, 3]
