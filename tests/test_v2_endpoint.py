"""A local v2 endpoint with several deployments (``modelstore.v2.endpoint``): the traffic rules
and the router's choices in process, then ``modelstore serve -f endpoint.yml -f blue.yml -f
green.yml`` and ``local_endpoint`` as real processes over loopback."""

from __future__ import annotations

import contextlib
import os
import re
import runpy
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from test_serve_http import URL_LINE, clean_environment, process_state, stop
from v2_helpers import GALLERY, copy_gallery, gated_deployment, wait_entered
from werkzeug.test import Client

from modelstore.cli import main
from modelstore.cli.serve_commands import parse_traffic
from modelstore.errors import InvalidArgumentError
from modelstore.registry import Registry
from modelstore.serving import docs_page
from modelstore.v2.endpoint import (
    DEPLOYMENT_HEADER,
    ENDPOINT_DOCS_PATH,
    Route,
    Router,
    check_traffic,
    local_endpoint,
    split_files,
)

ROWS = '{"data": [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]}'
JSON = {"Content-Type": "application/json"}
FILES = ["endpoint.yml", "blue-deployment.yml", "green-deployment.yml"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fixtures/v2 with the Ridge model trained into ``model/`` and registered (green's
    ``azureml:sklearn-regression:1``) in ``home/``."""
    root = tmp_path_factory.mktemp("endpoint")
    gallery = root / "v2"
    shutil.copytree(GALLERY, gallery, ignore=shutil.ignore_patterns("model", "__pycache__"))
    runpy.run_path(str(GALLERY.parent / "make_models.py"))["write_regression_model"](
        gallery / "model"
    )
    registered = CliRunner().invoke(
        main, ["--home", str(root / "home"), "register", "-f", str(gallery / "model.yml")]
    )
    assert registered.exit_code == 0, registered.stderr
    return gallery


# --- traffic rules and the router's choices, in process ---------------------------------------


def test_traffic_option_reads_names_and_whole_percentages() -> None:
    assert parse_traffic("blue=90, green=10") == {"blue": 90, "green": 10}
    for bad in ("blue=90,green", "blue=ninety", "blue=1.5", "=5", "blue=101"):
        with pytest.raises(InvalidArgumentError, match="is not NAME=PERCENT"):
            parse_traffic(bad)
    with pytest.raises(InvalidArgumentError, match="names blue twice"):
        parse_traffic("blue=50,blue=50")


def test_traffic_must_name_given_deployments_and_sum_to_100_or_0() -> None:
    check_traffic({"blue": 90, "green": 10}, ["blue", "green"], "traffic")
    check_traffic({"blue": 0}, ["blue", "green"], "traffic")
    check_traffic({}, ["blue"], "traffic")
    with pytest.raises(InvalidArgumentError, match="traffic names red, which is not a deploy"):
        check_traffic({"red": 100}, ["blue", "green"], "traffic")
    with pytest.raises(InvalidArgumentError, match=r"sums to 90; Azure requires .* sum to 100"):
        check_traffic({"blue": 80, "green": 10}, ["blue", "green"], "traffic")


def test_the_endpoint_file_is_told_from_its_deployments(tmp_path: Path) -> None:
    gallery = copy_gallery(tmp_path / "v2")
    endpoint, deployments = split_files([gallery / f for f in FILES])
    assert endpoint.name == "endpoint.yml"
    assert [d.name for d in deployments] == FILES[1:]
    with pytest.raises(InvalidArgumentError, match="need their endpoint: add the endpoint YAML"):
        split_files([gallery / f for f in FILES[1:]])
    with pytest.raises(InvalidArgumentError, match="is an endpoint without deployments"):
        split_files([gallery / "endpoint.yml"])


def test_the_router_splits_by_traffic_within_bounds_and_the_header_wins() -> None:
    routes = [Route("blue", "127.0.0.1", 1), Route("green", "127.0.0.1", 2)]
    router = Router(routes, {"blue": 90, "green": 10}, seed=7)
    counts = Counter(router.choose(None) for _ in range(2000))
    assert 1700 <= counts["blue"] <= 1900 and counts["blue"] + counts["green"] == 2000
    assert {router.choose("green") for _ in range(50)} == {"green"}
    assert router.choose("red") is None
    assert Router(routes, {"blue": 0, "green": 0}).choose(None) is None
    first, second = (Router(routes, {"blue": 90, "green": 10}, seed=11) for _ in range(2))
    assert [first.choose(None) for _ in range(100)] == [second.choose(None) for _ in range(100)]


def test_the_router_tells_the_docs_page_its_deployments_without_a_key() -> None:
    routes = [Route("blue", "127.0.0.1", 1), Route("green", "127.0.0.1", 2)]
    client = Client(Router(routes, {"blue": 100}, keys=["secret"]))
    told = client.get(ENDPOINT_DOCS_PATH)
    assert told.status_code == 200
    assert told.json == {"deployments": ["blue", "green"], "auth": True}
    assert "secret" not in told.text
    assert ENDPOINT_DOCS_PATH == docs_page.ENDPOINT_DOCS_PATH
    # Only the page's own paths skip the key; everything else still needs it.
    for path in ("/docsx", "/docs/other", "/swagger.json", "/score"):
        assert client.get(path).status_code == 401, path
    assert client.post(ENDPOINT_DOCS_PATH).status_code == 401
    without_auth = Client(Router(routes, {}))
    assert without_auth.get(ENDPOINT_DOCS_PATH).json == {
        "deployments": ["blue", "green"],
        "auth": False,
    }


def _canned_deployment(answers: list[bytes]) -> tuple[Route, list[bytes]]:
    """A loopback server answering each request it reads (head and body) with the next of
    ``answers``, on one kept-alive connection; the requests it read, as received."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []

    def serve() -> None:
        connection, _ = listener.accept()
        with connection, listener:
            buffered = b""
            for answer in answers:
                while b"\r\n\r\n" not in buffered:
                    buffered += connection.recv(65536)
                head, _, rest = buffered.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                while len(rest) < length:
                    rest += connection.recv(65536)
                received.append(head + b"\r\n\r\n" + rest[:length])
                buffered = rest[length:]
                connection.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    return Route("blue", "127.0.0.1", listener.getsockname()[1]), received


def test_the_router_relays_chunked_interim_and_close_delimited_answers_whole() -> None:
    route, received = _canned_deployment(
        [
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 CREATED\r\nTransfer-Encoding: chunked"
            b"\r\nX-Model: a\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: t\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
            b"HTTP/1.1 404 NOT FOUND\r\nContent-Type: text/plain\r\n\r\nto the close",
        ]
    )
    client = Client(Router([route], {"blue": 100}, keys=["k"]))
    auth = {"Authorization": "Bearer k", "Expect": "100-continue", "X-Ms-Client-Request-Id": "c1"}
    first = client.post("/score?x=1", data=ROWS, headers={**JSON, **auth})
    assert (first.status_code, first.data) == (201, b"hello world")
    assert first.headers["X-Model"] == "a" and first.headers[DEPLOYMENT_HEADER] == "blue"
    assert "Transfer-Encoding" not in first.headers
    assert client.get("/", headers=auth).data == b"abc"
    last = client.get("/x", headers=auth)
    assert (last.status_code, last.data) == (404, b"to the close")
    head = received[0].decode("latin-1")
    assert head.startswith("POST /score?x=1 HTTP/1.1\r\n") and head.endswith(ROWS)
    assert "X-Ms-Client-Request-Id: c1\r\n" in head and "Content-Type: application/json" in head
    # The endpoint's key and the client's Expect stay at the router.
    assert "Bearer" not in head and "100-continue" not in head


# --- modelstore serve with an endpoint: real processes over loopback --------------------------


def _start(
    args: list[str], cwd: Path, env: dict[str, str], logs: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """``modelstore serve --port 0 ARGS``; its URL once it says it listens (every deployment
    has run init() by then)."""
    logs.mkdir(parents=True, exist_ok=True)
    out, err = logs / "stdout.txt", logs / "stderr.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "modelstore", "serve", "--port", "0", *args],
            cwd=cwd,
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        match = URL_LINE.search(out.read_text())
        if match:
            return process, match.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    stop(process)
    raise AssertionError(f"endpoint did not start:\n{out.read_text()}\n{err.read_text()}")


@pytest.fixture
def system_tmp(tmp_path: Path) -> Path:
    folder = tmp_path / "system-tmp"
    folder.mkdir()
    return folder


def test_serve_endpoint_routes_by_traffic_header_and_key_and_leaves_nothing(
    trained: Path, tmp_path: Path, system_tmp: Path
) -> None:
    env = clean_environment(
        trained.parent / "home", {"TMPDIR": str(system_tmp), "MODELSTORE_ROUTER_SEED": "3"}
    )
    process, url = _start(["--auth", *(f"-f{f}" for f in FILES)], trained, env, tmp_path / "l")
    try:
        stdout = (tmp_path / "l" / "stdout.txt").read_text().splitlines()
        keys = [line.split(": ", 1)[1] for line in stdout if line.startswith("Key (")]
        assert len(keys) == 2 and keys[0] != keys[1]
        assert stdout[-1].startswith("modelstore serve: endpoint regression-endpoint listening")
        assert "traffic blue 90%, green 10%" in stdout[-1]
        assert len([p for p in os.listdir(system_tmp) if "regression-endpoint" in p]) == 2

        refused = requests.post(url + "/score", data=ROWS, headers=JSON, timeout=30)
        assert refused.status_code == 401
        wrong = {**JSON, "Authorization": "Bearer nope"}
        assert (
            requests.post(url + "/score", data=ROWS, headers=wrong, timeout=30).status_code == 401
        )

        session = requests.Session()
        session.headers.update({**JSON, "Authorization": f"Bearer {keys[1]}"})
        answered: Counter[str] = Counter()
        for _ in range(200):
            response = session.post(url + "/score", data=ROWS, timeout=30)
            assert response.status_code == 200
            name = response.json()["deployment"]
            assert response.headers["azureml-model-deployment"] == name
            answered[name] += 1
        assert 160 <= answered["blue"] <= 195 and answered["green"] >= 5, answered

        chosen = session.post(
            url + "/score", data=ROWS, headers={"azureml-model-deployment": "green"}, timeout=30
        )
        assert chosen.status_code == 200 and chosen.json()["deployment"] == "green"
        unknown = session.post(
            url + "/score", data=ROWS, headers={"azureml-model-deployment": "red"}, timeout=30
        )
        assert unknown.status_code == 404
        assert "no deployment named 'red'" in unknown.json()["message"]
        assert session.get(url + "/", timeout=30).status_code == 200
        assert session.get(url + "/swagger.json", timeout=30).json()["swagger"] == "2.0"

        # The try-it page opens without a key, offers the deployments and embeds no key.
        told = requests.get(url + "/docs/endpoint.json", timeout=30)
        assert told.json() == {"deployments": ["blue", "green"], "auth": True}
        docs = requests.get(url + "/docs", timeout=30)
        assert docs.status_code == 200 and docs.headers[DEPLOYMENT_HEADER] == "blue"
        assert "/docs/endpoint.json" in docs.text
        assert not any(key in docs.text for key in keys)
        code = requests.get(url + "/docs/assets/" + docs_page.PAGE_SCRIPT, timeout=30)
        assert code.status_code == 200 and "azureml-model-deployment" in code.text
        assert requests.get(url + docs_page.SCRIPT_DOCS_PATH, timeout=30).status_code == 401
        mode = session.get(url + docs_page.SCRIPT_DOCS_PATH, timeout=30)  # with the key
        assert mode.json() == {"input_mode": "JSON string"}
        picked = requests.get(url + "/docs", headers={DEPLOYMENT_HEADER: "green"}, timeout=30)
        assert picked.status_code == 200 and picked.headers[DEPLOYMENT_HEADER] == "green"
        assert requests.get(url + "/swagger.json", timeout=30).status_code == 401
    finally:
        stop(process)
    assert process.returncode == 0, (tmp_path / "l" / "stderr.txt").read_text()
    assert os.listdir(system_tmp) == []


def _gallery_with_auth_mode(trained: Path, gallery: Path, mode: str) -> Path:
    """A copy of the trained gallery whose endpoint.yml says ``auth_mode: MODE``."""
    shutil.copytree(trained, gallery)
    yml = gallery / "endpoint.yml"
    yml.write_text(yml.read_text().replace("auth_mode: key", f"auth_mode: {mode}"))
    return gallery


def test_serve_endpoint_with_aml_token_auth_prints_a_token_that_opens_it(
    trained: Path, tmp_path: Path, system_tmp: Path
) -> None:
    gallery = _gallery_with_auth_mode(trained, tmp_path / "v2", "aml_token")
    env = clean_environment(trained.parent / "home", {"TMPDIR": str(system_tmp)})
    process, url = _start(["--auth", *(f"-f{f}" for f in FILES)], gallery, env, tmp_path / "l")
    try:
        stdout = (tmp_path / "l" / "stdout.txt").read_text().splitlines()
        assert not any(line.startswith("Key (") for line in stdout)
        (token,) = [line.split(": ", 1)[1] for line in stdout if line.startswith("Token (aml_")]
        (expiry,) = [line for line in stdout if line.startswith("Token expires ")]
        assert re.fullmatch(
            r"Token expires \S+Z \(refresh after \S+Z\); a new one needs a restart", expiry
        )
        assert requests.post(url + "/score", data=ROWS, headers=JSON, timeout=30).status_code == 401
        opened = {**JSON, "Authorization": f"Bearer {token}"}
        assert requests.post(url + "/score", data=ROWS, headers=opened, timeout=30).ok
    finally:
        stop(process)
    assert process.returncode == 0, (tmp_path / "l" / "stderr.txt").read_text()


def test_serve_endpoint_with_a_bad_traffic_option_is_one_line_exit_2(
    trained: Path, tmp_path: Path, system_tmp: Path
) -> None:
    env = clean_environment(trained.parent / "home", {"TMPDIR": str(system_tmp)})
    for traffic, expected in [
        ("blue=80,green=10", "Error: the traffic given sums to 90; Azure requires the perc"),
        ("blue=50,red=50", "Error: the traffic given names red, which is not a deployment"),
        ("blue=half", "Error: --traffic 'blue=half': 'blue=half' is not NAME=PERCENT"),
    ]:
        result = subprocess.run(
            [sys.executable, "-m", "modelstore", "serve", "--port", "0", "--traffic", traffic,
             *(f"-f{f}" for f in FILES)],
            cwd=trained, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(expected) and result.stderr.count("\n") == 1
    assert os.listdir(system_tmp) == []


def _failing_code(gallery: Path, name: str) -> None:
    """The deployment ``name`` gets its own code folder whose init() raises."""
    code = gallery / f"onlinescoring-{name}"
    code.mkdir()
    (code / "score.py").write_text(
        f"def init():\n    raise RuntimeError('boom in {name}')\n\n"
        "def run(data):\n    return data\n"
    )
    yml = gallery / f"{name}-deployment.yml"
    yml.write_text(yml.read_text().replace("code: onlinescoring", f"code: {code.name}"))


@pytest.mark.parametrize("failing", [["green"], ["blue", "green"]])
def test_an_init_failure_names_each_deployment_exits_3_and_leaves_nothing(
    trained: Path, tmp_path: Path, system_tmp: Path, failing: list[str]
) -> None:
    gallery = tmp_path / "v2"
    shutil.copytree(trained, gallery)
    for name in failing:
        _failing_code(gallery, name)
    env = clean_environment(trained.parent / "home", {"TMPDIR": str(system_tmp)})
    result = subprocess.run(
        [sys.executable, "-m", "modelstore", "serve", "--port", "0", *(f"-f{f}" for f in FILES)],
        cwd=gallery, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 3, result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith("Error: deployment ")
    for name in failing:
        assert f"deployment {name}: init() of " in last and f"boom in {name}" in last
    assert "listening" not in result.stdout
    assert os.listdir(system_tmp) == []


# --- the Python API ----------------------------------------------------------------------------


@pytest.fixture
def endpoint_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "system-tmp"
    folder.mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder


def test_local_endpoint_serves_with_a_traffic_override_and_no_key(
    trained: Path, endpoint_tmp: Path
) -> None:
    home = trained.parent / "home"
    log = endpoint_tmp.parent / "endpoint.log"
    with (
        log.open("w") as sink,
        local_endpoint(
            [trained / f for f in FILES],
            lambda: Registry(home),
            traffic={"blue": 0, "green": 100},
            log=sink,
        ) as endpoint,
    ):
        assert endpoint.keys == () and endpoint.traffic == {"blue": 0, "green": 100}
        assert set(endpoint.urls) == {"blue", "green"}
        with requests.Session() as session:
            names = {
                session.post(endpoint.url + "/score", data=ROWS, headers=JSON, timeout=30).json()[
                    "deployment"
                ]
                for _ in range(20)
            }
        assert names == {"green"}
    assert os.listdir(endpoint_tmp) == []
    assert "[blue]" in log.read_text() and "[green]" in log.read_text()


def test_local_endpoint_refuses_aad_token_auth_before_starting(
    trained: Path, tmp_path: Path, endpoint_tmp: Path
) -> None:
    gallery = _gallery_with_auth_mode(trained, tmp_path / "v2", "aad_token")
    with (
        pytest.raises(
            InvalidArgumentError,
            match="auth_mode aad_token is not emulated \\(Microsoft Entra tokens",
        ),
        local_endpoint([gallery / f for f in FILES], auth=True),
    ):
        pass
    assert os.listdir(endpoint_tmp) == []


def test_an_aml_token_endpoint_takes_its_token_from_python_and_refuses_others(
    trained: Path, tmp_path: Path, endpoint_tmp: Path
) -> None:
    gallery = _gallery_with_auth_mode(trained, tmp_path / "v2", "aml_token")
    began = int(time.time())
    with (
        (tmp_path / "endpoint.log").open("w") as sink,
        local_endpoint(
            [gallery / f for f in FILES],
            lambda: Registry(trained.parent / "home"),
            auth=True,
            log=sink,
            token_lifetime_s=600,
        ) as endpoint,
    ):
        token = endpoint.token
        assert token is not None and endpoint.keys == ()
        assert set(token.credentials()) == {
            "accessToken", "expiryTimeUtc", "refreshAfterTimeUtc", "tokenType"
        }  # fmt: skip
        assert began + 600 <= token.expiry_time_utc <= int(time.time()) + 600
        assert token.refresh_after_time_utc < token.expiry_time_utc
        url = endpoint.url + "/score"
        missing = requests.post(url, data=ROWS, headers=JSON, timeout=30)
        assert missing.status_code == 401 and "aml_token" in missing.json()["message"]
        wrong = {**JSON, "Authorization": "Bearer " + token.access_token[:-1]}
        assert requests.post(url, data=ROWS, headers=wrong, timeout=30).status_code == 401
        right = {**JSON, "Authorization": f"{token.token_type} {token.access_token}"}
        assert requests.post(url, data=ROWS, headers=right, timeout=30).status_code == 200
    assert os.listdir(endpoint_tmp) == []


def test_the_router_takes_an_unexpired_token_only_on_a_token_endpoint() -> None:
    answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]
    route, _ = _canned_deployment(answers)
    now = time.time()
    tokens = {"fresh": now + 600, "old": now - 1}
    by_token = Client(Router([route], {"blue": 100}, tokens=tokens))
    assert by_token.get("/", headers={"Authorization": "Bearer fresh"}).data == b"ok"
    expired = by_token.get("/", headers={"Authorization": "Bearer old"})
    assert expired.status_code == 401
    assert expired.get_json()["message"].startswith("The aml_token expired at ")
    assert by_token.get("/").status_code == 401
    assert by_token.get(ENDPOINT_DOCS_PATH).get_json()["auth"] is True
    # A key endpoint takes no token, and a token endpoint no key.
    by_key = Client(Router([route], {"blue": 100}, keys=["k"]))
    assert by_key.get("/", headers={"Authorization": "Bearer fresh"}).status_code == 401
    assert by_token.get("/", headers={"Authorization": "Bearer k"}).status_code == 401


def test_the_endpoint_answers_429_past_twice_max_concurrent_requests_at_a_deployment(
    tmp_path: Path, endpoint_tmp: Path
) -> None:
    """The router is Azure's front end: with max_concurrent_requests_per_instance 1, blue
    admits two requests (both in run() on its two workers); a third is refused at once by the
    router, while green, with its own limit, still answers."""
    gate = tmp_path / "gate"
    gate.mkdir()
    folder = tmp_path / "endpoint"
    blue = gated_deployment(folder, "blue", workers=2, max_concurrent=1, gate=gate)
    green_gate = tmp_path / "green-gate"
    green_gate.mkdir()
    (green_gate / "release").touch()
    green = gated_deployment(folder, "green", workers=1, max_concurrent=1, gate=green_gate)
    (folder / "endpoint.yml").write_text("name: gate\nauth_mode: key\ntraffic:\n  blue: 100\n")
    with (
        (tmp_path / "endpoint.log").open("w") as sink,
        local_endpoint([folder / "endpoint.yml", blue, green], log=sink) as endpoint,
        ThreadPoolExecutor(2) as pool,
    ):
        url = endpoint.url + "/score"
        held = []
        for count in (1, 2):
            held.append(pool.submit(requests.post, url, json={"n": count}, timeout=60))
            wait_entered(gate, count)
        refused = requests.post(url, json={}, headers={"x-request-id": "over-1"}, timeout=30)
        assert refused.status_code == 429
        assert refused.json()["message"].startswith("Too many pending requests: deployment blue")
        assert refused.headers[DEPLOYMENT_HEADER] == "blue"
        assert refused.headers["x-request-id"] == "over-1"
        other = requests.post(url, json={}, headers={DEPLOYMENT_HEADER: "green"}, timeout=30)
        assert other.status_code == 200 and other.json() == {"deployment": "green"}
        (gate / "release").touch()
        assert [future.result().status_code for future in held] == [200, 200]
        assert requests.post(url, json={}, timeout=30).json() == {"deployment": "blue"}


def test_behind_an_endpoint_only_the_router_counts_requests_in_flight(
    tmp_path: Path, endpoint_tmp: Path
) -> None:
    """The router answers the 429. A second count in the deployment would release each slot a
    little after the router's and could refuse what the router had just admitted: sent to
    the deployment's own port, a third request is served, not refused."""
    gate = tmp_path / "gate"
    gate.mkdir()
    folder = tmp_path / "endpoint"
    blue = gated_deployment(folder, "blue", workers=3, max_concurrent=1, gate=gate)
    (folder / "endpoint.yml").write_text("name: gate\nauth_mode: key\ntraffic:\n  blue: 100\n")
    with (
        (tmp_path / "endpoint.log").open("w") as sink,
        local_endpoint([folder / "endpoint.yml", blue], log=sink) as endpoint,
        ThreadPoolExecutor(3) as pool,
    ):
        direct = endpoint.urls["blue"] + "/score"
        held = []
        for count in (1, 2, 3):
            held.append(pool.submit(requests.post, direct, json={"n": count}, timeout=60))
            wait_entered(gate, count)
        (gate / "release").touch()
        assert [future.result().status_code for future in held] == [200, 200, 200]


def _descendants(pid: int) -> set[int]:
    """Every living process below ``pid``, from /proc (zombies count as gone)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_an_endpoint_killed_outright_takes_its_deployments_and_router_with_it(
    trained: Path, tmp_path: Path, system_tmp: Path
) -> None:
    env = clean_environment(trained.parent / "home", {"TMPDIR": str(system_tmp)})
    process, _url = _start([f"-f{f}" for f in FILES], trained, env, tmp_path / "l")
    started = _descendants(process.pid)
    try:
        assert len(started) >= 3  # blue, green and the router (and their workers)
        process.kill()
        process.wait()
        deadline = time.monotonic() + 30
        while left := _alive(started):
            assert time.monotonic() < deadline, f"still running: {sorted(left)}"
            time.sleep(0.05)
    finally:
        stop(process)
        for pid in _alive(started):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (not zombies), whoever their parent is now."""
    return {pid for pid in pids if process_state(pid) not in ("Z", "gone")}


SLOW_INIT = """
import os, time

def init():
    gate = os.environ["GATE_DIR"]
    open(os.path.join(gate, "init-" + os.environ["DEPLOYMENT_NAME"]), "w").close()
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(gate, "release")) and time.monotonic() < deadline:
        time.sleep(0.01)

def run(data):
    return {"deployment": os.environ["DEPLOYMENT_NAME"]}
"""


def _slow_endpoint(folder: Path, gate: Path) -> list[str]:
    folder.mkdir()
    gate.mkdir()
    (folder / "endpoint.yml").write_text("name: slow-endpoint\ntraffic:\n  a: 50\n  b: 50\n")
    for name in ("a", "b"):
        code = folder / f"code-{name}"
        code.mkdir()
        (code / "score.py").write_text(SLOW_INIT)
        (folder / f"{name}.yml").write_text(
            f"name: {name}\nendpoint_name: slow-endpoint\n"
            "instance_type: Standard_DS3_v2\ninstance_count: 1\n"
            f"code_configuration:\n  code: {code.name}\n  scoring_script: score.py\n"
            f"environment_variables:\n  GATE_DIR: {gate}\n  DEPLOYMENT_NAME: {name}\n"
        )
    return ["-f", "endpoint.yml", "-f", "a.yml", "-f", "b.yml"]


@pytest.mark.parametrize("when", ["during-init", "when-listening"])
def test_ctrl_c_stops_an_endpoint_with_exit_0_no_traceback_and_nothing_left(
    tmp_path: Path, system_tmp: Path, when: str
) -> None:
    """A terminal's Ctrl-C goes to the whole foreground group. The endpoint's processes live in
    their own groups, so only the endpoint gets it and stops them in order: no process reports
    an import traceback, no deployment "exited before listening", no router "stopped
    unexpectedly" (each was seen when they raced it to the exit)."""
    folder, gate = tmp_path / "endpoint", tmp_path / "gate"
    args = _slow_endpoint(folder, gate)
    env = clean_environment(tmp_path / "home", {"TMPDIR": str(system_tmp)})
    out = tmp_path / "out.txt"
    with out.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "modelstore", "serve", "--port", "0", *args],
            cwd=folder,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while not ((gate / "init-a").exists() and (gate / "init-b").exists()):
            assert process.poll() is None and time.monotonic() < deadline, out.read_text()
            time.sleep(0.02)
        if when == "when-listening":
            (gate / "release").touch()
            while not URL_LINE.search(out.read_text()):
                assert process.poll() is None and time.monotonic() < deadline, out.read_text()
                time.sleep(0.02)
        started = _descendants(process.pid)
        # None of them is in the terminal's group: the race cannot happen at all.
        assert {os.getpgid(pid) for pid in started}.isdisjoint({process.pid})
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        process.wait(timeout=60)
    finally:
        stop(process)
        for pid in _alive(started):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    output = out.read_text()
    assert process.returncode == 0, output
    assert "Traceback" not in output and "Error" not in output, output
    assert _alive(started) == set()
    assert os.listdir(system_tmp) == []


def test_a_hang_up_stops_an_endpoint_and_its_processes_with_exit_0(
    tmp_path: Path, system_tmp: Path
) -> None:
    """Its processes have groups of their own, so a closed terminal (SIGHUP) reaches the
    endpoint alone: it must stop them, as on SIGTERM, rather than die and leave them."""
    folder, gate = tmp_path / "endpoint", tmp_path / "gate"
    args = _slow_endpoint(folder, gate)
    (gate / "release").touch()
    env = clean_environment(tmp_path / "home", {"TMPDIR": str(system_tmp)})
    process, _url = _start(args, folder, env, tmp_path / "l")
    started = _descendants(process.pid)
    try:
        process.send_signal(signal.SIGHUP)
        process.wait(timeout=60)
    finally:
        stop(process)
        for pid in _alive(started):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert process.returncode == 0
    assert _alive(started) == set()
    assert os.listdir(system_tmp) == []
