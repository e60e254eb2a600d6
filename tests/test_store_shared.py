"""The shared model store: blobs by sha256 in a (shared) POSIX folder."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from modelstore.errors import InvalidArgumentError, StorageError
from modelstore.store.hashing import BUFFER_SIZE, SMALL_BUFFER_SIZE, new_buffer
from modelstore.store.identity import IDENTITY_NAME
from modelstore.store.shared import (
    PROBE_MIN_SIZE,
    FileBlobStore,
    open_store,
    upload_missing,
)


def _file(path: Path, data: bytes) -> tuple[str, str]:
    path.write_bytes(data)
    return os.fspath(path), hashlib.sha256(data).hexdigest()


def test_a_blob_is_stored_under_its_sha256_read_only_and_complete(tmp_path: Path) -> None:
    store = FileBlobStore(os.fspath(tmp_path / "store"))
    source, digest = _file(tmp_path / "m.bin", b"weights")
    assert store.put(source, digest, new_buffer()) is True
    blob = tmp_path / "store" / "sha256" / digest[:2] / digest
    assert blob.read_bytes() == b"weights"
    assert blob.stat().st_mode & 0o777 == 0o444
    assert os.listdir(tmp_path / "store" / "tmp") == []  # no temporary file is left
    assert store.has(digest)


def test_storing_bytes_the_store_already_holds_writes_nothing(tmp_path: Path) -> None:
    store = FileBlobStore(os.fspath(tmp_path / "store"))
    first, digest = _file(tmp_path / "a.bin", b"same")
    second, _ = _file(tmp_path / "b.bin", b"same")
    assert upload_missing(store, [(first, digest)]) == 1
    blob = Path(store.blob_path(digest))
    before = blob.stat()
    assert upload_missing(store, [(second, digest), (first, digest)]) == 0
    assert (blob.stat().st_ino, blob.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


class _ProbedStore(FileBlobStore):
    """A file store that records which blobs it was asked about."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.probes: list[str] = []

    def has(self, sha256: str) -> bool:
        self.probes.append(sha256)
        return super().has(sha256)


def test_a_small_file_is_sent_without_asking_the_store_first_and_a_large_one_is_asked_about(
    tmp_path: Path,
) -> None:
    store = _ProbedStore(os.fspath(tmp_path / "store"))
    small = _file(tmp_path / "small.bin", b"w" * 4096)
    large = _file(tmp_path / "large.bin", os.urandom(PROBE_MIN_SIZE))
    assert upload_missing(store, [small, large]) == 2
    assert store.probes == [large[1]]
    assert upload_missing(store, [small, large]) == 0  # the small one is refused by put itself
    assert store.probes == [large[1], large[1]]


class _BufferRecordingStore(FileBlobStore):
    """A file store that records the buffer each put was given."""

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.buffers: list[bytearray] = []

    def put(self, source: str, sha256: str, buffer: bytearray) -> bool:
        self.buffers.append(buffer)
        return super().put(source, sha256, buffer)


@pytest.mark.parametrize(
    ("sizes", "buffer_size"),
    [
        ([8 * 1024], SMALL_BUFFER_SIZE),  # not 4 MiB of page faults for an 8 KB file
        ([8 * 1024, 300 * 1024 + 5], 300 * 1024 + 5),
        ([BUFFER_SIZE + 17, 10], BUFFER_SIZE),  # read in two chunks
    ],
)
def test_uploads_share_one_buffer_only_as_large_as_the_largest_file_needs(
    tmp_path: Path, sizes: list[int], buffer_size: int
) -> None:
    store = _BufferRecordingStore(os.fspath(tmp_path / "store"))
    datas = [os.urandom(size) for size in sizes]
    files = [_file(tmp_path / f"{index}.bin", data) for index, data in enumerate(datas)]
    assert upload_missing(store, files) == len(files)
    assert [len(buffer) for buffer in store.buffers] == [buffer_size] * len(files)
    assert all(buffer is store.buffers[0] for buffer in store.buffers)
    for (_path, digest), data in zip(files, datas, strict=True):
        assert Path(store.blob_path(digest)).read_bytes() == data


def test_a_source_whose_bytes_are_not_the_given_sha256_is_refused_and_leaves_no_blob(
    tmp_path: Path,
) -> None:
    store = FileBlobStore(os.fspath(tmp_path / "store"))
    source, _ = _file(tmp_path / "m.bin", b"changed since it was hashed")
    wrong = hashlib.sha256(b"what was hashed").hexdigest()
    with pytest.raises(StorageError, match="changed while it was being stored"):
        store.put(source, wrong, new_buffer())
    assert not store.has(wrong)
    assert os.listdir(tmp_path / "store" / "tmp") == []


def test_check_tells_a_missing_blob_from_a_changed_one(tmp_path: Path) -> None:
    store = FileBlobStore(os.fspath(tmp_path / "store"))
    source, digest = _file(tmp_path / "m.bin", b"weights")
    store.put(source, digest, new_buffer())
    assert store.check(digest, 7, new_buffer()) is None
    blob = Path(store.blob_path(digest))
    blob.chmod(0o644)
    blob.write_bytes(b"weightz")  # same size, other bytes
    assert store.check(digest, 7, new_buffer()) == "changed"
    assert store.check(hashlib.sha256(b"x").hexdigest(), 1, new_buffer()) == "missing"


def test_a_file_url_opens_a_store_in_that_folder(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}/")
    assert store.url == f"file://{tmp_path}"  # canonical: what the catalog records


@pytest.mark.parametrize(
    ("url", "error", "message"),
    [
        ("file://relative/path", InvalidArgumentError, "not a file URL of an absolute folder"),
        ("s3://bucket", InvalidArgumentError, "use file:///shared/path or az://CONTAINER"),
        ("az:///prefix-without-container", InvalidArgumentError, "az://CONTAINER/PREFIX"),
        ("file:///no/such/folder", StorageError, "does not exist"),
    ],
)
def test_a_store_url_that_names_no_usable_store_is_one_line(
    url: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message) as caught:
        open_store(url)
    assert "\n" not in str(caught.value)


def test_of_several_first_claims_of_a_stores_identity_one_wins_and_all_get_it(
    tmp_path: Path,
) -> None:
    import threading

    store = FileBlobStore(str(tmp_path))
    assert store.read_identity() is None
    barrier = threading.Barrier(8)
    got: list[str] = []

    def claim(index: int) -> None:
        barrier.wait()
        got.append(store.claim_identity(f"id-{index}"))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 8 and len(set(got)) == 1 and got[0].startswith("id-")
    assert store.read_identity() == got[0] == store.claim_identity("later")
    assert sorted(os.listdir(tmp_path)) == [IDENTITY_NAME]  # no temporary left behind
    assert os.stat(tmp_path / IDENTITY_NAME).st_mode & 0o222 == 0  # read-only, as blobs are


def test_a_damaged_identity_marker_is_one_line(tmp_path: Path) -> None:
    (tmp_path / IDENTITY_NAME).write_text("{not json")
    with pytest.raises(StorageError) as caught:
        FileBlobStore(str(tmp_path)).read_identity()
    assert str(caught.value) == (
        f"the model store file://{tmp_path} has a damaged identity marker {IDENTITY_NAME}; "
        'nothing was changed (rewrite it as {"store_id": "ID"} with the ID its catalog '
        "records: SELECT value FROM catalog_info WHERE key = 'model_store_id')"
    )
