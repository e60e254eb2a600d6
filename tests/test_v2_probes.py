"""A deployment's readiness and liveness probes gate its start (``modelstore.v2.probes``): one
probe against a real HTTP server on loopback, the two timings, then ``modelstore serve -f`` with
one deployment and with an endpoint as real processes whose ``init()`` outlasts its probes."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_serve_http import clean_environment
from v2_helpers import copy_gallery

from modelstore.cli import main
from modelstore.v2 import load_deployment_spec
from modelstore.v2.probes import ProbeFailedError, probe_once, wait_until_ready

FILES = ["endpoint.yml", "blue-deployment.yml", "green-deployment.yml"]
NEVER_READY = (
    "import os, time\n\n"
    "def init():\n"
    "    while not os.path.exists('never-created'):\n"
    "        time.sleep(0.05)\n\n"
    "def run(data):\n"
    "    return data\n"
)
GALLERY_PROBES = (
    "liveness_probe:\n  initial_delay: 5\nreadiness_probe:\n  initial_delay: 5\n  period: 5\n"
)


@pytest.fixture
def gallery(tmp_path: Path) -> Path:
    return copy_gallery(tmp_path / "v2")


@pytest.fixture
def system_tmp(tmp_path: Path) -> Path:
    folder = tmp_path / "system-tmp"
    folder.mkdir()
    return folder


def _probes(yml: Path, text: str) -> Path:
    """Replace the gallery deployment's probe settings with ``text``."""
    content = yml.read_text()
    assert GALLERY_PROBES in content
    yml.write_text(content.replace(GALLERY_PROBES, text))
    return yml


class _Answers(http.server.BaseHTTPRequestHandler):
    statuses: list[int] = []
    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        status = self.statuses.pop(0) if self.statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[tuple[int, list[int], list[str]]]:
    """A real HTTP server on loopback answering GETs with the statuses queued (then 200); its
    port, the queue and the paths it was asked for."""
    statuses: list[int] = []
    seen: list[str] = []
    handler = type("Handler", (_Answers,), {"statuses": statuses, "seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], statuses, seen
    finally:
        server.shutdown()
        server.server_close()


# --- one probe, the two timings ----------------------------------------------------------------


def test_a_probe_is_get_slash_succeeding_from_200_to_399(
    answering: tuple[int, list[int], list[str]],
) -> None:
    port, statuses, seen = answering
    statuses.extend([200, 302, 503])
    assert probe_once("127.0.0.1", port, 5) is None
    assert probe_once("127.0.0.1", port, 5) is None
    assert probe_once("127.0.0.1", port, 5) == "answered 503"
    assert seen == ["/", "/", "/"]


def test_a_probe_waiting_on_a_busy_server_fails_at_its_timeout() -> None:
    with socket.socket() as listening:  # listens, never accepts: a server still in init()
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        port = listening.getsockname()[1]
        assert probe_once("127.0.0.1", port, 0.2) == "no answer within 0.2 s"
    assert str(probe_once("127.0.0.1", port, 1)).startswith("cannot connect (")


def test_fast_timing_is_ready_after_success_threshold_probes_back_to_back(
    gallery: Path, answering: tuple[int, list[int], list[str]]
) -> None:
    port, statuses, seen = answering
    yml = _probes(gallery / "blue-deployment.yml", "readiness_probe:\n  success_threshold: 3\n")
    spec = load_deployment_spec(yml)
    statuses.extend([200, 503])  # the second probe fails: the count starts again
    assert wait_until_ready(spec, "127.0.0.1", port, started_at=time.monotonic())
    assert len(seen) == 5


def test_azure_timing_counts_successes_in_a_row_on_the_probes_schedule(
    gallery: Path, answering: tuple[int, list[int], list[str]]
) -> None:
    port, _, seen = answering
    yml = _probes(
        gallery / "blue-deployment.yml",
        "liveness_probe:\n  initial_delay: 600\n"
        "readiness_probe:\n  initial_delay: 1\n  period: 1\n  success_threshold: 2\n",
    )
    spec = load_deployment_spec(yml)
    started = time.monotonic()
    assert wait_until_ready(spec, "127.0.0.1", port, started_at=started, timing="azure")
    assert len(seen) == 2  # the readiness probe only: liveness is not due before 600 s
    assert time.monotonic() - started >= 2  # first after initial_delay, the second a period on


def test_azure_timing_fails_after_failure_threshold_failures_in_a_row(
    gallery: Path, answering: tuple[int, list[int], list[str]]
) -> None:
    port, statuses, _ = answering
    statuses.extend([503, 503])
    yml = _probes(
        gallery / "blue-deployment.yml",
        "liveness_probe:\n  initial_delay: 600\n"
        "readiness_probe:\n  initial_delay: 1\n  period: 1\n  failure_threshold: 2\n",
    )
    spec = load_deployment_spec(yml)
    with pytest.raises(ProbeFailedError) as raised:
        wait_until_ready(spec, "127.0.0.1", port, started_at=time.monotonic(), timing="azure")
    assert (raised.value.deployment, raised.value.probe) == ("blue", "readiness")
    assert raised.value.reason == "answered 503"
    assert str(raised.value) == (
        "deployment blue did not become ready: its readiness probe failed 2 times in a row "
        "(GET / first after 1 s, then every 1 s, timeout 2 s), the last: answered 503; Azure "
        "fails such a deployment with ResourceNotReady; make init() faster, or give "
        "readiness_probe a longer initial_delay, period or failure_threshold"
    )


# --- modelstore serve -f, real processes --------------------------------------------------------


def _serve(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelstore", "serve", "--port", "0", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=90,
    )  # fmt: skip


def test_serve_f_whose_init_outlasts_its_readiness_probe_exits_3_and_leaves_nothing(
    gallery: Path, tmp_path: Path, system_tmp: Path
) -> None:
    (gallery / "onlinescoring" / "score.py").write_text(NEVER_READY)
    _probes(
        gallery / "blue-deployment.yml",
        "readiness_probe:\n  initial_delay: 1\n  period: 1\n  timeout: 1\n  failure_threshold: 2\n",
    )
    env = clean_environment(tmp_path / "home", {"TMPDIR": str(system_tmp)})
    result = _serve(["-f", "blue-deployment.yml"], gallery, env)
    assert result.returncode == 3, result.stderr
    assert result.stderr.splitlines()[-1] == (
        "Error: deployment blue did not become ready: its readiness probe had no success "
        "within 3 s, when Azure's probes (GET / first after 1 s, then every 1 s, timeout 1 s) "
        "fail 2 times in a row, the last: no answer (is init() still running?); Azure fails "
        "such a deployment with ResourceNotReady; make init() faster, or give readiness_probe "
        "a longer initial_delay, period or failure_threshold"
    )
    assert "listening" not in result.stdout
    assert os.listdir(system_tmp) == []


def test_serve_f_with_azure_probe_timing_names_the_liveness_probe_that_ran_out(
    gallery: Path, tmp_path: Path, system_tmp: Path
) -> None:
    (gallery / "onlinescoring" / "score.py").write_text(NEVER_READY)
    _probes(
        gallery / "blue-deployment.yml",
        "liveness_probe:\n  initial_delay: 1\n  timeout: 1\n  failure_threshold: 1\n",
    )
    env = clean_environment(tmp_path / "home", {"TMPDIR": str(system_tmp)})
    result = _serve(["--probe-timing", "azure", "-f", "blue-deployment.yml"], gallery, env)
    assert result.returncode == 3, result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith(
        "Error: deployment blue did not become ready: its liveness probe failed once (GET / "
        "first after 1 s, then every 10 s, timeout 1 s), the last: no answer within "
        "1 s; Azure restarts such a container and the deployment fails with ResourceNotReady"
    ), last
    assert "listening" not in result.stdout
    assert os.listdir(system_tmp) == []


def test_an_endpoint_whose_deployment_never_gets_ready_stops_the_others_and_exits_3(
    gallery: Path, tmp_path: Path, system_tmp: Path
) -> None:
    slow = gallery / "onlinescoring-blue"
    slow.mkdir()
    (slow / "score.py").write_text(NEVER_READY)
    blue = gallery / "blue-deployment.yml"
    blue.write_text(blue.read_text().replace("code: onlinescoring", "code: onlinescoring-blue"))
    _probes(blue, "readiness_probe:\n  initial_delay: 1\n  period: 1\n  failure_threshold: 1\n")
    pid_file = tmp_path / "green.pid"
    (gallery / "onlinescoring" / "score.py").write_text(
        f"import os\n\ndef init():\n    open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n\n"
        "def run(data):\n    return data\n"
    )
    registered = CliRunner().invoke(  # green's azureml:sklearn-regression:1
        main, ["--home", str(tmp_path / "home"), "register", "-f", str(gallery / "model.yml")]
    )
    assert registered.exit_code == 0, registered.stderr
    env = clean_environment(tmp_path / "home", {"TMPDIR": str(system_tmp)})
    result = _serve([f"-f{f}" for f in FILES], gallery, env)
    assert result.returncode == 3, result.stderr
    assert result.stderr.splitlines()[-1].startswith(
        "Error: deployment blue: did not become ready: its readiness probe had no success "
        "within 3 s"
    )
    assert "listening" not in result.stdout
    with pytest.raises(ProcessLookupError):  # green's worker, ready, was stopped too
        os.kill(int(pid_file.read_text()), 0)
    assert os.listdir(system_tmp) == []
