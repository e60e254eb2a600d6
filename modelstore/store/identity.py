"""The shared store's identity marker: which store a catalog belongs to, beyond its URL.

Its own module because both store kinds (``shared`` for POSIX folders, ``azure``) write and
read it, and ``shared`` opens ``azure``: neither may import the other back.
"""

from __future__ import annotations

import json

from modelstore.errors import StorageError

IDENTITY_NAME = "modelstore-store.json"
"""The store's identity marker, at its root (beside ``sha256/``): ``{"store_id": "<hex>"}``,
written once by the first registry that opens the store for writing and never changed. A URL
names a store only as seen with one set of credentials or mounts: ``az://models`` is another
store in another storage account, and ``file:///shared/models`` another folder on a machine
that mounts another server there. The catalog records the id it was first opened with, and a
home that reaches a store with another id, or none, is refused before it writes anything."""


def identity_bytes(store_id: str) -> bytes:
    return (json.dumps({"store_id": store_id}) + "\n").encode()


def parse_identity(data: bytes, url: str) -> str:
    """The id in a marker's bytes; a marker that is not one is one StorageError line."""
    try:
        store_id = json.loads(data)["store_id"]
    except (ValueError, TypeError, KeyError):
        store_id = None
    if not isinstance(store_id, str) or not store_id:
        raise StorageError(
            f"the model store {url} has a damaged identity marker {IDENTITY_NAME}; nothing "
            'was changed (rewrite it as {"store_id": "ID"} with the ID its catalog records: '
            "SELECT value FROM catalog_info WHERE key = 'model_store_id')",
            path=url,
        )
    return store_id


def claimed(found: str | None, url: str, where: str) -> str:
    """The id a store holds just after a claim wrote it (or saw another's); ``where`` names who
    else could have removed the marker meanwhile, for the message."""
    if found is None:
        raise StorageError(
            f"the model store {url}'s identity marker vanished as it was written; check who "
            f"else removes {where}, then retry",
            path=url,
        )
    return found
