"""The client a test uses to call a ``score.py``, and the response it gets back.

These are the objects the ``scoring_client`` fixture of modelstore's pytest plugin returns; they
live here, importable on their own, so users can annotate their tests with them
(``def test_x(scoring_client: ScoringClientFactory)``). Requests go through Flask's test client
into the very app ``modelstore serve`` runs, so status, headers and body are the server's own —
no network, no worker process. The API follows ``requests`` (``json=``, ``data=``, ``files=``,
``.status_code``, ``.json()``) so a test reads like the client code users already write.
"""

from __future__ import annotations

import io
import json as jsonlib
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import flask
    from werkzeug.datastructures import Headers
    from werkzeug.test import Client, TestResponse

    from modelstore.deployment import Deployment
    from modelstore.v2.endpoint import EndpointToken, LocalEndpoint
    from modelstore.v2.probes import ProbeTiming

__all__ = [
    "DeploymentFactory",
    "EndpointClient",
    "ScoringClient",
    "ScoringClientFactory",
    "ScoringResponse",
]

SCORE_PATH = "/score"

HeadersArg = Mapping[str, str] | Iterable[tuple[str, str]] | None
FileArg = Any
"""What ``files=`` accepts per field, as ``requests`` does: bytes, a binary file object, or a
tuple ``(filename, content)`` / ``(filename, content, content_type)``."""


class _Unset:
    """``json=None`` must send the JSON ``null``; this marks "no json argument"."""

    def __repr__(self) -> str:
        return "<unset>"


_UNSET: Any = _Unset()


class ScoringResponse:
    """One HTTP answer of the scoring app, shaped like a ``requests.Response``."""

    def __init__(self, response: TestResponse) -> None:
        self._response = response
        self.status_code: int = response.status_code
        self.headers: Headers = response.headers
        self.content: bytes = response.get_data()

    @property
    def text(self) -> str:
        """The body decoded with the response's charset (UTF-8 when none is given)."""
        charset = self._response.mimetype_params.get("charset", "utf-8")
        return self.content.decode(charset, errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON; a body that is not JSON raises ``json.JSONDecodeError``."""
        return jsonlib.loads(self.content)

    def __repr__(self) -> str:
        return f"<ScoringResponse [{self.status_code}] {self.content[:80]!r}>"


class _Requests:
    """The ``requests``-like calls, sent through a Werkzeug test client of some WSGI app."""

    _client: Client

    def post(
        self,
        path: str = SCORE_PATH,
        *,
        json: Any = _UNSET,
        data: bytes | str | Mapping[str, str] | None = None,
        files: Mapping[str, FileArg] | None = None,
        headers: HeadersArg = None,
        params: Mapping[str, str] | None = None,
    ) -> ScoringResponse:
        """POST to ``path`` (``/score`` by default).

        ``json=`` sends ``json.dumps(value)`` as ``application/json`` (key order kept, as
        ``requests`` does); ``data=`` sends bytes or text as they are, or a dict as a form;
        ``files=`` sends a multipart upload (with ``data=`` dict fields beside the files).
        """
        return self.request(
            "POST", path, json=json, data=data, files=files, headers=headers, params=params
        )

    def get(
        self,
        path: str = SCORE_PATH,
        *,
        params: Mapping[str, str] | None = None,
        headers: HeadersArg = None,
    ) -> ScoringResponse:
        """GET ``path`` (``/score`` by default; ``/`` is the health check, ``/swagger.json``
        the generated API document)."""
        return self.request("GET", path, params=params, headers=headers)

    def options(self, path: str = SCORE_PATH, *, headers: HeadersArg = None) -> ScoringResponse:
        """OPTIONS ``path``: with ``Origin`` and ``Access-Control-Request-Method`` headers,
        a CORS preflight."""
        return self.request("OPTIONS", path, headers=headers)

    def request(
        self,
        method: str,
        path: str = SCORE_PATH,
        *,
        json: Any = _UNSET,
        data: bytes | str | Mapping[str, str] | None = None,
        files: Mapping[str, FileArg] | None = None,
        headers: HeadersArg = None,
        params: Mapping[str, str] | None = None,
    ) -> ScoringResponse:
        """Any method (``HEAD``, ``PUT``...), with the arguments of :meth:`post`."""
        if json is not _UNSET and (data is not None or files is not None):
            raise TypeError("pass either json= or data=/files=, not both")
        content_type: str | None = None
        body: Any = data
        header_items = list(_header_items(headers))
        if json is not _UNSET:
            body = jsonlib.dumps(json)
            if not any(name.lower() == "content-type" for name, _ in header_items):
                content_type = "application/json"  # as requests: a given header wins
        elif files is not None:
            body = _multipart_fields(data, files)
        response = self._client.open(
            path,
            method=method,
            data=body,
            headers=header_items,
            query_string=dict(params) if params is not None else None,
            content_type=content_type,
        )
        try:
            return ScoringResponse(response)
        finally:
            response.close()


class ScoringClient(_Requests):
    """Calls one loaded entry script through the scoring app (``init()`` has already run)."""

    def __init__(self, app: flask.Flask) -> None:
        self.app = app
        """The Flask app ``modelstore serve`` would run for this script."""
        self._client = app.test_client(
            use_cookies=False
        )  # Set-Cookie values reach the test as sent


class EndpointClient(_Requests):
    """Calls a local v2 endpoint: each request goes through the endpoint's router in this
    process (the traffic split, the ``azureml-model-deployment`` header, the keys), then over
    loopback to the chosen deployment's own server process, whose answer comes back with the
    ``azureml-model-deployment`` header naming it."""

    def __init__(self, endpoint: LocalEndpoint) -> None:
        from werkzeug.test import Client

        from modelstore.v2.endpoint import Router, routes_of

        self.endpoint = endpoint
        """The running endpoint: ``url`` (its router process, for a real HTTP client),
        ``urls`` (each deployment's server), ``traffic``, ``keys``."""
        token = endpoint.token
        self.router = Router(
            routes_of(endpoint.urls),
            endpoint.traffic,
            keys=endpoint.keys,
            seed=endpoint.seed,
            tokens={token.access_token: token.expiry_time_utc} if token is not None else None,
            max_concurrent={
                name: local.spec.request_settings.max_concurrent_requests_per_instance
                for name, local in endpoint.deployments.items()
            },
        )
        self._client = Client(self.router, use_cookies=False)

    @property
    def url(self) -> str:
        return self.endpoint.url

    @property
    def keys(self) -> tuple[str, ...]:
        """The primary and secondary key with ``auth=True``, else empty."""
        return self.endpoint.keys

    @property
    def token(self) -> EndpointToken | None:
        """With ``auth=True`` and ``auth_mode: aml_token``: the token requests must carry."""
        return self.endpoint.token


class DeploymentFactory(Protocol):
    """The ``azureml_deployment`` fixture: ``azureml_deployment("my_model:1", "other:2")``."""

    def __call__(self, *models: str | os.PathLike[str], copy: bool = False) -> Deployment: ...


class ScoringClientFactory(Protocol):
    """The ``scoring_client`` fixture: ``scoring_client("score.py", models=["my_model:1"])``."""

    def __call__(
        self,
        entry_script: str | os.PathLike[str],
        *,
        models: Sequence[str | os.PathLike[str]] = (),
        **settings: Any,
    ) -> ScoringClient: ...

    def from_deployment(
        self, deployment_yml: str | os.PathLike[str], **settings: Any
    ) -> ScoringClient:
        """``scoring_client.from_deployment("blue-deployment.yml")``: an Azure ML v2
        deployment YAML laid out and started as the cloud starts it."""
        ...

    def from_endpoint(
        self,
        endpoint_yml: str | os.PathLike[str],
        *deployment_ymls: str | os.PathLike[str],
        traffic: Mapping[str, int] | None = None,
        auth: bool = False,
        seed: int | None = None,
        probe_timing: ProbeTiming = "fast",
        **settings: Any,
    ) -> EndpointClient:
        """``scoring_client.from_endpoint("endpoint.yml", "blue.yml", "green.yml")``: an Azure
        ML v2 endpoint with its deployments, each in its own server process."""
        ...


def _header_items(headers: HeadersArg) -> Iterable[tuple[str, str]]:
    if headers is None:
        return ()
    if isinstance(headers, Mapping):
        return headers.items()
    return headers


def _multipart_fields(
    data: bytes | str | Mapping[str, str] | None, files: Mapping[str, FileArg]
) -> dict[str, Any]:
    """``requests``-style ``files=`` (plus ``data=`` form fields) as Werkzeug's test-client
    form, which encodes a ``(stream, filename, content_type)`` tuple as a file part."""
    if data is not None and not isinstance(data, Mapping):
        raise TypeError("with files=, data= must be a dict of form fields")
    fields: dict[str, Any] = dict(data or {})
    for field, spec in files.items():
        fields[field] = _file_part(field, spec)
    return fields


def _file_part(field: str, spec: FileArg) -> tuple[Any, ...]:
    if isinstance(spec, tuple):
        if len(spec) not in (2, 3):
            raise TypeError(
                f"files[{field!r}] must be (filename, content) or "
                f"(filename, content, content_type), not a {len(spec)}-tuple"
            )
        filename, content = spec[0], spec[1]
        content_type = spec[2] if len(spec) == 3 else None
    else:
        content = spec
        filename = os.path.basename(getattr(spec, "name", "") or field)
        content_type = None
    stream = _as_stream(field, content)
    if content_type is None:
        return (stream, filename)
    return (stream, filename, content_type)


def _as_stream(field: str, content: Any) -> io.BytesIO:
    """Read the content now: the caller's file object stays untouched by the request."""
    if isinstance(content, str):
        return io.BytesIO(content.encode("utf-8"))
    if isinstance(content, bytes | bytearray | memoryview):
        return io.BytesIO(bytes(content))
    read = getattr(content, "read", None)
    if callable(read):
        chunk = read()
        return io.BytesIO(chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk))
    raise TypeError(
        f"files[{field!r}] must be bytes, text, a file object or a (filename, content) tuple, "
        f"not {type(content).__name__}"
    )
