"""A deployment's ``readiness_probe`` and ``liveness_probe`` as they gate its start here.

In Azure a managed online deployment runs in a Kubernetes pod: the kubelet sends ``GET /`` to
the inference server (azmlinfsrv's health route, answering 200 ``Healthy`` once ``init()`` has
run; while ``init()`` runs a request waits in the backlog) first after ``initial_delay`` seconds,
then every ``period`` seconds, each given ``timeout`` seconds. An answer from 200 to 399 is a
success. The deployment takes traffic once the readiness probe has succeeded
``success_threshold`` times in a row; ``failure_threshold`` failures in a row of the liveness
probe restart the container. A container whose ``init()`` outlasts its probes never gets ready
and the deployment fails with ResourceNotReady.

Two timings (:data:`ProbeTiming`):

* ``"fast"`` (the default): probing starts at once and a single request waits for ``init()``,
  so a deployment is ready the moment ``init()`` has run, not at the next probe period; it
  fails when Azure's schedule would have failed it: no success within ``initial_delay +
  (failure_threshold - 1) * period + timeout`` seconds (302 s with Azure's defaults), for
  whichever probe runs out first.
* ``"azure"``: the kubelet's schedule, literally: the first probe after ``initial_delay``,
  then every ``period``, each with ``timeout``, and both thresholds counted in a row. A
  deployment is then ready when it would be in Azure (10 s at least with the defaults).

Liveness after the start (restarting a deployment that stops answering) is not emulated.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from modelstore.errors import EntryScriptError
from modelstore.v2.deployment_spec import OnlineDeploymentSpec, ProbeSettingsSpec

if TYPE_CHECKING:
    from modelstore.serving.server import BoundListener

ProbeTiming = Literal["fast", "azure"]
PROBE_TIMINGS: tuple[ProbeTiming, ...] = ("fast", "azure")
PROBE_PATH = "/"
_REQUEST = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: kube-probe/modelstore\r\n"
    b"Accept: */*\r\nConnection: close\r\n\r\n"
)
_POLL_S = 0.05
_INTERRUPTED = "interrupted"


class ProbeFailedError(EntryScriptError):
    """A deployment's probe failed as often as its ``failure_threshold`` allows before the
    deployment was ready: Azure's ResourceNotReady. ``deployment`` names it, ``probe`` is
    ``"readiness"`` or ``"liveness"``, ``reason`` the last probe's failure."""

    def __init__(
        self, message: str, *, deployment: str, probe: str, reason: str, **advice: Any
    ) -> None:
        super().__init__(message, **advice)
        self.deployment = deployment
        self.probe = probe
        self.reason = reason


def budget_s(probe: ProbeSettingsSpec) -> float:
    """Seconds from the container's start until the kubelet knows the probe failed
    ``failure_threshold`` times in a row, when no probe is ever answered in time."""
    return probe.initial_delay + (probe.failure_threshold - 1) * probe.period + probe.timeout


def probe_once(
    host: str, port: int, timeout_s: float, interrupted: Callable[[], bool] = lambda: False
) -> str | None:
    """One ``GET /``: None for a success (200-399), else why it failed. ``interrupted`` is
    polled while the answer is awaited (a probe waiting on a long ``init()`` can be given up)."""
    deadline = time.monotonic() + timeout_s
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except TimeoutError:
        return f"no connection within {timeout_s:g} s"
    except OSError as exc:
        return f"cannot connect ({exc.strerror or exc})"
    with sock:
        try:
            sock.sendall(_REQUEST)
            data = b""
            while b"\r\n" not in data:
                left = deadline - time.monotonic()
                if left <= 0:
                    return f"no answer within {timeout_s:g} s"
                if interrupted():
                    return _INTERRUPTED
                readable, _, _ = select.select([sock], [], [], min(left, _POLL_S))
                if readable:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return "the connection closed without an answer"
                    data += chunk
        except OSError as exc:
            return f"the connection failed ({exc.strerror or exc})"
    parts = data.split(b"\r\n", 1)[0].split()
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    if 200 <= status < 400:
        return None
    return f"answered {status}" if status else "answered something that is not HTTP"


@dataclass(frozen=True)
class _Failure:
    probe: Literal["readiness", "liveness"]
    failures: int
    reason: str


def wait_until_ready(
    spec: OnlineDeploymentSpec,
    host: str,
    port: int,
    *,
    started_at: float,
    timing: ProbeTiming = "fast",
    alive: Callable[[], bool] = lambda: True,
    stop: threading.Event | None = None,
) -> bool:
    """Probe the deployment's server on ``host:port`` (listening since ``started_at``, a
    ``time.monotonic()`` reading) until its readiness probe succeeds: True. False when
    ``alive()`` turns false (the server died: its own error says why) or ``stop`` is set.
    Raises :class:`ProbeFailedError` when a probe fails as Azure would fail it."""
    stop = stop if stop is not None else threading.Event()
    if timing == "azure":
        failure = _azure(spec, host, port, started_at, alive, stop)
    else:
        failure = _fast(spec, host, port, started_at, alive, stop)
    if failure is None:
        return True
    if isinstance(failure, bool):
        return failure
    raise _error(spec, failure, timing)


def _fast(
    spec: OnlineDeploymentSpec,
    host: str,
    port: int,
    started_at: float,
    alive: Callable[[], bool],
    stop: threading.Event,
) -> _Failure | bool | None:
    readiness, liveness = spec.readiness_probe, spec.liveness_probe
    probe: Literal["readiness", "liveness"] = (
        "liveness" if budget_s(liveness) < budget_s(readiness) else "readiness"
    )
    settings = liveness if probe == "liveness" else readiness
    deadline = started_at + budget_s(settings)
    successes = 0
    reason = "no answer"

    def interrupted() -> bool:
        return stop.is_set() or not alive()

    while True:
        if interrupted():
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return _Failure(probe, settings.failure_threshold, reason)
        result = probe_once(host, port, left, interrupted)
        if result == _INTERRUPTED:
            return False
        if result is None:
            successes += 1
            if successes >= readiness.success_threshold:
                return None
            continue
        # The one request waited as long as the budget allowed: say what it waited for.
        successes = 0
        reason = "no answer (is init() still running?)" if result.startswith("no ") else result
        stop.wait(_POLL_S)  # an immediate failure (refused, 5xx): not a busy loop


def _azure(
    spec: OnlineDeploymentSpec,
    host: str,
    port: int,
    started_at: float,
    alive: Callable[[], bool],
    stop: threading.Event,
) -> _Failure | bool | None:
    """Both probes on their own schedule, each in a thread, as the kubelet runs them."""
    done = threading.Event()
    outcome: list[_Failure | None] = []
    lock = threading.Lock()

    def finish(result: _Failure | None) -> None:
        with lock:
            if not outcome:
                outcome.append(result)
        done.set()

    def run(kind: Literal["readiness", "liveness"], settings: ProbeSettingsSpec) -> None:
        next_at = started_at + settings.initial_delay
        successes = failures = 0
        while not done.wait(max(0.0, next_at - time.monotonic())):
            result = probe_once(host, port, settings.timeout, done.is_set)
            if result == _INTERRUPTED:
                return
            if result is None:
                failures, successes = 0, successes + 1
                if kind == "readiness" and successes >= settings.success_threshold:
                    finish(None)
                    return
            else:
                successes, failures = 0, failures + 1
                if failures >= settings.failure_threshold:
                    finish(_Failure(kind, failures, result))
                    return
            next_at = max(next_at + settings.period, time.monotonic())

    threads = [
        threading.Thread(target=run, args=("readiness", spec.readiness_probe), daemon=True),
        threading.Thread(target=run, args=("liveness", spec.liveness_probe), daemon=True),
    ]
    for thread in threads:
        thread.start()
    gone = False
    while not done.wait(_POLL_S):
        if stop.is_set() or not alive():
            gone = True
            done.set()
    for thread in threads:
        thread.join()
    if gone and not outcome:
        return False
    return outcome[0] if outcome else False


def _describe(settings: ProbeSettingsSpec) -> str:
    return (
        f"GET {PROBE_PATH} first after {settings.initial_delay} s, then every "
        f"{settings.period} s, timeout {settings.timeout} s"
    )


def _error(spec: OnlineDeploymentSpec, failure: _Failure, timing: ProbeTiming) -> ProbeFailedError:
    settings = spec.readiness_probe if failure.probe == "readiness" else spec.liveness_probe
    key = f"{failure.probe}_probe"
    if timing == "azure":
        times = "once" if failure.failures == 1 else f"{failure.failures} times in a row"
        what = f"failed {times} ({_describe(settings)})"
    else:
        what = (
            f"had no success within {budget_s(settings):g} s, when Azure's probes "
            f"({_describe(settings)}) fail {settings.failure_threshold} times in a row"
        )
    consequence = (
        "Azure restarts such a container and the deployment fails with ResourceNotReady"
        if failure.probe == "liveness"
        else "Azure fails such a deployment with ResourceNotReady"
    )
    return ProbeFailedError(
        f"deployment {spec.name} did not become ready: its {failure.probe} probe {what}, the "
        f"last: {failure.reason}; {consequence}",
        hint=(
            f"make init() faster, or give {key} a longer initial_delay, period or failure_threshold"
        ),
        deployment=spec.name,
        probe=failure.probe,
        reason=failure.reason,
    )


def loopback(host: str) -> str:
    """Where to probe a server listening on ``host`` (a wildcard address answers on loopback)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    return "::1" if host == "::" else host


def serve_when_ready(
    spec: OnlineDeploymentSpec,
    listener: BoundListener,
    workers: int,
    run: Callable[[], int],
    *,
    timing: ProbeTiming = "fast",
) -> int:
    """Run the server of one deployment (``run``: blocking, in this thread, which becomes
    gunicorn's master; it serves ``listener`` and does not announce itself) while a thread
    probes it. The ``listening on`` line is printed once the readiness probe succeeded. A failed
    probe stops the server (SIGINT to this process, gunicorn's quick shutdown) and is raised as
    :class:`ProbeFailedError`; otherwise ``run``'s exit code is returned."""
    from modelstore.serving.server import announce_listening

    stop = threading.Event()
    failed: list[ProbeFailedError] = []
    started_at = time.monotonic()

    def watch() -> None:
        try:
            ready = wait_until_ready(
                spec,
                loopback(listener.host),
                listener.port,
                started_at=started_at,
                timing=timing,
                stop=stop,
            )
        except ProbeFailedError as exc:
            failed.append(exc)
            os.kill(os.getpid(), signal.SIGINT)
            return
        if ready:
            announce_listening(listener, workers)

    thread = threading.Thread(target=watch, name="modelstore-probes", daemon=True)
    thread.start()
    try:
        code = run()
    except KeyboardInterrupt:
        if not failed:
            raise
        code = 0
    finally:
        stop.set()
        thread.join()
    if failed:
        raise failed[0]
    return code
