"""What run()'s return value becomes on the wire (docs/server.md): JSON, Responses, AMLResponse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import flask
import pytest
from serving_helpers import make_client

from modelstore.serving.invoke import JsonAnswer

SCRIPT_ERROR = "An unexpected error occurred in scoring script. Check the logs for more info."
INTERNAL_ERROR = "An unexpected internal error occurred. Check the logs for more info."


def returning(expression: str, *, imports: str = "") -> str:
    return f"{imports}\ndef init():\n    pass\n\ndef run(data):\n    return {expression}\n"


@pytest.mark.parametrize(
    ("expression", "body"),
    [
        ('"hello"', b'"hello"'),
        ("None", b"{}"),
        ('{"a": [1, 2.5, None]}', b'{"a": [1, 2.5, null]}'),
        ("'{\"a\": 1}'", b'"{\\"a\\": 1}"'),
        ('"caf\\u00e9"', b'"caf\\u00e9"'),
        ('float("nan")', b"NaN"),
        ("(1, 2)", b"[1, 2]"),
    ],
)
def test_plain_values_are_json_dumped_with_default_options(
    tmp_path: Path, expression: str, body: bytes
) -> None:
    response = make_client(tmp_path, returning(expression)).post("/score", data="x")
    assert response.status_code == 200
    assert response.data == body
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["x-ms-run-function-failed"] == "False"


@pytest.mark.parametrize("expression", ["b'bytes'", "{1, 2}", "object()", "(x for x in [1])"])
def test_unserialisable_values_are_the_internal_500_not_a_script_failure(
    tmp_path: Path, expression: str
) -> None:
    client = make_client(tmp_path, returning(expression))
    response = client.post("/score", data="x")
    assert response.status_code == 500
    assert response.get_json() == {"message": INTERNAL_ERROR}
    assert response.headers["x-ms-run-function-failed"] == "False"
    assert "x-ms-run-fn-exec-ms" not in response.headers
    assert client.get("/").status_code == 200  # still serving


def test_numpy_array_is_a_500_by_default(tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    source = returning("np.arange(3)", imports="import numpy as np")
    response = make_client(tmp_path, source).post("/score", data="x")
    assert response.status_code == 500
    assert response.get_json() == {"message": INTERNAL_ERROR}


def test_numpy_float64_passes_because_it_subclasses_float(tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    source = returning("np.float64(1.5)", imports="import numpy as np")
    assert make_client(tmp_path, source).post("/score", data="x").data == b"1.5"


def test_numpy_json_opt_in_serialises_numpy_and_pandas_values(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    source = returning(
        '{"array": np.arange(3), "scalar": np.int64(4), "series": pd.Series([1.5, 2.5]),'
        ' "frame": pd.DataFrame({"a": [1, 2]})}',
        imports="import numpy as np\nimport pandas as pd",
    )
    response = make_client(tmp_path, source, numpy_json=True).post("/score", data="x")
    assert response.status_code == 200
    assert response.get_json() == {
        "array": [0, 1, 2],
        "scalar": 4,
        "series": [1.5, 2.5],
        "frame": [{"a": 1}, {"a": 2}],
    }


def test_numpy_json_still_refuses_other_unserialisable_values(tmp_path: Path) -> None:
    response = make_client(tmp_path, returning("{1}"), numpy_json=True).post("/score", data="x")
    assert response.status_code == 500


def test_run_raising_is_the_scoring_script_500_and_serving_continues(tmp_path: Path) -> None:
    source = """
    def init():
        pass

    def run(data):
        if data == "boom":
            raise RuntimeError("kaput")
        return data
    """
    client = make_client(tmp_path, source)
    response = client.post("/score", data="boom")
    assert response.status_code == 500
    assert response.get_json() == {"message": SCRIPT_ERROR}
    assert response.headers["x-ms-run-function-failed"] == "True"
    assert client.post("/score", data="fine").get_json() == "fine"


def test_run_exception_text_goes_to_the_log_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = "def init():\n    pass\n\ndef run(data):\n    raise RuntimeError('secret-detail')\n"
    response = make_client(tmp_path, source).post("/score", data="x")
    assert b"secret-detail" not in response.data
    assert "RuntimeError: secret-detail" in caplog.text


def test_flask_response_is_sent_as_is_with_run_time_header(tmp_path: Path) -> None:
    source = """
    from flask import Response

    def init():
        pass

    def run(data):
        return Response("created", status=201, headers={"X-Thing": "1"}, mimetype="text/plain")
    """
    response = make_client(tmp_path, source).post("/score", data="x")
    assert response.status_code == 201
    assert response.data == b"created"
    assert response.headers["X-Thing"] == "1"
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "x-ms-run-function-failed" not in response.headers
    assert "x-ms-run-fn-exec-ms" in response.headers


def test_response_with_status_500_or_more_is_flagged_as_run_failure(tmp_path: Path) -> None:
    source = """
    from azureml.contrib.services.aml_response import AMLResponse

    def init():
        pass

    def run(data):
        return AMLResponse("busy", 503)
    """
    response = make_client(tmp_path, source).post("/score", data="x")
    assert response.status_code == 503
    assert response.headers.getlist("x-ms-run-function-failed") == ["True"]


def test_generator_body_in_a_response_is_streamed(tmp_path: Path) -> None:
    source = """
    from flask import Response

    def init():
        pass

    def run(data):
        def chunks():
            yield "a"
            yield "b"
        return Response(chunks(), mimetype="text/plain")
    """
    response = make_client(tmp_path, source).post("/score", data="x")
    assert response.is_streamed
    assert "Content-Length" not in response.headers
    assert response.data == b"ab"


AML_RESPONSE_SCRIPT = """
from azureml.contrib.services.aml_request import rawhttp
from azureml.contrib.services.aml_response import AMLResponse

def init():
    pass

@rawhttp
def run(request):
    kind = request.args["kind"]
    if kind == "none":
        return AMLResponse(None, 202)
    if kind == "json":
        return AMLResponse({"a": 1}, 200, json_str=True)
    if kind == "created":
        return AMLResponse("made", 201)
    if kind == "empty":
        return AMLResponse("", 204)
    if kind == "png":
        return AMLResponse(b"\\x89PNG", 200, {"Content-Type": "image/png"})
    if kind == "lower":
        return AMLResponse(b"x", 200, {"content-type": "image/png"})
    if kind == "json-ct":
        return AMLResponse({"a": 1}, 200, {"Content-Type": "application/json"}, json_str=True)
    if kind == "methods":
        return AMLResponse("ok", 200, {"Access-Control-Allow-Methods": "GET, POST, OPTIONS"})
    if kind == "date":
        return AMLResponse("ok", 200, {"Expires": "Wed, 21 Oct 2015 07:28:00 GMT"})
    if kind == "int":
        return AMLResponse("ok", 200, {"X-Count": 3})
    if kind == "failed":
        return AMLResponse("oops", 400, run_function_failed=True)
    if kind == "dict":
        return {"plain": True}
    if kind == "seed-cors":
        resp = AMLResponse(request.get_data(False), 200)
        resp.headers["Access-Control-Allow-Origin"] = "http://www.example.com"
        return resp
    return AMLResponse("bad request", 500)
"""


@pytest.fixture
def aml_client(tmp_path: Path) -> flask.testing.FlaskClient:
    return make_client(tmp_path, AML_RESPONSE_SCRIPT)


def test_aml_response_none_is_an_empty_json_object(aml_client: flask.testing.FlaskClient) -> None:
    response = aml_client.get("/score?kind=none")
    assert (response.status_code, response.data) == (202, b"{}")
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["x-ms-run-function-failed"] == "False"


def test_aml_response_json_str_dumps_the_message(aml_client: flask.testing.FlaskClient) -> None:
    response = aml_client.get("/score?kind=json")
    assert response.data == b'{"a": 1}'
    assert response.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize(("kind", "status"), [("created", 201), ("empty", 204), ("failed", 400)])
def test_aml_response_custom_statuses_pass_through(
    aml_client: flask.testing.FlaskClient, kind: str, status: int
) -> None:
    assert aml_client.get(f"/score?kind={kind}").status_code == status


def test_aml_response_run_function_failed_flag_is_rendered_as_python_bool(
    aml_client: flask.testing.FlaskClient,
) -> None:
    assert aml_client.get("/score?kind=failed").headers["x-ms-run-function-failed"] == "True"


def test_aml_response_binary_body_with_exact_content_type_key_replaces_the_default(
    aml_client: flask.testing.FlaskClient,
) -> None:
    response = aml_client.get("/score?kind=png")
    assert response.data == b"\x89PNG"
    assert response.headers.getlist("Content-Type") == ["image/png"]


def test_aml_response_other_content_type_casing_duplicates_the_header(
    aml_client: flask.testing.FlaskClient,
) -> None:
    response = aml_client.get("/score?kind=lower")
    assert response.headers.getlist("Content-Type") == ["text/html; charset=utf-8", "image/png"]


def test_aml_response_json_str_with_content_type_duplicates_it(
    aml_client: flask.testing.FlaskClient,
) -> None:
    response = aml_client.get("/score?kind=json-ct")
    assert response.headers.getlist("Content-Type") == ["application/json", "application/json"]


def test_aml_response_splits_header_values_on_commas(aml_client: flask.testing.FlaskClient) -> None:
    response = aml_client.get("/score?kind=methods")
    assert response.headers.getlist("Access-Control-Allow-Methods") == ["GET", "POST", "OPTIONS"]
    assert response.headers.getlist("Expires") != ["Wed, 21 Oct 2015 07:28:00 GMT"]
    assert aml_client.get("/score?kind=date").headers.getlist("Expires") == [
        "Wed",
        "21 Oct 2015 07:28:00 GMT",
    ]


def test_aml_response_non_string_header_value_is_a_scoring_script_500(
    aml_client: flask.testing.FlaskClient,
) -> None:
    response = aml_client.get("/score?kind=int")
    assert response.status_code == 500
    assert response.get_json() == {"message": SCRIPT_ERROR}


def test_unsplit_header_values_opt_in_keeps_values_whole_and_content_type_single(
    tmp_path: Path,
) -> None:
    client = make_client(tmp_path, AML_RESPONSE_SCRIPT, split_header_values=False)
    assert client.get("/score?kind=date").headers.getlist("Expires") == [
        "Wed, 21 Oct 2015 07:28:00 GMT"
    ]
    assert client.get("/score?kind=lower").headers.getlist("Content-Type") == ["image/png"]
    assert client.get("/score?kind=json-ct").headers.getlist("Content-Type") == ["application/json"]


def test_rawhttp_plain_dict_is_json_wrapped_with_200(aml_client: flask.testing.FlaskClient) -> None:
    response = aml_client.get("/score?kind=dict")
    assert (response.status_code, response.get_json()) == (200, {"plain": True})


def test_seed_cors_script_sets_its_own_allow_origin_and_echoes_the_body(
    aml_client: flask.testing.FlaskClient,
) -> None:
    response = aml_client.post("/score?kind=seed-cors", data=b"payload")
    assert response.data == b"payload"
    assert response.headers["Access-Control-Allow-Origin"] == "http://www.example.com"


def test_aml_response_outside_a_request_still_builds(tmp_path: Path) -> None:
    from modelstore.serving.shims.aml_response import AMLResponse

    response = AMLResponse("a", 200, {"X-List": "1, 2"})
    assert response.headers.getlist("X-List") == ["1", "2"]
    assert response.headers["x-ms-run-function-failed"] == "False"


def test_sys_exit_in_run_is_a_scoring_script_500_and_serving_continues(tmp_path: Path) -> None:
    source = "import sys\ndef init():\n    pass\n\ndef run(data):\n    sys.exit(4)\n"
    client = make_client(tmp_path, source)
    response = client.post("/score", data="x")
    assert response.status_code == 500
    assert response.get_json() == {"message": SCRIPT_ERROR}
    assert client.get("/").status_code == 200


@pytest.mark.parametrize(
    ("status", "extra_headers", "streamed"),
    [
        (200, [], False),
        (200, [("X-Other", "a")], False),
        (200, [("Location", "/next")], False),
        (200, [("content-location", "/här")], False),
        (200, [], True),
        (201, [], False),
        (204, [], False),
        (304, [], False),
    ],
)
def test_json_answer_sends_the_same_status_and_headers_as_werkzeug(
    status: int, extra_headers: list[tuple[str, str]], streamed: bool
) -> None:
    from werkzeug.test import EnvironBuilder

    environ = EnvironBuilder(path="/score", method="POST").get_environ()

    def wsgi_answer(response_class: type[flask.Response]) -> tuple[str, list[tuple[str, str]]]:
        body: Any = iter([b'{"a": 1}']) if streamed else b'{"a": 1}'
        response = response_class(body, status=status, content_type="application/json")
        for name, value in extra_headers:
            response.headers.add(name, value)
        _, status_line, headers = response.get_wsgi_response(environ)
        return status_line, headers

    assert wsgi_answer(JsonAnswer) == wsgi_answer(flask.Response)
