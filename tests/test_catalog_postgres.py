"""The catalog on a real PostgreSQL server (tests/pg.py starts one for the session): the schema,
its migrations, atomic numbering and read-modify-writes under real concurrency, the migration
lock, the catalog's own schema, and one-line connection errors."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pg import PgServer, free_port
from registry_helpers import TESTS_DIR, child_command, make_file
from sqlalchemy import create_engine, text

from modelstore import Registry
from modelstore.catalog import Catalog, FileRecord, NewVersion, migrate
from modelstore.catalog.engine import create_catalog_engine
from modelstore.catalog.pgfastpath import PsycopgVersionStore
from modelstore.catalog.tables import PENDING, READY, Base
from modelstore.catalog.versionstore import CoreVersionStore
from modelstore.cli import main
from modelstore.errors import CatalogConnectionError, CatalogError

pytestmark = pytest.mark.postgres


def _new(name: str = "m", size: int = 3, token: str = "t") -> NewVersion:
    return NewVersion(
        name=name,
        entry="model.pkl",
        kind="file",
        size=size,
        file_count=1,
        sha256="0" * 64,
        created_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc),
        token=token,
        files=[FileRecord("model.pkl", size, "1" * 64)],
    )


def _query(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            result = connection.execute(text(sql))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def _schema(url: str, schema: str = "public") -> dict[str, list[tuple[Any, ...]]]:
    """Columns (with types and defaults), constraints, indexes and sequences of one schema."""
    return {
        "columns": _query(
            url,
            "SELECT table_name, column_name, data_type, is_nullable, column_default "
            f"FROM information_schema.columns WHERE table_schema = '{schema}' ORDER BY 1, 2",
        ),
        "constraints": _query(
            url,
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            f"FROM pg_constraint WHERE connamespace = '{schema}'::regnamespace ORDER BY 1, 2",
        ),
        "indexes": _query(
            url,
            f"SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = '{schema}' ORDER BY 1",
        ),
        "sequences": _query(
            url,
            "SELECT sequencename, data_type, max_value FROM pg_sequences "
            f"WHERE schemaname = '{schema}' ORDER BY 1",
        ),
    }


def _in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads started together; their results (or exceptions)."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.fixture
def catalog(pg_url: str) -> Any:
    opened = Catalog(pg_url)
    yield opened
    opened.close()


# --- schema and migrations ---------------------------------------------------------------------


def test_a_new_postgresql_catalog_has_the_same_schema_as_one_built_by_running_every_migration(
    pg_server: PgServer, pg_url: str
) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    Catalog(pg_url).close()
    migrated = pg_server.createdb("migrated_schema")
    engine = create_catalog_engine(migrated)
    try:
        migrate.upgrade(engine)
        with engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    finally:
        engine.dispose()
    assert _schema(pg_url) == _schema(migrated)
    assert ("model_versions", "size", "bigint", "NO", None) in _schema(pg_url)["columns"]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_catalog_at_revision_0002_is_upgraded_to_64_bit_numbers_keeping_its_rows(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'old.db'}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    engine = create_catalog_engine(url)
    migrate.upgrade(engine, "0002")
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO model_names VALUES ('m', 1)"))
        connection.execute(
            text(
                "INSERT INTO model_versions (name, version, state, entry, kind, size, "
                "file_count, sha256, created_at, tags, properties) VALUES ('m', 1, 'ready', "
                "'model.pkl', 'file', 3, 1, 'x', '2026-01-01 00:00:00', '{\"a\": \"b\"}', '{}')"
            )
        )
        connection.execute(
            text("INSERT INTO version_files SELECT id, 'model.pkl', 3, 'y' FROM model_versions")
        )
    engine.dispose()
    catalog = Catalog(url)
    try:
        assert migrate.current_revision(catalog._engine) == migrate.HEAD_REVISION
        old = catalog.get("m", 1)
        assert old is not None and old.tags == {"a": "b"} and old.size == 3
        assert catalog.files(old.id) == [FileRecord("model.pkl", 3, "y")]
        big = catalog.reserve(_new(size=3 * 10**9))  # beyond 32 bits once upgraded
        assert big.version == 2
        assert catalog.set_state(big.id, READY, expected=PENDING)
        read = catalog.get("m", 2)
        assert read is not None and read.size == 3 * 10**9
        assert catalog.files(big.id) == [FileRecord("model.pkl", 3 * 10**9, "1" * 64)]
    finally:
        catalog.close()


def test_a_version_of_3e9_bytes_is_stored_and_read_back(catalog: Catalog) -> None:
    record = catalog.reserve(_new(size=3 * 10**9))
    catalog.set_state(record.id, READY, expected=PENDING)
    read = catalog.get("m", 1)
    assert read is not None and (read.size, read.file_count) == (3 * 10**9, 1)
    assert catalog.files(record.id) == [FileRecord("model.pkl", 3 * 10**9, "1" * 64)]
    catalog.raise_high_water("m", 2**40)
    assert catalog.reserve(_new()).version == 2**40 + 1


def test_a_postgresql_catalog_takes_numbers_with_the_postgresql_version_store(
    catalog: Catalog,
) -> None:
    assert isinstance(catalog._versions, PsycopgVersionStore)


def test_the_postgresql_version_store_writes_the_rows_the_portable_one_writes(
    catalog: Catalog,
) -> None:
    """The stored values, not only what each reads back: tags and properties as the same JSON
    text, the same timestamp, the same manifest."""
    new = replace(
        _new(), tags={"t": "1", "é": "ü"}, properties={"p": "2"}, description="d", framework="f"
    )
    new = replace(new, files=[FileRecord("m/a", 1, "a" * 64), FileRecord("m/b", 2, "b" * 64)])
    catalog.reserve(new)
    catalog._versions = CoreVersionStore(catalog._engine, catalog.url)
    catalog.reserve(new)
    fast, core = _query(
        catalog.url,
        "SELECT name, state, token, entry, kind, size, file_count, sha256, created_at, "
        "tags::text, properties::text, description, framework, framework_version, version "
        "FROM model_versions ORDER BY id",
    )
    assert fast[:-1] == core[:-1] and (fast[-1], core[-1]) == (1, 2)
    assert fast[8] == datetime(2026, 1, 2, 3, 4, 5, 678901)
    assert fast[9] == '{"t": "1", "\\u00e9": "\\u00fc"}'
    files = _query(
        catalog.url,
        "SELECT v.version, f.relpath, f.size, f.sha256 FROM version_files f "
        "JOIN model_versions v ON v.id = f.version_id ORDER BY v.version, f.relpath",
    )
    assert files == [
        (v, path, size, digest * 64)
        for v in (1, 2)
        for path, size, digest in (("m/a", 1, "a"), ("m/b", 2, "b"))
    ]


def _restart(server: PgServer) -> None:
    """A fast restart: every session is ended, as a failover or a server upgrade ends them."""
    log = str(server.root / "log")  # as start_server's: the server must not hold our pipes
    server.run("pg_ctl", "restart", "-D", str(server.data), "-w", "-m", "fast", "-l", log)


@pytest.fixture
def own_server(pg_server: PgServer) -> Any:
    """A server of the test's own, to restart."""
    from pg import start_server

    server = start_server(pg_server.bin_dir)
    yield server
    server.stop()
    shutil.rmtree(server.root, ignore_errors=True)


def test_a_read_after_the_server_restarted_reconnects_and_answers(own_server: PgServer) -> None:
    catalog = Catalog(own_server.createdb("restarted"))
    try:
        catalog.set_state(catalog.reserve(_new()).id, READY, expected=PENDING)
        _restart(own_server)
        assert catalog.locate("m", None) == (1, "model.pkl")
    finally:
        catalog.close()


def test_a_write_after_an_idle_while_checks_the_connection_first(
    own_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelstore.catalog import pgfastpath

    catalog = Catalog(own_server.createdb("idle"))
    try:
        catalog.reserve(_new())
        _restart(own_server)
        monkeypatch.setattr(pgfastpath, "IDLE_CHECK_S", 0.0)  # every pause counts as idle
        assert catalog.reserve(_new()).version == 2
    finally:
        catalog.close()


def test_a_write_whose_connection_broke_is_one_line_not_retried_and_the_next_reconnects(
    own_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether a write on a broken connection was committed cannot be known: it is reported,
    never sent twice."""
    from modelstore.catalog import pgfastpath

    catalog = Catalog(own_server.createdb("broken"))
    try:
        catalog.reserve(_new())
        _restart(own_server)
        monkeypatch.setattr(pgfastpath, "IDLE_CHECK_S", 3600.0)  # the check does not run
        with pytest.raises(CatalogConnectionError) as caught:
            catalog.reserve(_new())
        assert "\n" not in str(caught.value) and own_server.password not in str(caught.value)
        assert str(caught.value).startswith("cannot connect to the catalog database broken on ")
        assert catalog.reserve(_new()).version == 2
    finally:
        catalog.close()


def test_a_connection_left_inside_a_transaction_is_replaced_not_used(catalog: Catalog) -> None:
    """As after a statement whose cancel was interrupted (a second Ctrl-C): whatever state the
    session is in, the next operation does not run inside it."""
    assert catalog.reserve(_new()).version == 1
    stuck = catalog._versions._driver  # type: ignore[attr-defined]
    stuck.autocommit = False
    stuck.execute("SELECT 1")  # a transaction is open now, and stays open
    assert catalog.reserve(_new()).version == 2
    assert catalog._versions._driver is not stuck  # type: ignore[attr-defined]
    assert stuck.closed
    assert [r.version for r in catalog.rows()] == [1, 2]  # committed, not in the old transaction


def _reserve_in_a_forked_child(catalog: Catalog) -> tuple[int, int]:
    """(version, server session) of a ``reserve`` in a child forked from this process."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_reserve_in_child, args=(catalog, results))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    version, session = results.get(timeout=5)
    return int(version), int(session)


def _reserve_in_child(catalog: Catalog, results: Any) -> None:
    version = catalog.reserve(_new()).version
    results.put((version, catalog._versions._driver.info.backend_pid))  # type: ignore[attr-defined]
    catalog.close()  # as a child does when it is done: the parent's session must survive it


def test_a_forked_child_uses_its_own_connection_and_leaves_the_parents_alone(
    catalog: Catalog,
) -> None:

    assert catalog.reserve(_new()).version == 1
    parents = catalog._versions._driver  # type: ignore[attr-defined]
    version, session = _reserve_in_a_forked_child(catalog)
    assert version == 2
    assert session != parents.info.backend_pid  # its own session, not the parent's socket
    assert catalog.reserve(_new()).version == 3  # the parent's session survived the child
    assert catalog._versions._driver is parents  # type: ignore[attr-defined]


def _sessions(url: str) -> set[int]:
    """The server processes of every session on ``url``'s database but the asking one's."""
    return {
        pid
        for (pid,) in _query(
            url,
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()",
        )
    }


def test_a_forked_child_takes_no_connection_the_parent_left_in_the_engines_pool(
    catalog: Catalog,
) -> None:
    """The parent's other catalog work (listings, the heartbeat) leaves connections in the
    engine's pool; the child must not take one of those sockets (parent and child would talk
    over one session at once), and its close must not end the parent's sessions."""

    assert catalog.reserve(_new()).version == 1
    with catalog._engine.connect(), catalog._engine.connect():
        pass  # two at once, as two threads' reads would: the pool now queues two parent sockets
    parents = _sessions(catalog.url)
    version, session = _reserve_in_a_forked_child(catalog)
    assert version == 2
    assert session not in parents
    assert _sessions(catalog.url) == parents  # the child's close ended its own session only


# --- read-modify-writes under concurrency ------------------------------------------------------


@pytest.mark.parametrize("store", ["postgresql", "core"])
def test_concurrent_reservations_of_a_new_name_take_distinct_consecutive_numbers(
    catalog: Catalog, store: str
) -> None:
    if store == "core":  # the portable path, as any other server database would run it
        catalog._versions = CoreVersionStore(catalog._engine, catalog.url)
    results = _in_threads(8, lambda _i: [catalog.reserve(_new()).version for _ in range(25)])
    errors = [r for r in results if isinstance(r, Exception)]
    assert errors == []
    assert sorted(v for versions in results for v in versions) == list(range(1, 201))


def test_raising_the_high_water_mark_never_lowers_one_raised_meanwhile(catalog: Catalog) -> None:
    """Adopting a folder raises the mark while registrations bump it: every number stays
    unique, and the mark ends at the highest number handed out or adopted."""

    def work(i: int) -> list[int]:
        if i % 2:
            return [catalog.reserve(_new()).version for _ in range(25)]
        for _ in range(25):
            current = catalog._engine.connect()
            try:
                mark = current.execute(
                    text("SELECT last_version FROM model_names WHERE name = 'm'")
                ).scalar_one_or_none()
            finally:
                current.close()
            catalog.raise_high_water("m", (mark or 0) + 1)
        return []

    results = _in_threads(8, work)
    assert [r for r in results if isinstance(r, Exception)] == []
    taken = [v for versions in results for v in versions]
    assert len(taken) == len(set(taken)) == 100
    assert catalog.reserve(_new()).version > max(taken)


def test_concurrent_tag_updates_of_one_version_lose_none(catalog: Catalog) -> None:
    catalog.set_state(catalog.reserve(_new()).id, READY, expected=PENDING)

    def tag(i: int) -> None:
        for n in range(10):
            catalog.update_tags("m", 1, {f"t{i}-{n}": "x"}, [])

    assert [r for r in _in_threads(8, tag) if r is not None] == []
    read = catalog.get("m", 1)
    assert read is not None and len(read.tags) == 80


def test_concurrent_property_additions_to_one_version_lose_none(catalog: Catalog) -> None:
    catalog.set_state(catalog.reserve(_new()).id, READY, expected=PENDING)

    def add(i: int) -> None:
        for n in range(10):
            catalog.add_properties("m", 1, {f"p{i}-{n}": "x"})

    assert [r for r in _in_threads(8, add) if r is not None] == []
    read = catalog.get("m", 1)
    assert read is not None and len(read.properties) == 80


def _ready_versions(catalog: Catalog, count: int) -> None:
    for _ in range(count):
        catalog.set_state(catalog.reserve(_new()).id, READY, expected=PENDING)


def _while_another_transaction_holds(
    pg_url: str, statements: list[str], work: Callable[[], Any]
) -> Any:
    """Run ``statements`` in a transaction left open, start ``work`` on a thread, wait until
    PostgreSQL shows that thread's session waiting on a lock, commit, and return what ``work``
    returned (or raised). The wait is observed in ``pg_stat_activity``, not guessed."""
    engine = create_engine(pg_url)
    try:
        with engine.connect() as holder, engine.connect() as watcher:
            for statement in statements:
                holder.execute(text(statement))
            outcome: list[Any] = []
            thread = threading.Thread(target=lambda: outcome.append(_result_of(work)))
            thread.start()
            deadline = datetime.now(timezone.utc).timestamp() + 30
            while thread.is_alive():
                waiting = watcher.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND datname = current_database()"
                    )
                ).scalar_one()
                watcher.rollback()
                if waiting:
                    break
                assert datetime.now(timezone.utc).timestamp() < deadline, "never waited"
            holder.commit()
            thread.join()
            return outcome[0]
    finally:
        engine.dispose()


def _result_of(work: Callable[[], Any]) -> Any:
    try:
        return work()
    except Exception as exc:
        return exc


def test_an_alias_moved_while_another_transaction_moves_it_records_the_move_from_that_version(
    catalog: Catalog, pg_url: str
) -> None:
    _ready_versions(catalog, 3)
    catalog.set_alias("m", "champion", 1, "a@h")
    move = _while_another_transaction_holds(
        pg_url,
        [
            "UPDATE model_aliases SET version = 2 WHERE name = 'm' AND alias = 'champion'",
            "INSERT INTO alias_history (name, alias, from_version, to_version, at, by) "
            "VALUES ('m', 'champion', 1, 2, now(), 'b@h')",
        ],
        lambda: catalog.set_alias("m", "champion", 3, "c@h"),
    )
    assert (move.from_version, move.to_version) == (2, 3)
    history = [(m.from_version, m.to_version) for m in catalog.alias_history("m")]
    assert history == [(None, 1), (1, 2), (2, 3)]  # every move starts where the last ended
    assert catalog.locate_alias("m", "champion") == (3, "model.pkl")


def test_an_alias_set_while_another_transaction_creates_it_moves_it_instead_of_failing(
    catalog: Catalog, pg_url: str
) -> None:
    _ready_versions(catalog, 3)
    move = _while_another_transaction_holds(
        pg_url,
        [
            "INSERT INTO model_aliases (name, alias, version) VALUES ('m', 'champion', 2)",
            "INSERT INTO alias_history (name, alias, from_version, to_version, at, by) "
            "VALUES ('m', 'champion', NULL, 2, now(), 'b@h')",
        ],
        lambda: catalog.set_alias("m", "champion", 3, "c@h"),
    )
    assert not isinstance(move, Exception), move
    assert (move.from_version, move.to_version) == (2, 3)
    history = [(m.from_version, m.to_version) for m in catalog.alias_history("m")]
    assert history == [(None, 2), (2, 3)]


def test_an_alias_removed_while_another_transaction_moves_it_records_the_version_it_left(
    catalog: Catalog, pg_url: str
) -> None:
    _ready_versions(catalog, 2)
    catalog.set_alias("m", "champion", 1, "a@h")
    move = _while_another_transaction_holds(
        pg_url,
        ["UPDATE model_aliases SET version = 2 WHERE name = 'm' AND alias = 'champion'"],
        lambda: catalog.remove_alias("m", "champion", "c@h"),
    )
    assert (move.from_version, move.to_version) == (2, None)


def test_concurrent_moves_of_one_alias_chain_in_its_history(catalog: Catalog) -> None:
    _ready_versions(catalog, 8)
    catalog.set_alias("m", "champion", 1, "a@h")
    results = _in_threads(
        8,
        lambda i: [catalog.set_alias("m", "champion", 1 + (i + n) % 8, f"{i}@h") for n in range(5)],
    )
    assert [r for r in results if isinstance(r, Exception)] == []
    history = catalog.alias_history("m")
    moves = [(m.from_version, m.to_version) for m in history]
    for before, after in itertools.pairwise(moves):
        assert after[0] == before[1], moves  # no move starts from a version it did not hold
    assert catalog.locate_alias("m", "champion") == (moves[-1][1], "model.pkl")


def test_versions_deleted_by_several_deleters_at_once_are_each_claimed_by_exactly_one(
    catalog: Catalog,
) -> None:
    for round in range(10):
        ids = [catalog.reserve(_new(name=f"m{round}")).id for _ in range(5)]
        for row_id in ids:
            catalog.set_state(row_id, READY, expected=PENDING)
        claims = _in_threads(8, lambda i: catalog.start_delete(f"m{round}", None, f"token{i}"))  # noqa: B023
        assert [c for c in claims if isinstance(c, Exception)] == []
        claimed = [record.version for records in claims for record in records]
        assert sorted(claimed) == [1, 2, 3, 4, 5]  # each version by one claimer only


def test_a_catalog_fact_recorded_by_several_processes_at_once_is_recorded_once(
    catalog: Catalog,
) -> None:
    results = _in_threads(8, lambda i: catalog.set_info_default("store", f"s{i}"))
    assert [r for r in results if isinstance(r, Exception)] == []
    assert catalog.info()["store"] in {f"s{i}" for i in range(8)}


# --- real processes ----------------------------------------------------------------------------


def _children(commands: list[list[str]], flag: Path, env: dict[str, str]) -> list[str]:
    children = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for cmd in commands
    ]
    flag.touch()  # they all start at once (each polls for this file)
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=240)
        assert (child.returncode, err) == (0, ""), err
        outputs.append(out)
    return outputs


@pytest.mark.slow
def test_eight_processes_registering_one_name_into_a_postgresql_catalog_get_versions_1_to_400(
    tmp_path: Path, pg_url: str
) -> None:
    import json

    home = tmp_path / "home"
    source = make_file(tmp_path / "model.pkl", b"m" * 4096)
    flag = tmp_path / "go"
    command = child_command("register_many", str(home), str(source), "m", "50", str(flag))
    outputs = _children([command] * 8, flag, {**os.environ, "MODELSTORE_DB_URL": pg_url})
    results = [json.loads(out) for out in outputs]
    assert sorted(v for versions in results for v in versions) == list(range(1, 401))
    for versions in results:
        assert versions == sorted(versions)
    with Registry(home, db_url=pg_url) as registry:
        assert registry.versions("m") == list(range(1, 401))
        assert sorted(os.listdir(home / "azureml-models" / "m"), key=int) == [
            str(v) for v in range(1, 401)
        ]
        assert registry.verify().ok and registry.doctor().findings == []


_OPEN_ROUNDS = f"""
import os, sys
sys.path.insert(0, {TESTS_DIR!r})
from registry_helpers import wait_for
from modelstore import Registry
home, flags, count, urls = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
for round, url in enumerate(urls):
    wait_for(os.path.join(flags, f"go{{round}}"))  # set by the last child to finish the round
    Registry(home, db_url=url).close()
    open(os.path.join(flags, f"done{{round}}-{{os.getpid()}}"), "w").close()
    if len([f for f in os.listdir(flags) if f.startswith(f"done{{round}}-")]) == count:
        open(os.path.join(flags, f"go{{round + 1}}"), "w").close()
"""


@pytest.mark.slow
def test_eight_homes_opening_one_empty_postgresql_database_at_once_all_succeed(
    tmp_path: Path, pg_server: PgServer
) -> None:
    """Each round, eight processes (eight homes, so no shared lock file) open one new database
    at the same moment: every open succeeds and the catalog is created once."""
    urls = [pg_server.createdb(f"first_open_{tmp_path.name}_{r}".lower()) for r in range(3)]
    flags = tmp_path / "flags"
    flags.mkdir()
    commands = [
        [sys.executable, "-c", _OPEN_ROUNDS, str(tmp_path / f"home{i}"), str(flags), "8", *urls]
        for i in range(8)
    ]
    _children(commands, flags / "go0", dict(os.environ))
    for url in urls:
        assert _query(url, "SELECT version_num FROM alembic_version") == [(migrate.HEAD_REVISION,)]
        facts = _query(url, "SELECT key, value FROM catalog_info ORDER BY key")
        assert [key for key, _value in facts] == ["created_by", "model_store"]  # each once
        assert facts[1] == ("model_store", "local")


# --- the catalog's own schema ------------------------------------------------------------------


def test_another_applications_alembic_version_in_another_schema_is_ignored(pg_url: str) -> None:
    _query(
        pg_url,
        "CREATE SCHEMA other; CREATE TABLE other.alembic_version (version_num VARCHAR(32)); "
        "INSERT INTO other.alembic_version VALUES ('ffffffffffff')",
    )
    catalog = Catalog(pg_url)
    try:
        assert migrate.current_revision(catalog._engine) == migrate.HEAD_REVISION
        assert catalog.reserve(_new()).version == 1
    finally:
        catalog.close()
    assert _query(pg_url, "SELECT version_num FROM other.alembic_version") == [("ffffffffffff",)]
    assert _query(pg_url, "SELECT version_num FROM public.alembic_version") == [
        (migrate.HEAD_REVISION,)
    ]


def test_a_search_path_in_the_url_keeps_the_catalog_in_its_own_schema(pg_url: str) -> None:
    _query(pg_url, "CREATE SCHEMA registry")
    in_schema = f"{pg_url}?options=-csearch_path%3Dregistry"
    for url in (in_schema, pg_url):  # two catalogs in one database, one per schema
        catalog = Catalog(url)
        try:
            catalog.set_state(catalog.reserve(_new()).id, READY, expected=PENDING)
        finally:
            catalog.close()
    tables = {"alembic_version", "catalog_info", "model_names", "model_versions", "version_files"}
    tables |= {"model_aliases", "alias_history", "leases"}
    for schema in ("registry", "public"):
        listed = _query(
            pg_url,
            f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{schema}'",
        )
        assert {t for (t,) in listed} == tables
        assert _query(pg_url, f"SELECT name, version FROM {schema}.model_versions") == [("m", 1)]
    assert _schema(pg_url, "registry") != {}


def test_a_search_path_naming_a_missing_schema_is_one_line(pg_url: str) -> None:
    with pytest.raises(CatalogError, match=r"no schema named by its search_path \(nowhere\)"):
        Catalog(f"{pg_url}?options=-csearch_path%3Dnowhere")


# --- connection errors -------------------------------------------------------------------------


def _cli(tmp_path: Path, url: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(
        main, ["--home", str(tmp_path / "home"), "list"], env={"MODELSTORE_DB_URL": url}
    )
    return result.exit_code, result.stderr.splitlines()


def test_a_server_that_is_not_running_is_one_line_naming_host_and_database(
    tmp_path: Path,
) -> None:
    port = free_port()  # nothing listens there
    code, lines = _cli(tmp_path, f"postgresql+psycopg://me:s3cret@127.0.0.1:{port}/registry")
    assert code == 1
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        f"Error: cannot connect to the catalog database registry on 127.0.0.1:{port} "
        f"(postgresql+psycopg://me:***@127.0.0.1:{port}/registry): "
    )
    assert "Connection refused" in lines[0] and "s3cret" not in lines[0]


def test_a_stopped_server_is_one_line(pg_server: PgServer, tmp_path: Path) -> None:
    """A server that was there and is gone (its port now closed) is the same one line."""
    from pg import start_server

    other = start_server(pg_server.bin_dir)
    try:
        url = other.createdb("gone")
        catalog = Catalog(url)
    finally:
        other.stop()
        shutil.rmtree(other.root, ignore_errors=True)
    try:  # a catalog opened before the server went away
        for call in (lambda: catalog.versions("m"), lambda: catalog.reserve(_new())):
            with pytest.raises(CatalogError) as caught:
                call()
            assert "\n" not in str(caught.value) and other.password not in str(caught.value)
            assert str(caught.value).startswith("cannot connect to the catalog database gone")
    finally:
        catalog.close()
    code, lines = _cli(tmp_path, url)
    assert code == 1 and len(lines) == 1, lines
    assert f"cannot connect to the catalog database gone on 127.0.0.1:{other.port}" in lines[0]
    assert other.password not in lines[0]


def test_a_password_with_an_unencoded_at_sign_is_one_line_saying_to_percent_encode_it(
    tmp_path: Path,
) -> None:
    port = free_port()
    code, lines = _cli(tmp_path, f"postgresql+psycopg://team:pa@ss@127.0.0.1:{port}/registry")
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith(
        f"Error: cannot connect to the catalog database registry on 127.0.0.1:{port} "
        f"(postgresql+psycopg://team:***@***@127.0.0.1:{port}/registry): "
    )
    assert lines[0].endswith(
        "; the URL holds two @: a password with @, :, / or % in it must be percent-encoded in "
        "MODELSTORE_DB_URL (@ is %40, : is %3A, / is %2F, % is %25)"
    )
    assert ":pa@" not in lines[0] and "ss@" not in lines[0]  # no part of the password


def test_a_missing_database_is_one_line(pg_server: PgServer, tmp_path: Path) -> None:
    code, lines = _cli(tmp_path, pg_server.url("no_such_db"))
    assert code == 1 and len(lines) == 1, lines
    assert 'database "no_such_db" does not exist' in lines[0]
    assert pg_server.password not in lines[0]


def test_a_wrong_password_is_one_line_that_does_not_show_it(
    pg_server: PgServer, tmp_path: Path
) -> None:
    code, lines = _cli(tmp_path, pg_server.url("postgres", password="Wr0ngPassw0rd"))
    assert code == 1 and len(lines) == 1, lines
    assert 'password authentication failed for user "postgres"' in lines[0]
    assert "Wr0ngPassw0rd" not in lines[0] and "postgres:***@" in lines[0]


def test_a_connection_error_carries_host_port_and_database(pg_server: PgServer) -> None:
    with pytest.raises(CatalogConnectionError) as caught:
        Catalog(pg_server.url("no_such_db"))
    error = caught.value
    assert (error.host, error.port, error.database) == ("127.0.0.1", pg_server.port, "no_such_db")
    assert error.catalog is not None
    assert pg_server.password not in str(error) and "***" in error.catalog
