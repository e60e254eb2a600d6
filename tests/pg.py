"""A throwaway PostgreSQL server for the tests: a fresh cluster in a temporary folder, on a free
loopback port, stopped and removed at the end of the session.

The server is Debian's (``apt-get install postgresql``: binaries under
``/usr/lib/postgresql/<major>/bin``) or any ``initdb``/``pg_ctl`` on PATH. PostgreSQL refuses to
run as root, so under root the cluster belongs to the ``postgres`` user. Tests that need it are
marked ``postgres``: on a developer machine without PostgreSQL they skip; in CI (``CI`` set) a
missing server is a failure, so CI can never pass by skipping them.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

PASSWORD_FILE = "pwfile"


def pg_bin_dir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: Debian's newest, else PATH's."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found and shutil.which("pg_ctl") else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class PgServer:
    """A running cluster: superuser ``postgres`` with ``password`` over TCP on ``port``."""

    bin_dir: Path
    root: Path
    port: int
    password: str
    owner: str | None  # the OS user running it (None: the current user)

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres", *, password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"postgresql+psycopg://postgres:{secret}@127.0.0.1:{self.port}/{database}"

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / tool), *args]
        if self.owner is not None:
            command = ["runuser", "-u", self.owner, "--", *command]
        env = {**os.environ, "PGPASSWORD": self.password}  # the client tools log in over TCP
        return subprocess.run(command, check=True, capture_output=True, text=True, env=env)

    def createdb(self, name: str) -> str:
        """A new empty database; its URL."""
        self.run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w")


def start_server(bin_dir: Path) -> PgServer:
    """initdb into a new temporary folder, then start on a free loopback port (retrying once
    with another port if the chosen one was taken meanwhile)."""
    owner = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="modelstore-pg-"))
    password = secrets.token_hex(8)
    (root / PASSWORD_FILE).write_text(password + "\n")
    if owner is not None:
        shutil.chown(root, owner)
        shutil.chown(root / PASSWORD_FILE, owner)
    server = PgServer(bin_dir, root, 0, password, owner)
    server.run(
        "initdb",
        "-D",
        str(server.data),
        "-U",
        "postgres",
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        f"--pwfile={root / PASSWORD_FILE}",
        "--no-sync",
        "-E",
        "UTF8",
    )
    last_error: subprocess.CalledProcessError | None = None
    for _attempt in range(3):
        server.port = free_port()
        options = (
            f"-c listen_addresses=127.0.0.1 -p {server.port} -k {root} -c fsync=off "
            "-c max_connections=200"
        )
        try:
            server.run(
                "pg_ctl", "start", "-D", str(server.data), "-w", "-l", str(root / "log"),
                "-o", options,
            )  # fmt: skip
            return server
        except subprocess.CalledProcessError as exc:
            last_error = exc
    shutil.rmtree(root, ignore_errors=True)
    assert last_error is not None
    raise last_error


def missing_server() -> NoReturn:
    """No PostgreSQL here: a skip on a developer machine, a failure in CI (``CI`` set), where
    the tests must run (``.ci/run`` installs it)."""
    message = "PostgreSQL is not installed (no initdb/pg_ctl); apt-get install postgresql"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {message}", pytrace=False)
    pytest.skip(message)


def session_server() -> Iterator[PgServer | None]:
    """The fixture body: None when PostgreSQL is not installed (the caller decides to skip)."""
    bin_dir = pg_bin_dir()
    if bin_dir is None:
        yield None
        return
    server = start_server(bin_dir)
    try:
        yield server
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(server.root, ignore_errors=True)
