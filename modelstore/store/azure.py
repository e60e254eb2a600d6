"""The shared model store in Azure Blob Storage: ``az://CONTAINER[/PREFIX]``.

The same layout as the POSIX store (``[PREFIX/]sha256/<aa>/<digest>``, see
``modelstore.store.shared``), through ``azure-storage-blob`` (the ``team`` extra): Microsoft's
own client, kept in step with the service, and the one its emulator Azurite is tested against.
Credentials come from ``AZURE_STORAGE_CONNECTION_STRING``. An upload is committed by the service
only once complete (a single put, or the final commit of its blocks), so a blob that exists is
whole; an upload that fails midway leaves no blob and the registration fails before its number
is taken. Every service or network failure is one StorageError line.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import TypeVar

from modelstore.errors import StorageError

CONNECTION_STRING_ENV = "AZURE_STORAGE_CONNECTION_STRING"
_T = TypeVar("_T")
_RETRY_TOTAL, _INITIAL_BACKOFF, _INCREMENT_BASE = 2, 1, 2
"""Two retries, about 3 s then 5 s apart: a store that is down is reported in seconds, not after
the SDK's default of about a minute (15 s, 18 s, 24 s)."""
_MAX_SINGLE_PUT, _BLOCK_SIZE = 64 << 20, 4 << 20
"""The SDK's defaults, named: a blob up to 64 MB is one request; a larger one is sent in 4 MB
blocks, each retried on its own, and exists only once the final commit of the block list
succeeds (blocks of an upload that stopped midway stay uncommitted: invisible, and discarded
by the service after a week)."""


class AzureBlobStore:
    """A store in one container (under an optional prefix) of an Azure storage account."""

    def __init__(self, container: str, prefix: str, connection_string: str) -> None:
        try:
            from azure.storage.blob import BlobServiceClient, ExponentialRetry
        except ImportError:
            raise StorageError(
                "an az:// model store needs the azure-storage-blob package; install it with "
                "pip install 'modelstore[team]'"
            ) from None
        self.container = container
        self.prefix = prefix.strip("/")
        self.url = f"az://{container}" + (f"/{self.prefix}" if self.prefix else "")
        try:
            service = BlobServiceClient.from_connection_string(
                connection_string,
                retry_policy=ExponentialRetry(
                    initial_backoff=_INITIAL_BACKOFF,
                    increment_base=_INCREMENT_BASE,
                    retry_total=_RETRY_TOTAL,
                ),
                max_single_put_size=_MAX_SINGLE_PUT,
                max_block_size=_BLOCK_SIZE,
            )
        except ValueError as exc:
            raise StorageError(
                f"{CONNECTION_STRING_ENV} is not a valid connection string ({exc}); copy it "
                "from the storage account's access keys"
            ) from None
        self._client = service.get_container_client(container)
        exists = self._call("opening", lambda: bool(self._client.exists()))
        if not exists:
            raise StorageError(
                f"the container {container!r} does not exist in the storage account of "
                f"{CONNECTION_STRING_ENV}; create it (az storage container create -n "
                f"{container}) or fix MODELSTORE_STORE_URL",
                path=self.url,
            )

    def _name(self, sha256: str) -> str:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        name = f"sha256/{sha256[:2]}/{sha256}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def _call(self, doing: str, action: Callable[[], _T]) -> _T:
        from azure.core.exceptions import AzureError

        try:
            return action()
        except AzureError as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise StorageError(
                f"the model store {self.url} failed while {doing} ({detail}); check the "
                f"network, {CONNECTION_STRING_ENV} and the container, then retry",
                path=self.url,
            ) from None

    def has(self, sha256: str) -> bool:
        blob = self._client.get_blob_client(self._name(sha256))
        return self._call("looking for a blob", lambda: bool(blob.exists()))

    def put(self, source: str, sha256: str, buffer: bytearray) -> bool:
        """``source`` is the registration's staging copy: read-only, and hashed as it was
        written, so its bytes are the digest's and are sent as they are."""
        from azure.core.exceptions import ResourceExistsError

        blob = self._client.get_blob_client(self._name(sha256))

        def upload() -> bool:
            with open(source, "rb") as reader:
                try:
                    blob.upload_blob(reader, length=os.fstat(reader.fileno()).st_size)
                except ResourceExistsError:  # stored meanwhile by another home: the same bytes
                    return False
            return True

        return self._call("uploading a blob", upload)

    def fetch(self, sha256: str, target: str, buffer: bytearray) -> tuple[int, str]:
        from azure.core.exceptions import ResourceNotFoundError

        blob = self._client.get_blob_client(self._name(sha256))

        def download() -> tuple[int, str] | None:
            digest = hashlib.sha256()
            total = 0
            try:
                chunks = blob.download_blob().chunks()
            except ResourceNotFoundError:
                return None
            with open(target, "xb") as writer:
                for chunk in chunks:
                    digest.update(chunk)
                    writer.write(chunk)
                    total += len(chunk)
                writer.flush()
                os.fsync(writer.fileno())
            return total, digest.hexdigest()

        copied = self._call("downloading a blob", download)
        if copied is None:
            raise FileNotFoundError(self._name(sha256))
        return copied

    def check(self, sha256: str, size: int, buffer: bytearray) -> str | None:
        from azure.core.exceptions import ResourceNotFoundError

        blob = self._client.get_blob_client(self._name(sha256))

        def read() -> str | None:
            digest = hashlib.sha256()
            total = 0
            try:
                chunks = blob.download_blob().chunks()
            except ResourceNotFoundError:
                return "missing"
            for chunk in chunks:
                digest.update(chunk)
                total += len(chunk)
            return None if (total, digest.hexdigest()) == (size, sha256) else "changed"

        return self._call("reading a blob", read)


def open_azure_store(container: str, prefix: str) -> AzureBlobStore:
    connection_string = os.environ.get(CONNECTION_STRING_ENV)
    if not connection_string:
        raise StorageError(
            f"an az:// model store needs {CONNECTION_STRING_ENV} (the storage account's "
            "connection string); set it (other Azure identity variables are not supported yet)"
        )
    return AzureBlobStore(container, prefix, connection_string)
