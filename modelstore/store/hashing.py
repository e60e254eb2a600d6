"""Copy-while-hashing and the manifest digest.

The source is read once: every chunk read is hashed and written from the same reusable buffer,
so the digest is of the bytes actually stored, and a 200 MB model costs one read, one hash and
one write (no second pass).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterable
from io import FileIO
from typing import Any

BUFFER_SIZE = 4 * 1024 * 1024
PIPELINE_MIN_SIZE = 16 * 1024 * 1024
"""Files from this size are hashed on a second thread while being copied."""
WRITEBACK_STEP = 32 * 1024 * 1024


SMALL_BUFFER_SIZE = 64 * 1024


def new_buffer(largest: int | None = None) -> bytearray:
    """A buffer for copying files of up to ``largest`` bytes (any size if None): no larger than
    they need (a 4 MiB buffer is about 0.5 ms of page faults, more than an 8 KB file costs to
    copy), and never under 64 KiB. The copy loops until the end of the file whatever the
    buffer's size, so a file that is larger than announced is still read whole."""
    if largest is None:
        return bytearray(BUFFER_SIZE)
    return bytearray(min(max(largest, SMALL_BUFFER_SIZE), BUFFER_SIZE))


def copy_and_hash(
    source: str,
    target: str,
    buffer: bytearray,
    on_bytes: Callable[[int], None] | None = None,
) -> tuple[int, str]:
    """Copy ``source`` to the new file ``target`` (which must not exist), fsync it, and return
    (bytes copied, sha256 hex of those bytes)."""
    digest = hashlib.sha256()
    with open(source, "rb", buffering=0) as reader, open(target, "xb", buffering=0) as writer:
        if os.fstat(reader.fileno()).st_size >= PIPELINE_MIN_SIZE:
            total = _copy_pipelined(reader, writer, digest, on_bytes)
        else:
            total = _copy_simple(reader, writer, digest, memoryview(buffer), on_bytes)
        os.fsync(writer.fileno())
    return total, digest.hexdigest()


def _copy_simple(
    reader: FileIO,
    writer: FileIO | None,
    digest: Any,
    view: memoryview,
    on_bytes: Callable[[int], None] | None,
) -> int:
    total = 0
    while True:
        count = _read_into(reader, view)
        if not count:
            return total
        chunk = view[:count]
        digest.update(chunk)
        if writer is not None:
            _write_all(writer, chunk)
        total += count
        if on_bytes is not None:
            on_bytes(count)


def _copy_pipelined(
    reader: FileIO,
    writer: FileIO,
    digest: Any,
    on_bytes: Callable[[int], None] | None,
    pair: list[bytearray] | None = None,
) -> int:
    """Large files: hash chunk N on a worker thread (hashlib releases the GIL) while this
    thread writes chunk N and reads chunk N+1 into the other buffer, and ask the kernel to
    start writing back every few MB so the final fsync does not pay for the whole file. The
    copy then costs about as much as hashing alone. ``pair``: two buffers reused from file
    to file (fresh ones cost a page fault per 4 KB, about 5% of an import's time)."""
    from concurrent.futures import Future, ThreadPoolExecutor

    if pair is None:
        pair = [bytearray(BUFFER_SIZE) for _ in range(2)]
    buffers = [memoryview(b) for b in pair]
    hashing: list[Future[None] | None] = [None, None]
    total = flushed = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelstore-hash") as pool:
        try:
            slot = 0
            while True:
                previous = hashing[slot]
                if previous is not None:
                    previous.result()  # this buffer's last chunk is hashed: reuse it
                count = _read_into(reader, buffers[slot])
                if not count:
                    break
                chunk = buffers[slot][:count]
                hashing[slot] = pool.submit(digest.update, chunk)
                _write_all(writer, chunk)
                total += count
                if total - flushed >= WRITEBACK_STEP:
                    start_writeback(writer.fileno(), flushed, total - flushed)
                    flushed = total
                if on_bytes is not None:
                    on_bytes(count)
                slot ^= 1
        finally:
            for pending in hashing:
                if pending is not None:
                    pending.result()
    return total


def _read_into(reader: FileIO, view: memoryview) -> int:
    """A failed read names the source file, so the caller can tell a model that cannot be read
    (the user's problem) from a store that cannot be written (the registry's)."""
    try:
        return reader.readinto(view) or 0
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, reader.name) from exc


def _write_all(writer: FileIO, chunk: memoryview) -> None:
    written = 0
    while written < len(chunk):
        written += writer.write(chunk[written:]) or 0


def start_writeback(fd: int, offset: int, length: int) -> None:
    """POSIX_FADV_DONTNEED starts asynchronous writeback of those dirty pages on Linux; where it
    is unavailable the final fsync simply does all the work."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:
        return
    with contextlib.suppress(OSError, ValueError):
        advise(fd, offset, length, os.POSIX_FADV_DONTNEED)


def hash_source(
    path: str, buffer: bytearray, on_bytes: Callable[[int], None] | None = None
) -> tuple[int, str]:
    """(size, sha256 hex) of a file about to be registered, reading it once and writing
    nothing. On this thread: with nothing to write, a second thread could only overlap the
    reads (a memory copy from the page cache), and on a loaded machine its hand-offs cost more
    than that (measured with bench/shared_store.py). A failed read names ``path`` (see
    ``_read_into``)."""
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as reader:
        total = _copy_simple(reader, None, digest, memoryview(buffer), on_bytes)
    return total, digest.hexdigest()


def hash_file(path: str, buffer: bytearray | None = None) -> tuple[int, str]:
    """(size, sha256 hex) of a stored file, for verify."""
    digest = hashlib.sha256()
    view = memoryview(buffer if buffer is not None else new_buffer())
    total = 0
    with open(path, "rb", buffering=0) as reader:
        while True:
            count = reader.readinto(view)
            if not count:
                break
            digest.update(view[:count])
            total += count
    return total, digest.hexdigest()


def manifest_digest(files: Iterable[tuple[str, int, str]]) -> str:
    """One sha256 over the sorted (relative path, size, sha256) lines: equal digests mean equal
    entries, whatever the order files were copied in."""
    digest = hashlib.sha256()
    for relpath, size, sha256 in sorted(files):
        digest.update(f"{relpath}\0{size}\0{sha256}\n".encode())
    return digest.hexdigest()


def copy_stream_and_hash(
    reader: Any,
    target: str,
    on_bytes: Callable[[int], None] | None = None,
    *,
    size: int | None = None,
    buffers: list[bytearray] | None = None,
    fsync: bool = True,
) -> tuple[int, str]:
    """``copy_and_hash`` for an already open reader with ``readinto`` (a member of an archive
    being imported), to the new file ``target``. ``size`` (what the reader should hold) below
    ``PIPELINE_MIN_SIZE`` copies on this thread: a second thread per small file costs more
    than it saves. ``buffers`` (two of ``BUFFER_SIZE``) are reused by every call given them.
    ``fsync=False`` leaves the fsync to the caller, who must do it before the file becomes
    visible (an import fsyncs all its files once they are written, so a version of many small
    files is not one journal commit per file)."""
    digest = hashlib.sha256()
    with open(target, "xb", buffering=0) as writer:
        if size is not None and size < PIPELINE_MIN_SIZE:
            view = memoryview(buffers[0] if buffers else new_buffer())
            total = _copy_simple(reader, writer, digest, view, on_bytes)
        else:
            total = _copy_pipelined(reader, writer, digest, on_bytes, buffers)
        if fsync:
            os.fsync(writer.fileno())
    return total, digest.hexdigest()


def fsync_file(path: str) -> None:
    """Make a file's data durable through a new descriptor (fsync applies to the file, not to
    the descriptor it was written through)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
