"""``modelstore serve`` end to end: a real server process, real HTTP on loopback.

Each server is a ``python -m modelstore serve ... --port 0`` subprocess (the port it picked is
read from the URL it prints), started once per module where tests can share it. The gallery's
scripts (``fixtures/scripts``) are served as users would serve them.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import importlib.util
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
SCRIPTS = FIXTURES / "scripts"
TINY_PNG = FIXTURES / "images" / "tiny.png"
START_TIMEOUT_S = 30.0
URL_LINE = re.compile(r"listening on (http://\S+) ")
SERVING_VARIABLES = (
    "AML_APP_ROOT",
    "AZUREML_MODEL_DIR",
    "AZUREML_ENTRY_SCRIPT",
    "AZUREML_SOURCE_DIRECTORY",
    "AML_CORS_ORIGINS",
    "SCORING_TIMEOUT_MS",
    "SERVICE_NAME",
    "SERVICE_VERSION",
    "WORKER_COUNT",
    "WORKER_TIMEOUT",
    "MODELSTORE_HOME",
    "MODELSTORE_DB_URL",
)


# --- helpers ----------------------------------------------------------------------------------


def load_make_models() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_models", FIXTURES / "make_models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def clean_environment(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test process's environment without any serving variable, with an isolated home."""
    env = {k: v for k, v in os.environ.items() if k not in SERVING_VARIABLES}
    env["MODELSTORE_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    stdout: Path
    stderr: Path

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.post(self.url + path, timeout=30, **kwargs)

    def options(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.options(self.url + path, timeout=30, **kwargs)

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")


def start_server(args: list[str], folder: Path, *, cwd: Path, env: dict[str, str]) -> Server:
    """Start ``modelstore serve`` on a free port and wait until ``GET /`` answers 200."""
    folder.mkdir(parents=True, exist_ok=True)
    stdout, stderr = folder / "stdout.txt", folder / "stderr.txt"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "modelstore", "serve", "--port", "0", *args],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=err,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    url = None
    while time.monotonic() < deadline:
        match = URL_LINE.search(stdout.read_text(errors="replace"))
        if match:
            url = match.group(1)
            try:
                if requests.get(url + "/", timeout=5).status_code == 200:
                    return Server(process, url, stdout, stderr)
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or the worker is still in init() (slow under load)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    stop(process)
    raise AssertionError(
        f"server did not start (url {url}, exit {process.returncode}):\n"
        f"{stdout.read_text(errors='replace')}\n{stderr.read_text(errors='replace')}"
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)  # gunicorn's quick shutdown
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@contextmanager
def running(args: list[str], folder: Path, *, cwd: Path, env: dict[str, str]) -> Iterator[Server]:
    server = start_server(args, folder, cwd=cwd, env=env)
    try:
        yield server
    finally:
        stop(server.process)


def run_to_exit(
    args: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """A ``modelstore serve`` expected to stop on its own (a start-up failure)."""
    return subprocess.run(
        [sys.executable, "-m", "modelstore", "serve", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_script(folder: Path, source: str, name: str = "score.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


PROBE_SCRIPT = """
    import json
    import os
    import time

    def init():
        with open(os.environ["PROBE_INIT_LOG"], "a") as log:
            log.write(f"{os.getpid()}\\n")

    def run(data):
        request = json.loads(data) if data else {}
        time.sleep(request.get("sleep", 0))
        return {
            "pid": os.getpid(),
            "cwd": os.getcwd(),
            "AML_APP_ROOT": os.environ.get("AML_APP_ROOT"),
            "AZUREML_MODEL_DIR": os.environ.get("AZUREML_MODEL_DIR"),
        }
"""


# --- module-scoped servers --------------------------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve")


@pytest.fixture(scope="module")
def models_dir(workdir: Path) -> Path:
    folder = workdir / "models"
    make_models = load_make_models()
    make_models.write_regression_model(folder)
    make_models.write_multi_models(folder)
    return folder


@pytest.fixture(scope="module")
def powerbi_server(workdir: Path, models_dir: Path) -> Iterator[Server]:
    """The Power BI script with its model, and server-side CORS for one allowed origin."""
    args = [
        "--entry-script",
        str(SCRIPTS / "powerbi" / "score.py"),
        "--model-dir",
        str(models_dir),
        "--cors-origins",
        "http://allowed.example, http://also-allowed.example",
    ]
    env = clean_environment(workdir / "home", {"SERVICE_NAME": "house-prices"})
    with running(args, workdir / "powerbi", cwd=workdir, env=env) as server:
        yield server


@pytest.fixture(scope="module")
def probe_server(workdir: Path) -> Iterator[Server]:
    """One worker, a 400 ms scoring timeout, launched from its own folder with a relative
    --model-dir."""
    launch = workdir / "probe-launch"
    script = write_script(launch, PROBE_SCRIPT)
    env = clean_environment(workdir / "home", {"PROBE_INIT_LOG": str(workdir / "probe-init.log")})
    args = [
        "--entry-script",
        "score.py",
        "--model-dir",
        "some/models",
        "--scoring-timeout-ms",
        "400",
    ]
    with running(args, workdir / "probe", cwd=script.parent, env=env) as server:
        yield server


# --- the gallery's scripts --------------------------------------------------------------------


POWERBI_BODY = {
    "Inputs": {
        "input1": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [0.5] * 10],
        "input2": [{"name": "Sarah", "age": 25}],
        "input3": 0.0,
    },
    "GlobalParameters": 1.0,
}


def test_powerbi_script_answers_inputs_with_the_models_results(
    powerbi_server: Server, models_dir: Path
) -> None:
    import joblib  # type: ignore[import-untyped]
    import numpy as np

    response = powerbi_server.post("/score", json=POWERBI_BODY)

    assert response.status_code == 200, powerbi_server.log()
    model = joblib.load(models_dir / "sklearn_regression_model.pkl")
    inputs: Any = POWERBI_BODY["Inputs"]
    expected = model.predict(np.array(inputs["input1"], dtype="float64"))
    assert response.json() == {"Results": pytest.approx(expected.tolist())}
    assert response.headers["x-ms-run-function-failed"] == "False"


def test_powerbi_script_without_global_parameters_uses_the_default(powerbi_server: Server) -> None:
    response = powerbi_server.post("/score", json={"Inputs": POWERBI_BODY["Inputs"]})

    assert response.status_code == 200
    assert len(response.json()["Results"]) == 2


def test_powerbi_swagger_documents_inputs_and_results_in_both_versions(
    powerbi_server: Server,
) -> None:
    v2 = powerbi_server.get("/swagger.json").json()
    v3 = powerbi_server.get("/swagger.json", params={"version": "3"}).json()

    assert v2["swagger"] == "2.0"
    assert v2["info"]["title"] == "house-prices"  # SERVICE_NAME
    assert list(v2["definitions"]["ServiceInput"]["properties"]) == ["Inputs", "GlobalParameters"]
    inputs = v2["definitions"]["ServiceInput"]["properties"]["Inputs"]
    assert inputs["properties"]["input1"]["format"] == "numpy.ndarray"
    assert inputs["properties"]["input2"]["format"] == "pandas.DataFrame:records"
    assert "Results" in v2["definitions"]["ServiceOutput"]["properties"]
    assert v3["openapi"] == "3.0.3"
    assert list(v3["components"]["schemas"]["ServiceInput"]["properties"]) == [
        "Inputs",
        "GlobalParameters",
    ]


def test_powerbi_script_rejects_a_non_json_body_and_keeps_serving(powerbi_server: Server) -> None:
    wrong_type = powerbi_server.post(
        "/score", data=b"\xff\xfe", headers={"Content-Type": "text/plain"}
    )
    not_json = powerbi_server.post(
        "/score", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    then = powerbi_server.post("/score", json=POWERBI_BODY)

    assert wrong_type.status_code == 415
    assert not_json.status_code == 400
    assert not_json.json()["message"].startswith("POST body could not be decoded as JSON")
    assert then.status_code == 200


def test_rawhttp_image_script_returns_the_size_of_an_uploaded_png(workdir: Path) -> None:
    args = ["--entry-script", str(SCRIPTS / "rawhttp_image" / "score.py")]
    env = clean_environment(workdir / "home")
    with running(args, workdir / "image", cwd=workdir, env=env) as server:
        upload = server.post("/score", files={"image": TINY_PNG.read_bytes()})
        missing = server.post("/score", files={"other": b"x"})
        path = server.get("/score", params={"x": "1"})

    assert upload.status_code == 200, server.log()
    assert upload.json() == [12, 7]
    assert missing.status_code == 400
    assert path.text == "/score?x=1"


def test_cors_script_sets_its_own_allow_origin_header(workdir: Path) -> None:
    args = ["--entry-script", str(SCRIPTS / "cors" / "score.py")]
    env = clean_environment(workdir / "home")
    with running(args, workdir / "cors", cwd=workdir, env=env) as server:
        echoed = server.post("/score", data=b"hello", headers={"Origin": "https://a.example"})
        preflight = server.options("/score", headers={"Origin": "https://a.example"})

    assert echoed.status_code == 200
    assert echoed.content == b"hello"
    assert echoed.headers["Access-Control-Allow-Origin"] == "https://www.example.com"
    assert preflight.status_code == 200
    # AMLResponse splits header values at commas, as Azure's does: two header lines, joined
    # back with ", " by the client.
    assert preflight.headers["Access-Control-Allow-Methods"] == "GET, POST"


def test_multi_model_script_serves_registry_models_deployed_with_model_refs(
    workdir: Path, models_dir: Path
) -> None:
    import joblib
    import numpy as np

    from modelstore import Registry

    home = workdir / "registry-home"
    registry = Registry(home)
    registry.register(models_dir / "my_first_model.pkl", "my_first_model")
    registry.register(models_dir / "my_second_model.pkl", "my_second_model")
    registry.register(models_dir / "my_second_model.pkl", "my_second_model")
    rows = [[float(i) for i in range(10)]]
    args = [
        "--entry-script",
        str(SCRIPTS / "multi_model" / "score.py"),
        "--model",
        "my_first_model:1",
        "--model",
        "my_second_model:2",
    ]
    scratch = workdir / "multi-tmp"
    scratch.mkdir()
    env = clean_environment(home, {"TMPDIR": str(scratch)})
    with running(args, workdir / "multi", cwd=workdir, env=env) as server:
        response = server.post("/score", json={"data": rows})
        deployed = [path.name for path in scratch.glob("modelstore-serve-*/app/azureml-models/*")]

    assert response.status_code == 200, server.log()
    first = joblib.load(models_dir / "my_first_model.pkl").predict(np.array(rows))
    second = joblib.load(models_dir / "my_second_model.pkl").predict(np.array(rows))
    assert response.json() == {
        "my_first_model": pytest.approx(first.tolist()),
        "my_second_model": pytest.approx(second.tolist()),
    }
    assert sorted(deployed) == ["my_first_model", "my_second_model"]
    assert not list(scratch.iterdir()), "the temporary app root outlived the server"


# --- CORS from --cors-origins -----------------------------------------------------------------


def test_cors_preflight_from_an_allowed_origin_is_answered(powerbi_server: Server) -> None:
    response = powerbi_server.options(
        "/score",
        headers={
            "Origin": "http://also-allowed.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )

    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "http://also-allowed.example"
    assert response.headers["Access-Control-Allow-Methods"] == "GET, POST"
    assert response.headers["Access-Control-Allow-Headers"] == "content-type"


def test_cors_headers_are_sent_only_to_allowed_origins(powerbi_server: Server) -> None:
    allowed = powerbi_server.post(
        "/score", json=POWERBI_BODY, headers={"Origin": "http://allowed.example"}
    )
    other = powerbi_server.post(
        "/score", json=POWERBI_BODY, headers={"Origin": "http://evil.example"}
    )

    assert allowed.headers["Access-Control-Allow-Origin"] == "http://allowed.example"
    assert other.status_code == 200
    assert "Access-Control-Allow-Origin" not in other.headers


# --- the server process -----------------------------------------------------------------------


STREAM_SCRIPT = """
    from azureml.contrib.services.aml_request import rawhttp
    from azureml.contrib.services.aml_response import AMLResponse

    def init():
        pass

    @rawhttp
    def run(request):
        kind = request.args.get("kind")
        if kind == "stream":
            return AMLResponse((f"part{i};".encode() for i in range(3)), 200)
        if kind == "empty":
            return AMLResponse(b"", 204)
        return AMLResponse(b"x" * 300_000, 200)
"""


def test_streamed_empty_and_large_bodies_arrive_whole(workdir: Path) -> None:
    script = write_script(workdir / "stream", STREAM_SCRIPT)
    args = ["--entry-script", str(script)]
    with running(
        args, workdir / "stream-server", cwd=workdir, env=clean_environment(workdir)
    ) as server:
        streamed = server.get("/score", params={"kind": "stream"})
        empty = server.get("/score", params={"kind": "empty"})
        head = requests.head(server.url + "/score", timeout=30)
        large = server.get("/score")

    assert streamed.status_code == 200
    assert streamed.headers["Transfer-Encoding"] == "chunked"
    assert streamed.content == b"part0;part1;part2;"
    assert empty.status_code == 204
    assert empty.content == b""
    assert head.status_code == 200
    assert head.content == b""
    assert large.content == b"x" * 300_000


def test_the_printed_url_is_where_the_server_listens(probe_server: Server) -> None:
    printed = probe_server.stdout.read_text()

    assert f"listening on {probe_server.url} " in printed
    assert probe_server.url.startswith("http://127.0.0.1:")


def test_script_sees_the_launch_folder_as_app_root_and_model_dir_verbatim(
    probe_server: Server, workdir: Path
) -> None:
    answer = probe_server.post("/score", json={}).json()

    assert answer["AML_APP_ROOT"] == str(workdir / "probe-launch")
    assert answer["AZUREML_MODEL_DIR"] == "some/models"


def test_a_run_past_the_scoring_timeout_gets_500_and_the_next_request_is_served(
    probe_server: Server,
) -> None:
    started = time.monotonic()
    hung = probe_server.post("/score", json={"sleep": 30})
    elapsed = time.monotonic() - started
    after = probe_server.post("/score", json={})

    assert hung.status_code == 500
    assert hung.json() == {"message": "Scoring timeout after 400 ms"}
    assert hung.headers["x-ms-run-function-failed"] == "True"
    assert elapsed < 10
    assert after.status_code == 200


def test_connections_are_kept_alive_between_requests(probe_server: Server) -> None:
    host, port = probe_server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("POST", "/score", body=b"{}")
        first = connection.getresponse()
        first.read()
        local_port = connection.sock.getsockname()[1]
        connection.request("POST", "/score", body=b"{}")
        second = connection.getresponse()
        second.read()
        same_socket = connection.sock.getsockname()[1] == local_port
    finally:
        connection.close()

    assert first.status == second.status == 200
    assert first.getheader("Connection") != "close"
    assert same_socket


def test_pipelined_requests_on_one_connection_are_all_answered_in_order(
    probe_server: Server,
) -> None:
    host, port = probe_server.url.removeprefix("http://").split(":")
    count = 200
    requests_bytes = b"".join(
        b"POST /score HTTP/1.1\r\nHost: x\r\nx-request-id: r%d\r\n"
        b"Content-Length: 2\r\n\r\n{}" % index
        for index in range(count)
    )
    answered: list[tuple[str, str]] = []
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(requests_bytes)
        stream = sock.makefile("rb")
        for _ in range(count):
            status = stream.readline().decode().strip()
            headers = {}
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            stream.read(int(headers["content-length"]))
            answered.append((status, headers["x-request-id"]))

    assert answered == [("HTTP/1.1 200 OK", f"r{index}") for index in range(count)]


def test_an_overlong_url_gets_a_json_414_with_request_ids(probe_server: Server) -> None:
    response = probe_server.get("/score?data=" + "1" * 5000)
    after = probe_server.post("/score", json={})

    assert response.status_code == 414
    assert response.headers["Content-Type"] == "application/json"
    assert "POST body" in response.json()["message"]
    assert response.headers["x-request-id"] == response.headers["x-ms-request-id"]
    assert response.headers["x-ms-server-version"] == "azmlinfsrv/1.5.1"
    assert after.status_code == 200


def test_an_overlong_header_gets_a_json_431(probe_server: Server) -> None:
    response = probe_server.get("/", headers={"X-Big": "a" * 9000})

    assert response.status_code == 431
    assert "headers are too large" in response.json()["message"]


def test_two_workers_each_run_init_and_serve_in_parallel(workdir: Path) -> None:
    launch = workdir / "workers"
    script = write_script(launch, PROBE_SCRIPT)
    init_log = launch / "init.log"
    env = clean_environment(workdir / "home", {"PROBE_INIT_LOG": str(init_log)})
    args = ["--entry-script", str(script), "--workers", "2"]
    with running(args, workdir / "workers-server", cwd=launch, env=env) as server:
        deadline = time.monotonic() + 20
        while len(init_log.read_text().split()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        answers: list[int] = []

        def slow_request() -> None:
            answers.append(server.post("/score", json={"sleep": 1.0}).json()["pid"])

        # A worker that has run init() may not be accepting yet; the other then takes both
        # requests of a pair one after the other. A few pairs are enough once both accept: the
        # two requests of one pair, in flight together, answered by both workers.
        for _pair in range(5):
            answers.clear()
            threads = [threading.Thread(target=slow_request) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
            if len(set(answers)) == 2:
                break

    init_pids = {int(pid) for pid in init_log.read_text().split()}
    assert len(init_pids) == 2
    assert server.stdout.read_text().count("listening on") == 1  # the first ready worker says it
    assert set(answers) == init_pids


def answer_after_change(server: Server, script: Path, source: str, previous: Any) -> Any:
    """Rewrite the script, then poll /score until the answer differs from ``previous``."""
    time.sleep(1.1)  # a modification time later than the one the reloader recorded
    script.write_text(source)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            response = server.post("/score", data=b"x")
        except requests.ConnectionError:
            continue
        answer = (response.status_code, response.json())
        if answer != previous:
            return answer
    return previous


def test_reload_restarts_workers_when_the_script_changes(workdir: Path) -> None:
    launch = workdir / "reload"
    script = write_script(launch, "def init():\n    pass\n\ndef run(data):\n    return 'old'\n")
    args = ["--entry-script", str(script), "--reload"]
    with running(
        args, workdir / "reload-server", cwd=launch, env=clean_environment(workdir)
    ) as server:
        first = server.post("/score", data=b"x")
        before = (first.status_code, first.json())
        broken = answer_after_change(
            server,
            script,
            "def init():\n    raise OSError('no model')\n\ndef run(d):\n    pass\n",
            before,
        )
        fixed = answer_after_change(
            server, script, "def init():\n    pass\n\ndef run(data):\n    return 'new'\n", broken
        )

    assert server.stdout.read_text().count("listening on") == 1  # not again per new worker
    assert before == (200, "old")
    assert broken[0] == 503
    assert "OSError: no model" in broken[1]["message"]
    assert fixed == (200, "new")


# --- start-up failures ------------------------------------------------------------------------


def test_init_failure_exits_3_with_the_reason_on_the_last_line(workdir: Path) -> None:
    script = write_script(
        workdir / "broken-init",
        "def init():\n    raise RuntimeError('model file is corrupt')\n\ndef run(d):\n    pass\n",
    )

    result = run_to_exit(
        ["--entry-script", str(script), "--port", "0"], cwd=workdir, env=clean_environment(workdir)
    )

    assert result.returncode == 3
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("Error: init() of ")
    assert "RuntimeError: model file is corrupt" in last_line
    assert "Traceback" in result.stderr  # the details are logged above the summary


def serve_on_a_taken_port(script: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    """``serve`` of ``script`` on a port already taken: if serve bound before checking the
    script, the port would be the error (exit 1) instead of the script's."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        return run_to_exit(
            ["--entry-script", script, "--port", port],
            cwd=workdir,
            env=clean_environment(workdir),
        )


def test_a_script_with_a_syntax_error_exits_3_with_one_line_before_binding(
    workdir: Path,
) -> None:
    script = write_script(workdir / "syntax", "def init(:\n    pass\n")
    result = serve_on_a_taken_port(str(script), workdir)

    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        f"Error: entry script {script} has a syntax error at line 1: invalid syntax; "
        "fix it and start again"
    ]
    assert result.stdout == ""


def test_a_missing_entry_script_exits_3_with_one_line_before_binding(workdir: Path) -> None:
    result = serve_on_a_taken_port("missing.py", workdir)

    assert result.returncode == 3
    assert result.stderr.splitlines() == [
        f"Error: entry script {workdir.resolve() / 'missing.py'} does not exist; "
        "pass the path of your score.py"
    ]
    assert result.stdout == ""


def test_a_failing_init_never_prints_the_listening_line(workdir: Path) -> None:
    script = write_script(
        workdir / "init-fails",
        "def init():\n    raise RuntimeError('no')\n\ndef run(d):\n    pass\n",
    )

    result = run_to_exit(
        ["--entry-script", str(script), "--port", "0"], cwd=workdir, env=clean_environment(workdir)
    )

    assert result.returncode == 3
    assert "listening" not in result.stdout


def test_the_listening_line_appears_only_once_init_has_finished(workdir: Path) -> None:
    launch = workdir / "slow-init"
    started, release = launch / "init-started", launch / "release"
    script = write_script(
        launch,
        f"""
        import os
        import time

        def init():
            open({str(started)!r}, "w").close()
            while not os.path.exists({str(release)!r}):  # held until the test has looked
                time.sleep(0.01)

        def run(data):
            return "ok"
        """,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "modelstore", "serve", "--port", "0", "--entry-script", str(script)],
        cwd=launch,
        env=clean_environment(workdir / "home"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while not started.exists():  # init() is running in the worker now
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        os.set_blocking(process.stdout.fileno(), False)
        printed_during_init = process.stdout.read()
        os.set_blocking(process.stdout.fileno(), True)
        release.touch()
        readable, _, _ = select.select([process.stdout], [], [], START_TIMEOUT_S)
        line = process.stdout.readline().decode() if readable else ""
        match = URL_LINE.search(line)
        assert match, line
        answer = requests.get(match.group(1) + "/", timeout=30)  # no retry: it is ready
    finally:
        stop(process)
    assert not printed_during_init  # None (nothing yet) or b""
    assert answer.status_code == 200


def test_a_taken_port_is_one_clear_line_and_exit_1(workdir: Path) -> None:
    script = write_script(workdir / "port", "def init():\n    pass\n\ndef run(data):\n    pass\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_to_exit(
            ["--entry-script", str(script), "--port", str(port)],
            cwd=workdir,
            env=clean_environment(workdir),
            timeout=30,
        )

    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Error: port {port} on 127.0.0.1 is already in use (is another server running?); "
        "stop it or choose another --port"
    )


def test_a_missing_entry_script_option_is_a_usage_error(workdir: Path) -> None:
    result = run_to_exit([], cwd=workdir, env=clean_environment(workdir))

    assert result.returncode == 2
    assert "--entry-script" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_malformed_worker_timeout_is_refused_before_starting(workdir: Path) -> None:
    env = clean_environment(workdir, {"WORKER_TIMEOUT": "soon"})

    result = run_to_exit(["--entry-script", "score.py"], cwd=workdir, env=env)

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Error: WORKER_TIMEOUT='soon' is not a positive whole number of seconds; "
        "set it to e.g. WORKER_TIMEOUT=300 or unset it"
    ]


def test_model_and_model_dir_together_are_refused(workdir: Path) -> None:
    result = run_to_exit(
        ["--entry-script", "score.py", "--model", "a:1", "--model-dir", "x"],
        cwd=workdir,
        env=clean_environment(workdir / "untouched-home"),
    )

    assert result.returncode == 2
    assert "--model and --model-dir" in result.stderr
    assert not (workdir / "untouched-home").exists()


def test_a_model_that_is_not_registered_fails_before_serving(workdir: Path) -> None:
    script = write_script(
        workdir / "unknown-model", "def init():\n    pass\n\ndef run(d):\n    pass\n"
    )
    home = workdir / "empty-home"

    result = run_to_exit(
        ["--entry-script", str(script), "--model", "no_such_model:1"],
        cwd=workdir,
        env=clean_environment(home),
    )

    assert result.returncode == 1
    assert result.stderr.startswith("Error: ")
    assert "no_such_model" in result.stderr
    assert "listening" not in result.stdout


def test_azmlinfsrv_spellings_and_variables_are_accepted(workdir: Path) -> None:
    launch = workdir / "azml-spelling"
    script = write_script(launch, PROBE_SCRIPT)
    env = clean_environment(
        workdir / "home",
        {
            "PROBE_INIT_LOG": str(launch / "init.log"),
            "WORKER_COUNT": "2",
            "AML_APP_ROOT": "/srv/app",
        },
    )
    args = [
        "--entry_script",
        str(script),
        "--model_dir",
        "m",
        "--access_control_allow_origins",
        "http://x.example",
    ]
    with running(args, workdir / "azml-spelling-server", cwd=launch, env=env) as server:
        answer = server.post("/score", json={}, headers={"Origin": "http://x.example"})

    assert "2 worker(s)" in server.stdout.read_text()
    assert answer.json()["AML_APP_ROOT"] == "/srv/app"
    assert answer.json()["AZUREML_MODEL_DIR"] == "m"
    assert answer.headers["Access-Control-Allow-Origin"] == "http://x.example"


def test_without_gunicorn_serve_says_what_to_use_instead(workdir: Path) -> None:
    launch = workdir / "no-gunicorn"
    write_script(launch, "def init():\n    pass\n\ndef run(data):\n    pass\n")
    code = (
        "import sys; sys.modules['gunicorn'] = None\n"
        "from modelstore.cli import main\n"
        "main(['serve', '--entry-script', 'score.py', '--port', '0'], prog_name='modelstore')\n"
    )

    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=launch,
        env=clean_environment(workdir),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: modelstore serve runs on gunicorn, which is not installed (it does not run on "
        "Windows); use WSL, or 'modelstore score' for one request without a server"
    ]


def exchange(sock: socket.socket, stream: Any, request: bytes) -> tuple[str, dict[str, str]]:
    """Send one HTTP/1.1 request on ``sock`` and read its answer from ``stream``."""
    sock.sendall(request)
    status = stream.readline().decode().strip()
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    stream.read(int(headers.get("content-length", "0")))
    return status, headers


SCORE_REQUEST = b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"


def test_connections_closed_by_clients_leave_room_for_new_ones_on_the_same_descriptors(
    probe_server: Server,
) -> None:
    """Kept-alive sockets stay registered with the worker's poller between requests; a
    closed one must leave it, or the next connection given the same descriptor is dropped."""
    host, port = probe_server.url.removeprefix("http://").split(":")
    answers: list[tuple[str, str]] = []
    for index in range(60):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            stream = sock.makefile("rb")
            for _ in range(2):
                status, headers = exchange(sock, stream, SCORE_REQUEST)
                answers.append((status, headers.get("connection", "")))
            if index % 3 == 0:
                time.sleep(0.01)  # closed while idle in the poller, not right after an answer

    assert answers == [("HTTP/1.1 200 OK", "keep-alive")] * 120


def test_a_body_the_route_does_not_read_is_skipped_before_the_next_request(
    probe_server: Server,
) -> None:
    host, port = probe_server.url.removeprefix("http://").split(":")
    unread = b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        stream = sock.makefile("rb")
        first, _ = exchange(sock, stream, unread)
        second, headers = exchange(sock, stream, SCORE_REQUEST)

    assert (first, second) == ("HTTP/1.1 200 OK", "HTTP/1.1 200 OK")
    assert headers["connection"] == "keep-alive"


def test_every_answer_carries_the_current_date(probe_server: Server) -> None:
    host, port = probe_server.url.removeprefix("http://").split(":")
    dates = []
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        stream = sock.makefile("rb")
        for _ in range(3):
            before = int(time.time())
            _, headers = exchange(sock, stream, SCORE_REQUEST)
            after = int(time.time())
            dates.append((before, headers["date"], after))
            time.sleep(0.6)

    for before, date, after in dates:
        assert date.endswith(" GMT")
        assert before <= email.utils.parsedate_to_datetime(date).timestamp() <= after
    assert len({date for _, date, _ in dates}) >= 2  # it follows the clock, not a stale copy


def test_the_date_header_value_is_gunicorns_for_the_current_second() -> None:
    from gunicorn import util

    from modelstore.serving.server import _http_date_now

    for _ in range(3):
        before, value, after = util.http_date(), _http_date_now(), util.http_date()
        assert value in (before, after)
        time.sleep(0.4)


@pytest.mark.parametrize("worker_timeout_s", [1, 2, 30, 300])
def test_the_worker_heartbeat_comes_well_within_the_worker_timeout(worker_timeout_s: int) -> None:
    from modelstore.serving.server import _heartbeat_interval_s

    interval = _heartbeat_interval_s(worker_timeout_s)
    assert 0 < interval <= 0.5
    assert interval <= worker_timeout_s / 10


def test_a_413_for_a_declared_oversized_body_says_connection_close_and_closes(
    probe_server: Server,
) -> None:
    """The server answers before reading a body it refuses, so it cannot keep the connection:
    it must say so, or a client pipelining its next request on that socket loses it."""
    host, port = probe_server.url.removeprefix("http://").split(":")
    oversized = 200 * 1024 * 1024
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        stream = sock.makefile("rb")
        status, headers = exchange(
            sock,
            stream,
            b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % oversized,
        )
        assert status == "HTTP/1.1 413 REQUEST ENTITY TOO LARGE"
        assert headers["connection"] == "close"
        assert stream.read() == b""  # and the server did close it


# --- slow and idle clients (the worker never waits for one on the thread that serves) ---------


CALL_LOG_SCRIPT = """
    import json
    import os
    import time

    def init():
        pass

    def run(data):
        with open(os.environ["CALL_LOG"], "a") as log:
            log.write("run\\n")
        if data.startswith('{"hold": '):  # keep the worker busy until the test says
            hold = json.loads(data)["hold"]
            open(hold + ".entered", "w").close()
            deadline = time.monotonic() + 30
            while not os.path.exists(hold) and time.monotonic() < deadline:
                time.sleep(0.01)
        return {"length": len(data)}
"""
QUICK_READ_TIMEOUT_S = "0.5"


@pytest.fixture(scope="module")
def quick_server(workdir: Path) -> Iterator[Server]:
    """One worker that gives clients half a second to send a request (set through the
    environment variable), with a script that records each call of run()."""
    launch = workdir / "quick-launch"
    script = write_script(launch, CALL_LOG_SCRIPT)
    env = clean_environment(
        workdir / "home",
        {"CALL_LOG": str(launch / "calls.log"), "MODELSTORE_READ_TIMEOUT": QUICK_READ_TIMEOUT_S},
    )
    with running(["--entry-script", str(script)], workdir / "quick", cwd=launch, env=env) as server:
        yield server


def address(server: Server) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def read_answer(sock: socket.socket) -> tuple[str, dict[str, str], bytes]:
    """The one answer the server sends before closing ``sock``: status line, headers, body."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


@contextmanager
def open_connections(server: Server, count: int, first_bytes: bytes) -> Iterator[None]:
    """``count`` connections that sent ``first_bytes`` (maybe nothing) and then stall."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.create_connection(address(server), timeout=10)
            socks.append(sock)
            if first_bytes:
                sock.sendall(first_bytes)
        yield
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.parametrize(
    "stalled_with",
    [
        pytest.param(b"", id="idle"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: a", id="unfinished-headers"),
        pytest.param(
            b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{", id="trickled-body"
        ),
    ],
)
def test_stalled_clients_do_not_delay_other_requests(
    probe_server: Server, stalled_with: bytes
) -> None:
    """Before, the one worker waited on each such connection in turn (5 s per idle one, for
    ever on unfinished headers); now they wait in the poller and others are served at once."""
    with open_connections(probe_server, 50, stalled_with):
        answers = [requests.get(probe_server.url + "/", timeout=3).status_code for _ in range(12)]
        scored = requests.post(probe_server.url + "/score", json={}, timeout=3)

    assert answers == [200] * 12
    assert scored.status_code == 200


@pytest.mark.parametrize(
    "partial",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: a", id="unfinished-headers"),
        pytest.param(
            b"POST /score HTTP/1.1\r\nHost: x\r\nx-request-id: slow-1\r\n"
            b"Content-Length: 100\r\n\r\n{",
            id="unfinished-body",
        ),
    ],
)
def test_a_request_not_received_within_the_read_timeout_gets_a_json_408_and_is_closed(
    quick_server: Server, partial: bytes
) -> None:
    calls = Path(quick_server.stdout).parent.parent / "quick-launch" / "calls.log"
    before = calls.read_text() if calls.exists() else ""
    with socket.create_connection(address(quick_server), timeout=10) as sock:
        sock.sendall(partial)
        status, headers, body = read_answer(sock)  # ends when the server closes

    assert status == "HTTP/1.1 408 Request Timeout"
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert headers["x-request-id"] == headers["x-ms-request-id"]
    if b"x-request-id" in partial:
        assert headers["x-request-id"] == "slow-1"
    assert headers["x-ms-server-version"] == "azmlinfsrv/1.5.1"
    message = json.loads(body)["message"]
    assert f"within {QUICK_READ_TIMEOUT_S} s" in message
    assert "--read-timeout" in message
    assert (calls.read_text() if calls.exists() else "") == before


def test_a_connection_that_sends_nothing_is_closed_after_the_read_timeout_without_an_answer(
    quick_server: Server,
) -> None:
    with socket.create_connection(address(quick_server), timeout=10) as sock:
        assert sock.recv(65536) == b""


def unread_by_server(server: Server, client: socket.socket) -> int | None:
    """Bytes ``client`` sent that the server has not read yet: the receive queue of the
    server's end of the connection, from /proc/net/tcp (None: no such connection listed)."""
    server_port = address(server)[1]
    client_port = client.getsockname()[1]
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, queues = fields[1], fields[2], fields[4]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == (
            client_port
        ):
            return int(queues.split(":")[1], 16)
    return None


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.005)


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux's /proc/net/tcp")
def test_a_request_completed_while_the_worker_was_busy_is_served_after_its_deadline(
    quick_server: Server, tmp_path: Path
) -> None:
    """The poller does not look at sockets while the worker runs a request. A request whose
    last bytes arrived meanwhile is whole in its socket when its read deadline is checked: it
    must be served, not answered 408 (seen once under load as a dropped GET)."""
    hold = tmp_path / "hold"
    body = json.dumps({"hold": str(hold)}).encode()
    with (
        socket.create_connection(address(quick_server), timeout=30) as waiting,
        socket.create_connection(address(quick_server), timeout=30) as busy,
    ):
        waiting.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n")
        wait_until(lambda: unread_by_server(quick_server, waiting) == 0, "the server read it")
        busy.sendall(
            b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        wait_until(Path(f"{hold}.entered").exists, "run() was entered")
        waiting.sendall(b"\r\n")  # the request is whole now, while the worker is busy
        # The behaviour is about a read deadline passing while the worker is busy: wait it out.
        time.sleep(2 * float(QUICK_READ_TIMEOUT_S))
        hold.touch()
        busy_answer = busy.recv(65536)
        status, _headers, answer = read_answer(waiting)

    assert busy_answer.startswith(b"HTTP/1.1 200")
    assert status == "HTTP/1.1 200 OK"
    assert answer == b"Healthy"


SLOW_INIT_SCRIPT = """
    import os, time

    def init():
        with open(os.environ["ENTERED"], "w") as out:
            out.write(str(os.getpid()))
        time.sleep(60)

    def run(data):
        return data
"""


@contextmanager
def serving_a_slow_init(
    tmp_path: Path, **env: str
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``modelstore serve`` in a process group of its own (as a terminal's foreground job),
    its output in ``tmp_path/out.txt``; yields it and its worker's pid once the worker is
    inside a 60 s init(). Whatever is left of the group is killed afterwards."""
    script = write_script(tmp_path / "slow", SLOW_INIT_SCRIPT)
    entered = tmp_path / "entered"
    environ = clean_environment(tmp_path / "home", {"ENTERED": str(entered), **env})
    with (tmp_path / "out.txt").open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "modelstore",
                "serve",
                "--port",
                "0",
                "--entry-script",
                str(script),
            ],
            cwd=script.parent,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not entered.exists() or not entered.read_text():
            assert process.poll() is None and time.monotonic() < deadline, "init() never ran"
            time.sleep(0.02)
        yield process, int(entered.read_text())
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_ctrl_c_while_init_runs_stops_the_server_with_exit_0_and_no_error(tmp_path: Path) -> None:
    """A terminal's Ctrl-C reaches every process of the group; gunicorn then raises SystemExit
    in the worker, here inside init(). That is the server stopping, not init() failing."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    with serving_a_slow_init(tmp_path, TMPDIR=str(scratch)) as (process, _worker):
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)

    output = (tmp_path / "out.txt").read_text()
    assert process.returncode == 0, output
    assert "Error:" not in output and "Traceback" not in output, output
    assert "init function was interrupted: the server is stopping" in output
    assert list(scratch.iterdir()) == []


def test_a_worker_inside_init_stops_when_its_server_is_killed_outright(tmp_path: Path) -> None:
    """kill -9 of ``modelstore serve`` (the gunicorn master) runs no clean-up: the worker, busy
    in a long init(), must still go rather than hold the port and the model."""
    with serving_a_slow_init(tmp_path) as (process, worker):
        process.kill()
        process.wait()
        deadline = time.monotonic() + 20
        while process_state(worker) not in ("Z", "gone"):
            assert time.monotonic() < deadline, "the worker outlived its killed server"
            time.sleep(0.05)


def process_state(pid: int) -> str:
    """A process's state letter from /proc ("Z": a zombie, ended but not yet reaped), or
    "gone"."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"


def test_a_read_timeout_that_is_not_above_zero_is_refused_before_starting(workdir: Path) -> None:
    script = write_script(workdir / "bad-read-timeout", CALL_LOG_SCRIPT)
    env = clean_environment(workdir / "home")
    result = run_to_exit(
        ["--entry-script", str(script), "--read-timeout", "0"], cwd=script.parent, env=env
    )

    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: Invalid value for '--read-timeout': 0.0 is not in the range x>0; "
        "see 'modelstore serve --help'"
    )


def test_a_malformed_read_timeout_variable_is_named_in_the_error(workdir: Path) -> None:
    script = write_script(workdir / "bad-read-timeout-env", CALL_LOG_SCRIPT)
    env = clean_environment(workdir / "home", {"MODELSTORE_READ_TIMEOUT": "soon"})
    result = run_to_exit(["--entry-script", str(script)], cwd=script.parent, env=env)

    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "Error: MODELSTORE_READ_TIMEOUT='soon' is not a number of seconds above 0; "
        "set it to e.g. MODELSTORE_READ_TIMEOUT=5 or unset it"
    )


MALFORMED_CHUNKED = {
    "size-zz": b"zz\r\n{}\r\n0\r\n\r\n",
    "size-negative": b"-5\r\n{}\r\n0\r\n\r\n",
    "size-huge": b"FFFFFFFFFFFFFFFFFFFFFFFF\r\n{}\r\n0\r\n\r\n",
    "wrong-length": b"5\r\n{}\r\n0\r\n\r\n",
    "no-terminator": b"2\r\n{}",
    "malformed-after-1-mib": b"100000\r\n" + b" " * 0x100000 + b"\r\nzz\r\n",
}


@pytest.mark.parametrize("body", MALFORMED_CHUNKED.values(), ids=MALFORMED_CHUNKED.keys())
def test_a_malformed_chunked_body_is_a_json_400_and_the_script_is_not_called(
    quick_server: Server, body: bytes
) -> None:
    calls = Path(quick_server.stdout).parent.parent / "quick-launch" / "calls.log"
    before = calls.read_text() if calls.exists() else ""
    log_before = quick_server.log()
    with socket.create_connection(address(quick_server), timeout=10) as sock:
        sock.sendall(
            b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + body
        )
        sock.shutdown(socket.SHUT_WR)  # a body without its end is cut short, not slow
        status, headers, answer = read_answer(sock)

    assert status.startswith("HTTP/1.1 400 ")
    assert headers["content-type"] == "application/json"
    assert headers["x-request-id"] == headers["x-ms-request-id"] != ""
    message = json.loads(answer)["message"]
    assert "chunked" in message or "before the end of its body" in message
    assert (calls.read_text() if calls.exists() else "") == before
    new_log = quick_server.log()[len(log_before) :]
    assert "Traceback" not in new_log
    assert "unexpected internal error" not in answer.decode()


def test_a_valid_chunked_body_still_reaches_the_script(quick_server: Server) -> None:
    with socket.create_connection(address(quick_server), timeout=10) as sock:
        stream = sock.makefile("rb")
        status, _ = exchange(
            sock,
            stream,
            b"POST /score HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"1\r\n{\r\n1;ext=1\r\n}\r\n0\r\nX-Checksum: x\r\n\r\n",
        )

    assert status == "HTTP/1.1 200 OK"


# --- contracts with gunicorn's internals (issue 10): fail clearly when an upgrade moves them -----


def _source(function: Any) -> str:
    import inspect

    return inspect.getsource(function)


def test_gunicorn_still_drives_the_worker_loop_through_the_methods_the_worker_overrides() -> None:
    from gunicorn.workers.gthread import ThreadWorker

    loop = _source(ThreadWorker.run)
    for step in (
        "self.wait_for_and_dispatch_events(",
        "self.murder_keepalived(",
        "self.murder_pending(",
        "self.set_accept_enabled(",
        "self.notify(",
    ):
        assert step in loop, (
            f"gunicorn's ThreadWorker.run no longer calls {step}...); MainThreadWorker in "
            "modelstore/serving/server.py relies on it to wait for requests in the poller: "
            "review that class against the new gthread worker before allowing this gunicorn"
        )


def test_gunicorn_connections_still_parse_through_a_replaceable_socket_unreader() -> None:
    from gunicorn.http.parser import Parser
    from gunicorn.http.unreader import SocketUnreader, Unreader
    from gunicorn.workers.gthread import TConn

    plain, other = socket.socketpair()
    with plain, other:
        cfg = type("Cfg", (), {"is_ssl": False, "http2_cleartext": "off"})()
        conn = TConn(cfg, plain, ("127.0.0.1", 1), ("127.0.0.1", 2))
        conn.init()
        assert isinstance(conn.parser.unreader, SocketUnreader), (
            "gunicorn's TConn.init() no longer gives its parser a SocketUnreader; the worker "
            "replaces it with _DeadlineUnreader (modelstore/serving/server.py)"
        )
    assert "self.unreader" in _source(Parser.__next__), (
        "gunicorn's Parser no longer reads each request through parser.unreader; the worker "
        "feeds buffered requests to it there"
    )
    assert "self.chunk(" in _source(Unreader.read), (
        "gunicorn's Unreader.read no longer reads the socket through chunk(); "
        "_DeadlineUnreader bounds the main thread's reads there"
    )
    for name in ("unread", "take_buffered"):
        assert callable(getattr(Unreader, name, None)), f"gunicorn's Unreader lost {name}()"
    for name in ("mxchunk", "sock"):
        assert hasattr(SocketUnreader(plain), name), f"gunicorn's SocketUnreader lost .{name}"


def test_gunicorn_responses_still_send_bodies_through_the_method_the_worker_overrides() -> None:
    from gunicorn.http.wsgi import Response

    assert "self._emit_body(" in _source(Response.write), (
        "gunicorn's Response.write no longer sends through _emit_body(); CoalescingResponse "
        "(modelstore/serving/server.py) overrides it to send the head with the first body bytes"
    )
    for name in ("default_headers", "process_headers", "send_headers", "close", "sendfile"):
        assert callable(getattr(Response, name, None)), f"gunicorn's Response lost {name}()"


def test_gunicorn_bodies_still_expose_what_the_keep_alive_shortcut_reads() -> None:
    import io

    from gunicorn.http.body import Body, LengthReader
    from gunicorn.http.unreader import IterUnreader

    body = Body(LengthReader(IterUnreader([b"{}"]), 2))
    assert body.read() == b"{}"
    for owner, name in ((body, "reader"), (body, "failed"), (body, "buf"), (body.reader, "length")):
        assert hasattr(owner, name), (
            f"gunicorn's {type(owner).__name__} lost .{name}; _body_fully_read "
            "(modelstore/serving/server.py) reads it to skip the body drain before keep-alive"
        )
    assert body.reader.length == 0 and body.failed is False and isinstance(body.buf, io.BytesIO)


def test_a_client_waiting_for_100_continue_gets_it_and_its_body_is_scored(
    quick_server: Server,
) -> None:
    """The poller cannot wait for a body the client holds back until it hears ``100
    Continue``: such a request goes to the worker with its head only."""
    body = b"x" * 3000
    with socket.create_connection(address(quick_server), timeout=10) as sock:
        sock.sendall(
            b"POST /score HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        stream = sock.makefile("rb")
        interim = stream.readline()
        assert stream.readline() == b"\r\n"
        status, headers = exchange(sock, stream, body)

    assert interim == b"HTTP/1.1 100 Continue\r\n"
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-length"] == str(len(json.dumps({"length": len(body)})))


HEAD = b"POST /score HTTP/1.1\r\nHost: x\r\n"
FRAMING_CASES = {
    "no-body": (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "SERVE"),
    "head-unfinished": (b"GET / HTTP/1.1\r\nHost: x\r\n", "WAIT"),
    "length-whole": (HEAD + b"content-LENGTH: 2\r\n\r\n{}", "SERVE"),
    "length-whole-and-pipelined": (HEAD + b"Content-Length: 2\r\n\r\n{}GET / HT", "SERVE"),
    "length-short": (HEAD + b"Content-Length: 3\r\n\r\n{}", "WAIT"),
    "length-over-prebuffer": (HEAD + b"Content-Length: 1048577\r\n\r\n", "SERVE_UNBUFFERED"),
    "length-twice": (
        HEAD + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
        "SERVE_UNBUFFERED",
    ),
    "length-not-digits": (HEAD + b"Content-Length: 2x\r\n\r\n{}", "SERVE_UNBUFFERED"),
    "expect-continue": (
        HEAD + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n",
        "SERVE_UNBUFFERED",
    ),
    "chunked-whole": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", "SERVE"),
    "chunked-trailers": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: 1\r\n\r\n", "SERVE"),
    "chunked-unfinished": (HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n", "WAIT"),
    "chunked-bad-size": (HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", "REFUSE"),
    "chunked-and-length": (
        HEAD + b"Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n",
        "SERVE_UNBUFFERED",
    ),
    "gzip-coding": (HEAD + b"Transfer-Encoding: gzip\r\n\r\n", "SERVE_UNBUFFERED"),
    "line-too-long": (b"GET /" + b"a" * 13000, "SERVE_UNBUFFERED"),
    "bare-lf-head": (b"GET / HTTP/1.1\nHost: x\n\n", "SERVE_UNBUFFERED"),
}


@pytest.mark.parametrize("data, expected", FRAMING_CASES.values(), ids=FRAMING_CASES.keys())
def test_a_request_leaves_the_poller_only_once_its_framing_says_it_is_whole(
    data: bytes, expected: str
) -> None:
    from modelstore.serving.server import PREBUFFER_LIMIT, _request_verdict

    assert _request_verdict(data, PREBUFFER_LIMIT)[0].name == expected


def test_a_large_body_that_stalls_gets_a_json_408_after_the_read_timeout(
    quick_server: Server,
) -> None:
    """A body over the poller's 1 MiB buffer is read by the worker itself: a client that sends
    most of it and stops must not hold the worker past the read timeout."""
    declared = 2 * 1024 * 1024
    with socket.create_connection(address(quick_server), timeout=30) as sock:
        sock.sendall(
            b"POST /score HTTP/1.1\r\nHost: x\r\nx-request-id: big-1\r\n"
            b"Content-Length: %d\r\n\r\n" % declared + b" " * (declared // 2)
        )
        served_meanwhile = requests.get(quick_server.url + "/", timeout=30).status_code
        status, headers, body = read_answer(sock)

    assert status == "HTTP/1.1 408 REQUEST TIMEOUT"
    assert headers["x-request-id"] == "big-1"
    assert "did not arrive in time" in json.loads(body)["message"]
    assert served_meanwhile == 200


# --- bad option values name what the user set ----------------------------------------------


SCRIPT = "def init():\n    pass\n\ndef run(data):\n    return data\n"


def serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "score.py"
    script.write_text(SCRIPT, encoding="utf-8")
    environment = {k: v for k, v in os.environ.items() if k != "WORKER_COUNT"}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "modelstore", "serve", "--entry-script", str(script), *args],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("value", ["abc", "0", "-1"])
def test_a_bad_worker_count_variable_is_named_as_the_variable(tmp_path: Path, value: str) -> None:
    result = serve(tmp_path, "--port", "0", WORKER_COUNT=value)

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"Error: WORKER_COUNT={value!r} is not a whole number of worker processes (1 or more); "
        "set it to e.g. WORKER_COUNT=2 or unset it"
    ]


def test_a_bad_workers_option_still_names_the_option(tmp_path: Path) -> None:
    result = serve(tmp_path, "--port", "0", "--workers", "0", WORKER_COUNT="2")

    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "Error: Invalid value for '--workers' / '--worker_count': 0 is not in the range x>=1"
        )
    )


def test_serve_resolves_its_settings_once_and_leaves_its_own_environment_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process, the server itself replaced: what it would be given is the one resolution of
    the options, the environment and the launch directory, and the serving process's
    environment is only written by each worker, right before it loads the script."""
    from click.testing import CliRunner

    from modelstore.cli import main, serve_commands
    from modelstore.serving.settings import ServingSettings

    write_script(tmp_path, "def init():\n    pass\n\ndef run(data):\n    return data\n")
    given: list[ServingSettings] = []

    def fake_run_server(settings: ServingSettings, host: str, port: int, reload: bool) -> int:
        given.append(settings)
        return 0

    monkeypatch.setattr(serve_commands, "run_server", fake_run_server)
    for name in ("AML_APP_ROOT", "AZUREML_MODEL_DIR", "AZUREML_ENTRY_SCRIPT", "AML_CORS_ORIGINS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORKER_COUNT", "3")
    monkeypatch.setenv("WORKER_TIMEOUT", "30")
    monkeypatch.chdir(tmp_path)
    environ_before = dict(os.environ)

    result = CliRunner().invoke(
        main,
        ["serve", "--entry-script", "score.py", "--model-dir", "m", "--cors-origins", "https://a",
         "--read-timeout", "0.5"],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert dict(os.environ) == environ_before
    [settings] = given
    assert (settings.workers, settings.worker_timeout_s, settings.read_timeout_s) == (3, 30, 0.5)
    assert settings.cors_origins == ["https://a"]
    assert settings.script_environ == {
        "AML_APP_ROOT": str(tmp_path),
        "AZUREML_MODEL_DIR": "m",
        "AML_CORS_ORIGINS": "https://a",
        "AZUREML_ENTRY_SCRIPT": str(tmp_path.resolve() / "score.py"),
    }


def test_a_child_started_with_sigint_ignored_can_still_be_stopped_by_it() -> None:
    """A shell's background job starts with SIGINT ignored, and children inherit that: the
    endpoint's stop (and the lifeline) would be dropped until a server took over the signal."""
    code = (
        "import os, signal\n"
        "from modelstore.serving.lifeline import die_with_parent\n"
        "die_with_parent(os.getppid())\n"
        "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    assert result.stdout.strip() == "True", result.stderr
