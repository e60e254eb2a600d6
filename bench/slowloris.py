"""``modelstore serve`` under a slowloris attack, against itself unloaded, on loopback; prints JSON.

One real ``modelstore serve`` (one worker, the trivial ``fixtures/scripts/trivial/score.py``) is
measured twice in the same run: unloaded, then with ``--connections`` (50) slowloris clients
open. Each slowloris client sends a request line, then one byte of a never-ending header per
second; when the server drops it (408 or close), it reconnects at once, so the count stays up.

Figures: ``GET /`` latency, each on a new connection (p50/p99/max, and how many got no answer
within ``--get-timeout``), and ``POST /score`` requests/s over keep-alive connections (wrk if
installed, else a Python client). Targets (issue 8 item 2): with the slowloris clients open,
``GET /`` p99 <= 100 ms and ``POST /score`` requests/s within 10% of the unloaded figure.

    python bench/slowloris.py                   # this checkout
    python bench/slowloris.py --source DIR      # another checkout's modelstore (e.g. an
                                                # export of main), for before/after figures
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from serve import BODY, FROM_SOURCE, REPO, SCRIPT, free_port, python_load, stop, wrk_load

SLOW_REQUEST_LINE = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
START_LIMIT_S = 60.0


@contextmanager
def server(source: Path | None, workdir: Path) -> Iterator[int]:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"AML_APP_ROOT", "AZUREML_MODEL_DIR", "WORKER_COUNT", "SCORING_TIMEOUT_MS"}
    }
    log = (workdir / "server.log").open("ab")
    launcher = ["-m", "modelstore"] if source is None else ["-c", FROM_SOURCE, str(source)]
    command = [sys.executable, *launcher, "serve", "--entry-script", str(SCRIPT)]
    process = subprocess.Popen(
        [*command, "--port", str(port)], cwd=workdir, env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + START_LIMIT_S
        while get_ms(port, 2.0) is None:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start; see {log.name}")
            time.sleep(0.05)
        yield port
    finally:
        stop(process)
        log.close()


def get_ms(port: int, timeout: float) -> float | None:
    """One ``GET /`` on a new connection: milliseconds to a 200, or None (no answer in time)."""
    began = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        response.read()
        ok = response.status == 200
    except OSError:
        ok = False
    finally:
        connection.close()
    return (time.perf_counter() - began) * 1000 if ok else None


def get_latencies(port: int, count: int, timeout: float, budget_s: float) -> dict[str, Any]:
    """``count`` sequential ``GET /`` (fewer if ``budget_s`` runs out: a frozen server)."""
    latencies: list[float] = []
    failed = 0
    stop_at = time.monotonic() + budget_s
    for _ in range(count):
        if time.monotonic() > stop_at:
            break
        latency = get_ms(port, timeout)
        if latency is None:
            failed += 1
        else:
            latencies.append(latency)
    ordered = sorted(latencies)
    sent = len(latencies) + failed
    # A request without an answer counts as the slowest: p99 is "no answer" if over 1% failed.
    p99_index = int(sent * 0.99)
    return {
        "sent": sent,
        "answered": len(latencies),
        "p50_ms": round(ordered[len(ordered) // 2], 2) if ordered else None,
        "p99_ms": round(ordered[p99_index], 2) if p99_index < len(ordered) else None,
        "max_ms": round(ordered[-1], 2) if ordered else None,
    }


class Slowloris:
    """``count`` connections sending one header byte per second each, reconnecting when the
    server drops one; runs on one thread until :meth:`stop` (or ``limit_s``)."""

    def __init__(self, port: int, count: int, limit_s: float) -> None:
        self.port = port
        self.count = count
        self.limit_s = limit_s
        self.dropped = 0
        self.open = 0
        self.bytes_sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Slowloris:
        self._thread.start()
        deadline = time.monotonic() + 30
        while self.open < self.count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _connect(self) -> socket.socket | None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            sock.sendall(SLOW_REQUEST_LINE)
        except OSError:
            return None
        sock.setblocking(False)
        return sock

    def _run(self) -> None:
        socks: list[socket.socket] = []
        stop_at = time.monotonic() + self.limit_s
        with selectors.DefaultSelector() as readable:
            try:
                while not self._stop.is_set() and time.monotonic() < stop_at:
                    while len(socks) < self.count and not self._stop.is_set():
                        sock = self._connect()
                        if sock is None:
                            break
                        socks.append(sock)
                        readable.register(sock, selectors.EVENT_READ)
                    self.open = len(socks)
                    for key, _ in readable.select(timeout=0):  # an answer or a close: dropped
                        sock = key.fileobj
                        assert isinstance(sock, socket.socket)
                        readable.unregister(sock)
                        sock.close()
                        socks.remove(sock)
                        self.dropped += 1
                    for sock in list(socks):
                        try:
                            sock.send(b"a")
                            self.bytes_sent += 1
                        except OSError:
                            readable.unregister(sock)
                            sock.close()
                            socks.remove(sock)
                            self.dropped += 1
                    self._stop.wait(1.0)
            finally:
                for sock in socks:
                    sock.close()


def throughput(port: int, connections: int, duration_s: int, workdir: Path) -> dict[str, Any]:
    use_wrk = shutil.which("wrk") is not None
    load = wrk_load if use_wrk else python_load
    result = load(port, connections, duration_s, workdir)
    return {
        "requests_per_s": round(result.requests_per_s, 1),
        "p99_ms": round(result.p99_ms, 2),
        "errors": result.errors,
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Rounds alternate unloaded and attacked phases on one server; medians are reported, so
    both phases meet the same machine load (other work on a shared machine moves both)."""
    phases: dict[str, list[dict[str, Any]]] = {"unloaded": [], "with_slowloris": []}
    attacks: list[dict[str, int]] = []
    with tempfile.TemporaryDirectory(prefix="bench-slowloris-") as folder:
        workdir = Path(folder)
        with server(args.source, workdir) as port:
            throughput(port, args.score_connections, 1, workdir)  # warm-up
            for _ in range(args.rounds):
                phases["unloaded"].append(one_phase(port, args, workdir))
                limit = args.settle + args.budget * 2 + args.duration + 60
                with Slowloris(port, args.connections, limit) as attack:
                    open_at_start = attack.open
                    time.sleep(args.settle)  # past the read timeout: drops and reconnections
                    phases["with_slowloris"].append(one_phase(port, args, workdir))
                    attacks.append(
                        {
                            "connections_open_at_start": open_at_start,
                            "connections_open_at_end": attack.open,
                            "dropped_by_server_and_reopened": attack.dropped,
                            "bytes_sent": attack.bytes_sent,
                        }
                    )
    summary = {name: summarise(rounds) for name, rounds in phases.items()}
    unloaded_rate = summary["unloaded"]["score_requests_per_s"]
    loaded_rate = summary["with_slowloris"]["score_requests_per_s"]
    ratio = loaded_rate / unloaded_rate if unloaded_rate else 0.0
    p99 = summary["with_slowloris"]["get_p99_ms"]
    targets = {
        "get_p99_at_most_100ms": p99 is not None and p99 <= 100.0,
        "score_rate_within_10_percent": ratio >= 0.9,
    }
    return {
        "benchmark": "slowloris",
        "source": str(args.source) if args.source else "this checkout",
        "script": str(SCRIPT.relative_to(REPO)),
        "score_request": f"POST /score {BODY.decode()}",
        "load_generator": "wrk -t1 (keep-alive)" if shutil.which("wrk") else "python threads",
        "slowloris_connections": args.connections,
        "score_connections": args.score_connections,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "cpu_count": os.cpu_count(),
        **summary,
        "slowloris_by_round": attacks,
        "score_rate_ratio": round(ratio, 3),
        "targets": targets,
        "ok": all(targets.values()),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }


def one_phase(port: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    return {
        "get": get_latencies(port, args.gets, args.get_timeout, args.budget),
        "score": throughput(port, args.score_connections, args.duration, workdir),
    }


def summarise(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds; a round whose GETs went unanswered has no p99 and counts as the
    worst."""
    p99s = [r["get"]["p99_ms"] for r in rounds]
    worst_first = sorted(p99s, key=lambda value: float("inf") if value is None else value)
    return {
        "get_sent": sum(r["get"]["sent"] for r in rounds),
        "get_answered": sum(r["get"]["answered"] for r in rounds),
        "get_p50_ms": _median([r["get"]["p50_ms"] for r in rounds]),
        "get_p99_ms": worst_first[len(worst_first) // 2],
        "get_max_ms": max((r["get"]["max_ms"] or 0.0) for r in rounds) or None,
        "score_requests_per_s": round(
            statistics.median(r["score"]["requests_per_s"] for r in rounds), 1
        ),
        "score_errors": sum(r["score"]["errors"] for r in rounds),
        "by_round": rounds,
    }


def _median(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return round(statistics.median(present), 2) if present else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=50, help="slowloris connections")
    parser.add_argument("--gets", type=int, default=200, help="GET / requests per phase")
    parser.add_argument("--get-timeout", type=float, default=5.0, help="seconds per GET /")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds of GETs per phase")
    parser.add_argument("--duration", type=int, default=5, help="seconds of POST /score load")
    parser.add_argument("--score-connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--settle", type=float, default=6.0, help="seconds of attack before measuring"
    )
    parser.add_argument("--source", type=Path, help="a checkout whose modelstore to serve")
    print(json.dumps(measure(parser.parse_args()), indent=2))


if __name__ == "__main__":
    main()
