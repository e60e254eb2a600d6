"""The shared model store: model bytes stored once by content, for every home of a registry.

``MODELSTORE_STORE_URL`` names it. A blob is one file's bytes, named by their sha256 (which the
catalog already keeps in each version's manifest), so registering the same bytes twice stores
nothing new, and what a version needs to be rebuilt in any home is its manifest (relpath, size,
sha256 of each file) plus these blobs. Each home's ``azureml-models`` tree is then a cache of
the store (see ``modelstore.store.cache``). Knows nothing of the catalog.

``az://CONTAINER[/PREFIX]`` is Azure Blob Storage (``modelstore.store.azure``);
``file:///shared/path`` is a shared POSIX folder: ``<root>/sha256/<aa>/<digest>``, each blob
written under a temporary name in ``<root>/tmp``, fsync'd and renamed into place, so a blob that
exists is complete. Two writers of the same blob both rename complete, identical files: the
last rename wins and nothing is lost. Blobs are never removed by modelstore (no garbage
collection yet: a version deleted from the catalog keeps its blobs).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import Protocol
from urllib.parse import unquote, urlparse

from modelstore.errors import InvalidArgumentError, StorageError
from modelstore.layout import STORE_URL_ENV
from modelstore.store.fsops import READ_ONLY_FILE, fsync_dir
from modelstore.store.hashing import copy_and_hash, hash_file, new_buffer
from modelstore.store.identity import IDENTITY_NAME, claimed, identity_bytes, parse_identity

__all__ = [
    "LOCAL_TREE",
    "STORE_URL_ENV",
    "BlobStore",
    "FileBlobStore",
    "open_store",
    "upload_missing",
]

LOCAL_TREE = "local"
"""What a catalog records as its store when its versions live in one home's own tree."""


class BlobStore(Protocol):
    """Where model bytes live for every home, by sha256."""

    url: str
    """The store's canonical URL: what the catalog records it belongs to."""

    def has(self, sha256: str) -> bool: ...

    def put(self, source: str, sha256: str, buffer: bytearray) -> bool:
        """Store the file ``source`` (whose bytes hash to ``sha256``) unless the blob exists;
        True if bytes were written. A source whose bytes do not match is refused."""
        ...

    def fetch(self, sha256: str, target: str, buffer: bytearray) -> tuple[int, str]:
        """Copy the blob to the new file ``target`` (fsync'd); (size, sha256 of the bytes
        copied), for the caller to compare with the manifest. FileNotFoundError if missing."""
        ...

    def check(self, sha256: str, size: int, buffer: bytearray) -> str | None:
        """None if the blob is present and its bytes match; else "missing" or "changed"."""
        ...

    def read_identity(self) -> str | None:
        """The id in the store's identity marker (``IDENTITY_NAME``); None if it has none."""
        ...

    def claim_identity(self, proposed: str) -> str:
        """Write ``proposed`` as the store's id unless it has one; the id it has now (of two
        first opens at once, one id wins, and both get it)."""
        ...


class FileBlobStore:
    """A store in a (shared) POSIX folder; see the module docstring."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.url = f"file://{self.root}"

    def blob_path(self, sha256: str) -> str:
        _check_digest(sha256)
        return os.path.join(self.root, "sha256", sha256[:2], sha256)

    def has(self, sha256: str) -> bool:
        return os.path.isfile(self.blob_path(sha256))

    def put(self, source: str, sha256: str, buffer: bytearray) -> bool:
        target = self.blob_path(sha256)
        if os.path.isfile(target):
            return False
        try:
            temporary_dir = os.path.join(self.root, "tmp")
            os.makedirs(temporary_dir, exist_ok=True)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            temporary = os.path.join(temporary_dir, f"{os.getpid()}-{uuid.uuid4().hex}")
            try:
                _size, copied = copy_and_hash(source, temporary, buffer)
                if copied != sha256:
                    raise StorageError(
                        f"{source} changed while it was being stored (sha256 {copied}, not "
                        f"{sha256}); register it again once it is complete",
                        path=source,
                    )
                os.chmod(temporary, READ_ONLY_FILE)
                os.rename(temporary, target)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
            fsync_dir(os.path.dirname(target))
        except OSError as exc:
            raise self._write_error(exc) from exc
        return True

    def fetch(self, sha256: str, target: str, buffer: bytearray) -> tuple[int, str]:
        return copy_and_hash(self.blob_path(sha256), target, buffer)

    def read_identity(self) -> str | None:
        try:
            with open(os.path.join(self.root, IDENTITY_NAME), "rb") as marker:
                return parse_identity(marker.read(), self.url)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(
                f"cannot read the model store {self.url}'s identity ({exc.strerror or exc}); "
                "check that the folder is readable",
                path=self.root,
            ) from exc

    def claim_identity(self, proposed: str) -> str:
        """Written whole under a temporary name, then hard-linked to the marker's name, which
        fails if it exists: the marker appears complete, once."""
        target = os.path.join(self.root, IDENTITY_NAME)
        temporary = os.path.join(self.root, f".{IDENTITY_NAME}.{os.getpid()}-{uuid.uuid4().hex}")
        try:
            try:
                with open(temporary, "xb") as writer:
                    writer.write(identity_bytes(proposed))
                    writer.flush()
                    os.fsync(writer.fileno())
                os.chmod(temporary, READ_ONLY_FILE)
                with contextlib.suppress(FileExistsError):
                    os.link(temporary, target)
                    fsync_dir(self.root)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
        except OSError as exc:
            raise self._write_error(exc) from exc
        return claimed(self.read_identity(), self.url, "files in that folder")

    def _write_error(self, exc: OSError) -> StorageError:
        return StorageError(
            f"cannot write to the model store {self.url} ({exc.strerror or exc}); check "
            "that the folder exists and is writable (nothing was registered)",
            path=self.root,
        )

    def check(self, sha256: str, size: int, buffer: bytearray) -> str | None:
        path = self.blob_path(sha256)
        try:
            if os.path.getsize(path) != size:
                return "changed"
            return None if hash_file(path, buffer)[1] == sha256 else "changed"
        except FileNotFoundError:
            return "missing"
        except OSError:
            return "changed"


def store_url(url: str) -> str:
    """The store a ``MODELSTORE_STORE_URL`` names, written one way (``file:///root``,
    ``az://CONTAINER[/PREFIX]``), without reaching it: what a catalog records and compares.
    One-line InvalidArgumentError for a URL that names no store."""
    return _parse_store_url(url)[0]


def open_store(url: str) -> BlobStore:
    """The store a ``MODELSTORE_STORE_URL`` names, reached (a missing folder, container or
    credentials are one line here); one-line InvalidArgumentError for a bad URL."""
    _canonical, kind, where, prefix = _parse_store_url(url)
    if kind == "file":
        if not os.path.isdir(where):
            raise StorageError(
                f"the model store folder {where} ({STORE_URL_ENV}) does not exist; create it "
                "(shared by every home of the registry) or fix the URL",
                path=where,
            )
        return FileBlobStore(where)
    from modelstore.store.azure import open_azure_store

    return open_azure_store(where, prefix)


def _parse_store_url(url: str) -> tuple[str, str, str, str]:
    """(canonical URL, "file" or "az", folder or container, prefix)."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost") or not parsed.path.startswith("/"):
            raise InvalidArgumentError(
                f"{STORE_URL_ENV}={url!r} is not a file URL of an absolute folder; write it "
                "as file:///shared/path"
            )
        root = os.path.abspath(os.path.normpath(unquote(parsed.path)))
        return f"file://{root}", "file", root, ""
    if parsed.scheme == "az":
        if not parsed.netloc or parsed.query or parsed.fragment:
            raise InvalidArgumentError(
                f"{STORE_URL_ENV}={url!r} is not an Azure Blob store URL; write it as "
                "az://CONTAINER or az://CONTAINER/PREFIX"
            )
        prefix = unquote(parsed.path).strip("/")
        return (
            f"az://{parsed.netloc}" + (f"/{prefix}" if prefix else ""),
            "az",
            parsed.netloc,
            prefix,
        )
    raise InvalidArgumentError(
        f"{STORE_URL_ENV}={url!r} is not a supported store: use file:///shared/path or "
        "az://CONTAINER[/PREFIX]"
    )


PROBE_MIN_SIZE = 1024 * 1024
"""From this size, ``upload_missing`` asks the store whether it has a blob before sending it.
A smaller file goes straight to ``put``, which stores nothing when the blob exists (a file
store looks first, Azure's upload is conditional): sending it costs about what the extra round
trip would, and on Azure that round trip was half the requests of a small registration."""


def upload_missing(store: BlobStore, files: list[tuple[str, str]]) -> int:
    """Upload each (local path, sha256) not yet in ``store``; the number of blobs written."""
    sizes = [os.path.getsize(path) for path, _sha256 in files]
    buffer: bytearray | None = None  # allocated only if something is uploaded
    written = 0
    seen: set[str] = set()
    for (path, sha256), size in zip(files, sizes, strict=True):
        if sha256 in seen:
            continue
        if size >= PROBE_MIN_SIZE and store.has(sha256):
            continue
        seen.add(sha256)
        if buffer is None:  # one for all, as large as the largest file needs
            buffer = new_buffer(max(sizes))
        written += store.put(path, sha256, buffer)
    return written


def _check_digest(sha256: str) -> None:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
