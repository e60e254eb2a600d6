"""A home as a cache of the shared store: a version is materialised into the home's tree on
first use, laid out exactly as a registered version (``azureml-models/<name>/<version>/<entry>``,
read-only), so the home stays an Azure ML app root and deployments stay zero-copy.

Materialising copies each blob of the version's manifest into ``staging/<token>`` while hashing
it, compares size and sha256 with the manifest, and only then publishes the folder into the tree
with the same single rename as a registration (``Store.publish``). A corrupted or missing blob
is refused with nothing visible in the tree. Several processes of one home asking for the same
version at once are serialised by a per-version lock: the first one copies, the others find the
folder there. The staging token is held like a registration's, so ``doctor`` leaves a live
materialisation alone and cleans up the staging copy of a killed one.

A file whose bytes another version cached in this home already holds is hard-linked to that
file instead of being downloaded, when that file is vouched for (``modelstore.store.links``
says when that is safe); every copied file is stamped so that later versions may link to it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from modelstore.errors import IntegrityError, StorageError
from modelstore.store.fsops import READ_ONLY_FILE, fsync_dir
from modelstore.store.hashing import new_buffer
from modelstore.store.links import CachedFiles, stamp
from modelstore.store.shared import BlobStore
from modelstore.store.tree import Store


def materialise(
    store: Store,
    blobs: BlobStore,
    name: str,
    version: int,
    entry: str,
    kind: str,
    files: Sequence[tuple[str, int, str]],
    cached: CachedFiles | None = None,
) -> Path:
    """The entry of ``name:version`` in this home, copied from ``blobs`` if not cached yet.
    ``files``: the manifest, (relpath, size, sha256) with entry-prefixed relpaths. ``cached``:
    files of other versions cached here, linked to rather than downloaded again."""
    path = store.layout.entry_path(name, version, entry)
    if os.path.lexists(path):
        return path
    try:
        return _materialise(store, blobs, name, version, entry, kind, files, cached)
    except OSError as exc:  # the home itself: its locks or staging could not be written
        raise StorageError(
            f"cannot cache {name}:{version} in {store.layout.home} ({exc.strerror or exc}); "
            "check that the home is writable",
            path=os.fspath(store.layout.home),
        ) from exc


def _materialise(
    store: Store,
    blobs: BlobStore,
    name: str,
    version: int,
    entry: str,
    kind: str,
    files: Sequence[tuple[str, int, str]],
    cached: CachedFiles | None,
) -> Path:
    path = store.layout.entry_path(name, version, entry)
    with store.version_lock(name, version):
        if os.path.lexists(path):
            return path  # another process of this home materialised it meanwhile
        token = store.new_token()
        with store.token_lock(token):
            root = store.staging_path(token)
            try:
                _copy_blobs(blobs, root, entry, kind, files, f"{name}:{version}", cached)
            except BaseException:
                store.discard(token)
                raise
            return store.publish(token, name, version, entry)


def _copy_blobs(
    blobs: BlobStore,
    root: Path,
    entry: str,
    kind: str,
    files: Sequence[tuple[str, int, str]],
    subject: str,
    cached: CachedFiles | None,
) -> None:
    buffer = new_buffer()
    root.mkdir(parents=True)
    made = {os.fspath(root)}
    if kind == "folder":
        os.makedirs(root / entry, exist_ok=True)
        made.add(os.fspath(root / entry))
    for relpath, size, sha256 in files:
        target = os.path.join(root, *relpath.split("/"))
        parent = os.path.dirname(target)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        if cached is not None and cached.link_to(target, size, sha256):
            continue  # a vouched-for, read-only file of these bytes: nothing to download
        try:
            copied_size, copied = blobs.fetch(sha256, target, buffer)
        except FileNotFoundError:
            raise StorageError(
                f"{subject}: the blob of {relpath} (sha256 {sha256}) is missing from the model "
                f"store {blobs.url}; nothing was cached (the store lost it: restore it or "
                "register the version again)",
                path=relpath,
            ) from None
        if (copied_size, copied) != (size, sha256):
            raise IntegrityError(
                f"{subject}: the store's copy of {relpath} does not match the catalog "
                f"(sha256 {copied}, expected {sha256}); nothing was cached",
                hint="check the store with Registry.verify(store=True)",
                remedy="verify_store",
            )
        stamp(target, size, sha256)
        os.chmod(target, READ_ONLY_FILE)
    for folder in made - {os.fspath(root)}:
        fsync_dir(folder)
