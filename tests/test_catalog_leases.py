"""Leases: the catalog's record of work in progress, its heartbeat, and when its owner is gone
(``modelstore.catalog.leases``). The registry-level behaviour (a doctor of another home
reporting or settling the work) is in test_registry_shared.py."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import text

from modelstore.catalog import PENDING, READY, Catalog, FileRecord, NewVersion
from modelstore.catalog.fastpath import SqliteVersionStore
from modelstore.catalog.leases import (
    LEASE_EXPIRY_S,
    REGISTER,
    Heartbeat,
    LeaseRecord,
    owner_gone,
    process_start,
    this_process,
)
from modelstore.catalog.versionstore import CoreVersionStore
from modelstore.errors import LeaseLostError


@pytest.fixture(params=["fast", "core", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Catalog:
    if request.param == "postgresql":
        opened = Catalog(request.getfixturevalue("pg_url"))
    else:
        opened = Catalog(f"sqlite:///{tmp_path / 'c.db'}")
        if request.param == "core":
            opened._versions = CoreVersionStore(opened._engine)
        else:
            assert isinstance(opened._versions, SqliteVersionStore)
    request.addfinalizer(opened.close)
    return opened


def _new(token: str = "tok") -> NewVersion:
    return NewVersion(
        name="m",
        entry="model.pkl",
        kind="file",
        size=3,
        file_count=1,
        sha256="0" * 64,
        created_at=datetime(2026, 1, 2, tzinfo=timezone.utc),
        token=token,
        files=[FileRecord("model.pkl", 3, "1" * 64)],
    )


def _set(catalog: Catalog, **values: object) -> None:
    sets = ", ".join(f"{column} = :{column}" for column in values)
    with catalog._engine.begin() as connection:
        connection.execute(text(f"UPDATE leases SET {sets}"), values)


ME = this_process("/home")


def test_a_lease_is_in_the_catalog_from_the_start_until_the_operations_last_step(
    catalog: Catalog,
) -> None:
    with catalog.lease("tok", REGISTER, "m", ME):
        now, leases = catalog.leases()
        lease = leases["tok"]
        assert (lease.operation, lease.name, lease.owner) == (REGISTER, "m", ME)
        assert abs(now - lease.heartbeat) <= 1 and abs(now - time.time()) < 5
        record = catalog.reserve(_new(), leased=True)
        assert catalog.set_state(record.id, READY, expected=PENDING, release="tok")
        assert catalog.leases()[1] == {}
    assert catalog.versions("m") == [1]


def test_a_lease_whose_operation_fails_is_removed_on_the_way_out(catalog: Catalog) -> None:
    with pytest.raises(KeyError), catalog.lease("tok", REGISTER, "m", ME):
        raise KeyError("boom")
    assert catalog.leases()[1] == {}


def test_taking_a_number_under_a_lease_a_doctor_dropped_writes_nothing(catalog: Catalog) -> None:
    with catalog.lease("tok", REGISTER, "m", ME):
        lease = catalog.leases()[1]["tok"]
        assert catalog.drop_lease(lease)
        with pytest.raises(LeaseLostError, match=r"^the operation on 'm' lost its lease") as lost:
            catalog.reserve(_new(), leased=True)
        assert (lost.value.name, lost.value.token) == ("m", "tok")
        assert catalog.rows() == []
    assert catalog.reserve(_new("other")).version == 1  # the number was not spent


def test_renewing_moves_the_heartbeat_of_this_processs_leases_only(catalog: Catalog) -> None:
    with catalog.lease("tok", REGISTER, "m", ME):
        _set(catalog, heartbeat=1000)
        assert catalog.renew_leases(["tok"]) == 1
        assert catalog.leases()[1]["tok"].heartbeat > 1000
        _set(catalog, heartbeat=1000, host="build-agent-7")  # no longer this process's
        assert catalog.renew_leases(["tok"]) == 0
        assert catalog.leases()[1]["tok"].heartbeat == 1000


def test_settling_work_whose_lease_was_renewed_since_it_was_read_changes_nothing(
    catalog: Catalog,
) -> None:
    with catalog.lease("tok", REGISTER, "m", ME):
        record = catalog.reserve(_new(), leased=True)
        _set(catalog, heartbeat=1000)
        seen = catalog.leases()[1]["tok"]
        catalog.renew_leases(["tok"])  # the owner is alive after all
        assert not catalog.settle(record, seen, READY)
        assert not catalog.settle(record, seen, None)
        assert [r.state for r in catalog.rows()] == [PENDING]
        assert catalog.settle(record, catalog.leases()[1]["tok"], READY)
        assert catalog.versions("m") == [1] and catalog.leases()[1] == {}


def test_the_heartbeat_thread_renews_held_leases_until_they_are_dropped() -> None:
    renewed: list[list[str]] = []
    beat = threading.Event()

    def renew(tokens: list[str]) -> None:
        renewed.append(tokens)
        beat.set()

    heartbeat = Heartbeat(renew, interval=0.01)
    heartbeat.hold("tok")
    assert beat.wait(10)
    heartbeat.drop("tok")
    heartbeat.stop()
    assert renewed[0] == ["tok"] and heartbeat.held() == []


def _lease(**owner: object) -> LeaseRecord:
    return LeaseRecord("tok", REGISTER, "m", replace(ME, **owner), heartbeat=10_000)  # type: ignore[arg-type]


def test_an_owner_on_this_host_is_gone_once_its_process_has_ended() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = process_start(child.pid)
    child.wait()
    assert owner_gone(_lease(pid=child.pid, started=started), 10_000, ME) == "process has ended"


def test_an_owner_that_is_a_zombie_is_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = process_start(child.pid)
    try:
        while Path(f"/proc/{child.pid}/stat").read_text().split(") ")[1][0] != "Z":
            time.sleep(0.01)  # polling /proc: the child exits on its own, never reaped here
        assert owner_gone(_lease(pid=child.pid, started=started), 10_000, ME) == (
            "process has ended"
        )
    finally:
        child.wait()


def test_an_owner_whose_pid_now_runs_another_process_is_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = _lease(pid=child.pid, started=process_start(child.pid))
        assert owner_gone(alive, 10_000, ME) is None
        reused = _lease(pid=child.pid, started="1")  # the pid's earlier process started then
        assert owner_gone(reused, 10_000, ME) == "pid now runs another process"
        assert owner_gone(_lease(started="1"), 10_000, ME) == "pid now runs another process"
    finally:
        child.kill()
        child.wait()


def test_an_owner_on_another_host_is_gone_only_once_its_heartbeat_expired() -> None:
    """Its pid is not looked at (here pid 1, alive on this machine, and our own pid)."""
    for pid in (1, os.getpid()):
        elsewhere = _lease(host="build-agent-7", host_id="elsewhere", pid=pid)
        assert owner_gone(elsewhere, 10_000 + LEASE_EXPIRY_S, ME) is None
        assert owner_gone(elsewhere, 10_000 + LEASE_EXPIRY_S + 1, ME) == (
            f"last heartbeat was {LEASE_EXPIRY_S + 1} s ago "
            f"(leases expire after {LEASE_EXPIRY_S} s)"
        )
    rebooted = _lease(host_id="another-boot/pid:[1]", pid=os.getpid())  # same name, new boot
    assert owner_gone(rebooted, 10_000 + LEASE_EXPIRY_S + 1, ME) is not None
