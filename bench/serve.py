"""Benchmark ``modelstore serve`` against azmlinfsrv 1.5.1, side by side, on loopback; prints JSON.

Both servers run the same trivial ``fixtures/scripts/trivial/score.py`` with the same worker
count, one after the other (never at once: they would share the two cores), and the same load
generator drives them: ``wrk`` (keep-alive wherever the server allows it; azmlinfsrv answers
``Connection: close``) or, without wrk, a Python keep-alive client on a few threads. Rounds
alternate between the servers and the median is reported.

Targets (issue 4): requests/s >= 2x azmlinfsrv's, p50 latency no worse, and <= 1 s from process
start to the first ``GET /`` 200 for a trivial ``init()``.

    python bench/serve.py                      # modelstore vs azmlinfsrv
    python bench/serve.py --baseline-source DIR  # also another checkout's modelstore, e.g.
                                               # `git archive main | tar -x -C DIR`
    python bench/serve.py --compare-servers    # also the same app under gunicorn sync/gthread
                                               # and waitress (why modelstore's worker was chosen)
    python bench/serve.py --in-process         # only the app's own cost per request: the WSGI
                                               # call of POST /score, no server, no sockets

azmlinfsrv is looked up as /work/venv-azmlinfsrv/bin/azmlinfsrv, else on PATH, else --azmlinfsrv
(install it in its own virtualenv: ``pip install azureml-inference-server-http==1.5.1``).
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "fixtures" / "scripts" / "trivial" / "score.py"
BODY = b'{"data": [1, 2, 3]}'
START_LIMIT_S = 60.0
DEFAULT_AZMLINFSRV = Path("/work/venv-azmlinfsrv/bin/azmlinfsrv")

FROM_SOURCE = (
    "import sys; "
    "sys.meta_path[:] = [f for f in sys.meta_path "
    "if '__editable__' not in getattr(f, '__module__', '')]; "
    "sys.path.insert(0, sys.argv.pop(1)); "
    "from modelstore.cli import main; main(prog_name='modelstore')"
)
"""``python -c FROM_SOURCE DIR serve ...`` runs another checkout's modelstore (e.g. an export of
main), past this environment's editable install: a before/after comparison in one run."""

WSGI_MODULE = """
import os
from modelstore.serving import logs
from modelstore.serving.app import create_app
from modelstore.serving.settings import ServingSettings

logs.configure_logging()
app = create_app(ServingSettings.from_environ(os.environ, entry_script=os.environ["BENCH_SCRIPT"]))
"""


@dataclass(frozen=True)
class Candidate:
    """One way of serving the trivial script: a name and the command for a given port."""

    name: str
    command: Callable[[int], list[str]]


@dataclass
class LoadResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def stop(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C, as a user stops the server; killed if it has not exited 30 s later."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def healthy(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


@contextmanager
def started(
    candidate: Candidate, workdir: Path, env: dict[str, str]
) -> Iterator[tuple[int, float, int]]:
    """Start the server; yield its port, the seconds from spawn to the first GET / 200 and its
    process id."""
    port = free_port()
    log = (workdir / f"{candidate.name}.log").open("ab")
    began = time.perf_counter()
    process = subprocess.Popen(
        candidate.command(port), cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = began + START_LIMIT_S
        while not healthy(port):
            if process.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError(f"{candidate.name} did not start; see {log.name}")
            time.sleep(0.005)
        yield port, time.perf_counter() - began, process.pid
    finally:
        stop(process)
        log.close()


# --- load generators --------------------------------------------------------------------------


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
"""
WRK_DURATION = re.compile(r"([\d.]+)(us|ms|s)\b")


def wrk_load(port: int, connections: int, duration_s: int, workdir: Path) -> LoadResult:
    lua = workdir / "post.lua"
    lua.write_text(WRK_SCRIPT % BODY.decode())
    output = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration_s}s",
            "--latency",
            "-s",
            str(lua),
            f"http://127.0.0.1:{port}/score",
        ],
        capture_output=True,
        text=True,
        timeout=duration_s + 60,
        check=True,
    ).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(count) for count in socket_errors.groups())
    return LoadResult(
        requests_per_s=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        p50_ms=_wrk_ms(output, "50%"),
        p99_ms=_wrk_ms(output, "99%"),
        errors=errors,
    )


def _wrk_ms(output: str, percentile: str) -> float:
    line = next(line for line in output.splitlines() if line.strip().startswith(percentile))
    value, unit = WRK_DURATION.search(line.split(percentile, 1)[1]).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def python_load(port: int, connections: int, duration_s: int, workdir: Path) -> LoadResult:
    """Keep-alive clients on ``connections`` threads (http.client reconnects after a close)."""
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors = [0] * connections
    stop_at = time.perf_counter() + duration_s

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Content-Type": "application/json"}
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            try:
                connection.request("POST", "/score", body=BODY, headers=headers)
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    errors[index] += 1
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
            except OSError:
                errors[index] += 1
                connection.close()
            latencies[index].append(time.perf_counter() - began)
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration_s + 60)
    elapsed = time.perf_counter() - began
    every = sorted(x for per_thread in latencies for x in per_thread)
    return LoadResult(
        requests_per_s=len(every) / elapsed,
        p50_ms=every[len(every) // 2] * 1000,
        p99_ms=every[int(len(every) * 0.99)] * 1000,
        errors=sum(errors),
    )


# --- candidates -------------------------------------------------------------------------------


def candidates(args: argparse.Namespace, workdir: Path) -> list[Candidate]:
    workers = str(args.workers)
    script = str(SCRIPT)
    found = [
        Candidate(
            "modelstore",
            lambda port: [
                sys.executable, "-m", "modelstore", "serve", "--entry-script", script,
                "--port", str(port), "--workers", workers,
            ],
        ),
    ]  # fmt: skip
    baseline = args.baseline_source
    if baseline is not None:
        found.append(
            Candidate(
                "modelstore-baseline",
                lambda port: [
                    sys.executable, "-c", FROM_SOURCE, str(baseline), "serve", "--entry-script",
                    script, "--port", str(port), "--workers", workers,
                ],
            )
        )  # fmt: skip
    azmlinfsrv = None if args.no_azmlinfsrv else args.azmlinfsrv or _find_azmlinfsrv()
    if azmlinfsrv is not None:
        found.append(
            Candidate(
                "azmlinfsrv",
                lambda port: [
                    str(azmlinfsrv), "--entry_script", script, "--port", str(port),
                    "--worker_count", workers,
                ],
            )
        )  # fmt: skip
    if args.compare_servers:
        (workdir / "bench_wsgi.py").write_text(textwrap.dedent(WSGI_MODULE))
        gunicorn = [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            workers,
            "--log-level",
            "warning",
        ]
        found.append(
            Candidate(
                "gunicorn-sync",
                lambda port: [*gunicorn, "-k", "sync", "-b", f"127.0.0.1:{port}", "bench_wsgi:app"],
            )
        )
        found.append(
            Candidate(
                "gunicorn-gthread-4",
                lambda port: [
                    *gunicorn, "-k", "gthread", "--threads", "4", "-b", f"127.0.0.1:{port}",
                    "bench_wsgi:app",
                ],
            )
        )  # fmt: skip
        if importlib.util.find_spec("waitress") is not None:
            found.append(
                Candidate(
                    "waitress-4-threads",
                    lambda port: [
                        sys.executable, "-m", "waitress", f"--listen=127.0.0.1:{port}",
                        "--threads=4", "bench_wsgi:app",
                    ],
                )
            )  # fmt: skip
    return found


def _find_azmlinfsrv() -> Path | None:
    if DEFAULT_AZMLINFSRV.exists():
        return DEFAULT_AZMLINFSRV
    found = shutil.which("azmlinfsrv")
    return Path(found) if found else None


# --- main -------------------------------------------------------------------------------------


def measure(args: argparse.Namespace) -> dict[str, Any]:
    use_wrk = shutil.which("wrk") is not None and not args.python_client
    load = wrk_load if use_wrk else python_load
    levels = [int(level) for level in args.connections.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as folder:
        workdir = Path(folder)
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"AML_APP_ROOT", "AZUREML_MODEL_DIR", "WORKER_COUNT", "SCORING_TIMEOUT_MS"}
        }
        env["BENCH_SCRIPT"] = str(SCRIPT)
        startups: dict[str, list[float]] = {}
        runs: dict[str, dict[int, dict[str, list[float]]]] = {}
        found = candidates(args, workdir)
        for _ in range(args.rounds):
            for candidate in found:
                for _ in range(args.starts):
                    with started(candidate, workdir, env) as (_, startup_s, _):
                        startups.setdefault(candidate.name, []).append(startup_s)
                with started(candidate, workdir, env) as (port, _, pid):
                    for level in levels:
                        record = runs.setdefault(candidate.name, {}).setdefault(level, {})
                        load(port, level, 1, workdir)  # warm-up
                        cpu_before = server_cpu_s(pid)
                        result = load(port, level, args.duration, workdir)
                        cpu_used = server_cpu_s(pid) - cpu_before
                        requests = result.requests_per_s * args.duration
                        for key, value in (
                            ("requests_per_s", result.requests_per_s),
                            ("p50_ms", result.p50_ms),
                            ("p99_ms", result.p99_ms),
                            ("errors", result.errors),
                            ("server_cpu_us_per_request", cpu_used / requests * 1e6),
                        ):
                            record.setdefault(key, []).append(value)
    servers = {
        name: {
            "startup_s_median": round(statistics.median(startups[name]), 3),
            "startup_s_max": round(max(startups[name]), 3),
            "by_connections": {str(level): summarise(record) for level, record in levels_.items()},
        }
        for name, levels_ in runs.items()
    }
    report: dict[str, Any] = {
        "benchmark": "serve",
        "script": str(SCRIPT.relative_to(REPO)),
        "request": f"POST /score {BODY.decode()}",
        "load_generator": "wrk -t1 (keep-alive)" if use_wrk else "python http.client threads",
        "workers": args.workers,
        "connections": levels,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "cpu_count": os.cpu_count(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "servers": servers,
    }
    if "azmlinfsrv" in servers:
        report["modelstore_vs_azmlinfsrv"] = compare(servers["modelstore"], servers["azmlinfsrv"])
    return report


def compare(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    by_level = {}
    for level, mine in ours["by_connections"].items():
        other = theirs["by_connections"][level]
        ratio = mine["requests_per_s"] / other["requests_per_s"]
        by_level[level] = {
            "requests_per_s_ratio": round(ratio, 2),
            "p50_ratio": round(mine["p50_ms"] / other["p50_ms"], 2),
            "cpu_per_request_ratio": round(
                other["server_cpu_us_per_request"] / mine["server_cpu_us_per_request"], 2
            ),
            "target_requests_per_s_at_least_2x": ratio >= 2.0,
            "target_p50_no_worse": mine["p50_ms"] <= other["p50_ms"],
        }
    return {
        "by_connections": by_level,
        "target_startup_at_most_1s": ours["startup_s_max"] <= 1.0,
    }


def server_cpu_s(pid: int) -> float:
    """CPU seconds used so far by the server process and its children (gunicorn's workers): a
    cost per request that stays meaningful when other work shares the machine."""
    total = 0.0
    for member in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    kids = [int(kid) for kid in text.split()]
    return kids + [grandchild for kid in kids for grandchild in _children(kid)]


def summarise(record: dict[str, list[float]]) -> dict[str, float]:
    return {
        "requests_per_s": round(statistics.median(record["requests_per_s"]), 1),
        "p50_ms": round(statistics.median(record["p50_ms"]), 3),
        "p99_ms": round(statistics.median(record["p99_ms"]), 3),
        "errors": int(sum(record["errors"])),
        "server_cpu_us_per_request": round(
            statistics.median(record["server_cpu_us_per_request"]), 1
        ),
    }


def in_process(args: argparse.Namespace) -> dict[str, Any]:
    """Microseconds per ``POST /score`` through the app's WSGI callable alone, as
    ``modelstore serve`` builds it (log lines formatted and written to /dev/null).

    The best of many short batches: on a shared machine the best batch is the one least
    disturbed, which makes before/after comparisons of the request path meaningful."""
    import io
    import logging

    from modelstore.serving import logs
    from modelstore.serving.app import create_app
    from modelstore.serving.settings import ServingSettings

    logs.configure_logging()
    handler = logging.getLogger(logs.SERVER_LOGGER).handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(open(os.devnull, "w"))  # noqa: SIM115  # lives as long as the process
    app: Any = create_app(ServingSettings(entry_script=SCRIPT, app_root=SCRIPT.parent))
    base = {
        "REQUEST_METHOD": "POST", "SCRIPT_NAME": "", "PATH_INFO": "/score", "QUERY_STRING": "",
        "RAW_URI": "/score", "SERVER_PROTOCOL": "HTTP/1.1", "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "5001", "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000",
        "HTTP_HOST": "127.0.0.1:5001", "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(BODY)), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        "wsgi.input_terminated": True, "wsgi.multithread": False, "wsgi.multiprocess": False,
        "wsgi.run_once": False, "wsgi.version": (1, 0),
    }  # fmt: skip
    statuses: set[str] = set()

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        statuses.add(status)

    def one_request() -> None:
        environ = dict(base, **{"wsgi.input": io.BytesIO(BODY)})
        answer = app(environ, start_response)
        b"".join(answer)
        close = getattr(answer, "close", None)
        if close is not None:
            close()

    batch = 1000
    for _ in range(batch):
        one_request()
    timings = []
    for _ in range(args.batches):
        began = time.perf_counter()
        for _ in range(batch):
            one_request()
        timings.append((time.perf_counter() - began) / batch * 1e6)
    return {
        "benchmark": "serve --in-process",
        "script": str(SCRIPT.relative_to(REPO)),
        "request": f"POST /score {BODY.decode()}",
        "statuses": sorted(statuses),
        "batches": args.batches,
        "requests_per_batch": batch,
        "us_per_request_best": round(min(timings), 1),
        "us_per_request_median": round(statistics.median(timings), 1),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument(
        "--connections", default="1,4,64", help="comma-separated concurrent connection counts"
    )
    parser.add_argument("--duration", type=int, default=5, help="seconds of load per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--starts", type=int, default=3, help="start-up timings per round")
    parser.add_argument("--azmlinfsrv", type=Path, help="path of the azmlinfsrv executable")
    parser.add_argument("--compare-servers", action="store_true")
    parser.add_argument(
        "--baseline-source", type=Path, help="also serve this checkout's modelstore (before/after)"
    )
    parser.add_argument("--no-azmlinfsrv", action="store_true", help="leave azmlinfsrv out")
    parser.add_argument("--python-client", action="store_true", help="do not use wrk")
    parser.add_argument(
        "--in-process", action="store_true", help="measure only the app's WSGI call per request"
    )
    parser.add_argument(
        "--batches", type=int, default=40, help="--in-process: 1000-request batches"
    )
    args = parser.parse_args()
    print(json.dumps(in_process(args) if args.in_process else measure(args), indent=2))


if __name__ == "__main__":
    main()
