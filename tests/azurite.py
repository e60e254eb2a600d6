"""A throwaway Azurite (Microsoft's Azure Blob Storage emulator) for the tests: ``azurite-blob``
on a free loopback port, its data in a temporary folder, stopped at the end of the session.

The program comes from npm (``npm install azurite``): on PATH, or named by ``AZURITE_BLOB``.
Tests that need it are marked ``azurite``: without it they skip on a developer machine and fail
in CI (``CI`` set), where ``.ci/run`` installs it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NoReturn

import pytest
from pg import free_port

ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""Azurite's fixed development account and key (public, the emulator's own)."""


@dataclass
class Azurite:
    process: subprocess.Popen[bytes]
    port: int
    folder: str
    scheme: str = "http"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol={self.scheme};AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint={self.scheme}://127.0.0.1:{self.port}/{ACCOUNT};"
        )

    def kill(self) -> None:
        """SIGKILL, as a crash or a power cut would stop it; its data folder is kept, for
        ``start_azurite(program, folder, port)`` to start it again on what it had persisted."""
        self.process.kill()
        self.process.wait()

    def stop(self, *, keep_data: bool = False) -> None:
        """SIGTERM: Azurite saves its metadata (it does so only every few seconds otherwise,
        so what it did just before a SIGKILL may be forgotten)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not keep_data:
            shutil.rmtree(self.folder, ignore_errors=True)


def azurite_program() -> str | None:
    return os.environ.get("AZURITE_BLOB") or shutil.which("azurite-blob")


def start_azurite(
    program: str,
    folder: str | None = None,
    port: int | None = None,
    *,
    tls: tuple[str, str] | None = None,
) -> Azurite:
    """Start on a free port and wait until it accepts connections (what a client needs).
    ``folder`` and ``port``: restart a killed one on its data, at the same address. ``tls``
    (certificate and key PEM files): serve HTTPS instead of HTTP."""
    folder = folder or tempfile.mkdtemp(prefix="modelstore-azurite-")
    port = port or free_port()
    https = ["--cert", tls[0], "--key", tls[1]] if tls else []
    process = subprocess.Popen(
        [
            program, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", folder,
            "--skipApiVersionCheck", "--silent", *https,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    with open(os.path.join(folder, "pid"), "w") as pidfile:  # .ci/run stops leftovers by it
        pidfile.write(str(process.pid))
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            error = process.stderr.read().decode(errors="replace") if process.stderr else ""
            raise RuntimeError(f"azurite-blob exited with {process.returncode}: {error}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return Azurite(process, port, folder, "https" if tls else "http")
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)


def missing_azurite() -> NoReturn:
    message = "Azurite is not installed (no azurite-blob on PATH); npm install -g azurite"
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {message}", pytrace=False)
    pytest.skip(message)


def session_azurite() -> Iterator[Azurite | None]:
    program = azurite_program()
    if program is None:
        yield None
        return
    server = start_azurite(program)
    try:
        yield server
    finally:
        server.stop()
