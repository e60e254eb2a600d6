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
import errno
import json
import logging
import os
import selectors
import shutil
import socket
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from gunicorn import glogging, util
from gunicorn.app.base import BaseApplication
from gunicorn.http import wsgi
from gunicorn.http.body import LengthReader
from gunicorn.http.errors import LimitRequestHeaders, LimitRequestLine
from gunicorn.workers.gthread import _DEFER, STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

from modelstore.errors import EntryScriptError, ModelstoreError
from modelstore.serving.logs import LOG_FORMAT, SERVER_LOGGER

WsgiApp = Callable[..., Iterable[bytes]]
"""A WSGI callable (the Flask app); gunicorn calls it with ``environ, start_response``."""

WORKER_BOOT_ERROR = 3
"""gunicorn's exit code when a worker cannot boot; azmlinfsrv exits with it after init() fails."""

_BOOT_FAILURE_FILENAME = "boot-failure.txt"
_READY_FILENAME = "announced"


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
    reload: bool = False
    reload_paths: Sequence[Path] = ()
    """Extra files whose change restarts the workers (modules the script imports are watched
    anyway)."""
    error_headers: Sequence[tuple[str, str]] = field(default_factory=tuple)
    """Headers added to the JSON answers this module gives for requests gunicorn rejects
    before the app sees them (414/431), e.g. ``x-ms-server-version``."""
    log_level: str = "info"


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


def serve(app_factory: Callable[[], WsgiApp], options: ServerOptions) -> int:
    """Serve ``app_factory()`` (called once in every worker) until interrupted.

    Returns the exit code: 0 after Ctrl-C / SIGTERM, 3 if a worker could not start the entry
    script (its reason is printed last, as one ``Error:`` line), 1 for other server failures.
    Raises ``ModelstoreError`` (exit 1) before anything starts if the address cannot be bound.
    """
    listener = bind_listener(options.host, options.port)
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


def _announce_listening(
    listener: BoundListener, options: ServerOptions, ready_file: Path, worker: object
) -> None:
    """gunicorn's ``post_worker_init`` hook: the first worker to finish ``init()`` prints the
    URL, once per server (not again for a replaced or reloaded worker).

    The socket has been listening since before the fork, so once this line is out, a request
    is answered. A script whose ``init()`` fails never gets here, and the line never appears.
    Written to the stdout descriptor: the worker's ``print`` goes to the azmlinfsrv logger.
    """
    try:
        os.close(os.open(ready_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return
    line = (
        f"modelstore serve: listening on {listener.url} "
        f"(score at {listener.url}/score, {options.workers} worker(s)); press Ctrl-C to stop\n"
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


class _Finished:
    """The outcome of a job that already ran: the two calls gthread's ``finish_request`` makes
    on a future (``cancelled``, ``result``), without a ``Future``'s lock and condition."""

    def __init__(self, result: Any = None, error: Exception | None = None) -> None:
        self._result = result
        self._error = error

    def cancelled(self) -> bool:
        return False

    def done(self) -> bool:
        return True

    def result(self, timeout: float | None = None) -> Any:
        if self._error is not None:
            raise self._error
        return self._result

    def add_done_callback(self, callback: Callable[[_Finished], object]) -> None:
        callback(self)


class _InlineExecutor:
    """Stands in for gthread's thread pool: runs each connection job at once, on the caller's
    (main) thread, and hands back its finished outcome."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> _Finished:
        try:
            return _Finished(fn(*args))
        except Exception as exc:  # BaseException (SystemExit from a kill) must propagate
            return _Finished(error=exc)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Nothing runs in the background, so there is nothing to stop."""


class MainThreadWorker(ThreadWorker):  # type: ignore[misc]  # gunicorn is untyped
    """gunicorn's gthread event loop (keep-alive) with requests handled on the main thread.

    One request at a time per process, as azmlinfsrv's sync workers, and ``signal.SIGALRM``
    (the ``SCORING_TIMEOUT_MS`` mechanism) keeps working because ``run()`` is called on the
    main thread. A new connection is served before the worker accepts another one (gthread's
    wait for its first request), so a busy worker leaves new connections to idle workers.
    """

    cfg: Any
    alive: bool
    tpool: _InlineExecutor

    poller: selectors.BaseSelector
    keepalived_conns: deque[Any]
    pending_conns: deque[Any]
    nr_conns: int

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._finishing = False
        self._ready: deque[Any] = deque()
        self._last_heartbeat = -float("inf")
        self._polled: set[Any] = set()
        """Connections whose socket is registered with the poller (it stays registered
        between kept-alive requests)."""

    def notify(self) -> None:
        """Tell the arbiter this worker is alive, at most every ``_heartbeat_interval_s``.

        gunicorn calls this on every event-loop turn, and each call is a system call on the
        worker's heartbeat file; the arbiter only needs one within ``--timeout`` (300 s).
        """
        now = time.monotonic()
        if now - self._last_heartbeat >= _heartbeat_interval_s(self.timeout):
            self._last_heartbeat = now
            super().notify()

    def accept(self, listener: Any) -> None:
        """gthread's ``accept``, with a client socket that skips redundant mode switches."""
        try:
            client_sock, client_addr = listener.accept()
            self.nr_conns += 1
            client_sock.__class__ = _ModeKeepingSocket
            client_sock.setblocking(True)
            conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())
            self.enqueue_req(conn)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise

    def on_client_socket_readable(self, conn: Any, client: Any) -> None:
        """A kept-alive connection has a request: serve it, leaving its socket registered.

        gthread unregisters the socket here and registers it again once the request is
        done (two ``epoll_ctl`` calls per request); the request runs on this thread, so the
        poller cannot report the socket meanwhile and the registration can simply stay.
        """
        self.keepalived_conns.remove(conn)
        self.enqueue_req(conn)

    def finish_request(self, conn: Any, fs: Any) -> None:
        """gthread's ``finish_request`` for a poller that keeps kept-alive sockets registered
        (and in blocking mode: only this thread reads them, after the poller said readable)."""
        try:
            result = fs.result() if not fs.cancelled() else False
            if result is _DEFER and self.alive:
                conn.sock.setblocking(False)
                conn.timeout = time.monotonic() + self.cfg.keepalive
                self.pending_conns.append(conn)
                self._watch(conn, partial(self.on_pending_socket_readable, conn))
            elif result:
                if conn.parser.unreader.buf.getvalue():
                    # Already buffered (pipelined or read ahead): the poller would not wake.
                    self.enqueue_req(conn)
                    return
                conn.set_timeout()
                if not self.alive:
                    conn.timeout = min(conn.timeout, time.monotonic() + STOP_KEEPALIVE_LINGER)
                self.keepalived_conns.append(conn)
                self._watch(conn, partial(self.on_client_socket_readable, conn))
            else:
                self._unwatch(conn)
                self.nr_conns -= 1
                conn.close(graceful=True)
        except Exception:
            self._unwatch(conn)
            self.nr_conns -= 1
            conn.close()

    def on_pending_socket_readable(self, conn: Any, client: Any) -> None:
        """gthread's: the first request of a slow connection arrived."""
        self._unwatch(conn)
        self.pending_conns.remove(conn)
        conn.data_ready = True
        self.enqueue_req(conn)

    def _watch(self, conn: Any, callback: Callable[[Any], None]) -> None:
        if conn in self._polled:
            self.poller.modify(conn.sock, selectors.EVENT_READ, callback)
        else:
            self.poller.register(conn.sock, selectors.EVENT_READ, callback)
            self._polled.add(conn)

    def _unwatch(self, conn: Any) -> None:
        if conn in self._polled:
            self._polled.discard(conn)
            # The socket may already be closed (an error answer closes it).
            with contextlib.suppress(OSError, KeyError, ValueError):
                self.poller.unregister(conn.sock)

    def murder_keepalived(self, force: bool = False) -> None:
        """gthread's expiry of idle kept-alive connections, forgetting their registration."""
        now = time.monotonic()
        while self.keepalived_conns:
            conn = self.keepalived_conns[0]
            if conn.timeout - now > 0 and not force:
                break
            self.keepalived_conns.popleft()
            self._unwatch(conn)
            self.nr_conns -= 1
            conn.close()

    def murder_pending(self) -> None:
        """gthread's expiry of connections still waiting for a first request."""
        now = time.monotonic()
        while self.pending_conns:
            conn = self.pending_conns[0]
            if conn.timeout - now > 0:
                break
            self.pending_conns.popleft()
            self._unwatch(conn)
            self.nr_conns -= 1
            conn.close()

    def _keepalive_after(self, conn: Any, keepalive: bool) -> bool:
        """gthread's body drain before keep-alive, skipped when nothing is left to drain.

        The drain bounds each read with ``settimeout`` (two mode switches per request) even
        when the application read the whole body; a fully read Content-Length body would
        yield no bytes anyway, so the answer (True) is the same without them.
        """
        if keepalive and _body_fully_read(conn.parser):
            return True
        return bool(super()._keepalive_after(conn, keepalive))

    def get_thread_pool(self) -> _InlineExecutor:
        return _InlineExecutor()

    def enqueue_req(self, conn: Any) -> None:
        """Serve ``conn``'s request now and finish it (back to the poller for keep-alive, or
        closed) at once.

        gthread finishes a request by queueing ``finish_request`` for its main thread and
        waking the event loop through a pipe: a write, a read and one more loop turn (with its
        heartbeat) per request. The request already ran on the main thread here, so it is
        finished directly. A connection whose next request is already buffered (pipelining)
        comes back through here from ``finish_request``; it is queued and served by this
        loop rather than by recursion, so a long pipeline cannot exhaust the stack.
        """
        self._ready.append(conn)
        if self._finishing:
            return
        self._finishing = True
        try:
            while self._ready:
                ready = self._ready.popleft()
                self.finish_request(ready, self.tpool.submit(self.handle, ready))
        finally:
            self._finishing = False

    def run(self) -> None:
        # gunicorn reads its settings through Config.__getattr__ some twenty times a request;
        # they cannot change inside a worker, so read each once.
        self.cfg = _SettledConfig(self.cfg)
        super().run()

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
                self.log.exception("Error handling request")
                util.close_graceful(conn.sock)
                raise StopIteration() from None
            raise
        finally:
            try:
                self.cfg.post_request(self, req, environ, resp)
            except Exception:
                self.log.exception("Exception in post_request hook")
        return True

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """Answer over-long request lines (414) and headers (431) with the JSON bodies and
        request-id headers of every other modelstore error, instead of gunicorn's HTML page."""
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
        else:
            super().handle_error(req, client, addr, exc)
            return
        self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
        extra = getattr(self.app, "options", ServerOptions()).error_headers
        try:
            util.write_nonblock(client, _json_error_response(status, message, extra))
        except Exception:
            self.log.debug("Failed to send error message.")


def _json_error_response(status: str, message: str, extra: Sequence[tuple[str, str]]) -> bytes:
    body = json.dumps({"message": message}).encode()
    request_id = str(uuid.uuid4())
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


class _ModeKeepingSocket(socket.socket):
    """A client socket whose ``setblocking``/``settimeout`` skip the system call when the mode
    would not change (gthread asks for blocking mode, and gunicorn's parser restores the
    timeout it found, on every request)."""

    __slots__ = ()

    def settimeout(self, value: float | None) -> None:
        if value == self.gettimeout():
            return
        super().settimeout(value)

    def setblocking(self, flag: bool) -> None:
        timeout = self.gettimeout()
        if (timeout is None) if flag else (timeout == 0.0):
            return
        super().setblocking(flag)


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
