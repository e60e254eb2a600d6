"""Fixtures shared by the whole suite."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from typing import NoReturn, TypeVar

import pytest
from azurite import (
    ACCOUNT,
    Azurite,
    missing_azurite,
    session_azurite,
    session_azurite_with_oauth,
)
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


_Server = TypeVar("_Server")


def _required(
    servers: Iterator[_Server | None], missing: Callable[[], NoReturn]
) -> Iterator[_Server]:
    """A session server from its generator (which yields None when the program is not
    installed: ``missing`` then skips, or fails in CI), stopped when the session ends."""
    server = next(servers)
    if server is None:
        missing()
    try:
        yield server
    finally:
        next(servers, None)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One throwaway PostgreSQL server for the session. Without PostgreSQL installed the tests
    that need it skip on a developer machine, but fail in CI (``CI`` set): CI installs it."""
    yield from _required(session_server(), missing_server)


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
    yield from _required(session_azurite(), missing_azurite)


@pytest.fixture
def az_store_url(azurite_server: Azurite, monkeypatch: pytest.MonkeyPatch) -> str:
    """``az://`` URL of a new, empty container, its credentials set in the environment."""
    from azure.storage.blob import BlobServiceClient

    container = f"t{os.getpid()}-{next(_CONTAINERS)}"
    service = BlobServiceClient.from_connection_string(azurite_server.connection_string)
    service.create_container(container)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite_server.connection_string)
    return f"az://{container}/models"


@pytest.fixture(scope="session")
def azurite_oauth_server() -> Iterator[Azurite]:
    """One HTTPS Azurite accepting Entra ID tokens (``--oauth basic``) for the session; skips
    without Azurite on a developer machine, fails in CI."""
    yield from _required(session_azurite_with_oauth(), missing_azurite)


_IDENTITY_ENVS = (
    "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_KEY", "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_ACCOUNT_NAME", "AZURE_TOKEN_CREDENTIALS",
    "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_USERNAME", "AZURE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE", "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT", "MSI_ENDPOINT", "MSI_SECRET",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
)  # fmt: skip


@pytest.fixture
def az_entra_id_url(
    azurite_oauth_server: Azurite,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """``az://`` URL of a new, empty container of the HTTPS Azurite, with only its account and
    endpoint in the environment (Microsoft Entra ID sign-in) and no identity at all: no
    identity variable, and a home and az CLI folder of its own (no developer's login is used).
    Its certificate is trusted through ``REQUESTS_CA_BUNDLE``."""
    from azure.storage.blob import BlobServiceClient

    for name in _IDENTITY_ENVS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", azurite_oauth_server.tls[0])  # type: ignore[index]
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", os.fspath(home))
    monkeypatch.setenv("AZURE_CONFIG_DIR", os.fspath(home / ".azure"))
    container = f"t{os.getpid()}-{next(_CONTAINERS)}"
    service = BlobServiceClient.from_connection_string(azurite_oauth_server.connection_string)
    service.create_container(container)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT", ACCOUNT)
    monkeypatch.setenv("AZURE_STORAGE_SERVICE_ENDPOINT", azurite_oauth_server.endpoint)
    return f"az://{container}/models"
