"""Routes, methods, status codes and texts of the scoring app (docs/server.md)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import flask
import pytest
from serving_helpers import make_client

NOT_FOUND = (
    "The requested URL was not found on the server. If you entered the URL manually please check "
    "your spelling and try again."
)
ECHO_SCRIPT = """
def init():
    pass

def run(data):
    return {"got": data}
"""
RAW_SCRIPT = """
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse

def init():
    pass

@rawhttp
def run(request):
    return AMLResponse(request.method + " " + request.full_path, 200)
"""


@pytest.fixture
def client(tmp_path: Path) -> flask.testing.FlaskClient:
    return make_client(tmp_path, ECHO_SCRIPT)


@pytest.fixture
def raw_client(tmp_path: Path) -> flask.testing.FlaskClient:
    return make_client(tmp_path, RAW_SCRIPT)


def test_health_route_answers_healthy_as_html(client: flask.testing.FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.data == b"Healthy"
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["x-ms-server-version"] == "azmlinfsrv/1.5.1"
    assert "x-ms-run-function-failed" not in response.headers


def test_head_on_health_route_is_ok_without_body(client: flask.testing.FlaskClient) -> None:
    response = client.head("/")
    assert response.status_code == 200
    assert response.data == b""


@pytest.mark.parametrize("path", ["/", "/swagger.json"])
def test_options_on_health_and_swagger_uses_flask_automatic_allow(
    client: flask.testing.FlaskClient, path: str
) -> None:
    response = client.options(path)
    assert response.status_code == 200
    assert response.data == b""
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    assert response.headers["x-request-id"]


def test_options_on_score_answers_empty_200_without_calling_run(tmp_path: Path) -> None:
    client = make_client(
        tmp_path, "def init(): pass\ndef run(data):\n    raise RuntimeError('no')\n"
    )
    response = client.options("/score")
    assert response.status_code == 200
    assert response.data == b""
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["x-ms-run-function-failed"] == "False"
    assert "x-ms-run-fn-exec-ms" not in response.headers


def test_head_on_score_is_405_method_not_allowed_for_non_raw_scripts(
    client: flask.testing.FlaskClient,
) -> None:
    response = client.head("/score")
    assert response.status_code == 405
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Content-Length"] == str(len(b'{"message": "Method not allowed"}'))


@pytest.mark.parametrize("method", ["GET", "POST", "OPTIONS", "HEAD"])
def test_raw_scripts_receive_every_score_method(
    raw_client: flask.testing.FlaskClient, method: str
) -> None:
    response = raw_client.open("/score", method=method)
    assert response.status_code == 200
    if method != "HEAD":
        assert response.data == f"{method} /score?".encode()


@pytest.mark.parametrize(("method", "path"), [("PUT", "/score"), ("POST", "/"), ("DELETE", "/")])
def test_other_methods_get_routing_405_as_json_without_allow_header(
    client: flask.testing.FlaskClient, method: str, path: str
) -> None:
    response = client.open(path, method=method)
    assert response.status_code == 405
    assert response.get_json() == {"message": "The method is not allowed for the requested URL."}
    assert "Allow" not in response.headers
    assert response.headers["x-ms-run-function-failed"] == "False"


@pytest.mark.parametrize("path", ["/nope", "/score/", "/Score"])
def test_unknown_paths_get_routing_404_as_json(
    client: flask.testing.FlaskClient, path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.get_json() == {"message": NOT_FOUND}


def test_routing_errors_carry_request_ids_and_server_version_as_a_safe_fix(
    client: flask.testing.FlaskClient,
) -> None:
    response = client.get("/nope", headers={"x-request-id": "abc"})
    assert response.headers["x-request-id"] == "abc"
    assert response.headers["x-ms-request-id"] == "abc"
    assert response.headers["x-ms-server-version"] == "azmlinfsrv/1.5.1"


def test_server_version_header_can_be_turned_off(tmp_path: Path) -> None:
    client = make_client(tmp_path, ECHO_SCRIPT, server_version_header=False)
    assert "x-ms-server-version" not in client.get("/").headers


def test_score_success_carries_run_time_and_failed_false(client: flask.testing.FlaskClient) -> None:
    response = client.post("/score", data="x")
    assert response.status_code == 200
    assert response.headers["x-ms-run-function-failed"] == "False"
    exec_ms = response.headers["x-ms-run-fn-exec-ms"]
    assert float(exec_ms) >= 0
    assert len(exec_ms.split(".")[1]) == 3


def test_every_request_is_logged_with_method_path_status_and_length(
    client: flask.testing.FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="azmlinfsrv")
    client.post("/score?x=1", data="abc")
    client.get("/")
    lines = [r.getMessage() for r in caplog.records if r.name == "azmlinfsrv"]
    score_lines = [line for line in lines if line.startswith("POST /score?x=1 200 ")]
    assert len(score_lines) == 1
    assert re.fullmatch(r"POST /score\?x=1 200 \d+\.\d{3}ms 14", score_lines[0])  # {"got": "abc"}
    assert not any(line.startswith("GET / ") for line in lines)


def test_score_sends_flask_request_signals(tmp_path: Path) -> None:
    client = make_client(tmp_path, ECHO_SCRIPT)
    seen: list[str] = []

    def started(sender: flask.Flask, **extra: Any) -> None:
        seen.append("started")

    def finished(sender: flask.Flask, response: flask.Response, **extra: Any) -> None:
        seen.append(f"finished {response.status_code}")

    with flask.request_started.connected_to(started), flask.request_finished.connected_to(finished):
        client.post("/score", data="1")

    assert seen == ["started", "finished 200"]


def test_a_before_request_hook_added_to_the_app_also_runs_for_score(tmp_path: Path) -> None:
    client = make_client(tmp_path, ECHO_SCRIPT)
    client.application.before_request(lambda: flask.Response("hooked", 418))

    response = client.post("/score", data="1")

    assert (response.status_code, response.data) == (418, b"hooked")
    assert response.headers["x-ms-server-version"] == "azmlinfsrv/1.5.1"


# --- the /score shortcut and the Flask internals it relies on (issue 10) ------------------------


def test_score_skips_flasks_generic_hook_walk_but_not_its_signals_or_other_routes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(tmp_path, ECHO_SCRIPT)
    walked: list[str] = []
    started: list[str] = []
    generic = flask.Flask.preprocess_request

    def counting(self: flask.Flask) -> Any:
        walked.append(flask.request.path)
        return generic(self)

    monkeypatch.setattr(flask.Flask, "preprocess_request", counting)

    def on_started(sender: flask.Flask, **extra: Any) -> None:
        started.append(flask.request.path)

    with flask.request_started.connected_to(on_started):
        scored = client.post("/score", data="x")
        health = client.get("/")

    assert (scored.status_code, health.status_code) == (200, 200)
    assert scored.headers["x-request-id"]  # the before_request hook ran on the shortcut
    assert walked == ["/"]
    assert started == ["/score", "/"]


def test_flask_still_dispatches_through_the_two_methods_the_score_shortcut_overrides() -> None:
    import inspect

    dispatch = inspect.getsource(flask.Flask.full_dispatch_request)
    for step in ("self.preprocess_request()", "self.dispatch_request()", "request_started.send"):
        assert step in dispatch, (
            f"Flask.full_dispatch_request no longer calls {step}; ScoringFlask "
            "(modelstore/serving/app.py) overrides preprocess_request and dispatch_request to "
            "serve /score directly: review it against this Flask before allowing it"
        )
    app = flask.Flask("contract")
    assert isinstance(app.before_request_funcs, dict), "Flask moved before_request_funcs"
    assert isinstance(app.url_value_preprocessors, dict), "Flask moved url_value_preprocessors"
