"""Request ids, the 431s, TraceId, and CORS through flask-cors (docs/server.md)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import flask
import pytest
from serving_helpers import make_client

from modelstore.serving.app import new_request_id

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
SCRIPT = "def init():\n    pass\n\ndef run(data):\n    return data\n"
CORS_SEED_SCRIPT = """
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse

def init():
    print("This is init()")

@rawhttp
def run(request):
    if request.method == "GET":
        return AMLResponse(str.encode(request.full_path), 200)
    if request.method == "POST":
        return AMLResponse(request.get_data(False), 200)
    return AMLResponse("bad request", 500)
"""


@pytest.fixture
def client(tmp_path: Path) -> flask.testing.FlaskClient:
    return make_client(tmp_path, SCRIPT)


A, B, C = "req-a", "legacy-b", "client-c"


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ({}, ("U", "U", None)),
        ({"x-request-id": A}, (A, A, None)),
        ({"x-ms-request-id": B}, ("U", B, B)),
        ({"x-ms-client-request-id": C}, ("U", C, C)),
        ({"x-ms-request-id": B, "x-ms-client-request-id": C}, ("U", B, C)),
        ({"x-request-id": A, "x-ms-client-request-id": C}, (A, C, C)),
        ({"x-request-id": A, "x-ms-request-id": B, "x-ms-client-request-id": C}, (A, B, C)),
    ],
)
@pytest.mark.parametrize("path", ["/score", "/", "/swagger.json"])
def test_request_id_headers_follow_the_spec_table(
    client: flask.testing.FlaskClient,
    sent: dict[str, str],
    expected: tuple[str, str, str | None],
    path: str,
) -> None:
    response = client.get(path, headers=sent)
    got = (
        response.headers.get("x-request-id"),
        response.headers.get("x-ms-request-id"),
        response.headers.get("x-ms-client-request-id"),
    )
    fresh = got[0] if expected[0] == "U" else None
    assert fresh is None or UUID.fullmatch(fresh)
    assert got == tuple(fresh if value == "U" else value for value in expected)


def test_every_request_gets_a_fresh_uuid(client: flask.testing.FlaskClient) -> None:
    ids = {client.get("/").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3


def test_legacy_request_id_logs_a_deprecation_warning(
    client: flask.testing.FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    client.get("/", headers={"x-ms-request-id": "b"})
    assert "Please use x-ms-client-request-id" in caplog.text


def test_over_long_request_id_is_431_without_any_id_header(
    client: flask.testing.FlaskClient,
) -> None:
    response = client.post("/score", data="x", headers={"x-request-id": "a" * 101})
    assert response.status_code == 431
    assert response.get_json() == {"message": "x-request-id must not exceed 100 characters"}
    assert response.headers["x-ms-run-function-failed"] == "False"
    assert response.headers["x-ms-server-version"] == "azmlinfsrv/1.5.1"
    for name in ("x-request-id", "x-ms-request-id", "x-ms-client-request-id"):
        assert name not in response.headers


def test_request_id_of_exactly_100_characters_is_accepted(
    client: flask.testing.FlaskClient,
) -> None:
    response = client.post("/score", data="x", headers={"x-request-id": "a" * 100})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "a" * 100


@pytest.mark.parametrize("header", ["x-ms-request-id", "x-ms-client-request-id"])
def test_over_long_client_id_is_431_with_only_x_request_id(
    client: flask.testing.FlaskClient, header: str
) -> None:
    response = client.post("/score", data="x", headers={header: "b" * 101, "x-request-id": "a"})
    assert response.status_code == 431
    assert response.get_json() == {
        "message": "x-ms-request-id and x-ms-client-request-id must not exceed 100 characters"
    }
    assert response.headers["x-request-id"] == "a"
    assert "x-ms-request-id" not in response.headers
    assert "x-ms-client-request-id" not in response.headers


def test_run_is_not_called_for_a_431(tmp_path: Path) -> None:
    marker = tmp_path / "called"
    source = f"def init():\n    pass\n\ndef run(data):\n    open({str(marker)!r}, 'w').close()\n"
    client = make_client(tmp_path, source)
    client.post("/score", data="x", headers={"x-request-id": "a" * 101})
    assert not marker.exists()


@pytest.mark.parametrize("path", ["/", "/score", "/missing"])
def test_trace_id_is_echoed_unchanged(client: flask.testing.FlaskClient, path: str) -> None:
    response = client.get(path, headers={"TraceId": "Trace-42"})
    assert response.headers["TraceId"] == "Trace-42"


# --- CORS -------------------------------------------------------------------------------------

ORIGIN = "https://app.example.com"


@pytest.fixture
def cors_client(tmp_path: Path) -> flask.testing.FlaskClient:
    return make_client(tmp_path, SCRIPT, cors_origins=f" {ORIGIN} , https://other.example.com")


def test_preflight_from_an_allowed_origin_gets_the_cors_answer(
    cors_client: flask.testing.FlaskClient,
) -> None:
    response = cors_client.options(
        "/score",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code == 200
    assert response.data == b""
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers["Access-Control-Allow-Methods"] == "GET, POST"
    assert response.headers["Access-Control-Allow-Headers"] == "content-type"
    assert response.headers["Vary"] == "Origin"


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/"), ("POST", "/score"), ("GET", "/swagger.json")]
)
def test_requests_from_an_allowed_origin_get_allow_origin_on_every_route(
    cors_client: flask.testing.FlaskClient, method: str, path: str
) -> None:
    response = cors_client.open(path, method=method, data="x", headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers["Vary"] == "Origin"


def test_a_disallowed_origin_gets_the_normal_response_without_cors_headers(
    cors_client: flask.testing.FlaskClient,
) -> None:
    response = cors_client.post("/score", data="x", headers={"Origin": "https://evil.example"})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers


def test_wildcard_origin_echoes_the_request_origin(tmp_path: Path) -> None:
    client = make_client(tmp_path, SCRIPT, cors_origins="*")
    response = client.post("/score", data="x", headers={"Origin": "https://any.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "https://any.example"


def test_routing_405_carries_no_cors_headers(cors_client: flask.testing.FlaskClient) -> None:
    response = cors_client.put("/score", headers={"Origin": ORIGIN})
    assert response.status_code == 405
    assert "Access-Control-Allow-Origin" not in response.headers


def test_without_cors_origins_no_cors_headers_are_added(
    client: flask.testing.FlaskClient,
) -> None:
    response = client.post("/score", data="x", headers={"Origin": ORIGIN})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_seed_cors_script_answers_get_and_post_by_itself(tmp_path: Path) -> None:
    client = make_client(tmp_path, CORS_SEED_SCRIPT)
    assert client.get("/score?q=1").data == b"/score?q=1"
    assert client.post("/score", data=b"\x00binary").data == b"\x00binary"
    failed = client.put("/score")
    assert failed.status_code == 405
    deleted = client.open("/score", method="OPTIONS")
    assert deleted.status_code == 500
    assert deleted.headers["x-ms-run-function-failed"] == "True"


def test_generated_request_ids_are_version_4_uuids_in_canonical_form() -> None:
    for _ in range(2000):
        text = new_request_id()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
