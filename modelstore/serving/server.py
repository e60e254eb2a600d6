"""Run the scoring app under gunicorn, the WSGI server azmlinfsrv itself uses.

Why gunicorn, and why a worker class of our own:

* azmlinfsrv runs gunicorn *sync* workers: N processes, each importing ``score.py`` and running
  ``init()`` before it accepts a connection, one request at a time per process, and
  ``SCORING_TIMEOUT_MS`` as a ``SIGALRM`` on the main thread (which interrupts ``time.sleep``).
  gunicorn gives us the same process model, the same boot-failure exit code (3) and the same
  request-line/header limits, so scripts see what they see in Azure.
* The sync worker closes every connection after one response, which caps throughput on
  loopback. :class:`MainThreadWorker` keeps gunicorn's event loop for kept-alive connections
  (the ``gthread`` worker's poller) but handles each request *inline on the main thread*, so
  requests are still served one at a time per process and ``SIGALRM`` still works.
* Werkzeug's development server is single-process and not meant for production; waitress and
  gthread run the app off the main thread, where ``SIGALRM`` cannot be used.

The listening socket is bound here, before gunicorn forks, so a taken port is one clear error
and ``--port 0`` reports the port the system picked.
"""

from __future__ import annotations

import contextlib
import email.utils
import enum
import errno
import json
import logging
import os
import re
import select
import selectors
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from gunicorn import glogging, util
from gunicorn.app.base import BaseApplication
from gunicorn.http import wsgi
from gunicorn.http.body import ChunkedReader, LengthReader
from gunicorn.http.errors import LimitRequestHeaders, LimitRequestLine, NoMoreData, ParseException
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

from modelstore.errors import EntryScriptError, ModelstoreError
from modelstore.serving import lifeline, stopping
from modelstore.serving.app import BodyReadTimedOut, MalformedBody
from modelstore.serving.logs import LOG_FORMAT, SERVER_LOGGER
from modelstore.serving.settings import DEFAULT_READ_TIMEOUT_S

WsgiApp = Callable[..., Iterable[bytes]]
"""A WSGI callable (the Flask app); gunicorn calls it with ``environ, start_response``."""

WORKER_BOOT_ERROR = 3
"""gunicorn's exit code when a worker cannot boot; azmlinfsrv exits with it after init() fails."""

_BOOT_FAILURE_FILENAME = "boot-failure.txt"
_READY_FILENAME = "announced"

PREBUFFER_LIMIT = 1024 * 1024
"""Bodies up to this size are received in the poller, before the request is served; larger
ones are read by the request itself, under a deadline (:class:`_DeadlineUnreader`)."""
MIN_BODY_RATE = 64 * 1024
"""Bytes per second a body read by the request must keep up, on average, past the read
timeout: each byte received extends its deadline by ``1 / MIN_BODY_RATE`` seconds."""
FRESH_CONNECTION_WAIT_S = 0.2
"""With several workers, how long a worker that just accepted a connection waits for its first
bytes before accepting others (gthread waits 5 s, on the thread meant to serve it)."""
CLOSE_LINGER_S = 2.0
"""How long a closed connection waits for its client to close too (gunicorn's linger)."""

_RECV_SIZE = 65536
_MAX_LINGER_DRAIN = 65536
_MAX_LINE_BYTES = 8190 + 4096
"""Past this, a line of the head without its end is too long for gunicorn's limits (4094 for
the request line, 8190 for a header field): its parser answers 414/431 at once."""
_MAX_HEAD_BYTES = 100 * (8190 + 2) + 4096
"""gunicorn's largest head: 100 header fields of 8190 bytes, plus the request line."""
_MAX_CHUNK_LINE_BYTES = 8190
_MAX_CHUNK_SIZE_DIGITS = 16
"""More hex digits than a 64-bit size holds: no real body is that large."""
_REQUEST_ID_LIMIT = 100
_REQUEST_ID_HEADER = re.compile(rb"\r\nx-request-id[ \t]*:([^\r\n]*)", re.IGNORECASE)


@dataclass(frozen=True)
class ServerOptions:
    """How to run the server; the app itself is configured by ``ServingSettings``."""

    host: str = "127.0.0.1"
    port: int = 5001
    workers: int = 1
    worker_timeout_s: int = 300
    """gunicorn's ``--timeout`` (azmlinfsrv: ``WORKER_TIMEOUT``): a worker silent this long is
    killed and replaced (its replacement runs ``init()`` again)."""
    keepalive_s: int = 2
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    """Seconds a client has, from connecting or from a request's first byte, to send the whole
    request (head, and a body up to :data:`PREBUFFER_LIMIT`); a late one gets a JSON 408."""
    reload: bool = False
    reload_paths: Sequence[Path] = ()
    """Extra files whose change restarts the workers (modules the script imports are watched
    anyway)."""
    error_headers: Sequence[tuple[str, str]] = field(default_factory=tuple)
    """Headers added to the JSON answers this module gives for requests gunicorn rejects
    before the app sees them (414/431), e.g. ``x-ms-server-version``."""
    log_level: str = "info"
    announce: bool = True
    """Print the ``listening on`` line once a worker has run ``init()``; False when the caller
    announces the server itself (a v2 deployment, once its readiness probe succeeded)."""
    max_concurrent_requests: int | None = None
    """A v2 deployment's ``request_settings.max_concurrent_requests_per_instance``: past twice
    this many requests in flight across the workers, a request gets 429 at once
    (:mod:`modelstore.serving.limits`)."""


@dataclass(frozen=True)
class BoundListener:
    """A listening socket handed to gunicorn by file descriptor."""

    fd: int
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def bind_listener(host: str, port: int) -> BoundListener:
    """Bind and listen on ``host:port`` now, in the launching process.

    Binding before gunicorn starts turns a taken port into one clear error (gunicorn would
    retry for five seconds and print five log lines), and lets ``port=0`` pick a free port
    whose real number we can print.
    """
    try:
        infos = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE | socket.AI_NUMERICSERV
        )
    except socket.gaierror as exc:
        raise ModelstoreError(
            f"cannot listen on host {host!r}: {exc.strerror}; "
            "use an address of this machine such as 127.0.0.1 or 0.0.0.0"
        ) from exc
    family, socktype, proto, _, address = infos[0]
    sock = socket.socket(family, socktype, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ModelstoreError(_bind_failure_text(host, port, exc)) from exc
    bound_host, bound_port = sock.getsockname()[:2]
    return BoundListener(fd=sock.detach(), host=str(bound_host), port=int(bound_port))


def _bind_failure_text(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use (is another server running?); "
            "stop it or choose another --port"
        )
    if exc.errno == errno.EACCES:
        return f"permission denied to listen on port {port}; choose a port above 1023"
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"cannot listen on host {host}: it is not an address of this machine; "
            "use 127.0.0.1 or 0.0.0.0"
        )
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def serve(
    app_factory: Callable[[], WsgiApp],
    options: ServerOptions,
    listener: BoundListener | None = None,
) -> int:
    """Serve ``app_factory()`` (called once in every worker) until interrupted.

    Returns the exit code: 0 after Ctrl-C / SIGTERM, 3 if a worker could not start the entry
    script (its reason is printed last, as one ``Error:`` line), 1 for other server failures.
    Raises ``ModelstoreError`` (exit 1) before anything starts if the address cannot be bound.
    ``listener``: a socket the caller bound already (a v2 endpoint binds the user's port before
    it starts its deployments, and hands it to its router process).
    """
    if listener is None:
        listener = bind_listener(options.host, options.port)
    if options.max_concurrent_requests is not None:
        app_factory = _limited(app_factory, options)
    master_pid = os.getpid()
    # Not a TemporaryDirectory: workers are forks leaving through SystemExit, and each would
    # delete the folder on its way out (and with it the reason a failed worker wrote there).
    scratch = Path(tempfile.mkdtemp(prefix="modelstore-serve-"))
    try:
        failure_file = scratch / _BOOT_FAILURE_FILENAME
        announce = partial(_announce_listening, listener, options, scratch / _READY_FILENAME)
        application = _GunicornApplication(app_factory, options, listener, failure_file, announce)
        try:
            application.run()
            code: object = 0
        except SystemExit as exc:
            if os.getpid() != master_pid:
                raise  # a worker leaving: let it exit as gunicorn intends
            code = exc.code
        return _exit_code(code, failure_file)
    finally:
        if os.getpid() == master_pid:
            shutil.rmtree(scratch, ignore_errors=True)


def _limited(app_factory: Callable[[], WsgiApp], options: ServerOptions) -> Callable[[], WsgiApp]:
    """``app_factory`` behind the in-flight limit, whose shared count is made here, in the
    master, so that every worker forked from it shares it."""
    from modelstore.serving.limits import InFlightGauge, InFlightLimit

    assert options.max_concurrent_requests is not None
    gauge = InFlightGauge(slots=2 * options.workers + 2)  # replaced workers take dead slots
    limit = options.max_concurrent_requests
    return lambda: InFlightLimit(app_factory(), gauge, limit, options.error_headers)


def _announce_listening(
    listener: BoundListener, options: ServerOptions, ready_file: Path, worker: object
) -> None:
    """gunicorn's ``post_worker_init`` hook: the first worker to finish ``init()`` prints the
    URL, once per server (not again for a replaced or reloaded worker).

    The socket has been listening since before the fork, so once this line is out, a request
    is answered. A script whose ``init()`` fails never gets here, and the line never appears.
    Written to the stdout descriptor: the worker's ``print`` goes to the azmlinfsrv logger.
    """
    if not options.announce:
        return
    try:
        os.close(os.open(ready_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return
    announce_listening(listener, options.workers)


def announce_listening(listener: BoundListener, workers: int) -> None:
    """The line saying the server answers, on the stdout descriptor."""
    line = (
        f"modelstore serve: listening on {listener.url} "
        f"(score at {listener.url}/score, {workers} worker(s)); press Ctrl-C to stop\n"
    )
    with contextlib.suppress(OSError):  # stdout closed by the user's shell: keep serving
        os.write(sys.__stdout__.fileno() if sys.__stdout__ else 1, line.encode())


def _exit_code(code: object, failure_file: Path) -> int:
    if code is None:
        return 0
    if not isinstance(code, int):  # gunicorn passes a message on some fatal errors
        print(f"Error: {code}", file=sys.stderr, flush=True)
        return 1
    if code == WORKER_BOOT_ERROR:
        reason = _read_failure(failure_file)
        print(f"Error: {reason}", file=sys.stderr, flush=True)
    return code


def _read_failure(failure_file: Path) -> str:
    try:
        text = failure_file.read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    return text or "a worker failed to boot; the reason is in the log above"


class _GunicornApplication(BaseApplication):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn configured from :class:`ServerOptions` instead of its command line."""

    def __init__(
        self,
        app_factory: Callable[[], WsgiApp],
        options: ServerOptions,
        listener: BoundListener,
        failure_file: Path,
        on_worker_ready: Callable[[object], None],
    ) -> None:
        self._app_factory = app_factory
        self.options = options
        self._listener = listener
        self._failure_file = failure_file
        self._on_worker_ready = on_worker_ready
        super().__init__()

    def load_config(self) -> None:
        options = self.options
        settings: dict[str, Any] = {
            "bind": [f"fd://{self._listener.fd}"],
            "workers": options.workers,
            "worker_class": MainThreadWorker,
            "threads": 1,
            "timeout": options.worker_timeout_s,
            "keepalive": options.keepalive_s,
            "reload": options.reload,
            "reload_extra_files": [str(path) for path in options.reload_paths],
            "logger_class": AzmlLogger,
            "loglevel": options.log_level,
            "proc_name": "modelstore-serve",
            # gunicorn's control socket is one fixed path per user: two servers would clash.
            "control_socket_disable": True,
            "post_worker_init": self._on_worker_ready,
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self) -> WsgiApp:
        """Runs in each worker after the fork: import score.py and run init()."""
        try:
            return self._app_factory()
        except EntryScriptError as exc:
            if self.options.reload:
                # Keep the development server up: answer 503 until the script is fixed.
                logging.getLogger(SERVER_LOGGER).error(
                    "%s; fix the entry script, the server reloads on save", exc
                )
                return _not_started_app(str(exc), self.options.error_headers)
            self._failure_file.write_text(str(exc), encoding="utf-8")
            sys.exit(WORKER_BOOT_ERROR)


def _not_started_app(reason: str, extra_headers: Sequence[tuple[str, str]]) -> WsgiApp:
    """The app a ``--reload`` server runs while the entry script cannot start."""
    body = json.dumps({"message": f"The entry script could not start: {reason}"}).encode()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            *extra_headers,
        ]
        start_response("503 SERVICE UNAVAILABLE", headers)
        return [body]

    return app


class _NoThreadPool:
    """Stands in for gthread's thread pool, which gunicorn shuts down on exit: every request
    runs on the main thread, so there is nothing to stop."""

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Nothing runs in the background."""


class _Next(enum.Enum):
    """What the poller does with a connection after reading from it."""

    WAIT = "wait"
    """Part of a request is buffered: wait in the poller for the rest."""
    SERVE = "serve"
    """A whole request (head and body) is buffered: serve it."""
    SERVE_UNBUFFERED = "serve unbuffered"
    """The head is buffered and the body is left to the main thread (it is larger than
    :data:`PREBUFFER_LIMIT`, the client waits for ``100 Continue``, or the head is one gunicorn
    refuses anyway), under the read deadline of :class:`_DeadlineUnreader`."""
    REFUSE = "refuse"
    """The chunked framing of the body is malformed: answer 400 without serving it."""


def _request_verdict(data: bytes | bytearray, prebuffer_limit: int) -> tuple[_Next, str]:
    """Whether ``data`` (a connection's buffered bytes) starts with a whole request.

    Only the framing is looked at (the end of the head, ``Content-Length``,
    ``Transfer-Encoding: chunked``); everything else is gunicorn's parser's to judge, so a head
    it would refuse (too long, bare LF, duplicate lengths) is handed to it at once.
    """
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        line_start = data.rfind(b"\n") + 1
        if (
            len(data) > _MAX_HEAD_BYTES
            or len(data) - line_start > _MAX_LINE_BYTES
            or b"\n\n" in data
        ):
            return _Next.SERVE_UNBUFFERED, ""
        return _Next.WAIT, ""
    body_start = head_end + 4
    # One lower-cased copy of the head and a few C-level searches: this runs on every request.
    head = bytes(data[: head_end + 2]).lower()
    if b"\r\nexpect:" in head:  # the client waits for "100 Continue" before sending the body
        return _Next.SERVE_UNBUFFERED, ""
    coding = _header_value(head, b"\r\ntransfer-encoding:")
    length_text = _header_value(head, b"\r\ncontent-length:")
    if coding is not None:
        if coding != b"chunked" or length_text is not None:
            return _Next.SERVE_UNBUFFERED, ""  # gunicorn refuses or decides these
        return _chunked_verdict(data, body_start, prebuffer_limit)
    if length_text is None:
        return _Next.SERVE, ""
    if not length_text.isdigit():
        return _Next.SERVE_UNBUFFERED, ""
    length = int(length_text)
    if length > prebuffer_limit:
        return _Next.SERVE_UNBUFFERED, ""
    return (_Next.SERVE if len(data) - body_start >= length else _Next.WAIT), ""


def _header_value(head: bytes, name: bytes) -> bytes | None:
    """The value of header ``name`` (``b"\\r\\nname:"``) in the lower-cased ``head``; ``b"?"``
    (never a valid value) when it is there twice, so the caller leaves it to gunicorn."""
    start = head.find(name)
    if start < 0:
        return None
    if head.find(name, start + 1) >= 0:
        return b"?"
    start += len(name)
    return head[start : head.index(b"\r\n", start)].strip(b" \t")


_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")


def _chunked_verdict(
    data: bytes | bytearray, start: int, prebuffer_limit: int
) -> tuple[_Next, str]:
    """:func:`_request_verdict` for a chunked body starting at ``start`` (RFC 9112 §7.1)."""
    position = start
    end = len(data)
    while True:
        line_end = data.find(b"\r\n", position)
        if line_end < 0:
            if end - position > _MAX_CHUNK_LINE_BYTES:
                return _Next.REFUSE, "a chunk size line has no end"
            return _Next.WAIT, ""
        size_text = bytes(data[position:line_end]).split(b";", 1)[0].rstrip(b" \t")
        if not size_text or not _HEX_DIGITS.issuperset(size_text):
            return _Next.REFUSE, f"invalid chunk size {size_text.decode('latin-1')!r}"
        if len(size_text) > _MAX_CHUNK_SIZE_DIGITS:
            return _Next.REFUSE, f"chunk size {size_text.decode('latin-1')!r} is too large"
        size = int(size_text, 16)
        if size == 0:  # the last chunk, then trailer lines up to an empty line
            trailers = line_end + 2
            if data[trailers : trailers + 2] == b"\r\n" or data.find(b"\r\n\r\n", trailers) >= 0:
                return _Next.SERVE, ""
            if end - trailers > _MAX_HEAD_BYTES:
                return _Next.SERVE_UNBUFFERED, ""
            return _Next.WAIT, ""
        chunk_end = line_end + 2 + size
        if chunk_end - start > prebuffer_limit:
            return _Next.SERVE_UNBUFFERED, ""
        if end < chunk_end + 2:
            return _Next.WAIT, ""
        if data[chunk_end : chunk_end + 2] != b"\r\n":
            return _Next.REFUSE, f"a chunk is longer than its declared size of {size} bytes"
        position = chunk_end + 2


def _client_request_id(data: bytes | bytearray) -> str | None:
    """The ``x-request-id`` a refused request carried, when usable as the answer's id."""
    head_end = data.find(b"\r\n\r\n")
    match = _REQUEST_ID_HEADER.search(data, 0, head_end if head_end >= 0 else 0)
    if match is None:
        return None
    value = match.group(1).strip(b" \t").decode("latin-1")
    return value if 0 < len(value) <= _REQUEST_ID_LIMIT else None


class _DeadlineUnreader(SocketUnreader):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn's socket reader, bounded by a deadline: the main thread never waits past it.

    A request reaches the main thread whole, from the poller's buffer, except for bodies over
    :data:`PREBUFFER_LIMIT` (and those announced with ``Expect: 100-continue``). Reading those
    must not let a client that trickles bytes hold the worker: each received byte moves the
    deadline by ``1 / MIN_BODY_RATE`` seconds, so a body arriving at least that fast is never
    cut, and a slower one is refused with 408 after about the read timeout. A pause longer
    than the read timeout is refused too, however much credit the bytes before it earned.
    """

    deadline = float("inf")
    idle_timeout = float("inf")

    def chunk(self, size_hint: int | None = None) -> bytes:
        size = self.mxchunk
        if size_hint and size_hint > size:
            size = min(size_hint, self.max_body_chunk)
        while True:
            try:
                data: bytes = self.sock.recv(size, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                remaining = min(self.deadline - time.monotonic(), self.idle_timeout)
                if remaining <= 0 or not select.select([self.sock], [], [], remaining)[0]:
                    raise BodyReadTimedOut(
                        description="The rest of the request did not arrive in time; send "
                        "the body without pausing."
                    ) from None
                continue
            self.deadline += len(data) / MIN_BODY_RATE
            return data


class _TranslatedBody:
    """``wsgi.input`` of a body read from the socket: gunicorn's framing errors (a malformed
    chunk met by the app) become a 400 instead of an internal error."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def read(self, size: int | None = None) -> bytes:
        try:
            return bytes(self._body.read(size))
        except (ParseException, NoMoreData) as exc:
            raise _malformed(exc) from exc

    def readline(self, size: int | None = None) -> bytes:
        try:
            return bytes(self._body.readline(size))
        except (ParseException, NoMoreData) as exc:
            raise _malformed(exc) from exc

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


_ENDED_EARLY = "The client ended the request before the end of its body; send the whole body."


def _malformed(exc: Exception) -> MalformedBody:
    if isinstance(exc, NoMoreData):
        return MalformedBody(description=_ENDED_EARLY)
    return MalformedBody(description=_malformed_body_message(str(exc)))


def _malformed_body_message(detail: str) -> str:
    return (
        f"The request body is not valid chunked encoding ({detail}). Send the chunks with "
        "their sizes in hex and each followed by CRLF, ending with a 0-size chunk, or send "
        "a Content-Length body."
    )


class MainThreadWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn's gthread event loop (keep-alive) with requests handled on the main thread.

    One request at a time per process, as azmlinfsrv's sync workers, and ``signal.SIGALRM``
    (the ``SCORING_TIMEOUT_MS`` mechanism) keeps working because requests run on the main
    thread. So that no client can hold that thread, every connection waits in the poller
    until a whole request has arrived: bytes are read as they come (never blocking) and
    buffered, and the request is served only once its head and body are all there. A client
    that has not finished within ``--read-timeout`` seconds is answered 408 (or, if it sent
    nothing, disconnected). Bodies over :data:`PREBUFFER_LIMIT` are read by the request under
    a deadline instead (:class:`_DeadlineUnreader`), and closing connections linger in the
    poller, not on the main thread.
    """

    cfg: Any
    alive: bool
    app: Any
    tpool: _NoThreadPool

    poller: selectors.BaseSelector
    keepalived_conns: deque[Any]
    nr_conns: int

    def init_signals(self) -> None:
        """gunicorn's handlers, then a lifeline: the worker stops (as on Ctrl-C) when its
        master is killed outright, even inside a long ``init()`` (see
        ``modelstore.serving.lifeline``). Armed after the handlers, so the signal is handled."""
        super().init_signals()
        lifeline.die_with_parent(self.ppid)

    def handle_quit(self, sig: int, frame: Any) -> None:
        """Ctrl-C / SIGQUIT: gunicorn raises ``SystemExit(0)`` wherever the worker is, perhaps
        inside ``init()``; say first that this is the server stopping. (SIGTERM, a graceful
        stop, lets ``init()`` finish: a real failure there is still reported as one.)"""
        stopping.request()
        super().handle_quit(sig, frame)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._serving = False
        self._ready: deque[Any] = deque()
        self._last_heartbeat = -float("inf")
        self._reading: dict[Any, float] = {}
        """Connections waiting for (the rest of) a request, with the time by which it must
        have arrived, in the order of those times (each is now + the read timeout)."""
        self._closing: dict[Any, float] = {}
        """Connections closed for writing, waiting for the client to close (RFC 9112 §9.6),
        with the time they are closed anyway; in that order."""
        self._fresh: Any = None
        """With several workers, the connection just accepted while its first bytes are awaited:
        the worker accepts no other one meanwhile (up to ``_fresh_until``), so that connections
        arriving together spread over the workers instead of queueing behind one."""
        self._fresh_until = 0.0
        options = getattr(self.app, "options", None) or ServerOptions()
        self._read_timeout_s = float(options.read_timeout_s)
        self._error_headers = tuple(options.error_headers)

    def notify(self) -> None:
        """Tell the arbiter this worker is alive, at most every ``_heartbeat_interval_s``.

        gunicorn calls this on every event-loop turn, and each call is a system call on the
        worker's heartbeat file; the arbiter only needs one within ``--timeout`` (300 s).
        """
        now = time.monotonic()
        if now - self._last_heartbeat >= _heartbeat_interval_s(self.timeout):
            self._last_heartbeat = now
            super().notify()

    def get_thread_pool(self) -> _NoThreadPool:
        return _NoThreadPool()

    def run(self) -> None:
        # gunicorn reads its settings through Config.__getattr__ some twenty times a request;
        # they cannot change inside a worker, so read each once.
        self.cfg = _SettledConfig(self.cfg)
        super().run()

    # --- the poller side: connections waiting for a whole request ----------------------------

    def accept(self, listener: Any) -> None:
        """Accept a connection and wait in the poller for its first request."""
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())
        if self.cfg.workers > 1:
            self._fresh = conn
            self._fresh_until = time.monotonic() + FRESH_CONNECTION_WAIT_S
            self.set_accept_enabled(False)
        # Blocking mode for good (writes); reads pass MSG_DONTWAIT instead of switching.
        conn.init()
        conn.parser.unreader = _DeadlineUnreader(conn.sock)
        conn.received = b""
        conn.buffered_whole = True
        self._reading[conn] = time.monotonic() + self._read_timeout_s
        # Registered once for the connection's life: the poller is not consulted while a
        # request runs, so the registration never needs to change.
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def set_accept_enabled(self, enabled: bool) -> None:
        """gthread's switch (its loop turns accepting on every turn), held off while a fresh
        connection's first bytes are awaited."""
        if enabled and self._fresh is not None:
            if time.monotonic() < self._fresh_until:
                return
            self._fresh = None
        super().set_accept_enabled(enabled)

    def _on_readable(self, conn: Any, client: Any) -> None:
        if conn is self._fresh:
            self._fresh = None  # gthread's loop turns accepting back on after this turn
        if conn in self._closing:
            self._drain_closing(conn)
            return
        data = _recv_now(conn)
        if data is None:
            return
        reading = conn in self._reading
        if not reading:  # kept alive and idle until now
            self.keepalived_conns.remove(conn)
            if not data:
                self._close_now(conn)
                return
        elif not data:  # the client closed its side mid-request (or before any)
            del self._reading[conn]
            if conn.received.find(b"\r\n\r\n") < 0:  # not even a head: nothing to answer
                self._close_now(conn)
            else:
                self._refuse(conn, "400 Bad Request", _ENDED_EARLY, conn.received)
            return
        if conn.received:
            conn.received += data
            data = conn.received
        self._consider(conn, data)

    def _consider(self, conn: Any, buffered: bytes | bytearray) -> None:
        """Serve, refuse or keep waiting for the request in ``buffered`` (all ``conn`` has
        received of it so far)."""
        verdict, detail = _request_verdict(buffered, PREBUFFER_LIMIT)
        if verdict is _Next.WAIT:
            if buffered is not conn.received:
                conn.received = bytearray(buffered)
            if conn not in self._reading:
                self._reading[conn] = time.monotonic() + self._read_timeout_s
            return
        deadline = self._reading.pop(conn, None) or time.monotonic() + self._read_timeout_s
        conn.received = b""
        if verdict is _Next.REFUSE:
            self._refuse(conn, "400 Bad Request", _malformed_body_message(detail), buffered)
            return
        unreader = conn.parser.unreader
        unreader.unread(bytes(buffered))
        unreader.deadline = deadline
        unreader.idle_timeout = self._read_timeout_s
        conn.buffered_whole = verdict is _Next.SERVE
        self._serve_soon(conn)

    def _refuse(
        self, conn: Any, status: str, message: str, buffered: bytes | bytearray = b""
    ) -> None:
        """Answer ``status`` as JSON (with request ids, the client's ``x-request-id`` if it
        sent one) for a request that is never served."""
        self.log.warning("Refused request from ip=%s: %s", (conn.client or ("",))[0], message)
        answer = _json_error_response(
            status, message, self._error_headers, _client_request_id(buffered)
        )
        conn.received = b""
        with contextlib.suppress(OSError):
            conn.sock.send(answer, socket.MSG_DONTWAIT)
        self._linger(conn)

    def _linger(self, conn: Any) -> None:
        """Close ``conn`` without a reset that could destroy the answer just sent: half-close,
        then wait in the poller (never on the main thread) for the client to close."""
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close_now(conn)
            return
        conn.drained = 0
        self._closing[conn] = time.monotonic() + CLOSE_LINGER_S

    def _drain_closing(self, conn: Any) -> None:
        data = _recv_now(conn)
        if data is None:
            return
        conn.drained += len(data)
        if not data or conn.drained > _MAX_LINGER_DRAIN:
            self._close_now(conn)

    def _close_now(self, conn: Any) -> None:
        self._reading.pop(conn, None)
        self._closing.pop(conn, None)
        # The socket may already be closed (a failed answer closes it).
        with contextlib.suppress(OSError, KeyError, ValueError):
            self.poller.unregister(conn.sock)
        self.nr_conns -= 1
        util.close(conn.sock)

    def murder_keepalived(self, force: bool = False) -> None:
        """gthread's expiry of idle kept-alive connections."""
        now = time.monotonic()
        while self.keepalived_conns:
            conn = self.keepalived_conns[0]
            if conn.timeout - now > 0 and not force:
                break
            self.keepalived_conns.popleft()
            self._close_now(conn)

    def murder_pending(self) -> None:
        """Expire requests not received in time (408, or a silent close for a connection that
        sent nothing) and lingering connections whose client never closed."""
        now = time.monotonic()
        while self._reading:
            conn, deadline = next(iter(self._reading.items()))
            if deadline > now:
                break
            del self._reading[conn]
            if self._arrived_meanwhile(conn):
                continue
            if conn.received:
                message = self._late_request_message()
                self._refuse(conn, "408 Request Timeout", message, conn.received)
            else:
                self._close_now(conn)
        while self._closing:
            conn, deadline = next(iter(self._closing.items()))
            if deadline > now:
                break
            self._close_now(conn)

    def _arrived_meanwhile(self, conn: Any) -> bool:
        """Whether bytes the socket holds at expiry complete the request; it is then served,
        not refused. The poller does not look while the main thread serves another request
        (a large body may take up to the read timeout), so a request that arrived whole in
        the meantime is still waiting in the socket when its deadline is checked."""
        data = _recv_now(conn)
        if not data:  # nothing more (None), or the client closed its side (b"")
            return False
        buffered = bytes(conn.received) + data
        if _request_verdict(buffered, PREBUFFER_LIMIT)[0] is _Next.WAIT:
            conn.received = bytearray(buffered)  # still not whole: refused with all it sent
            return False
        # A body still to be read by the worker gets a fresh read deadline from now.
        self._reading[conn] = time.monotonic() + self._read_timeout_s
        self._consider(conn, buffered)
        return True

    def _late_request_message(self) -> str:
        return (
            f"The request did not arrive within {self._read_timeout_s:g} s. Send the headers "
            "and body without pausing, or restart the server with a larger --read-timeout."
        )

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        """gthread's poller wait, woken in time for the next read or linger deadline."""
        deadlines = [
            next(iter(waiting.values())) for waiting in (self._reading, self._closing) if waiting
        ]
        if self._fresh is not None:
            deadlines.append(self._fresh_until)
        if deadlines:
            timeout = min(timeout, max(0.0, min(deadlines) - time.monotonic()))
        super().wait_for_and_dispatch_events(timeout)

    # --- the main-thread side: serving a request that has arrived -----------------------------

    def _serve_soon(self, conn: Any) -> None:
        """Serve ``conn``'s request now, then settle the connection (kept alive, or closed).

        A connection whose next request is already buffered (pipelining) comes back through
        here while the loop runs; it is queued and served by the loop rather than by
        recursion, so a long pipeline cannot exhaust the stack.
        """
        self._ready.append(conn)
        if self._serving:
            return
        self._serving = True
        try:
            while self._ready:
                ready = self._ready.popleft()
                self._settle(ready, self.handle(ready))
        finally:
            self._serving = False

    def handle(self, conn: Any) -> bool:
        """gthread's ``handle`` for a request already buffered: no wait for data (it is
        there), no HTTP/2 (modelstore serves HTTP/1.1). Returns whether to keep the
        connection."""
        req = None
        try:
            req = next(conn.parser)
            if not req:
                return False
            return self._keepalive_after(conn, self.handle_request(req, conn))
        except NoMoreData as exc:
            self.log.debug("Ignored premature client disconnection. %s", exc)
        except StopIteration as exc:
            self.log.debug("Closing connection. %s", exc)
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                self.log.exception("Socket error processing request.")
        except Exception as exc:
            self.handle_error(req, conn.sock, conn.client, exc)
        return False

    def _settle(self, conn: Any, keepalive: bool) -> None:
        """Back to the poller after a request: idle (kept alive), reading the next request
        already begun, or closing."""
        try:
            if not keepalive:
                self._linger(conn)
                return
            unreader = conn.parser.unreader
            leftover = unreader.buf.getvalue()
            if leftover:  # pipelined: the next request has begun (or is all there)
                unreader.take_buffered()
                self._consider(conn, leftover)
                return
            conn.set_timeout()
            if not self.alive:
                conn.timeout = min(conn.timeout, time.monotonic() + STOP_KEEPALIVE_LINGER)
            self.keepalived_conns.append(conn)
        except Exception:
            self._close_now(conn)

    def _keepalive_after(self, conn: Any, keepalive: bool) -> bool:
        """Whether the connection can serve another request once this one is answered.

        A body the app left unread is skipped when it is in the buffer; one still on the
        socket would have to be waited for on the main thread, so the connection is closed
        instead (its answer said ``Connection: keep-alive``, which a client must tolerate).
        """
        if not keepalive:
            return False
        if _body_fully_read(conn.parser):
            return True
        if not conn.buffered_whole:
            return False
        return bool(conn.parser.finish_body())

    def handle_request(self, req: Any, conn: Any) -> bool:
        """gthread's ``handle_request`` with :class:`CoalescingResponse` (and the keep-alive
        rules unchanged). Returns whether the connection may serve another request."""
        environ: dict[str, Any] = {}
        resp = None
        try:
            self.cfg.pre_request(self, req)
            request_start = datetime.now()
            resp, environ = wsgi.create(
                req, conn.sock, conn.client, conn.server, self.cfg,
                response_class=CoalescingResponse,
            )  # fmt: skip
            environ["wsgi.multithread"] = False
            if not conn.buffered_whole or type(getattr(req.body, "reader", None)) is ChunkedReader:
                environ["wsgi.input"] = _TranslatedBody(environ["wsgi.input"])
            self.nr += 1
            if self.nr >= self.max_requests:
                if self.alive:
                    self.log.info("Autorestarting worker after current request.")
                    self.alive = False
                resp.force_close()
            if (
                not self.alive
                or not self.cfg.keepalive
                or len(self.keepalived_conns) >= self.max_keepalived
            ):
                resp.force_close()
            respiter = self.wsgi(environ, resp.start_response)
            try:
                for item in respiter:
                    resp.write(item)
                resp.close()
            finally:
                self.log.access(resp, req, environ, datetime.now() - request_start)
                if hasattr(respiter, "close"):
                    respiter.close()
            if resp.should_close():
                self.log.debug("Closing connection.")
                return False
        except OSError:
            raise
        except (Exception, SystemExit):
            if resp is not None and resp.headers_sent:
                # Part of the answer may be on the wire: another status line would corrupt it.
                # The connection is closed next (handle() answers False), in the poller.
                self.log.exception("Error handling request")
                raise StopIteration() from None
            raise
        finally:
            try:
                self.cfg.post_request(self, req, environ, resp)
            except Exception:
                self.log.exception("Exception in post_request hook")
        return True

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """Answer over-long request lines (414) and headers (431), and requests whose head did
        not arrive in time (408), with the JSON bodies and request-id headers of every other
        modelstore error, instead of gunicorn's HTML page."""
        if isinstance(exc, LimitRequestLine):
            status = "414 URI Too Long"
            message = (
                f"The request line is too long ({exc}). "
                "Send large inputs in the POST body instead of the URL."
            )
        elif isinstance(exc, LimitRequestHeaders):
            status = "431 Request Header Fields Too Large"
            message = (
                f"The request headers are too large ({exc}). "
                "Shorten them or send the data in the body."
            )
        elif isinstance(exc, BodyReadTimedOut):
            status = "408 Request Timeout"
            message = self._late_request_message()
        else:
            super().handle_error(req, client, addr, exc)
            return
        self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
        try:
            util.write_nonblock(client, _json_error_response(status, message, self._error_headers))
        except Exception:
            self.log.debug("Failed to send error message.")


def _json_error_response(
    status: str,
    message: str,
    extra: Sequence[tuple[str, str]],
    request_id: str | None = None,
) -> bytes:
    body = json.dumps({"message": message}).encode()
    request_id = request_id or str(uuid.uuid4())
    headers = [
        ("Connection", "close"),
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("x-request-id", request_id),
        ("x-ms-request-id", request_id),
        *extra,
    ]
    head = f"HTTP/1.1 {status}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
    return head.encode("latin-1") + body


HEARTBEAT_INTERVAL_S = 0.5
"""The most often a worker touches its heartbeat file (gunicorn would on every loop turn)."""


def _recv_now(conn: Any) -> bytes | None:
    """What the connection's socket holds now, without blocking: None when nothing has arrived
    yet, b"" when the peer closed it or it failed (both end the connection)."""
    try:
        data: bytes = conn.sock.recv(_RECV_SIZE, socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""
    return data


def _heartbeat_interval_s(worker_timeout_s: float) -> float:
    # A tenth of the timeout for very short --timeout values, so liveness never depends on it.
    return min(HEARTBEAT_INTERVAL_S, worker_timeout_s / 10) if worker_timeout_s else 0.0


def _body_fully_read(parser: Any) -> bool:
    """Whether the current request's Content-Length body was read to its end (or was empty)."""
    body = getattr(getattr(parser, "mesg", None), "body", None)
    if body is None:
        return False
    reader: Any = getattr(body, "reader", None)
    if type(reader) is not LengthReader:
        return False
    return reader.length == 0 and not body.failed and body.buf.tell() == 0


class _SettledConfig:
    """A read-through cache over a worker's gunicorn ``Config``."""

    def __init__(self, config: Any) -> None:
        self.__dict__["_config"] = config

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._config, name)
        self.__dict__[name] = value
        return value


_date_cache: list[Any] = [None, ""]
"""The second (an int) whose ``Date`` header value is cached, and that value."""


def _http_date_now() -> str:
    """``gunicorn.util.http_date()``: the value only changes when the second does."""
    second = int(time.time())
    if second != _date_cache[0]:
        _date_cache[1] = email.utils.formatdate(second, localtime=False, usegmt=True)
        _date_cache[0] = second
    return str(_date_cache[1])


class CoalescingResponse(wsgi.Response):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn's response, sending the status line and headers in the same write as the first
    body bytes: one loopback send instead of two per small answer (a measurable share of a
    trivial request's cost)."""

    _head = b""
    headers_sent: bool

    def default_headers(self) -> list[str]:
        """gunicorn's status line and default headers, with the ``Date`` value formatted
        once per second (it has a one-second resolution) instead of on every response."""
        if self.upgrade:
            connection = "upgrade"
        elif self.should_close():
            connection = "close"
        else:
            connection = "keep-alive"
        major, minor = self.req.version
        lines = [
            f"HTTP/{major}.{minor} {self.status}\r\n",
            f"Server: {self.version}\r\n",
            f"Date: {_http_date_now()}\r\n",
            f"Connection: {connection}\r\n",
        ]
        if self.chunked:
            lines.append("Transfer-Encoding: chunked\r\n")
        return lines

    def process_headers(self, headers: list[tuple[str, str]]) -> None:
        """gunicorn drops an app's ``Connection`` header as hop-by-hop; ``close`` is honoured
        here (the app answered without reading the body, e.g. the early 413), so the
        connection is closed and the client is told so."""
        super().process_headers(headers)
        for name, value in headers:
            if name.lower() == "connection" and value.strip().lower() == "close":
                self.force_close()

    def send_headers(self) -> None:
        if self.headers_sent:
            return
        lines = self.default_headers()
        lines.extend(f"{name}: {value}\r\n" for name, value in self.headers)
        self._head = ("".join(lines) + "\r\n").encode("latin-1")
        self.headers_sent = True

    def _emit_body(self, data: bytes) -> None:
        if self.chunked:
            data = b"%X\r\n%s\r\n" % (len(data), data)
        head, self._head = self._head, b""
        self.sock.sendall(head + data if head else data)

    def close(self) -> None:
        if not self.headers_sent:
            self.send_headers()
        head, self._head = self._head, b""
        if self.chunked:
            head += b"0\r\n\r\n"
        if head:
            self.sock.sendall(head)

    def sendfile(self, respiter: Any) -> bool:
        """Never: file bodies go through ``write`` so the head is sent before them."""
        return False


class AzmlLogger(glogging.Logger):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn's logger writing azmlinfsrv's line format with UTC timestamps."""

    error_fmt = LOG_FORMAT
    datefmt = None

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            if handler.formatter is not None:
                handler.formatter.converter = time.gmtime
