"""The shared model store in Azure Blob Storage: ``az://CONTAINER[/PREFIX]``.

The same layout as the POSIX store (``[PREFIX/]sha256/<aa>/<digest>``, see
``modelstore.store.shared``), through ``azure-storage-blob`` (the ``team`` extra): Microsoft's
own client, kept in step with the service, and the one its emulator Azurite is tested against.
Credentials come from the environment variables the az CLI and adlfs read, or from Microsoft
Entra ID through azure-identity (see ``credentials_from_environment``). An upload is committed
by the service only once complete (a single put, or the final commit of its blocks), so a blob
that exists is whole; an upload that fails midway leaves no blob and the registration fails
before its number is taken. Every service or network failure is one StorageError line.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from modelstore.errors import StorageError
from modelstore.store.identity import IDENTITY_NAME, claimed, identity_bytes, parse_identity

CONNECTION_STRING_ENV = "AZURE_STORAGE_CONNECTION_STRING"
ACCOUNT_ENVS = ("AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_ACCOUNT_NAME")  # az CLI, adlfs
KEY_ENVS = ("AZURE_STORAGE_KEY", "AZURE_STORAGE_ACCOUNT_KEY")  # az CLI, adlfs
SAS_TOKEN_ENV = "AZURE_STORAGE_SAS_TOKEN"
ENDPOINT_ENV = "AZURE_STORAGE_SERVICE_ENDPOINT"  # az CLI's --blob-endpoint
_NOTHING_CONFIGURED = (
    f"an az:// model store needs credentials: set {CONNECTION_STRING_ENV}, or "
    f"{ACCOUNT_ENVS[0]} with {KEY_ENVS[0]} or {SAS_TOKEN_ENV} (and {ENDPOINT_ENV} for an "
    "endpoint other than https://ACCOUNT.blob.core.windows.net), or "
    f"{ACCOUNT_ENVS[0]} alone to sign in with Microsoft Entra ID (az login, a service "
    "principal's AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET, or a managed identity)"
)
_ENTRA_ID = "Microsoft Entra ID"
_SIGN_IN_ADVICE = (
    "sign in with az login, or set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET "
    f"(a service principal), or use {KEY_ENVS[0]} or {SAS_TOKEN_ENV} instead"
)
_IDENTITY_SECRET_ENVS = (
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_PASSWORD",
    "IDENTITY_HEADER",
    "MSI_SECRET",
)
"""Secrets azure-identity reads from the environment: masked in every message, like a key."""
_T = TypeVar("_T")
_RETRY_TOTAL, _INITIAL_BACKOFF, _INCREMENT_BASE = 2, 1, 2
"""Two retries, about 3 s then 5 s apart: a store that is down is reported in seconds, not after
the SDK's default of about a minute (15 s, 18 s, 24 s)."""
_MAX_SINGLE_PUT, _BLOCK_SIZE = 64 << 20, 4 << 20
"""The SDK's defaults, named: a blob up to 64 MB is one request; a larger one is sent in 4 MB
blocks, each retried on its own, and exists only once the final commit of the block list
succeeds (blocks of an upload that stopped midway stay uncommitted: invisible, and discarded
by the service after a week)."""


@dataclass(frozen=True)
class Credentials:
    """How to reach the storage account: a connection string, or an account URL and a
    credential (a shared key or a SAS token), or an account URL and ``entra_id``: a token from
    azure-identity's DefaultAzureCredential, made when the store is opened. ``source`` names
    the variables it came from, for messages; a secret is never part of one."""

    source: str
    connection_string: str | None = None
    account_url: str | None = None
    credential: Any = None
    secrets: tuple[str, ...] = field(default=(), repr=False)
    entra_id: bool = False


def credentials_from_environment(env: Mapping[str, str] | None = None) -> Credentials:
    """The first of these that is set, as the az CLI and adlfs read them:

    1. ``AZURE_STORAGE_CONNECTION_STRING``: used alone (the others are then ignored);
    2. an account (``AZURE_STORAGE_ACCOUNT``, or adlfs' ``AZURE_STORAGE_ACCOUNT_NAME``) with its
       key (``AZURE_STORAGE_KEY``, or adlfs' ``AZURE_STORAGE_ACCOUNT_KEY``);
    3. a SAS token (``AZURE_STORAGE_SAS_TOKEN``, with or without its leading ``?``) for the
       account;
    4. Microsoft Entra ID: an account (or ``AZURE_STORAGE_SERVICE_ENDPOINT``) with none of the
       above. The token comes from azure-identity's ``DefaultAzureCredential``, as every Azure
       SDK gets one, in its order: a service principal (``AZURE_TENANT_ID``,
       ``AZURE_CLIENT_ID`` with ``AZURE_CLIENT_SECRET`` or ``AZURE_CLIENT_CERTIFICATE_PATH``),
       workload identity (``AZURE_FEDERATED_TOKEN_FILE``), a managed identity (App Service's
       ``IDENTITY_ENDPOINT``, Azure ML's ``MSI_ENDPOINT``, Arc, else the VM's IMDS; a
       user-assigned one by ``AZURE_CLIENT_ID``), then the signed-in developer tools (shared
       token cache, VS Code, az CLI, Azure PowerShell, azd, broker). ``AZURE_TOKEN_CREDENTIALS``
       narrows that chain (``prod``, ``dev`` or one credential's name), as for any Azure SDK.
       Unlike the az CLI, which looks up the account's key when given only its name, no key is
       fetched: the identity needs a data role on the container (Storage Blob Data Contributor).

    The blob endpoint is ``AZURE_STORAGE_SERVICE_ENDPOINT`` if set (a sovereign cloud, a
    private endpoint, Azurite), else ``https://ACCOUNT.blob.core.windows.net``. Two spellings of
    one setting with different values are refused rather than one picked silently."""
    env = os.environ if env is None else env
    connection_string = env.get(CONNECTION_STRING_ENV)
    if connection_string:
        return Credentials(
            CONNECTION_STRING_ENV,
            connection_string=connection_string,
            secrets=(connection_string,),
        )
    account_env, account = _one_of(env, ACCOUNT_ENVS)
    key_env, key = _one_of(env, KEY_ENVS)
    sas = env.get(SAS_TOKEN_ENV, "").lstrip("?")
    endpoint = env.get(ENDPOINT_ENV, "").rstrip("/")
    if not endpoint and account:
        endpoint = f"https://{account}.blob.core.windows.net"
    if key:
        if not account:
            raise StorageError(
                f"{key_env} is set but not the storage account's name; set {ACCOUNT_ENVS[0]} "
                "too (a shared key signs requests with the account's name)"
            )
        return Credentials(
            f"{account_env} and {key_env}",
            account_url=endpoint,
            credential={"account_name": account, "account_key": key},
            secrets=(key,),
        )
    if sas:
        if not endpoint:
            raise StorageError(
                f"{SAS_TOKEN_ENV} is set but not which account it is for; set {ACCOUNT_ENVS[0]} "
                f"(or {ENDPOINT_ENV}, the blob endpoint URL)"
            )
        return Credentials(SAS_TOKEN_ENV, account_url=endpoint, credential=sas, secrets=(sas,))
    if endpoint:
        named = account_env if account else ENDPOINT_ENV
        if not endpoint.lower().startswith("https://"):
            raise StorageError(
                f"{ENDPOINT_ENV} is {endpoint}, but {_ENTRA_ID} tokens are only sent over "
                f"HTTPS; use the endpoint's https:// URL, or {KEY_ENVS[0]} or {SAS_TOKEN_ENV} "
                f"with {named}"
            )
        return Credentials(
            f"{named} with {_ENTRA_ID}",
            account_url=endpoint,
            secrets=tuple(env[name] for name in _IDENTITY_SECRET_ENVS if env.get(name)),
            entra_id=True,
        )
    raise StorageError(_NOTHING_CONFIGURED)


def _one_of(env: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, str]:
    """(variable, value) of the first of ``names`` that is set; both set must agree."""
    found = [(name, env[name]) for name in names if env.get(name)]
    if len({value for _name, value in found}) > 1:
        raise StorageError(
            f"{found[0][0]} and {found[1][0]} are both set, to different values; unset one "
            "of them (they are two spellings of the same setting)"
        )
    return found[0] if found else (names[0], "")


def _masked(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` (an SDK error) without any secret: request URLs carry a SAS token's
    signature, and some errors quote what they were given."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return re.sub(r"(?i)\b(sig|AccountKey|SharedAccessSignature)=[^&;\s'\"]*", r"\1=***", text)


class _NoToken(Exception):
    """DefaultAzureCredential found no token. Raised through the SDK's pipeline in place of
    its ClientAuthenticationError, an AzureError the store's retry policy would retry twice,
    several seconds apart, walking the whole chain each time: a credential that has no token
    now will not have one three seconds later."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


_CREDENTIAL_LABELS = {
    "EnvironmentCredential": "environment",
    "WorkloadIdentityCredential": "workload identity",
    "ManagedIdentityCredential": "managed identity",
    "SharedTokenCacheCredential": "shared token cache",
    "VisualStudioCodeCredential": "VS Code",
    "AzureCliCredential": "az CLI",
    "AzurePowerShellCredential": "Azure PowerShell",
    "AzureDeveloperCliCredential": "azd",
    "BrokerCredential": "broker",
}
"""Short names of DefaultAzureCredential's sources, for a one-line summary of what it tried."""


def _what_was_tried(message: str, chain_length: int) -> str:
    """One line from DefaultAzureCredential's multi-paragraph error: the sources it tried, in
    order, and the reasons worth reading. Its message has one tab-indented ``Name: reason`` line
    per source tried. A source that is not set up is skipped silently; the chain stops at the
    first one that fails otherwise (a wrong client secret, an expired login), so a chain cut
    short names its last source's reason; and a token endpoint's refusal is quoted wherever it
    is (a managed identity that answers "no identity here" counts as not set up)."""
    tried: list[str] = []
    reasons: list[str] = []
    attempts = re.findall(r"(?m)^\t(\w+): (.*)$", message)
    for index, (name, reason) in enumerate(attempts):
        label = _CREDENTIAL_LABELS.get(name, name)
        tried.append(label)
        refusal = reason.partition("Token request error: ")[2]
        if refusal:  # msal's "(invalid_scope) " before any refusal says nothing
            reasons.append(f"{label}: " + re.sub(r"^\(\w+\) ", "", refusal).strip())
        elif index == len(attempts) - 1 and len(attempts) < chain_length:
            reasons.append(f"{label}: {reason.strip()}")
    if not tried:
        return message.strip().splitlines()[0] if message.strip() else "found no token"
    summary = f"tried {', '.join(tried)}"
    if reasons:
        return f"{summary}; {'; '.join(reason[:300] for reason in reasons)}"
    return f"{summary}: none is set up here"


class _EntraIdToken:
    """DefaultAzureCredential, its failures turned into ``_NoToken`` (see there)."""

    def __init__(self, credential: Any) -> None:
        self._credential = credential

    @classmethod
    def from_environment(cls) -> _EntraIdToken:
        """The IMDS probe DefaultAzureCredential makes where no managed identity variable is
        set waits 1 s at most (measured: 1.0 s with 169.254.169.254 black-holed, instant where
        it is unreachable), so no source is excluded and no timeout changed: an Azure VM's
        managed identity keeps the SDK's own patient retries."""
        try:
            from azure.identity import DefaultAzureCredential
        except ImportError:
            raise StorageError(
                f"signing in to an az:// model store with {_ENTRA_ID} needs the azure-identity "
                f"package; install it with pip install 'modelstore[team]' (or set "
                f"{KEY_ENVS[0]} or {SAS_TOKEN_ENV})"
            ) from None
        # The chain logs its multi-paragraph failure as a warning, which Python prints on
        # stderr when no logging is configured: the StorageError line says it in short.
        identity_logger = logging.getLogger("azure.identity")
        if not any(isinstance(h, logging.NullHandler) for h in identity_logger.handlers):
            identity_logger.addHandler(logging.NullHandler())
        return cls(DefaultAzureCredential())

    def _no_token(self, exc: Exception) -> _NoToken:
        chain = getattr(self._credential, "credentials", ())
        return _NoToken(_what_was_tried(str(exc), len(chain)))

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.exceptions import ClientAuthenticationError

        try:
            return self._credential.get_token(*scopes, **kwargs)
        except ClientAuthenticationError as exc:
            raise self._no_token(exc) from None

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.exceptions import ClientAuthenticationError

        try:
            return self._credential.get_token_info(*scopes, options=options)
        except ClientAuthenticationError as exc:
            raise self._no_token(exc) from None


def network_settings(endpoint: str) -> dict[str, Any]:
    """The client's proxy and CA bundle for ``endpoint``, read from the environment once, when
    the store opens, as ``requests`` would read them on every request: ``HTTPS_PROXY`` /
    ``HTTP_PROXY`` / ``ALL_PROXY`` unless ``NO_PROXY`` covers the endpoint's host, and
    ``REQUESTS_CA_BUNDLE`` (or ``CURL_CA_BUNDLE``) for the certificates to trust. Per request,
    ``requests`` scans the whole environment twice: with 140 variables, about a quarter of the
    client's CPU for an 8 KB upload (bench/azure_upload.py). ``use_env_settings=False`` (the
    SDK's transport option) then stops ``requests`` from reading the environment again; it
    reads nothing else that a store needs (its other lookup is ``~/.netrc``, whose Basic
    authentication an Azure request must not carry anyway). ``SSL_CERT_FILE`` is not read by
    ``requests`` either way (it trusts certifi's bundle unless told otherwise)."""
    from requests.utils import get_environ_proxies

    settings: dict[str, Any] = {"use_env_settings": False}
    proxies = get_environ_proxies(endpoint)
    if proxies:
        settings["proxies"] = proxies
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        settings["connection_verify"] = bundle
    return settings


class AzureBlobStore:
    """A store in one container (under an optional prefix) of an Azure storage account."""

    def __init__(self, container: str, prefix: str, credentials: Credentials) -> None:
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
        self._credentials = credentials
        options: dict[str, Any] = {
            "retry_policy": ExponentialRetry(
                initial_backoff=_INITIAL_BACKOFF,
                increment_base=_INCREMENT_BASE,
                retry_total=_RETRY_TOTAL,
            ),
            "max_single_put_size": _MAX_SINGLE_PUT,
            "max_block_size": _BLOCK_SIZE,
        }
        try:
            if credentials.connection_string is not None:
                endpoint = BlobServiceClient.from_connection_string(
                    credentials.connection_string
                ).url  # parsed by the SDK, as the client below will; nothing is sent
                service = BlobServiceClient.from_connection_string(
                    credentials.connection_string, **options, **network_settings(endpoint)
                )
            else:
                assert credentials.account_url is not None
                service = BlobServiceClient(
                    credentials.account_url,
                    credential=(
                        _EntraIdToken.from_environment()
                        if credentials.entra_id
                        else credentials.credential
                    ),
                    **options,
                    **network_settings(credentials.account_url),
                )
        except ValueError as exc:
            what = (
                "a valid connection string; copy it from the storage account's access keys"
                if credentials.connection_string is not None
                else f"usable ({ENDPOINT_ENV} must be an http(s) URL)"
            )
            raise StorageError(
                f"{credentials.source} is not {what} ({_masked(str(exc), credentials.secrets)})"
            ) from None
        self._client = service.get_container_client(container)
        if not self._container_exists():
            raise StorageError(
                f"the container {container!r} does not exist in the storage account of "
                f"{credentials.source}; create it (az storage container create -n "
                f"{container}) or fix MODELSTORE_STORE_URL",
                path=self.url,
            )

    def _container_exists(self) -> bool:
        """Asked through a blob (the properties of one that is never written): a SAS token for
        the container may read blobs, but not the container's own properties."""
        from azure.core.exceptions import ResourceNotFoundError

        probe = self._client.get_blob_client(self._name("0" * 64))

        def look() -> bool:
            try:
                probe.get_blob_properties()
            except ResourceNotFoundError as exc:
                return getattr(exc, "error_code", None) != "ContainerNotFound"
            return True

        return self._call("opening", look)

    def _name(self, sha256: str) -> str:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        name = f"sha256/{sha256[:2]}/{sha256}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def _call(self, doing: str, action: Callable[[], _T]) -> _T:
        from azure.core.exceptions import AzureError

        try:
            return action()
        except _NoToken as exc:
            detail = _masked(exc.detail, self._credentials.secrets)
            raise StorageError(
                f"the model store {self.url} could not get a {_ENTRA_ID} token for "
                f"{self._credentials.source.removesuffix(' with ' + _ENTRA_ID)} "
                f"(DefaultAzureCredential {detail}); {_SIGN_IN_ADVICE}",
                path=self.url,
            ) from None
        except AzureError as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            detail = _masked(detail, self._credentials.secrets)
            advice = f"check the network, {self._credentials.source} and the container, then retry"
            if getattr(exc, "error_code", None) == "AuthorizationPermissionMismatch":
                advice = (  # signed in, but not allowed this: retrying will not help
                    f"the credentials of {self._credentials.source} may read but not do this; "
                    "use a key, a SAS that allows writing (permissions r, w and c), or a role "
                    "such as Storage Blob Data Contributor"
                )
            raise StorageError(
                f"the model store {self.url} failed while {doing} ({detail}); {advice}",
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

    def read_identity(self) -> str | None:
        from azure.core.exceptions import ResourceNotFoundError

        marker = self._client.get_blob_client(self._marker_name())

        def read() -> bytes | None:
            try:
                return bytes(marker.download_blob().readall())
            except ResourceNotFoundError:
                return None

        data = self._call("reading the store's identity", read)
        return None if data is None else parse_identity(data, self.url)

    def claim_identity(self, proposed: str) -> str:
        """One put that fails if the marker exists (``If-None-Match: *``): of two first opens,
        the service lets one write it."""
        from azure.core.exceptions import ResourceExistsError

        marker = self._client.get_blob_client(self._marker_name())

        def write() -> None:
            with contextlib.suppress(ResourceExistsError):
                marker.upload_blob(identity_bytes(proposed), overwrite=False)

        self._call("writing the store's identity", write)
        return claimed(self.read_identity(), self.url, "blobs in that container")

    def _marker_name(self) -> str:
        return f"{self.prefix}/{IDENTITY_NAME}" if self.prefix else IDENTITY_NAME

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
    return AzureBlobStore(container, prefix, credentials_from_environment())
