"""A throwaway Azurite (Microsoft's Azure Blob Storage emulator) for the tests: ``azurite-blob``
on a free loopback port, its data in a temporary folder, stopped at the end of the session.

The program comes from npm (``npm install azurite``): on PATH, or named by ``AZURITE_BLOB``.
Tests that need it are marked ``azurite``: without it they skip on a developer machine and fail
in CI (``CI`` set), where ``.ci/run`` installs it.

For Microsoft Entra ID (bearer tokens, which azure-core sends only over HTTPS) an Azurite is
started with a self-signed certificate (``make_certificate``) and ``--oauth basic``, which checks
a token's issuer, audience and lifetime but not its signature; ``IdentityEndpoint`` hands such
tokens out as App Service's managed-identity endpoint does, over plain HTTP on loopback.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NoReturn
from urllib.parse import parse_qs, urlsplit

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
    tls: tuple[str, str] | None = None
    """(certificate, key) PEM files when it serves HTTPS."""

    @property
    def endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol={self.scheme};AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint={self.endpoint};"
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
    oauth: bool = False,
) -> Azurite:
    """Start on a free port and wait until it accepts connections (what a client needs).
    ``folder`` and ``port``: restart a killed one on its data, at the same address. ``tls``
    (certificate and key PEM files): serve HTTPS instead of HTTP; with ``oauth`` too, accept
    Entra ID tokens (``--oauth basic``)."""
    folder = folder or tempfile.mkdtemp(prefix="modelstore-azurite-")
    port = port or free_port()
    https = ["--cert", tls[0], "--key", tls[1]] if tls else []
    if oauth:
        https += ["--oauth", "basic"]
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
            return Azurite(process, port, folder, "https" if tls else "http", tls)
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


def session_azurite_with_oauth() -> Iterator[Azurite | None]:
    """An HTTPS Azurite accepting Entra ID tokens, its certificate in its data folder."""
    program = azurite_program()
    if program is None:
        yield None
        return
    folder = tempfile.mkdtemp(prefix="modelstore-azurite-")
    server = start_azurite(program, folder, tls=make_certificate(folder), oauth=True)
    try:
        yield server
    finally:
        server.stop()


def make_certificate(folder: str) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1, valid for a day: (certificate, key) PEM files.
    A client trusts it through ``REQUESTS_CA_BUNDLE`` (the certificate is its own CA)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = os.path.join(folder, "cert.pem"), os.path.join(folder, "key.pem")
    with open(cert_path, "wb") as out:
        out.write(certificate.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as out:
        out.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return cert_path, key_path


TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


def unsigned_token(audience: str, lifetime: int = 3600) -> str:
    """A JWT as Entra ID issues one for Azure Storage, unsigned: Azurite's basic OAuth checks
    the issuer, audience and lifetime (``nbf``, ``exp``, ``iat``), not the signature."""
    now = int(time.time())

    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    claims = {
        "aud": audience,
        "iss": f"https://sts.windows.net/{TENANT}/",
        "iat": now - 60,
        "nbf": now - 60,
        "exp": now + lifetime,
        "oid": "00000000-0000-0000-0000-000000000001",
        "tid": TENANT,
    }
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


class IdentityEndpoint:
    """App Service's managed-identity endpoint (what ``IDENTITY_ENDPOINT`` names) on loopback:
    ``GET ?api-version=2019-08-01&resource=R`` with the ``X-IDENTITY-HEADER`` secret answers
    ``{"access_token", "expires_on", "resource", "token_type"}``. With ``refuse`` set, or a wrong
    header, it answers 400 and ``{"statusCode", "message"}`` as the service does. ``requests``
    counts the token requests, to show one was (or was not) made."""

    def __init__(self, header: str, *, refuse: bool = False) -> None:
        self.header = header
        self.refuse = refuse
        self.requests = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                endpoint.requests += 1
                query = parse_qs(urlsplit(self.path).query)
                resource = query.get("resource", [""])[0]
                body: dict[str, object] = {
                    "access_token": unsigned_token(resource),
                    "expires_on": str(int(time.time()) + 3600),
                    "resource": resource,
                    "token_type": "Bearer",
                    "client_id": "00000000-0000-0000-0000-000000000002",
                }
                status = 200
                if endpoint.refuse or self.headers.get("X-IDENTITY-HEADER") != endpoint.header:
                    status = 400
                    body = {
                        "statusCode": 400,
                        "message": "No managed identity is assigned to this app",
                    }
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/msi/token"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
