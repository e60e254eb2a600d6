"""Fixtures shared by the whole suite."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
from azurite import Azurite, missing_azurite, session_azurite
from pg import PgServer, missing_server, session_server


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    """Put ``os.environ`` back as it was after every test.

    ``modelstore serve`` and ``score`` set the variables azmlinfsrv sets (``AML_APP_ROOT``,
    ``AZUREML_MODEL_DIR``, ``AZUREML_ENTRY_SCRIPT``) in their own process, which is right for a
    command that becomes the server; run in-process through click's CliRunner, a refused one
    would leave them behind and turn a later test's "outside a deployment" into "inside one".
    """
    before = dict(os.environ)
    yield
    if os.environ != before:
        os.environ.clear()
        os.environ.update(before)


# --- PostgreSQL (tests marked ``postgres``; see tests/pg.py) ------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One throwaway PostgreSQL server for the session. Without PostgreSQL installed the tests
    that need it skip on a developer machine, but fail in CI (``CI`` set): CI installs it."""
    servers = session_server()
    server = next(servers)
    if server is None:
        missing_server()
    try:
        yield server
    finally:
        next(servers, None)


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """A SQLAlchemy URL of a new, empty database on the session's server."""
    return pg_server.createdb(f"t{next(_DATABASES)}")


_DATABASES = iter(range(1, 10**9))


# --- Azurite (tests marked ``azurite``; see tests/azurite.py) -----------------------------------

_CONTAINERS = itertools.count(1)


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[Azurite]:
    """One Azurite for the session; skips without it on a developer machine, fails in CI."""
    servers = session_azurite()
    server = next(servers)
    if server is None:
        missing_azurite()
    try:
        yield server
    finally:
        next(servers, None)


@pytest.fixture
def az_store_url(azurite_server: Azurite, monkeypatch: pytest.MonkeyPatch) -> str:
    """``az://`` URL of a new, empty container, its credentials set in the environment."""
    from azure.storage.blob import BlobServiceClient

    container = f"t{os.getpid()}-{next(_CONTAINERS)}"
    service = BlobServiceClient.from_connection_string(azurite_server.connection_string)
    service.create_container(container)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite_server.connection_string)
    return f"az://{container}/models"
