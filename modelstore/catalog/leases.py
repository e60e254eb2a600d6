"""Work in progress belongs to the catalog: every registration and deletion holds a *lease*.

A lease is one row of ``leases`` (token, operation, name, the owner's home, host and process,
and a heartbeat), written before the operation's first catalog change and removed in the same
transaction as its last one. Every home sharing the catalog sees it, so a doctor anywhere can
tell work under way from work whose process is gone, without any file lock of the owner's home:

- **same host** (same host name, same boot and pid namespace): the owner is gone when its pid
  no longer runs, or now runs another program (its start time differs from the recorded one),
  or is a zombie;
- **another host**: its pid means nothing here, so the owner is gone only when its heartbeat
  (renewed every ``HEARTBEAT_S`` by the owning process) is older than ``LEASE_EXPIRY_S``.

Heartbeats are the database's clock, written and compared by the database, so clocks of the
machines do not matter. A process that is stopped longer than the expiry (a laptop suspended
mid-registration) loses its lease: a doctor may then settle its work, and the process finds out
at its next catalog step (``LeaseLostError``) instead of overwriting what the doctor decided.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from sqlalchemy import BigInteger, ColumnElement, Integer, cast, func, literal

from modelstore.errors import LeaseLostError

HEARTBEAT_S = 15.0
"""How often a process renews the leases it holds."""

LEASE_EXPIRY_S = 120
"""A lease of another host whose heartbeat is older than this is abandoned: 8 missed renewals,
so a busy database or a slow network does not make live work look dead."""

REGISTER = "register"
DELETE = "delete"


@dataclass(frozen=True)
class Owner:
    """The process holding a lease. ``host_id`` names whose pids ``pid`` is one of (the
    kernel's boot id and pid namespace); ``started`` tells that pid's process from a later one
    reusing the number (the process start time in clock ticks since boot)."""

    home: str
    host: str
    host_id: str
    pid: int
    started: str


@dataclass(frozen=True)
class LeaseRecord:
    token: str
    operation: str
    name: str
    owner: Owner
    heartbeat: int
    """Seconds since the epoch, by the database's clock."""

    def columns(self) -> dict[str, object]:
        """Its row's values but the heartbeat, which the database's clock writes."""
        owner = self.owner
        return {
            "token": self.token,
            "operation": self.operation,
            "name": self.name,
            "home": owner.home,
            "host": owner.host,
            "host_id": owner.host_id,
            "pid": owner.pid,
            "started": owner.started,
        }

    def describe(self) -> str:
        """Who holds it, for a finding: ``home /a on host h (pid 42)``."""
        return f"home {self.owner.home} on host {self.owner.host} (pid {self.owner.pid})"


def lease_lost(name: str, token: str) -> LeaseLostError:
    return LeaseLostError(
        f"the operation on {name!r} lost its lease in the catalog: a doctor found no heartbeat "
        f"from it for {LEASE_EXPIRY_S} s and settled its work; nothing more was written; check "
        f"the model with 'modelstore list {name}' and run the operation again if needed",
        name=name,
        token=token,
    )


def this_process(home: str) -> Owner:
    pid = os.getpid()
    identity = _identity.get(pid)
    if identity is None:  # once per process (a fork is another process: another pid)
        identity = _identity[pid] = (socket.gethostname(), _host_id(), process_start(pid) or "")
    host, host_id, started = identity
    return Owner(home=home, host=host, host_id=host_id, pid=pid, started=started)


_identity: dict[int, tuple[str, str, str]] = {}


def owner_gone(lease: LeaseRecord, now: int, here: Owner) -> str | None:
    """Why the lease's owner is provably gone, as a phrase following "whose" ("process has
    ended"), or None while it may be alive."""
    owner = lease.owner
    if owner.host == here.host and owner.host_id == here.host_id and owner.host_id:
        if owner.pid == here.pid:
            return None if owner.started == here.started else "pid now runs another process"
        state = _process_state(owner.pid)
        if state is None or state in ("Z", "X"):  # a zombie has ended too
            return "process has ended"
        if owner.started and process_start(owner.pid) not in (None, owner.started):
            return "pid now runs another process"
        return None
    age = now - lease.heartbeat
    if age > LEASE_EXPIRY_S:
        return f"last heartbeat was {age} s ago (leases expire after {LEASE_EXPIRY_S} s)"
    return None


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot), None if there is no such
    process or the system does not say (no ``/proc``)."""
    fields = _stat_fields(pid)
    return None if fields is None else fields[19]


def _process_state(pid: int) -> str | None:
    """The process's state letter (``R``, ``S``, ``Z``...), "?" if it exists but the system
    does not say, None if there is no such process."""
    fields = _stat_fields(pid)
    if fields is not None:
        return fields[0]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return "?"  # someone else's process: it exists
    return None if os.path.isdir("/proc") else "?"


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` after the command name (which may hold spaces): state first."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read().decode("ascii", "replace")
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


@cache
def _host_id() -> str:
    """Whose pids this process can check: the boot id and the pid namespace. Empty where the
    system does not say, and then no pid is ever trusted (only heartbeats)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot:
            boot_id = boot.read().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    return f"{boot_id}/{namespace}"


def database_now(dialect: str) -> ColumnElement[int]:
    """The database's clock in whole seconds since the epoch, as a SQL expression."""
    if dialect == "sqlite":
        return cast(func.strftime("%s", "now"), Integer)
    if dialect == "postgresql":
        return cast(func.floor(func.date_part("epoch", func.clock_timestamp())), BigInteger)
    return literal(int(time.time()), BigInteger)  # another database: this machine's clock


class Heartbeat:
    """One daemon thread per catalog renewing every lease this process holds, every
    ``interval`` seconds; started on the first lease, so a process that never writes has none."""

    def __init__(self, renew: Callable[[list[str]], object], interval: float = HEARTBEAT_S) -> None:
        self._renew = renew
        self._interval = interval
        self._tokens: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, token: str) -> None:
        with self._lock:
            self._tokens.add(token)
            if self._thread is None or not self._thread.is_alive():  # none yet, or forked
                self._thread = threading.Thread(
                    target=self._run, name="modelstore-lease-heartbeat", daemon=True
                )
                self._thread.start()

    def drop(self, token: str) -> None:
        with self._lock:
            self._tokens.discard(token)

    def held(self) -> list[str]:
        with self._lock:
            return sorted(self._tokens)

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            tokens = self.held()
            if not tokens:
                continue
            try:
                self._renew(tokens)
            except Exception:
                continue
