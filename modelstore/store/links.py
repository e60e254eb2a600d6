"""Hard links between versions cached in one home of a shared registry.

With a shared store, re-registering bytes the store already holds needs no upload, and the
registering home usually has those bytes too: in an earlier version of the name, in its tree.
The new version's file is then a hard link to that cached file instead of a copy, so the
registration costs one read of the source to hash it and nothing else (``bench/shared_store.py``
measures it). Materialising a version from the store links the same way, instead of downloading.

Why a link is safe there, and only there:

- A stored file is read-only (0o444, its folders 0o555) and modelstore never writes one again:
  it only renames folders and unlinks files. A link adds a second name to bytes nobody writes;
  deleting either version unlinks one name and the other keeps the bytes.
- What a link does change is the reach of damage: a write that ignores the read-only mode (root,
  or after a chmod) changes every version sharing the file, and ``verify`` reports each of them.
  In a home's own tree (no shared store) the tree is the only copy of each version, so there
  every version keeps its own copy and nothing is ever linked. With a shared store the tree is
  a cache: the store keeps its own copy of every byte (never a link to a home's file), so a
  damaged cached file costs a new copy, not the model.
- Damage must not spread by linking. A file is a link source only if it is *vouched for*: when
  modelstore wrote it (a registration's copy, or a blob materialised from the store) it hashed
  the bytes it wrote, and it recorded that sha256, the size and the file's modification time in
  an extended attribute of the file (``user.modelstore.content``) before making it read-only.
  A later write changes the modification time, so the record no longer matches and the file is
  copied, never linked. Where extended attributes are not supported (or were lost), nothing is
  vouched for and every version is copied as before.
- A link needs both names on one file system (the home's); otherwise, or on any failure to
  link, the bytes are copied.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterable

from modelstore.store.fsops import READ_ONLY_FILE
from modelstore.store.hashing import hash_source
from modelstore.store.shared import BlobStore
from modelstore.store.sources import SourceFile

STAMP_ATTRIBUTE = "user.modelstore.content"


def _stamp_text(size: int, sha256: str, mtime_ns: int) -> bytes:
    return f"sha256={sha256} size={size} mtime_ns={mtime_ns}".encode()


def stamp(path: str, size: int, sha256: str) -> None:
    """Vouch for the file modelstore just wrote and hashed (``size``, ``sha256``); call it
    before making the file read-only (setting an attribute needs write access). A file system
    without user extended attributes simply leaves the file unvouched."""
    setxattr = getattr(os, "setxattr", None)
    if setxattr is None:
        return
    with contextlib.suppress(OSError):
        setxattr(path, STAMP_ATTRIBUTE, _stamp_text(size, sha256, os.stat(path).st_mtime_ns))


def vouched(path: str, size: int, sha256: str) -> bool:
    """True if ``path`` is a read-only regular file whose stamp says it holds these bytes and
    which was not written since it was stamped."""
    getxattr = getattr(os, "getxattr", None)
    if getxattr is None:
        return False
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or stat.S_IMODE(info.st_mode) != READ_ONLY_FILE:
            return False
        if info.st_size != size:
            return False
        recorded = getxattr(path, STAMP_ATTRIBUTE, follow_symlinks=False)
    except OSError:
        return False
    return bool(recorded == _stamp_text(size, sha256, info.st_mtime_ns))


def link(existing: str, target: str) -> bool:
    """Hard-link ``existing`` as the new file ``target``; False when it cannot be (another file
    system, a link limit, ``existing`` removed meanwhile...), for the caller to copy instead."""
    try:
        os.link(existing, target, follow_symlinks=False)
    except OSError:
        return False
    return True


class CachedFiles:
    """Files of versions cached in this home, by content, that a new file may link to."""

    def __init__(self, files: Iterable[tuple[str, int, str]]) -> None:
        """``files``: (path in this home's tree, size, sha256) from the catalog's manifests;
        a path need not exist (a version not cached here is simply not linked to)."""
        self._paths: dict[tuple[int, str], list[str]] = {}
        for path, size, sha256 in files:
            self._paths.setdefault((size, sha256), []).append(path)
        self.sizes = {size for size, _sha256 in self._paths}

    def holds(self, size: int, sha256: str) -> bool:
        return (size, sha256) in self._paths

    def link_to(self, target: str, size: int, sha256: str) -> bool:
        """Link ``target`` to a vouched-for cached file holding these bytes, if there is one."""
        return any(
            vouched(path, size, sha256) and link(path, target)
            for path in self._paths.get((size, sha256), ())
        )


class SourceLinker:
    """``Store.stage``'s ``link`` step for a registration with a shared store: a source file
    whose size matches a cached file's is hashed first (reading it once, writing nothing), and
    if its bytes are cached and the store holds their blob, the staged file is a link to the
    cached one. Otherwise the caller copies it as usual (one more read of the source, only for
    a file of a cached size whose bytes turned out different)."""

    def __init__(self, blobs: BlobStore, cached: CachedFiles) -> None:
        self._blobs = blobs
        self._cached = cached
        self._in_store: dict[str, bool] = {}
        self.linked: set[str] = set()
        """Relpaths staged as links: their blobs are in the store, nothing to upload."""

    def __call__(
        self,
        source: SourceFile,
        target: str,
        on_bytes: Callable[[int], None] | None,
        buffer: bytearray,
    ) -> tuple[int, str] | None:
        if source.size not in self._cached.sizes:
            return None
        size, sha256 = hash_source(source.source, buffer, on_bytes)
        if not self._cached.holds(size, sha256) or not self._has(sha256):
            return None
        if not self._cached.link_to(target, size, sha256):
            return None
        self.linked.add(source.relpath)
        return size, sha256

    def _has(self, sha256: str) -> bool:
        if sha256 not in self._in_store:
            self._in_store[sha256] = self._blobs.has(sha256)
        return self._in_store[sha256]
