"""Opening a brand-new catalog while other processes do the same waits, never fails.

When several processes open one new registry at once they race to switch it to WAL, and SQLite
answers a losing switch with "database is locked" at once (deadlock avoidance: no busy wait).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from modelstore.catalog.engine import switch_to_wal


class RacingCursor:
    """A real cursor whose first WAL switches lose the race to another process."""

    def __init__(self, cursor: sqlite3.Cursor, losses: int) -> None:
        self.cursor = cursor
        self.losses = losses
        self.switches = 0

    def execute(self, sql: str) -> Any:
        if sql == "PRAGMA journal_mode = WAL":
            self.switches += 1
            if self.switches <= self.losses:
                raise sqlite3.OperationalError("database is locked")
        return self.cursor.execute(sql)

    def fetchone(self) -> Any:
        return self.cursor.fetchone()


@pytest.fixture
def cursor(tmp_path: Path) -> Any:
    connection = sqlite3.connect(tmp_path / "registry.db", isolation_level=None)
    connection.execute("CREATE TABLE t (x)")  # a real, rollback-journal database file
    yield connection.cursor()
    connection.close()


def test_a_wal_switch_that_loses_the_race_is_retried_until_it_succeeds(cursor: Any) -> None:
    racing = RacingCursor(cursor, losses=2)

    switch_to_wal(racing)

    assert racing.switches == 3
    assert cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_database_already_in_wal_needs_no_switch(cursor: Any) -> None:
    cursor.execute("PRAGMA journal_mode = WAL")
    racing = RacingCursor(cursor, losses=5)

    switch_to_wal(racing)

    assert racing.switches == 0


def test_a_switch_that_keeps_losing_gives_up_after_the_busy_timeout(cursor: Any) -> None:
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        switch_to_wal(RacingCursor(cursor, losses=10**6), timeout_s=0.05)


def test_other_errors_are_not_retried(cursor: Any) -> None:
    class Broken(RacingCursor):
        def execute(self, sql: str) -> Any:
            if sql == "PRAGMA journal_mode = WAL":
                self.switches += 1
                raise sqlite3.OperationalError("disk I/O error")
            return self.cursor.execute(sql)

    broken = Broken(cursor, losses=0)
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        switch_to_wal(broken)
    assert broken.switches == 1
