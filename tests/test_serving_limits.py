"""SCORING_TIMEOUT_MS on and off the main thread, and the 413 body limit (docs/server.md)."""

from __future__ import annotations

import io
import signal
import threading
import time
from pathlib import Path
from typing import Any

import flask
import pytest
from serving_helpers import make_client

from modelstore.serving.app import BodyReadTimedOut, MalformedBody

SLEEPY = """
import time

def init():
    pass

def run(data):
    time.sleep(float(data))
    return "woke"
"""
ECHO = "def init():\n    pass\n\ndef run(data):\n    return len(data)\n"
RAW_READER = """
from azureml.contrib.services.aml_request import rawhttp

def init():
    pass

@rawhttp
def run(request):
    return len(request.get_data())
"""
CHUNKED = {
    "headers": {"Transfer-Encoding": "chunked"},
    "environ_overrides": {"wsgi.input_terminated": True},
}


def timeout_body(ms: int) -> dict[str, str]:
    return {"message": f"Scoring timeout after {ms} ms"}


# --- timeouts ---------------------------------------------------------------------------------


def test_alarm_interrupts_a_sleeping_run_on_the_main_thread(tmp_path: Path) -> None:
    client = make_client(tmp_path, SLEEPY, scoring_timeout_ms=200)
    started = time.monotonic()
    response = client.post("/score", data="5")
    assert time.monotonic() - started < 2
    assert response.status_code == 500
    assert response.get_json() == timeout_body(200)
    assert response.headers["x-ms-run-function-failed"] == "True"
    assert client.post("/score", data="0").get_json() == "woke"


def test_run_raising_timeout_error_itself_is_reported_as_a_timeout(tmp_path: Path) -> None:
    source = "def init():\n    pass\n\ndef run(data):\n    raise TimeoutError('db')\n"
    response = make_client(tmp_path, source, scoring_timeout_ms=1234).post("/score", data="x")
    assert response.get_json() == timeout_body(1234)


def test_a_timer_armed_by_someone_else_survives_a_scoring_call(tmp_path: Path) -> None:
    client = make_client(tmp_path, SLEEPY, scoring_timeout_ms=5000)
    fired: list[int] = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    try:
        signal.setitimer(signal.ITIMER_REAL, 60)
        assert client.post("/score", data="0").status_code == 200
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 55 < remaining <= 60
        assert signal.getsignal(signal.SIGALRM) is not previous  # our test handler is back
        signal.setitimer(signal.ITIMER_REAL, 0.01)
        time.sleep(0.1)
        assert fired == [signal.SIGALRM]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _post_from_a_thread(client: flask.testing.FlaskClient, data: str) -> Any:
    answers: list[Any] = []
    worker = threading.Thread(target=lambda: answers.append(client.post("/score", data=data)))
    started = time.monotonic()
    worker.start()
    worker.join(10)
    return answers[0], time.monotonic() - started


def test_timeout_is_enforced_off_the_main_thread_too(tmp_path: Path) -> None:
    client = make_client(tmp_path, SLEEPY, scoring_timeout_ms=200)
    response, took = _post_from_a_thread(client, "1.5")
    assert took < 1.2
    assert response.status_code == 500
    assert response.get_json() == timeout_body(200)
    assert response.headers["x-ms-run-function-failed"] == "True"


def test_run_off_the_main_thread_sees_the_request_and_answers_normally(tmp_path: Path) -> None:
    client = make_client(tmp_path, RAW_READER, scoring_timeout_ms=5000)
    response, _ = _post_from_a_thread(client, "abcd")
    assert (response.status_code, response.get_json()) == (200, 4)


def test_run_failing_off_the_main_thread_is_the_scoring_script_500(tmp_path: Path) -> None:
    source = "def init():\n    pass\n\ndef run(data):\n    raise KeyError(data)\n"
    response, _ = _post_from_a_thread(make_client(tmp_path, source), "x")
    assert response.status_code == 500
    assert response.headers["x-ms-run-function-failed"] == "True"


# --- body limit -------------------------------------------------------------------------------


def test_body_over_the_limit_is_413_json_with_request_ids_before_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    source = f"def init():\n    pass\n\ndef run(data):\n    open({str(marker)!r}, 'w').close()\n"
    client = make_client(tmp_path, source, max_body_bytes=10)
    response = client.post("/score", data=b"x" * 11, headers={"x-request-id": "r1"})
    assert response.status_code == 413
    assert response.get_json() == {
        "message": "Request body is larger than this server's limit of 10 bytes. Send a smaller "
        "body, or restart the server with a larger --max-body."
    }
    assert response.headers["x-request-id"] == "r1"
    assert response.headers["x-ms-server-version"] == "azmlinfsrv/1.5.1"
    assert not marker.exists()


def test_body_at_the_limit_is_accepted(tmp_path: Path) -> None:
    client = make_client(tmp_path, ECHO, max_body_bytes=10)
    assert client.post("/score", data=b"x" * 10).get_json() == 10


def test_default_limit_is_100_mib_and_message_says_so(tmp_path: Path) -> None:
    client = make_client(tmp_path, ECHO)
    response = client.post(
        "/score", environ_overrides={"CONTENT_LENGTH": str(100 * 1024 * 1024 + 1)}
    )
    assert response.status_code == 413
    assert "limit of 100 MiB" in response.get_json()["message"]


@pytest.mark.parametrize("source", [ECHO, RAW_READER])
def test_chunked_body_growing_past_the_limit_is_413(tmp_path: Path, source: str) -> None:
    client = make_client(tmp_path, source, max_body_bytes=10)
    response = client.post("/score", input_stream=io.BytesIO(b"x" * 100), **CHUNKED)
    assert response.status_code == 413
    assert response.headers["x-ms-run-function-failed"] == "False"


@pytest.mark.parametrize("source", [ECHO, RAW_READER])
def test_chunked_body_within_the_limit_is_read_whole(tmp_path: Path, source: str) -> None:
    client = make_client(tmp_path, source, max_body_bytes=10)
    response = client.post("/score", input_stream=io.BytesIO(b"x" * 10), **CHUNKED)
    assert response.get_json() == 10


def test_no_limit_when_max_body_is_none(tmp_path: Path) -> None:
    client = make_client(tmp_path, ECHO, max_body_bytes=None)
    assert client.post("/score", data=b"x" * 2048).get_json() == 2048


# --- request line and header limits (JSON instead of gunicorn's HTML) -----------------------


def test_request_line_over_gunicorn_limit_is_414_json_with_ids(tmp_path: Path) -> None:
    client = make_client(tmp_path, ECHO)
    response = client.get("/score?q=" + "a" * 4100, headers={"x-request-id": "r2"})
    assert response.status_code == 414
    assert response.get_json()["message"].startswith("Request line is longer than 4094 bytes.")
    assert response.headers["x-request-id"] == "r2"


def test_request_line_within_the_limit_is_served(tmp_path: Path) -> None:
    client = make_client(tmp_path, ECHO)
    assert client.get("/score?q=" + "a" * 3000).status_code == 200


def test_header_over_gunicorn_limit_is_431_json(tmp_path: Path) -> None:
    client = make_client(tmp_path, ECHO)
    response = client.post("/score", data="x", headers={"X-Big": "v" * 8200})
    assert response.status_code == 431
    assert response.get_json() == {
        "message": "Header 'X-Big' is longer than 8190 bytes. Send a shorter value."
    }
    assert response.headers["x-ms-server-version"] == "azmlinfsrv/1.5.1"


# --- bodies the server cannot deliver (malformed framing, too slow) ---------------------------


class FailingStream:
    """A ``wsgi.input`` whose reads raise what the server raises for a broken body."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def read(self, size: int = -1) -> bytes:
        raise self.error

    def readline(self, size: int = -1) -> bytes:
        raise self.error


@pytest.mark.parametrize("source", [ECHO, RAW_READER])
@pytest.mark.parametrize(
    "error, status",
    [
        pytest.param(lambda: MalformedBody(description="bad chunk"), 400, id="malformed"),
        pytest.param(lambda: BodyReadTimedOut(description="too slow"), 408, id="too-slow"),
    ],
)
def test_a_body_the_server_cannot_deliver_gets_its_status_as_json_even_inside_run(
    tmp_path: Path, source: str, error: Any, status: int
) -> None:
    client = make_client(tmp_path, source)
    response = client.post(
        "/score",
        headers={"Transfer-Encoding": "chunked", "x-request-id": "b1"},
        environ_overrides={"wsgi.input": FailingStream(error()), "wsgi.input_terminated": True},
    )

    assert response.status_code == status
    assert response.get_json()["message"] in {"bad chunk", "too slow"}
    assert response.headers["x-request-id"] == "b1"
    assert response.headers["x-ms-run-function-failed"] == "False"
