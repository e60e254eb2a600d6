"""How many requests a v2 deployment holds at once, counted across processes.

Azure's front end lets at most ``2 * max_concurrent_requests_per_instance * instance_count``
requests be in flight at a deployment and answers any further one with 429 "Too many pending
requests" at once, instead of queueing it (the online-endpoint troubleshooting guide). Here a
request is in flight from the moment a server process takes it until it has answered, and the
processes are forks of one server (gunicorn workers, or the endpoint router's workers), so the
count lives in shared memory created before the fork: one slot per process, holding the tag of
what that process is busy with (0: nothing). A process serves one request at a time, so a slot
is the whole state of its process, and a process that dies mid-request leaves a slot that its
replacement takes over (clearing it) instead of a count that never comes down.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from werkzeug.wsgi import ClosingIterator

TOO_MANY_STATUS = "429 Too Many Requests"
PENDING_FACTOR = 2
"""Azure admits twice ``max_concurrent_requests_per_instance`` requests per instance."""


def pending_limit(max_concurrent_requests_per_instance: int) -> int:
    """The requests a local deployment (one instance) admits at once."""
    return PENDING_FACTOR * max_concurrent_requests_per_instance


def too_many_message(name: str | None, limit: int, max_concurrent: int) -> str:
    where = f"deployment {name}" if name else "the deployment"
    return (
        f"Too many pending requests: {where} already has {limit} requests in flight "
        f"(2 x request_settings.max_concurrent_requests_per_instance = 2 x {max_concurrent}); "
        "retry later with backoff, or raise max_concurrent_requests_per_instance (with "
        "WORKER_COUNT)"
    )


class InFlightGauge:
    """Shared busy-slots, one per process: create it before the fork, call :meth:`claim` in
    each process after it."""

    def __init__(self, slots: int) -> None:
        context = multiprocessing.get_context("fork")
        self._lock = context.Lock()
        self._pids = context.RawArray("l", slots)
        self._tags = context.RawArray("l", slots)
        self._slot: int | None = None

    def claim(self) -> None:
        """Take a slot for this process, first freeing every slot whose process is gone (a
        worker killed mid-request: its request ended with it)."""
        pid = os.getpid()
        with self._lock:
            for index, owner in enumerate(self._pids):
                if owner == pid or (owner != 0 and not _alive(owner)):
                    self._pids[index] = 0
                    self._tags[index] = 0
            for index, owner in enumerate(self._pids):
                if owner == 0:
                    self._pids[index] = pid
                    self._slot = index
                    return
        raise RuntimeError("no free in-flight slot: more server processes than slots")

    def enter(self, tag: int, limit: int) -> bool:
        """Mark this process busy with ``tag``, unless ``limit`` processes already are."""
        if self._slot is None:
            self.claim()
        assert self._slot is not None
        with self._lock:
            if sum(1 for value in self._tags if value == tag) >= limit:
                return False
            self._tags[self._slot] = tag
            return True

    def leave(self) -> None:
        if self._slot is not None:
            self._tags[self._slot] = 0

    def count(self, tag: int) -> int:
        with self._lock:
            return sum(1 for value in self._tags if value == tag)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def too_many_response(
    start_response: Callable[..., Any],
    environ: dict[str, Any],
    message: str,
    extra: Sequence[tuple[str, str]] = (),
) -> list[bytes]:
    """The 429, as JSON with the request-id headers of every modelstore answer, chosen as the
    scoring app chooses them (``_assign_request_ids``: the client's ids echoed, else a new
    one)."""
    from modelstore.serving.app import new_request_id

    body = json.dumps({"message": message}).encode()
    request_id = environ.get("HTTP_X_REQUEST_ID") or new_request_id()
    legacy = environ.get("HTTP_X_MS_REQUEST_ID", "")
    client = environ.get("HTTP_X_MS_CLIENT_REQUEST_ID", "") or legacy
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(body))),
        ("x-request-id", request_id),
        ("x-ms-request-id", legacy or client or request_id),
        *([("x-ms-client-request-id", client)] if client else []),
        *extra,
    ]
    start_response(TOO_MANY_STATUS, headers)
    return [body]


class InFlightLimit:
    """The scoring app behind a deployment's in-flight limit (``modelstore serve -f
    DEPLOYMENT.yml``): a request taken while ``limit`` others are in flight in any worker gets
    the 429 without reaching the app."""

    TAG = 1

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        gauge: InFlightGauge,
        max_concurrent: int,
        extra_headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.app = app
        self.gauge = gauge
        self.max_concurrent = max_concurrent
        self.limit = pending_limit(max_concurrent)
        self.extra_headers = tuple(extra_headers)
        gauge.claim()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if not self.gauge.enter(self.TAG, self.limit):
            message = too_many_message(None, self.limit, self.max_concurrent)
            return too_many_response(start_response, environ, message, self.extra_headers)
        try:
            answer = self.app(environ, start_response)
        except BaseException:
            self.gauge.leave()
            raise
        return ClosingIterator(answer, [self.gauge.leave])
