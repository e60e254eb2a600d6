"""Copy-while-hashing and the manifest digest.

The source is read once: every chunk read is hashed and written from the same reusable buffer,
so the digest is of the bytes actually stored, and a 200 MB model costs one read, one hash and
one write (no second pass).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable

BUFFER_SIZE = 4 * 1024 * 1024


def new_buffer() -> bytearray:
    return bytearray(BUFFER_SIZE)


def copy_and_hash(
    source: str,
    target: str,
    buffer: bytearray,
    on_bytes: Callable[[int], None] | None = None,
) -> tuple[int, str]:
    """Copy ``source`` to the new file ``target`` (which must not exist), fsync it, and return
    (bytes copied, sha256 hex of those bytes)."""
    digest = hashlib.sha256()
    view = memoryview(buffer)
    total = 0
    with open(source, "rb", buffering=0) as reader, open(target, "xb", buffering=0) as writer:
        while True:
            count = reader.readinto(view)
            if not count:
                break
            chunk = view[:count]
            digest.update(chunk)
            written = 0
            while written < count:
                written += writer.write(chunk[written:]) or 0
            total += count
            if on_bytes is not None:
                on_bytes(count)
        os.fsync(writer.fileno())
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
