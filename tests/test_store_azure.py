"""The shared model store in Azure Blob Storage, against Azurite (Microsoft's emulator)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from azurite import Azurite, azurite_program, missing_azurite, start_azurite
from registry_helpers import child_command, make_file, make_model_dir, tree_files, wait_for

from modelstore import Registry
from modelstore.errors import IntegrityError, StorageError
from modelstore.store.hashing import new_buffer
from modelstore.store.shared import open_store

pytestmark = pytest.mark.azurite


def _container(az_store_url: str) -> object:
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(
        os.environ["AZURE_STORAGE_CONNECTION_STRING"]
    )
    return service.get_container_client(az_store_url.removeprefix("az://").split("/")[0])


def _blob_names(az_store_url: str) -> list[str]:
    return sorted(b.name for b in _container(az_store_url).list_blobs())  # type: ignore[attr-defined]


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


def test_a_missing_container_or_connection_string_is_one_line(
    az_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(StorageError, match="the container 'no-such-container' does not exist"):
        open_store("az://no-such-container")
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    with pytest.raises(StorageError, match="needs AZURE_STORAGE_CONNECTION_STRING") as caught:
        open_store(az_store_url)
    assert "\n" not in str(caught.value)


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
    first.stop(keep_data=True)  # the container saved, as a long-lived storage account has it
    server: Azurite = start_azurite(program, first.folder, first.port)
    restarted: Azurite | None = None
    try:
        catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
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
        assert list(container.list_blobs()) == []  # uncommitted blocks are no blob
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
