"""The shared model store in Azure Blob Storage, against Azurite (Microsoft's emulator)."""

from __future__ import annotations

import hashlib
import http.client
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from azurite import (
    ACCOUNT,
    KEY,
    Azurite,
    IdentityEndpoint,
    azurite_program,
    make_certificate,
    missing_azurite,
    start_azurite,
)
from registry_helpers import child_command, make_file, make_model_dir, tree_files, wait_for

from modelstore import Registry
from modelstore.errors import IntegrityError, StorageError, StoreMismatchError
from modelstore.store.hashing import new_buffer
from modelstore.store.identity import IDENTITY_NAME
from modelstore.store.shared import open_store

pytestmark = pytest.mark.azurite


def _container(az_store_url: str) -> object:
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(
        os.environ["AZURE_STORAGE_CONNECTION_STRING"]
    )
    return service.get_container_client(az_store_url.removeprefix("az://").split("/")[0])


def _blob_names(az_store_url: str) -> list[str]:
    """The model blobs (the store's identity marker aside)."""
    names = (b.name for b in _container(az_store_url).list_blobs())  # type: ignore[attr-defined]
    return sorted(name for name in names if "/sha256/" in f"/{name}")


def test_a_blob_is_uploaded_once_under_its_sha256(az_store_url: str, tmp_path: Path) -> None:
    store = open_store(az_store_url)
    source = make_file(tmp_path / "m.bin", b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    assert store.put(os.fspath(source), digest, new_buffer()) is True
    assert store.put(os.fspath(source), digest, new_buffer()) is False
    assert _blob_names(az_store_url) == [f"models/sha256/{digest[:2]}/{digest}"]
    assert store.has(digest)
    assert store.fetch(digest, os.fspath(tmp_path / "copy"), new_buffer()) == (7, digest)
    assert (tmp_path / "copy").read_bytes() == b"weights"
    assert store.check(digest, 7, new_buffer()) is None
    other = hashlib.sha256(b"x").hexdigest()
    assert store.check(other, 1, new_buffer()) == "missing"
    with pytest.raises(FileNotFoundError):
        store.fetch(other, os.fspath(tmp_path / "none"), new_buffer())


def test_a_missing_container_or_no_credentials_at_all_is_one_line(
    az_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(StorageError, match="the container 'no-such-container' does not exist"):
        open_store("az://no-such-container")
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    with pytest.raises(StorageError) as caught:
        open_store(az_store_url)
    assert str(caught.value) == (
        "an az:// model store needs credentials: set AZURE_STORAGE_CONNECTION_STRING, or "
        "AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN (and "
        "AZURE_STORAGE_SERVICE_ENDPOINT for an endpoint other than "
        "https://ACCOUNT.blob.core.windows.net), or AZURE_STORAGE_ACCOUNT alone to sign in "
        "with Microsoft Entra ID (az login, a service principal's AZURE_CLIENT_ID, "
        "AZURE_TENANT_ID and AZURE_CLIENT_SECRET, or a managed identity)"
    )


@pytest.fixture
def account_only(
    azurite_server: Azurite, az_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> str:
    """The az:// URL of a new container, with no connection string in the environment: only
    Azurite's blob endpoint (AZURE_STORAGE_SERVICE_ENDPOINT), for a test to add credentials."""
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    endpoint = f"http://127.0.0.1:{azurite_server.port}/{ACCOUNT}"
    monkeypatch.setenv("AZURE_STORAGE_SERVICE_ENDPOINT", endpoint)
    return az_store_url


def _share_a_version(url: str, tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    with Registry(tmp_path / "a", catalog, store_url=url) as a:
        a.register(make_file(tmp_path / "model.pkl", b"weights"), "m")
    with Registry(tmp_path / "b", catalog, store_url=url) as b:
        assert b.path("m", 1).read_bytes() == b"weights"
        assert b.verify(store=True).ok


@pytest.mark.parametrize(
    ("account_env", "key_env"),
    [
        ("AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY"),  # the az CLI's names
        ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY"),  # adlfs'
    ],
)
def test_an_account_name_and_key_reach_the_store(
    account_only: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    account_env: str,
    key_env: str,
) -> None:
    monkeypatch.setenv(account_env, ACCOUNT)
    monkeypatch.setenv(key_env, KEY)
    _share_a_version(account_only, tmp_path)


def _sas(container: str, **permissions: bool) -> str:
    from datetime import datetime, timedelta, timezone

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    return generate_container_sas(
        ACCOUNT,
        container,
        account_key=KEY,
        permission=ContainerSasPermissions(**permissions),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )


def test_a_sas_token_for_the_container_reaches_the_store(
    account_only: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = account_only.removeprefix("az://").split("/")[0]
    sas = _sas(container, read=True, write=True, create=True)
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", f"?{sas}")  # as the portal shows it
    _share_a_version(account_only, tmp_path)


def test_a_read_only_sas_token_fails_the_registration_in_one_line_without_its_secret(
    account_only: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = account_only.removeprefix("az://").split("/")[0]
    sas = _sas(container, read=True)
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", sas)
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    with Registry(tmp_path / "a", catalog, store_url=account_only) as a:
        with pytest.raises(StorageError, match="failed while uploading a blob") as caught:
            a.register(make_file(tmp_path / "model.pkl", b"weights"), "m")
        assert a._catalog.rows() == []  # no number taken
    message = str(caught.value)
    assert "\n" not in message and message.endswith(
        "; the credentials of AZURE_STORAGE_SAS_TOKEN may read but not do this; use a key, a "
        "SAS that allows writing (permissions r, w and c), or a role such as Storage Blob Data "
        "Contributor"
    )
    signature = dict(part.split("=", 1) for part in sas.split("&"))["sig"]
    assert signature not in message


def test_the_connection_string_comes_first_then_the_key_then_the_sas_token(
    account_only: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, azurite_server: Azurite
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT", ACCOUNT)
    monkeypatch.setenv("AZURE_STORAGE_KEY", KEY)
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", "sv=2021-08-06&sig=not-a-signature")
    _share_a_version(account_only, tmp_path / "key")  # the key, not the bad token
    monkeypatch.setenv("AZURE_STORAGE_KEY", "bm90IHRoZSBrZXk=")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite_server.connection_string)
    _share_a_version(account_only, tmp_path / "connection-string")  # not the bad key


def test_a_wrong_key_is_one_line_that_names_the_variables_not_the_key(
    account_only: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "bm90IHRoZSBrZXkgYXQgYWxs"
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT", ACCOUNT)
    monkeypatch.setenv("AZURE_STORAGE_KEY", wrong)
    with pytest.raises(StorageError, match="failed while opening") as caught:
        open_store(account_only)
    message = str(caught.value)
    assert "\n" not in message and wrong not in message
    assert "check the network, AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY and the container" in (
        message
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"AZURE_STORAGE_KEY": "a2V5", "AZURE_STORAGE_ACCOUNT_KEY": "b3RoZXI="},
            "AZURE_STORAGE_KEY and AZURE_STORAGE_ACCOUNT_KEY are both set, to different values; "
            "unset one of them (they are two spellings of the same setting)",
        ),
        (
            {"AZURE_STORAGE_KEY": "a2V5"},
            "AZURE_STORAGE_KEY is set but not the storage account's name; set "
            "AZURE_STORAGE_ACCOUNT too (a shared key signs requests with the account's name)",
        ),
        (
            {"AZURE_STORAGE_SAS_TOKEN": "sv=1&sig=secret"},
            "AZURE_STORAGE_SAS_TOKEN is set but not which account it is for; set "
            "AZURE_STORAGE_ACCOUNT (or AZURE_STORAGE_SERVICE_ENDPOINT, the blob endpoint URL)",
        ),
    ],
)
def test_incomplete_or_contradictory_azure_variables_are_one_line_without_secrets(
    env: dict[str, str], expected: str
) -> None:
    from modelstore.store.azure import credentials_from_environment

    with pytest.raises(StorageError) as caught:
        credentials_from_environment(env)
    assert str(caught.value) == expected


_SIGN_IN_ADVICE = (
    "sign in with az login, or set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET (a "
    "service principal), or use AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN instead"
)


def test_an_account_without_key_or_token_signs_in_with_entra_id_over_https_only() -> None:
    from modelstore.store.azure import credentials_from_environment

    account = credentials_from_environment(
        {"AZURE_STORAGE_ACCOUNT_NAME": "team", "IDENTITY_HEADER": "the-header-secret"}
    )
    assert (account.entra_id, account.account_url, account.source, account.secrets) == (
        True,
        "https://team.blob.core.windows.net",
        "AZURE_STORAGE_ACCOUNT_NAME with Microsoft Entra ID",
        ("the-header-secret",),
    )
    endpoint = credentials_from_environment(
        {"AZURE_STORAGE_SERVICE_ENDPOINT": "https://team.blob.core.usgovcloudapi.net/"}
    )
    assert (endpoint.entra_id, endpoint.account_url, endpoint.source) == (
        True,
        "https://team.blob.core.usgovcloudapi.net",
        "AZURE_STORAGE_SERVICE_ENDPOINT with Microsoft Entra ID",
    )
    with pytest.raises(StorageError) as caught:
        credentials_from_environment(
            {
                "AZURE_STORAGE_ACCOUNT": ACCOUNT,
                "AZURE_STORAGE_SERVICE_ENDPOINT": f"http://127.0.0.1:10000/{ACCOUNT}",
            }
        )
    assert str(caught.value) == (
        f"AZURE_STORAGE_SERVICE_ENDPOINT is http://127.0.0.1:10000/{ACCOUNT}, but Microsoft "
        "Entra ID tokens are only sent over HTTPS; use the endpoint's https:// URL, or "
        "AZURE_STORAGE_KEY or AZURE_STORAGE_SAS_TOKEN with AZURE_STORAGE_ACCOUNT"
    )


def test_entra_id_without_azure_identity_installed_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "azure.identity", None)  # import azure.identity fails
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT", "team")
    with pytest.raises(StorageError) as caught:
        open_store("az://models")
    assert str(caught.value) == (
        "signing in to an az:// model store with Microsoft Entra ID needs the azure-identity "
        "package; install it with pip install 'modelstore[team]' (or set AZURE_STORAGE_KEY or "
        "AZURE_STORAGE_SAS_TOKEN)"
    )


def _https_blob_names(azurite: Azurite, url: str) -> list[str]:
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.get_container_client(url.removeprefix("az://").split("/")[0])
    return sorted(blob.name for blob in container.list_blobs())


def test_an_account_alone_registers_with_a_managed_identity_token(
    az_entra_id_url: str,
    azurite_oauth_server: Azurite,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_SERVICE_ENDPOINT, and App Service's managed
    identity variables: DefaultAzureCredential gets a token from the endpoint, Azurite (HTTPS,
    --oauth basic) accepts it, and the version is shared through the blob."""
    identity = IdentityEndpoint("the-header-secret")
    try:
        monkeypatch.setenv("IDENTITY_ENDPOINT", identity.url)
        monkeypatch.setenv("IDENTITY_HEADER", "the-header-secret")
        _share_a_version(az_entra_id_url, tmp_path)
        assert identity.requests >= 1
    finally:
        identity.close()
    digest = hashlib.sha256(b"weights").hexdigest()
    assert _https_blob_names(azurite_oauth_server, az_entra_id_url) == [
        f"models/{IDENTITY_NAME}",
        f"models/sha256/{digest[:2]}/{digest}",
    ]


def test_a_refused_managed_identity_token_is_one_line_exit_1_and_changes_nothing(
    az_entra_id_url: str,
    azurite_oauth_server: Azurite,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real CLI process: the token endpoint's refusal quoted in one line (no SDK paragraphs,
    no header secret), exit 1, asked once (a missing token is not retried), no blob and no
    version; once the identity works, the same home registers version 1."""
    identity = IdentityEndpoint("the-header-secret", refuse=True)
    try:
        monkeypatch.setenv("IDENTITY_ENDPOINT", identity.url)
        monkeypatch.setenv("IDENTITY_HEADER", "the-header-secret")
        catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
        env = os.environ | {"MODELSTORE_DB_URL": catalog, "MODELSTORE_STORE_URL": az_entra_id_url}
        source = make_file(tmp_path / "model.pkl", b"weights")
        register = ["--home", os.fspath(tmp_path / "a"), "register", os.fspath(source)]
        failed = subprocess.run(
            [sys.executable, "-m", "modelstore", *register, "--name", "m"],
            env=env,
            capture_output=True,
        )
        assert (failed.returncode, failed.stdout) == (1, b"")
        assert failed.stderr.decode() == (
            f"Error: the model store {az_entra_id_url} could not get a Microsoft Entra ID token "
            "for AZURE_STORAGE_ACCOUNT (DefaultAzureCredential tried environment, workload "
            "identity, managed identity, shared token cache, VS Code, az CLI, Azure PowerShell, "
            "azd, broker; managed identity: 400, No managed identity is assigned to this app); "
            f"{_SIGN_IN_ADVICE}\n"
        )
        assert identity.requests == 1
        assert _https_blob_names(azurite_oauth_server, az_entra_id_url) == []
        identity.refuse = False
        with Registry(tmp_path / "a", catalog, store_url=az_entra_id_url) as a:
            assert a._catalog.rows() == []
            assert a.register(source, "m").version == 1
    finally:
        identity.close()


def test_no_identity_at_all_is_one_line_that_says_how_to_sign_in(az_entra_id_url: str) -> None:
    with pytest.raises(StorageError) as caught:
        open_store(az_entra_id_url)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        f"the model store {az_entra_id_url} could not get a Microsoft Entra ID token for "
        "AZURE_STORAGE_ACCOUNT (DefaultAzureCredential tried environment, workload identity, "
        "managed identity, "
    )
    assert message.endswith(f": none is set up here); {_SIGN_IN_ADVICE}")
    assert "az CLI" in message


def test_a_source_that_fails_stops_the_chain_and_its_reason_is_the_line(
    az_entra_id_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workload identity set up (as AKS sets it) but its token file gone: DefaultAzureCredential
    stops there (a source that is set up and fails is not skipped), and the line says why."""
    monkeypatch.setenv("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47")
    monkeypatch.setenv("AZURE_CLIENT_ID", "00000000-0000-0000-0000-000000000003")
    token_file = tmp_path / "gone" / "token"
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", os.fspath(token_file))
    with pytest.raises(StorageError) as caught:
        open_store(az_entra_id_url)
    assert str(caught.value) == (
        f"the model store {az_entra_id_url} could not get a Microsoft Entra ID token for "
        "AZURE_STORAGE_ACCOUNT (DefaultAzureCredential tried environment, workload identity; "
        f"workload identity: [Errno 2] No such file or directory: '{token_file}'); "
        f"{_SIGN_IN_ADVICE}"
    )


def test_two_homes_share_versions_through_azure_blob_storage(
    az_store_url: str, tmp_path: Path
) -> None:
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    source = make_model_dir(tmp_path / "model_dir")
    with Registry(tmp_path / "a", catalog, store_url=az_store_url) as a:
        a.register(source, "m")
        a.register(source, "m")  # the same bytes: nothing new uploaded
    assert len(_blob_names(az_store_url)) == 3
    with Registry(tmp_path / "b", catalog, store_url=az_store_url) as b:
        assert tree_files(b.path("m", 2)) == ["a.txt", "c.txt", "sub/b.txt"]
        assert b.verify().ok and b.verify(store=True).ok
        assert b.doctor(repair=True).findings == []


def test_a_blob_changed_in_azure_is_refused_on_materialisation(
    az_store_url: str, tmp_path: Path
) -> None:
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    with Registry(tmp_path / "a", catalog, store_url=az_store_url) as a:
        a.register(make_file(tmp_path / "model.pkl", b"weights"), "m")
    [name] = _blob_names(az_store_url)
    _container(az_store_url).upload_blob(name, b"weightz", overwrite=True)  # type: ignore[attr-defined]
    with Registry(tmp_path / "b", catalog, store_url=az_store_url) as b:
        with pytest.raises(IntegrityError, match="does not match the catalog"):
            b.path("m", 1)
        assert not (tmp_path / "b" / "azureml-models" / "m").exists()
        assert [c.changed for c in b.verify(store=True).versions] == [["model.pkl"]]


def test_a_container_of_the_same_name_in_another_account_is_refused_in_one_line(
    az_store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``az://models`` names another store in another storage account (here: another Azurite):
    its identity marker is not the catalog's, so a home configured with those credentials is
    refused before it writes anything; back on the right account, it works."""
    from azure.storage.blob import BlobServiceClient

    program = azurite_program()
    if program is None:
        missing_azurite()
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    with Registry(tmp_path / "a", catalog, store_url=az_store_url) as a:
        a.register(make_file(tmp_path / "model.pkl", b"weights"), "m")
        recorded = a._catalog.info()["model_store_id"]
    right = os.environ["AZURE_STORAGE_CONNECTION_STRING"]
    other: Azurite = start_azurite(program)
    try:
        container = az_store_url.removeprefix("az://").split("/")[0]
        BlobServiceClient.from_connection_string(other.connection_string).create_container(
            container
        )
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", other.connection_string)
        before = (tmp_path / "catalog.db").read_bytes()
        with pytest.raises(StoreMismatchError) as caught:
            Registry(tmp_path / "b", catalog, store_url=az_store_url)
        assert "\n" not in str(caught.value)
        assert (caught.value.store_id, caught.value.catalog_store_id) == (None, recorded)
        assert f"reaches as {az_store_url} has no identity marker" in str(caught.value)
        assert (tmp_path / "catalog.db").read_bytes() == before
        assert _blob_names_in(other.connection_string, container) == []  # nothing written
    finally:
        other.stop()
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", right)
    with Registry(tmp_path / "b", catalog, store_url=az_store_url) as b:
        assert b.path("m", 1).read_bytes() == b"weights"


def _blob_names_in(connection_string: str, container: str) -> list[str]:
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(connection_string)
    return sorted(b.name for b in service.get_container_client(container).list_blobs())


def test_a_store_that_went_away_fails_the_registration_and_takes_no_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Azurite stopped before the upload: one line, and no version (pending or ready) without
    its bytes; the next registration once it is back is version 2 (1 was never taken)."""
    from azure.storage.blob import BlobServiceClient

    program = azurite_program()
    if program is None:  # the az_store_url fixture is not used: this server is private
        missing_azurite()
    server: Azurite = start_azurite(program)
    try:
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", server.connection_string)
        BlobServiceClient.from_connection_string(server.connection_string).create_container(
            "models"
        )
        catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
        with Registry(tmp_path / "a", catalog, store_url="az://models") as a:
            a.register(make_file(tmp_path / "one.pkl", b"one"), "m")
            server.stop()
            with pytest.raises(StorageError, match="failed while") as caught:
                a.register(make_file(tmp_path / "two.pkl", b"two"), "m")
            assert "\n" not in str(caught.value)
            assert [(r.version, r.state) for r in a._catalog.rows()] == [(1, "ready")]
            assert os.listdir(tmp_path / "a" / ".modelstore" / "staging") == []
    finally:
        server.stop()


def test_azurite_killed_during_a_multi_block_upload_leaves_no_version_and_a_retry_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real Azurite SIGKILLed between the blocks of a real CLI registration's upload (the
    child pauses before its second block; see registry_helpers.register_pausing_mid_upload):
    one line and exit 1, no version, nothing for verify or doctor to find; once Azurite is back
    on the same data, the same registration works."""
    from azure.storage.blob import BlobServiceClient

    program = azurite_program()
    if program is None:
        missing_azurite()
    first = start_azurite(program)
    BlobServiceClient.from_connection_string(first.connection_string).create_container("models")
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", first.connection_string)
    Registry(tmp_path / "a", catalog, store_url="az://models").close()  # the store's marker
    # Saved, as a long-lived storage account has them: Azurite forgets what it wrote in its
    # last seconds when killed, which a storage account never does.
    first.stop(keep_data=True)
    server: Azurite = start_azurite(program, first.folder, first.port)
    restarted: Azurite | None = None
    try:
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", server.connection_string)
        env = os.environ | {"MODELSTORE_DB_URL": catalog, "MODELSTORE_STORE_URL": "az://models"}
        data = os.urandom(3 << 20 | 123)  # four 1 MB blocks
        source = make_file(tmp_path / "model.bin", data)
        home = tmp_path / "a"
        paused, go = tmp_path / "paused", tmp_path / "go"
        register = ["--home", os.fspath(home), "register", os.fspath(source), "--name", "m"]
        child = subprocess.Popen(
            child_command("register_pausing_mid_upload", os.fspath(paused), os.fspath(go))
            + register,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        wait_for(os.fspath(paused))
        server.kill()  # one block is in Azurite, uncommitted; the others never will be
        go.touch()
        out, err = child.communicate(timeout=120)
        lines = err.decode().splitlines()
        assert (child.returncode, out, len(lines)) == (1, b"", 1), err
        assert lines[0].startswith(
            "Error: the model store az://models failed while uploading a blob ("
        )

        restarted = start_azurite(program, server.folder, server.port)
        container = BlobServiceClient.from_connection_string(
            server.connection_string
        ).get_container_client("models")
        assert [b.name for b in container.list_blobs()] == [IDENTITY_NAME]  # no block is a blob
        with Registry(home, catalog, store_url="az://models") as a:
            assert a._catalog.rows() == []  # no version, not even pending
            assert a.verify().ok and a.verify(store=True).ok
            assert a.doctor().findings == []
        assert os.listdir(home / ".modelstore" / "staging") == []

        again = subprocess.run(
            [sys.executable, "-m", "modelstore", *register], env=env, capture_output=True
        )
        assert again.returncode == 0, again.stderr
        assert again.stdout.decode().startswith("Registered m:1 ")
        digest = hashlib.sha256(data).hexdigest()
        assert container.download_blob(f"sha256/{digest[:2]}/{digest}").readall() == data
        with Registry(tmp_path / "b", catalog, store_url="az://models") as b:
            assert b.path("m", 1).read_bytes() == data
            assert b.verify(store=True).ok
    finally:
        server.stop()
        if restarted is not None:
            restarted.stop()


def test_sdk_errors_are_shown_without_signatures_keys_or_the_secrets_in_use() -> None:
    from modelstore.store.azure import _masked

    text = (
        "Max retries exceeded with url: /models?restype=container&sv=2021&sig=abc%2F&se=1; "
        "AccountKey=a2V5;BlobEndpoint=x; my-token-value"
    )
    assert _masked(text, ("my-token-value",)) == (
        "Max retries exceeded with url: /models?restype=container&sv=2021&sig=***&se=1; "
        "AccountKey=***;BlobEndpoint=x; ***"
    )


# --- proxies and CA bundles, read from the environment when the store opens ------------------

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailers", "upgrade"}
_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


class _RecordingProxy(http.server.ThreadingHTTPServer):
    """A forwarding HTTP proxy on loopback that records each request it relays, as
    (method, absolute URL): what a client sends to a proxy, not to the server."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.relayed: list[tuple[str, str]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
    server: _RecordingProxy

    def relay(self) -> None:
        self.server.relayed.append((self.command, self.path))
        target = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        upstream = http.client.HTTPConnection(target.hostname or "", target.port, timeout=30)
        try:
            path = target.path + (f"?{target.query}" if target.query else "")
            upstream.request(self.command, path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
        finally:
            upstream.close()
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP | {"transfer-encoding", "content-length"}:
                self.send_header(name, value)
        if self.command == "HEAD":
            self.send_header("Content-Length", response.getheader("Content-Length") or "0")
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = relay

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[_RecordingProxy]:
    """A recording proxy, and an environment with no proxy variables (either case) for the
    test to set."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    server = _RecordingProxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _blob_path(az_store_url: str, digest: str) -> str:
    container, prefix = az_store_url.removeprefix("az://").split("/", 1)
    return f"/{ACCOUNT}/{container}/{prefix}/sha256/{digest[:2]}/{digest}"


@pytest.mark.parametrize("credentials", ["connection string", "account and key"])
def test_a_store_opened_with_http_proxy_set_sends_every_request_through_that_proxy(
    az_store_url: str,
    azurite_server: Azurite,
    proxy: _RecordingProxy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    credentials: str,
) -> None:
    if credentials == "account and key":
        monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
        endpoint = f"http://127.0.0.1:{azurite_server.port}/{ACCOUNT}"
        monkeypatch.setenv("AZURE_STORAGE_SERVICE_ENDPOINT", endpoint)
        monkeypatch.setenv("AZURE_STORAGE_ACCOUNT", ACCOUNT)
        monkeypatch.setenv("AZURE_STORAGE_KEY", KEY)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    store = open_store(az_store_url)
    monkeypatch.delenv("HTTP_PROXY")  # read when the store opened: still used
    source = make_file(tmp_path / "m.bin", b"weights")
    digest = hashlib.sha256(b"weights").hexdigest()
    assert store.put(os.fspath(source), digest, new_buffer(7)) is True
    assert store.has(digest)
    assert store.fetch(digest, os.fspath(tmp_path / "copy"), new_buffer(7)) == (7, digest)
    relayed = [(method, urlsplit(url).path) for method, url in proxy.relayed]
    blob = _blob_path(az_store_url, digest)
    assert relayed[1:] == [("PUT", blob), ("HEAD", blob), ("GET", blob)]  # after the opening's
    assert all(url.startswith("http://127.0.0.1:") for _method, url in proxy.relayed)


def test_no_proxy_naming_the_endpoint_bypasses_the_proxy(
    az_store_url: str, proxy: _RecordingProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    direct = open_store(az_store_url)
    monkeypatch.delenv("NO_PROXY")
    proxied = open_store(az_store_url)
    digest = hashlib.sha256(b"weights").hexdigest()
    before = len(proxy.relayed)
    assert direct.put(os.fspath(make_file(tmp_path / "m.bin", b"weights")), digest, new_buffer(7))
    assert direct.has(digest)
    assert len(proxy.relayed) == before == 1  # only the second store's opening
    assert proxied.has(digest)
    assert [method for method, _url in proxy.relayed] == ["HEAD", "HEAD"]


def test_a_proxy_set_after_the_store_opened_is_not_used_by_it(
    az_store_url: str, proxy: _RecordingProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proxy settings are read once, when the store opens: re-read on every request, they
    cost up to a quarter of the client's CPU for a small upload."""
    store = open_store(az_store_url)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    digest = hashlib.sha256(b"weights").hexdigest()
    assert store.put(os.fspath(make_file(tmp_path / "m.bin", b"weights")), digest, new_buffer(7))
    assert store.has(digest)
    assert proxy.relayed == []


def test_the_ca_bundle_of_requests_ca_bundle_is_trusted_for_an_https_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """REQUESTS_CA_BUNDLE (read once, when the store opens) is what lets a store behind a
    private CA be reached: Azurite over HTTPS with a self-signed certificate."""
    from azure.storage.blob import BlobServiceClient

    program = azurite_program()
    if program is None:
        missing_azurite()
    cert_file, key_file = make_certificate(os.fspath(tmp_path))
    server = start_azurite(program, tls=(cert_file, key_file))
    try:
        BlobServiceClient.from_connection_string(
            server.connection_string, connection_verify=cert_file
        ).create_container("models")
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", server.connection_string)
        for name in ("CURL_CA_BUNDLE", *_PROXY_VARIABLES):
            monkeypatch.delenv(name, raising=False)
            monkeypatch.delenv(name.lower(), raising=False)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert_file)
        store = open_store("az://models")
        monkeypatch.delenv("REQUESTS_CA_BUNDLE")
        digest = hashlib.sha256(b"weights").hexdigest()
        source = make_file(tmp_path / "m.bin", b"weights")
        assert store.put(os.fspath(source), digest, new_buffer(7)) is True
        assert store.check(digest, 7, new_buffer(7)) is None
    finally:
        server.stop()
