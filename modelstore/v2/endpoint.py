"""Serving a v2 online endpoint with several deployments here, as ``modelstore serve -f
endpoint.yml -f blue.yml -f green.yml`` does.

In Azure each deployment is its own container: its own workers, its own ``init()``, its own
environment. So here each deployment is its own server process
(``modelstore.v2.deployment_process``, begun by ``modelstore.v2_process``, in a process group
of its own so that a terminal's Ctrl-C reaches this process alone, which stops the others in
order) on a private loopback port, laid out by :func:`modelstore.v2.local.local_deployment` in
this process, which removes every app root on exit. In front of them, :class:`Router` plays the
endpoint: the traffic split, the ``azureml-model-deployment`` header and, with ``auth``, the
keys of ``auth_mode: key``. It is a plain WSGI app run in its own process
(``modelstore.v2.router_process``) under the same gunicorn worker as the deployments,
forwarding over one kept-alive connection per deployment and router worker: each request in one
write, each answer read by a small HTTP/1.1 reader (``_Upstream``) rather than ``http.client``,
which cost the router about half its CPU per request (``bench/v2_endpoint.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from modelstore.errors import EntryScriptError, InvalidArgumentError, ModelstoreError
from modelstore.serving.lifeline import PARENT_ENV
from modelstore.serving.limits import (
    InFlightGauge,
    pending_limit,
    too_many_message,
    too_many_response,
)
from modelstore.v2.endpoint_spec import OnlineEndpointSpec
from modelstore.v2.load import load_endpoint_spec
from modelstore.v2.local import LocalDeployment, is_endpoint_file, local_deployment
from modelstore.v2.probes import ProbeFailedError, ProbeTiming, wait_until_ready

if TYPE_CHECKING:
    from modelstore.registry import Registry

DEPLOYMENT_HEADER = "azureml-model-deployment"
"""Azure's request header choosing a deployment whatever the traffic split; Azure also sends
it back on the answer, naming the deployment that answered."""
DOCS_PREFIX = "/docs"
ENDPOINT_DOCS_PATH = "/docs/endpoint.json"
"""What the router tells the try-it page (``modelstore.serving.docs_page``): the deployment
names for its picker and whether the endpoint wants a key."""
SEED_ENV = "MODELSTORE_ROUTER_SEED"
"""An integer seeding the router's random traffic split (tests; a reproducible run)."""
SETTINGS_ENV = "MODELSTORE_V2_SETTINGS"
"""How a deployment process receives its resolved ServingSettings (JSON)."""
ROUTER_ENV = "MODELSTORE_V2_ROUTER"
"""How the router process receives its routes, traffic, keys and listening socket (JSON)."""
LISTENER_ENV = "MODELSTORE_V2_LISTENER"
"""How a deployment process receives the socket bound for it: ``[fd, host, port]`` (JSON)."""
ROUTER_NAME = "router"
_LISTENING = re.compile(r"^modelstore serve: listening on (http://\S+) ")
_RECV_SIZE = 65536
_MAX_UPSTREAM_HEAD = 1024 * 1024
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
_NOT_FORWARDED = _HOP_BY_HOP | {
    "authorization",  # the endpoint's key, not the container's business
    "host",  # the deployment's own address replaces it
    "expect",  # the router has read the whole body already
    "content-type",  # CONTENT_TYPE, below
}


# --- which file is which, and the traffic ------------------------------------------------------


def split_files(
    files: Sequence[str | os.PathLike[str]],
) -> tuple[Path, list[Path]]:
    """The endpoint YAML and the deployment YAMLs among ``files``; exactly one endpoint and at
    least one deployment, else refused in one line."""
    endpoints = [Path(f) for f in files if is_endpoint_file(os.fspath(f))]
    deployments = [Path(f) for f in files if not is_endpoint_file(os.fspath(f))]
    if len(endpoints) > 1:
        raise InvalidArgumentError(
            f"several endpoint YAMLs given ({', '.join(map(str, endpoints))}); serve one "
            "endpoint at a time"
        )
    if not endpoints:
        raise InvalidArgumentError(
            f"several deployments ({', '.join(map(str, deployments))}) need their endpoint: "
            "add the endpoint YAML, or serve one deployment"
        )
    if not deployments:
        raise InvalidArgumentError(
            f"{endpoints[0]} is an endpoint without deployments; add its deployment YAMLs, "
            "e.g. blue-deployment.yml"
        )
    return endpoints[0], deployments


def check_traffic(traffic: Mapping[str, int], deployments: Sequence[str], source: str) -> None:
    """Azure's rule: the percentages name deployments of the endpoint and sum to 100 (all 0, or
    none, is an endpoint taking no traffic: only the header reaches a deployment)."""
    unknown = [name for name in traffic if name not in deployments]
    if unknown:
        raise InvalidArgumentError(
            f"{source} names {', '.join(unknown)}, which is not a deployment of the files given "
            f"({', '.join(deployments)}); fix the name or add its deployment YAML"
        )
    total = sum(traffic.values())
    if total not in (0, 100):
        raise InvalidArgumentError(
            f"{source} sums to {total}; Azure requires the percentages to sum to 100 (or all "
            "to be 0); fix the percentages"
        )


# --- credentials ---------------------------------------------------------------------------------

AML_TOKEN_LIFETIME_S = 24 * 3600
"""How long an emulated ``aml_token`` is accepted. Azure documents that its tokens expire,
not after how long; this is modelstore's choice (``local_endpoint(token_lifetime_s=...)``)."""


@dataclass(frozen=True)
class EndpointToken:
    """An ``aml_token`` endpoint's credential, with the fields of what ``az ml online-endpoint
    get-credentials`` returns for one (the REST API's ``EndpointAuthToken``): the times are
    seconds since the epoch, UTC."""

    access_token: str
    expiry_time_utc: int
    refresh_after_time_utc: int
    token_type: str = "Bearer"

    @classmethod
    def new(cls, lifetime_s: int = AML_TOKEN_LIFETIME_S, now: float | None = None) -> EndpointToken:
        issued = int(time.time() if now is None else now)
        return cls(
            access_token=secrets.token_urlsafe(48),
            expiry_time_utc=issued + lifetime_s,
            refresh_after_time_utc=issued + lifetime_s // 2,
        )

    def credentials(self) -> dict[str, Any]:
        """The JSON document ``get-credentials`` prints, key for key."""
        return {
            "accessToken": self.access_token,
            "expiryTimeUtc": self.expiry_time_utc,
            "refreshAfterTimeUtc": self.refresh_after_time_utc,
            "tokenType": self.token_type,
        }


def utc_text(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the router ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    name: str
    host: str
    port: int


class Router:
    """The endpoint's front end as a WSGI app.

    A request goes to the deployment its ``azureml-model-deployment`` header names (404 for a
    name the endpoint does not have), else to one drawn by the traffic weights (404 when no
    deployment takes traffic, as Azure). With ``keys`` (``auth_mode: key``), ``Authorization:
    Bearer KEY`` must carry one of them; with ``tokens`` (``auth_mode: aml_token``: each token
    with its expiry, seconds since the epoch) a token not yet expired; 401 otherwise, so a key
    never opens a token endpoint nor a token a key endpoint. Everything else, ``GET /`` and
    ``/swagger.json`` included, is forwarded as is to the chosen deployment, whose answer comes
    back with the header naming it.
    """

    def __init__(
        self,
        routes: Sequence[Route],
        traffic: Mapping[str, int],
        *,
        keys: Sequence[str] = (),
        seed: int | None = None,
        timeout_s: float = 600.0,
        max_concurrent: Mapping[str, int] | None = None,
        gauge: InFlightGauge | None = None,
        tokens: Mapping[str, float] | None = None,
    ) -> None:
        self.routes = {route.name: route for route in routes}
        self.tokens = dict(tokens or {})
        self.max_concurrent = dict(max_concurrent or {})
        """Each deployment's ``max_concurrent_requests_per_instance``: past twice that many
        requests in flight at it (across the router's workers, counted in ``gauge``), a
        request is answered 429 without being forwarded."""
        self._gauge = gauge if gauge is not None or not self.max_concurrent else InFlightGauge(1)
        self._tags = {name: index for index, name in enumerate(self.routes, start=1)}
        if self._gauge is not None:
            self._gauge.claim()
        self.traffic = {name: weight for name, weight in traffic.items() if weight > 0}
        self.keys = frozenset(keys)
        self.timeout_s = timeout_s
        self._random = random.Random(seed)
        self._connections: dict[str, _Upstream] = {}

    def choose(self, header: str | None) -> str | None:
        """The deployment a request goes to, or None when there is none to route to."""
        if header is not None:
            return header if header in self.routes else None
        if not self.traffic:
            return None
        names = list(self.traffic)
        return self._random.choices(names, weights=[self.traffic[n] for n in names])[0]

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") == "GET" and (
            path in (DOCS_PREFIX, ENDPOINT_DOCS_PATH) or path.startswith(f"{DOCS_PREFIX}/assets/")
        ):
            return self._docs(path, environ, start_response)
        if self.keys or self.tokens:
            refused = self._refusal(environ.get("HTTP_AUTHORIZATION", ""))
            if refused is not None:
                return _json(
                    start_response, "401 Unauthorized", refused, [("WWW-Authenticate", "Bearer")]
                )
        header = environ.get("HTTP_AZUREML_MODEL_DEPLOYMENT")
        name = self.choose(header.strip() if header is not None else None)
        if name is None:
            if header is not None:
                message = (
                    f"The endpoint has no deployment named {header.strip()!r} "
                    f"(azureml-model-deployment); it has {', '.join(self.routes)}"
                )
            else:
                message = (
                    "No valid deployments to route to. Please check that the endpoint has at "
                    "least one deployment with positive weight values or use a deployment "
                    "specific header to route."
                )
            return _json(start_response, "404 Not Found", message)
        max_concurrent = self.max_concurrent.get(name)
        if max_concurrent is None or self._gauge is None:
            return self._forward(name, environ, start_response)
        limit = pending_limit(max_concurrent)
        if not self._gauge.enter(self._tags[name], limit):
            message = too_many_message(name, limit, max_concurrent)
            extra = [(DEPLOYMENT_HEADER, name)]
            return too_many_response(start_response, environ, message, extra)
        try:
            return self._forward(name, environ, start_response)
        finally:
            self._gauge.leave()

    def _refusal(self, authorization: str) -> str | None:
        """Why ``authorization`` does not open this endpoint, or None when it does."""
        scheme, _, credential = authorization.partition(" ")
        credential = credential.strip() if scheme.lower() == "bearer" else ""
        if self.keys:
            if credential in self.keys:
                return None
            return "Authorization: Bearer KEY is required with one of the endpoint's keys"
        expiry = self.tokens.get(credential)
        if expiry is None:
            return (
                "Authorization: Bearer TOKEN is required with the endpoint's aml_token "
                "(auth_mode aml_token takes no key)"
            )
        if time.time() >= expiry:
            return (
                f"The aml_token expired at {utc_text(expiry)}; get a new one (restart the "
                "endpoint locally)"
            )
        return None

    def _docs(
        self, path: str, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """The try-it page needs no key: it holds none, and a browser cannot send one to open it.
        ``/docs/endpoint.json`` gives the page the deployment names for its picker; the page and
        its assets come from the picked deployment (else the first), as every deployment serves
        the same files. The page's own requests then carry the header and the key the user chose.
        """
        if path == ENDPOINT_DOCS_PATH:
            auth = bool(self.keys or self.tokens)
            body = json.dumps({"deployments": list(self.routes), "auth": auth}).encode()
            start_response(
                "200 OK",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            return [body]
        header = (environ.get("HTTP_AZUREML_MODEL_DEPLOYMENT") or "").strip()
        name = header if header in self.routes else next(iter(self.routes))
        return self._forward(name, environ, start_response)

    def _forward(
        self, name: str, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        length = environ.get("CONTENT_LENGTH") or ""
        body = environ["wsgi.input"].read(int(length)) if length.isdigit() else b""
        if not length.isdigit() and environ.get("HTTP_TRANSFER_ENCODING"):
            body = environ["wsgi.input"].read()
        path = environ.get("RAW_URI") or (
            environ.get("PATH_INFO", "/")
            + (f"?{environ['QUERY_STRING']}" if environ.get("QUERY_STRING") else "")
        )
        method = environ["REQUEST_METHOD"]
        route = self.routes[name]
        # The request as one buffer, sent in one write: a head and a body sent apart cost the
        # deployment's poller a wake-up (and a partial parse) each.
        lines = [f"{method} {path} HTTP/1.1\r\nHost: {route.host}:{route.port}\r\n"]
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                header = key[5:].replace("_", "-")
                if header.lower() not in _NOT_FORWARDED:
                    lines.append(f"{header.title()}: {value}\r\n")
        if environ.get("CONTENT_TYPE"):
            lines.append(f"Content-Type: {environ['CONTENT_TYPE']}\r\n")
        lines.append(f"Content-Length: {len(body)}\r\n\r\n")
        request = "".join(lines).encode("latin-1") + body
        status, reason, answer_headers, payload = self._send(name, request, method == "HEAD")
        if status is None:
            return _json(
                start_response,
                "502 Bad Gateway",
                f"Deployment {name} did not answer ({reason}); see its log lines",
                [(DEPLOYMENT_HEADER, name)],
            )
        kept = [(k, v) for k, v in answer_headers if k.lower() not in _HOP_BY_HOP]
        kept += [("Content-Length", str(len(payload))), (DEPLOYMENT_HEADER, name)]
        start_response(f"{status} {reason}", kept)
        return [payload]

    def _send(
        self, name: str, request: bytes, head: bool
    ) -> tuple[int | None, str, list[tuple[str, str]], bytes]:
        """One exchange over the kept-alive connection to ``name``; a connection the deployment
        closed meanwhile (its keep-alive ran out) is reopened once."""
        for attempt in (1, 2):
            upstream = self._connections.get(name)
            try:
                if upstream is None:
                    route = self.routes[name]
                    upstream = _Upstream(route.host, route.port, self.timeout_s)
                    self._connections[name] = upstream
                answer = upstream.exchange(request, head)
            except (OSError, _UpstreamError) as exc:
                if upstream is not None:
                    upstream.close()
                self._connections.pop(name, None)
                if attempt == 2 or isinstance(exc, TimeoutError):
                    return None, str(exc) or type(exc).__name__, [], b""
                continue
            if answer.will_close:
                upstream.close()
                self._connections.pop(name, None)
            return answer.status, answer.reason, answer.headers, answer.body
        raise AssertionError("unreachable")


class _UpstreamError(Exception):
    """A deployment's answer that is not HTTP/1.1 as its server writes it (or ended early)."""


@dataclass
class _Answer:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    will_close: bool


class _Upstream:
    """One kept-alive HTTP/1.1 connection from the router to a deployment's server.

    Not ``http.client``: its response goes through ``email.feedparser`` and its request is two
    writes (head, then body), which together cost the router about as much CPU per request as
    everything else it does. The peer is always modelstore's own server, so this reads the
    three framings it may answer with (``Content-Length``, chunked, or up to the close) and
    skips interim ``1xx`` answers, nothing more.
    """

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def _fill(self) -> None:
        data = self.sock.recv(_RECV_SIZE)
        if not data:
            raise _UpstreamError("the deployment closed the connection")
        self.buffer += data

    def _take(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        taken = bytes(self.buffer[:size])
        del self.buffer[:size]
        return taken

    def _line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            if len(self.buffer) > _MAX_UPSTREAM_HEAD:
                raise _UpstreamError("a line of the deployment's answer has no end")
            self._fill()
        return self._take(end + 2)[:-2]

    def exchange(self, request: bytes, head: bool) -> _Answer:
        self.buffer.clear()
        self.sock.sendall(request)
        while True:
            while (end := self.buffer.find(b"\r\n\r\n")) < 0:
                if len(self.buffer) > _MAX_UPSTREAM_HEAD:
                    raise _UpstreamError("the deployment's answer head is too large")
                self._fill()
            lines = self._take(end + 4)[:-4].decode("latin-1").split("\r\n")
            version, _, rest = lines[0].partition(" ")
            code, _, reason = rest.partition(" ")
            if not version.startswith("HTTP/1.") or not code.isdigit():
                raise _UpstreamError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
            status = int(code)
            if 100 <= status < 200:
                continue  # an interim answer (100 Continue): the real one follows
            headers = []
            length: int | None = None
            chunked = False
            close = version == "HTTP/1.0"
            for line in lines[1:]:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                headers.append((key, value))
                lowered = key.lower()
                if lowered == "content-length" and value.isdigit():
                    length = int(value)
                elif lowered == "transfer-encoding":
                    chunked = value.lower() == "chunked"
                elif lowered == "connection":
                    tokens = {token.strip() for token in value.lower().split(",")}
                    close = "close" in tokens or (close and "keep-alive" not in tokens)
            if head or status in (204, 304):
                body = b""
            elif chunked:
                body = self._chunked()
            elif length is not None:
                body = self._take(length)
            else:  # no framing: the body runs up to the close
                with contextlib.suppress(_UpstreamError):
                    while True:
                        self._fill()
                body, close = bytes(self.buffer), True
                self.buffer.clear()
            return _Answer(status, reason, headers, body, close)

    def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_text = self._line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _UpstreamError(f"invalid chunk size {size_text[:20]!r}") from None
            if size == 0:
                while self._line():  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(self._take(size + 2)[:-2])


def _json(
    start_response: Callable[..., Any],
    status: str,
    message: str,
    extra: Sequence[tuple[str, str]] = (),
) -> list[bytes]:
    body = json.dumps({"message": message}).encode()
    start_response(
        status,
        [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *extra],
    )
    return [body]


# --- the deployments' processes ------------------------------------------------------------------


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    url: str | None = None
    port: int | None = None
    """A deployment's port, bound by this process before the deployment starts (it is probed
    while init() runs)."""
    started_at: float = 0.0
    error: str | None = None
    settled: threading.Event = field(default_factory=threading.Event)
    readers: list[threading.Thread] = field(default_factory=list)


def _pump(process: _Process, stream: IO[bytes], sink: IO[str], watch_ready: bool) -> None:
    """Copy a deployment's output to ours, each line marked with its name; note the URL it
    listens on and its last ``Error:`` line."""
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\n")
        match = _LISTENING.match(line) if watch_ready else None
        if match is not None and process.url is None:
            process.url = match.group(1)
            process.settled.set()
            continue
        if line.startswith("Error: "):
            process.error = line.removeprefix("Error: ")
        with contextlib.suppress(OSError, ValueError):
            sink.write(f"[{process.name}] {line}\n")
            sink.flush()
    stream.close()
    if watch_ready:
        process.settled.set()  # the process is gone without listening (or its stdout closed)


def _start(local: LocalDeployment, log: IO[str]) -> _Process:
    """The deployment's server process on a loopback port bound here first, so its probes
    can be sent while its init() runs (a request then waits, as in the container)."""
    from modelstore.serving.server import bind_listener

    listener = bind_listener("127.0.0.1", 0)
    env = {
        **local.env,
        # The router counts each deployment's requests in flight and answers the 429 itself; a
        # second count here would release a little later than the router's and could refuse a
        # request the router had just admitted.
        SETTINGS_ENV: local.settings.model_copy(
            update={"max_concurrent_requests_per_instance": None}
        ).model_dump_json(),
        LISTENER_ENV: json.dumps([listener.fd, listener.host, listener.port]),
        PARENT_ENV: str(os.getpid()),  # it stops if the endpoint is killed outright
    }
    try:
        popen = subprocess.Popen(
            [sys.executable, "-m", "modelstore.v2_process", "deployment"],
            cwd=local.deployment.working_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(listener.fd,),
            # Its own process group: a terminal's Ctrl-C reaches the endpoint alone, which
            # stops its processes in order (_stop), instead of racing them to the exit.
            start_new_session=True,
        )
    finally:
        os.close(listener.fd)  # the process has its copy: once it dies, probes are refused
    process = _watch(local.spec.name, popen, log)
    process.port = listener.port
    process.started_at = time.monotonic()
    return process


def _wait_ready(
    processes: Sequence[_Process],
    locals_: Mapping[str, LocalDeployment],
    timing: ProbeTiming,
) -> None:
    """Probe every deployment until each is ready, as Azure probes each container; every one
    that died or failed its probes is named, with its reason, in one EntryScriptError."""
    reasons: dict[str, str] = {}

    def wait(process: _Process) -> None:
        assert process.port is not None
        try:
            ready = wait_until_ready(
                locals_[process.name].spec,
                "127.0.0.1",
                process.port,
                started_at=process.started_at,
                timing=timing,
                alive=lambda: process.popen.poll() is None,
            )
        except ProbeFailedError as exc:
            reasons[process.name] = str(exc).removeprefix(f"deployment {process.name} ")
            return
        if not ready:
            process.popen.wait()
            for thread in process.readers:
                thread.join(timeout=5)
            reasons[process.name] = (
                process.error or f"exited with code {process.popen.returncode} before listening"
            )

    threads = [threading.Thread(target=wait, args=(p,), daemon=True) for p in processes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if reasons:
        raise EntryScriptError(
            "; ".join(
                f"deployment {p.name}: {reasons[p.name]}" for p in processes if p.name in reasons
            )
        )


def _start_router(config: dict[str, Any], fd: int, log: IO[str]) -> _Process:
    env = {**os.environ, ROUTER_ENV: json.dumps(config), PARENT_ENV: str(os.getpid())}
    popen = subprocess.Popen(
        [sys.executable, "-m", "modelstore.v2_process", "router"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=(fd,),
        start_new_session=True,  # as the deployments (see _start)
    )
    return _watch(ROUTER_NAME, popen, log)


def _watch(name: str, popen: subprocess.Popen[bytes], log: IO[str]) -> _Process:
    process = _Process(name=name, popen=popen)
    assert popen.stdout is not None and popen.stderr is not None
    # The readers block SIGINT/SIGTERM (a new thread inherits the mask), so those signals reach
    # the main thread and interrupt its wait: one delivered to a reader would wait for it.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        for stream, ready in ((popen.stdout, True), (popen.stderr, False)):
            thread = threading.Thread(target=_pump, args=(process, stream, log, ready), daemon=True)
            thread.start()
            process.readers.append(thread)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return process


def _stop(processes: Iterable[_Process]) -> None:
    """SIGINT each (gunicorn's quick shutdown: its workers stop too), then wait; kill what is
    still there after 15 s."""
    running = [p for p in processes if p.popen.poll() is None]
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            process.popen.send_signal(signal.SIGINT)
    for process in running:
        try:
            process.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:  # its workers too: it leads a process group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.popen.pid, signal.SIGKILL)
            process.popen.wait()
    for process in processes:
        for thread in process.readers:
            thread.join(timeout=5)


# --- the whole endpoint ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalEndpoint:
    """An endpoint whose deployments and router are all serving."""

    spec: OnlineEndpointSpec
    url: str
    """The endpoint's router: what a client calls (``{url}/score``)."""
    deployments: dict[str, LocalDeployment]
    urls: dict[str, str]
    """Each deployment's own server, on loopback."""
    traffic: dict[str, int]
    keys: tuple[str, ...]
    """The primary and secondary key with ``auth`` and ``auth_mode: key``, else empty."""
    notes: list[str]
    seed: int | None = None
    router_process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    token: EndpointToken | None = field(default=None, repr=False)
    """With ``auth`` and ``auth_mode: aml_token``: the token a request must carry."""

    @property
    def name(self) -> str:
        return self.spec.name

    def wait(self) -> None:
        """Block until the router process ends. It ends with 0 only when asked to stop (a
        SIGINT or SIGTERM sent to it directly: a terminal's Ctrl-C reaches this process alone,
        as the router has a process group of its own); that is a stop, not a failure. Any other
        exit is a crash: ModelstoreError naming its code."""
        assert self.router_process is not None
        code = self.router_process.wait()
        if code != 0:
            raise ModelstoreError(f"the endpoint's router stopped unexpectedly (exit code {code})")


MAX_ROUTER_WORKERS = 32


def router_workers(deployments: Iterable[LocalDeployment]) -> int:
    """Enough router workers that one is free for a request over a deployment's limit, which
    is answered 429 at once rather than waiting for a worker: a worker forwards one request at
    a time, and at most ``2 * max_concurrent_requests_per_instance`` are in flight at each
    deployment. Capped at :data:`MAX_ROUTER_WORKERS` (beyond, requests wait in the router)."""
    admitted = sum(
        pending_limit(local.spec.request_settings.max_concurrent_requests_per_instance)
        for local in deployments
    )
    return max(2, min(admitted + 1, MAX_ROUTER_WORKERS))


def routes_of(urls: Mapping[str, str]) -> list[Route]:
    routes = []
    for name, url in urls.items():
        host, _, port = url.removeprefix("http://").rpartition(":")
        routes.append(Route(name, host.strip("[]"), int(port)))
    return routes


@contextlib.contextmanager
def local_endpoint(
    files: Sequence[str | os.PathLike[str]],
    registry: Callable[[], Registry] | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    traffic: Mapping[str, int] | None = None,
    auth: bool = False,
    check_env: bool = False,
    workers: int | None = None,
    seed: int | None = None,
    log: IO[str] | None = None,
    probe_timing: ProbeTiming = "fast",
    token_lifetime_s: int = AML_TOKEN_LIFETIME_S,
    **overrides: Any,
) -> Iterator[LocalEndpoint]:
    """Load the endpoint YAML and its deployments' YAMLs in ``files``, start every deployment
    in its own server process and the router on ``host:port``, and yield once all deployments
    have run ``init()``, passed their readiness probes (``probe_timing``: see
    :mod:`modelstore.v2.probes`), and the router listens.

    ``traffic`` (e.g. from ``--traffic``) replaces the endpoint's ``traffic:``. Every refusal
    (a bad file, a traffic rule Azure would refuse, ``auth`` with ``aad_token``, a taken
    port) comes before anything starts. If a deployment cannot start, the others are
    stopped and :class:`EntryScriptError` names each one that failed, with its reason. The
    processes are stopped and the app roots removed on exit. ``log`` receives the processes'
    output, each line marked ``[name]`` (default: stderr). ``seed`` (default:
    ``$MODELSTORE_ROUTER_SEED``) makes the traffic split reproducible. With ``auth``, an
    ``auth_mode: key`` endpoint gets two keys (``.keys``), an ``aml_token`` one a token valid
    for ``token_lifetime_s`` (``.token``).
    """
    from modelstore.serving.server import bind_listener
    from modelstore.v2.load import load_deployment_spec

    sink = log if log is not None else sys.stderr
    endpoint_file, deployment_files = split_files(files)
    endpoint = load_endpoint_spec(endpoint_file)
    specs = [load_deployment_spec(path) for path in deployment_files]
    names = [spec.name for spec in specs]
    for path, spec in zip(deployment_files, specs, strict=True):
        if names.count(spec.name) > 1:
            raise InvalidArgumentError(
                f"two deployment YAMLs are named {spec.name}; a deployment name is unique "
                "within its endpoint"
            )
        if spec.endpoint_name is not None and spec.endpoint_name != endpoint.name:
            raise InvalidArgumentError(
                f"{path}: endpoint_name is {spec.endpoint_name} but the endpoint is "
                f"{endpoint.name}; a deployment belongs to the endpoint it names"
            )
    if traffic is not None:
        check_traffic(traffic, names, "the traffic given")
        split = dict(traffic)
    else:
        check_traffic(endpoint.traffic, names, f"{endpoint_file}: traffic")
        split = dict(endpoint.traffic)
    if auth and endpoint.auth_mode == "aad_token":
        raise InvalidArgumentError(
            f"{endpoint_file}: auth_mode aad_token is not emulated (Microsoft Entra tokens "
            "come from Entra ID, which cannot be stood in for here); set auth_mode: key or "
            "aml_token, or pass auth=False"
        )
    if seed is None and os.environ.get(SEED_ENV, "").strip():
        text = os.environ[SEED_ENV].strip()
        if not text.lstrip("-").isdigit():
            raise InvalidArgumentError(f"${SEED_ENV}={text!r} is not an integer; unset it")
        seed = int(text)
    notes: list[str] = []
    if endpoint.mirror_traffic:
        notes.append("Warning: mirror_traffic is not emulated: no request is copied")
    with_keys = auth and endpoint.auth_mode == "key"
    keys = (secrets.token_urlsafe(32), secrets.token_urlsafe(32)) if with_keys else ()
    token = EndpointToken.new(token_lifetime_s) if auth and not with_keys else None
    with contextlib.ExitStack() as stack:
        locals_: dict[str, LocalDeployment] = {}
        for path in deployment_files:
            local = stack.enter_context(
                local_deployment(
                    [path],
                    registry,
                    check_env=check_env,
                    workers=workers,
                    prefix=f"modelstore-endpoint-{endpoint.name}-",
                    **overrides,
                )
            )
            locals_[local.spec.name] = local
            notes.extend(f"{note} [{local.spec.name}]" for note in local.notes)
        listener = bind_listener(host, port)  # a taken port: refused before anything starts
        listener_open = True
        processes: list[_Process] = []
        try:
            for local in locals_.values():
                processes.append(_start(local, sink))
            _wait_ready(processes, locals_, probe_timing)
            urls = {p.name: f"http://127.0.0.1:{p.port}" for p in processes}
            max_concurrent = {
                name: local.spec.request_settings.max_concurrent_requests_per_instance
                for name, local in locals_.items()
            }
            config = {
                "routes": urls,
                "traffic": split,
                "keys": list(keys),
                "tokens": {token.access_token: token.expiry_time_utc} if token else {},
                "seed": seed,
                "fd": listener.fd,
                "host": listener.host,
                "port": listener.port,
                "max_concurrent": max_concurrent,
                "workers": router_workers(locals_.values()),
            }
            router = _start_router(config, listener.fd, sink)
            processes.append(router)
            os.close(listener.fd)
            listener_open = False
            router.settled.wait()
            _raise_failures([router])
            yield LocalEndpoint(
                spec=endpoint,
                url=str(router.url),
                deployments=locals_,
                urls=urls,
                traffic=split,
                keys=keys,
                notes=notes,
                seed=seed,
                router_process=router.popen,
                token=token,
            )
        finally:
            if listener_open:
                os.close(listener.fd)
            _stop(processes)


def _raise_failures(processes: Sequence[_Process]) -> None:
    """Every process that ended without listening, each with its own reason, in one error."""
    failed = [p for p in processes if p.url is None]
    if not failed:
        return
    for process in failed:
        process.popen.wait()
        for thread in process.readers:
            thread.join(timeout=5)
    reasons = "; ".join(
        f"{'deployment ' if p.name != ROUTER_NAME else ''}{p.name}: "
        f"{p.error or f'exited with code {p.popen.returncode} before listening'}"
        for p in failed
    )
    raise EntryScriptError(reasons)
