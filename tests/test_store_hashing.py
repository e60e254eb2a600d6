"""modelstore.store.hashing against hashlib: the digest is of the bytes stored, on every path."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from modelstore.store import hashing, manifest_digest


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def copy(tmp_path: Path, data: bytes) -> tuple[int, str, list[int], bytes]:
    """Copy ``data`` through copy_and_hash; returns (size, sha256, chunk counts, bytes stored)."""
    source, target = tmp_path / "source.bin", tmp_path / "target.bin"
    source.write_bytes(data)
    chunks: list[int] = []
    size, sha256 = hashing.copy_and_hash(
        os.fspath(source), os.fspath(target), hashing.new_buffer(), chunks.append
    )
    return size, sha256, chunks, target.read_bytes()


@pytest.mark.parametrize("length", [0, 1, 4096, hashing.BUFFER_SIZE + 17])
def test_a_copy_stores_the_bytes_and_returns_their_size_and_sha256(
    tmp_path: Path, length: int
) -> None:
    data = os.urandom(length)

    size, sha256, chunks, stored = copy(tmp_path, data)

    assert stored == data
    assert (size, sha256) == (length, sha256_of(data))
    assert sum(chunks) == length
    assert all(count > 0 for count in chunks)


@pytest.fixture
def small_pipeline(monkeypatch: pytest.MonkeyPatch) -> list[threading.Thread]:
    """The threaded path for files of a few hundred KB, with many buffer swaps and writebacks;
    records the hashing threads it starts, to prove the copy took that path."""
    monkeypatch.setattr(hashing, "PIPELINE_MIN_SIZE", 64 * 1024)
    monkeypatch.setattr(hashing, "BUFFER_SIZE", 8 * 1024)
    monkeypatch.setattr(hashing, "WRITEBACK_STEP", 24 * 1024)
    started: list[threading.Thread] = []
    real_start = threading.Thread.start

    def recording_start(thread: threading.Thread, *args: Any, **kwargs: Any) -> None:
        started.append(thread)
        real_start(thread, *args, **kwargs)

    monkeypatch.setattr(threading.Thread, "start", recording_start)
    return started


@pytest.mark.parametrize("length", [64 * 1024, 64 * 1024 + 1, 300 * 1024 + 5])
def test_the_threaded_copy_of_a_large_file_hashes_every_chunk_in_order(
    tmp_path: Path, small_pipeline: list[threading.Thread], length: int
) -> None:
    # Distinct chunks: a buffer reused before its hash was taken, or chunks hashed out of
    # order, give another digest.
    data = b"".join(index.to_bytes(4, "big") * 2048 for index in range(length // 8192 + 1))
    data = data[:length]

    size, sha256, chunks, stored = copy(tmp_path, data)

    assert stored == data
    assert (size, sha256) == (length, sha256_of(data))
    assert chunks and max(chunks) <= 8 * 1024 and sum(chunks) == length
    assert [t.name.startswith("modelstore-hash") for t in small_pipeline] == [True]


def test_a_file_just_below_the_threshold_is_copied_without_a_thread(
    tmp_path: Path, small_pipeline: list[threading.Thread]
) -> None:
    data = os.urandom(64 * 1024 - 1)

    size, sha256, _chunks, stored = copy(tmp_path, data)

    assert (size, sha256, stored) == (len(data), sha256_of(data), data)
    assert small_pipeline == []


def test_a_real_size_large_file_takes_the_threaded_path_and_matches_hashlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = hashing._copy_pipelined

    def counting(*args: Any) -> int:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(hashing, "_copy_pipelined", counting)
    data = os.urandom(hashing.PIPELINE_MIN_SIZE + hashing.BUFFER_SIZE // 2)

    size, sha256, _chunks, stored = copy(tmp_path, data)

    assert calls == [1]
    assert (size, sha256) == (len(data), sha256_of(data))
    assert stored == data


@pytest.mark.parametrize("length", [0, 8191, 300 * 1024 + 5])
def test_hashing_a_source_reads_it_once_writes_nothing_and_matches_hashlib(
    tmp_path: Path, length: int
) -> None:
    data = b"".join(index.to_bytes(4, "big") * 2048 for index in range(length // 8192 + 1))
    source = tmp_path / "source.bin"
    source.write_bytes(data[:length])
    chunks: list[int] = []

    size, sha256 = hashing.hash_source(os.fspath(source), bytearray(8192), chunks.append)

    assert (size, sha256) == (length, sha256_of(data[:length]))
    assert sum(chunks) == length and all(chunk <= 8192 for chunk in chunks)
    assert os.listdir(tmp_path) == ["source.bin"]


def test_hashing_a_missing_source_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        hashing.hash_source(os.fspath(tmp_path / "gone.bin"), bytearray(8192))
    assert caught.value.filename == os.fspath(tmp_path / "gone.bin")


def test_a_copy_never_overwrites_an_existing_target(tmp_path: Path) -> None:
    source, target = tmp_path / "source.bin", tmp_path / "target.bin"
    source.write_bytes(b"new")
    target.write_bytes(b"someone else's model")

    with pytest.raises(FileExistsError):
        hashing.copy_and_hash(os.fspath(source), os.fspath(target), hashing.new_buffer())

    assert target.read_bytes() == b"someone else's model"


def test_a_missing_source_error_names_the_source(tmp_path: Path) -> None:
    # stage() tells the user's unreadable model from an unwritable store by this file name.
    source = tmp_path / "gone.bin"
    with pytest.raises(FileNotFoundError) as caught:
        hashing.copy_and_hash(
            os.fspath(source), os.fspath(tmp_path / "target.bin"), hashing.new_buffer()
        )
    assert caught.value.filename == os.fspath(source)
    assert not (tmp_path / "target.bin").exists()


@pytest.mark.parametrize("buffer_size", [None, 7, 4096])
def test_hash_file_matches_hashlib_whatever_the_buffer(
    tmp_path: Path, buffer_size: int | None
) -> None:
    data = os.urandom(100_003)
    path = tmp_path / "stored.bin"
    path.write_bytes(data)
    buffer = None if buffer_size is None else bytearray(buffer_size)

    assert hashing.hash_file(os.fspath(path), buffer) == (len(data), sha256_of(data))


def test_hash_file_of_an_empty_file_is_the_empty_digest(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    assert hashing.hash_file(os.fspath(path)) == (0, sha256_of(b""))


FILES = [("m/a.txt", 1, sha256_of(b"a")), ("m/sub/b.txt", 1, sha256_of(b"b"))]


def test_the_manifest_digest_does_not_depend_on_the_order_of_the_files() -> None:
    assert manifest_digest(FILES) == manifest_digest(list(reversed(FILES)))
    expected = hashlib.sha256(
        b"".join(f"{path}\0{size}\0{sha}\n".encode() for path, size, sha in FILES)
    ).hexdigest()
    assert manifest_digest(FILES) == expected


@pytest.mark.parametrize(
    "changed",
    [
        [("m/A.txt", 1, FILES[0][2]), FILES[1]],
        [("m/a.txt", 2, FILES[0][2]), FILES[1]],
        [("m/a.txt", 1, sha256_of(b"x")), FILES[1]],
        [FILES[0]],
        [*FILES, ("m/c.txt", 0, sha256_of(b""))],
    ],
)
def test_the_manifest_digest_changes_with_any_path_size_hash_or_file_count(
    changed: list[tuple[str, int, str]],
) -> None:
    assert manifest_digest(changed) != manifest_digest(FILES)
