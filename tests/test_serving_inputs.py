"""How each input mode turns a request into run() arguments (docs/server.md), as azmlinfsrv."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from serving_helpers import make_client

pytest.importorskip("inference_schema")

JSON_STRING_SCRIPT = """
import json

def init():
    pass

def run(data):
    return {"type": type(data).__name__, "data": data}
"""

OBJECT_SCRIPT = """
from inference_schema.schema_decorators import input_schema
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType

def init():
    pass

@input_schema("Inputs", StandardPythonParameterType({"a": 1}))
def run(Inputs, GlobalParameters=1.0):
    return {"Inputs": Inputs, "GlobalParameters": GlobalParameters}
"""

POWER_BI_SCRIPT = """
import numpy as np
import pandas as pd
from inference_schema.schema_decorators import input_schema, output_schema
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType

def init():
    global weights
    weights = np.array([1.0, 2.0, 3.0, 4.0])

matrix_sample = NumpyParameterType(np.array([[1, 2, 3, 4], [4, 3, 2, 1]], dtype="float64"))
people_sample = PandasParameterType(pd.DataFrame({"name": ["Ana", "Luis"], "age": [31, 42]}))
inputs_sample = StandardPythonParameterType(
    {"matrix": matrix_sample, "people": people_sample, "scale": StandardPythonParameterType(0.0)}
)
results_sample = StandardPythonParameterType({"Results": StandardPythonParameterType([1.0, 1.0])})

@input_schema("Inputs", inputs_sample)
@input_schema("GlobalParameters", StandardPythonParameterType(1.0))
@output_schema(results_sample)
def run(Inputs, GlobalParameters=1.0):
    assert isinstance(Inputs["matrix"], np.ndarray)
    assert isinstance(Inputs["people"], pd.DataFrame)
    scores = Inputs["matrix"] @ weights * GlobalParameters
    return {"Results": scores.tolist(), "people": int(Inputs["people"].shape[0])}
"""

RAW_SCRIPT = """
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse

def init():
    pass

@rawhttp
def run(request):
    return {
        "is_aml_request": isinstance(request, AMLRequest),
        "method": request.method,
        "path": request.path,
        "full_path": request.full_path,
        "args": request.args.to_dict(flat=False),
        "content_type": request.content_type,
        "content_length": request.content_length,
        "x_custom": request.headers.get("x-custom"),
        "json": request.get_json(silent=True),
        "form": request.form.to_dict(),
        "files": {k: [f.filename, f.mimetype, len(f.read())] for k, f in request.files.items()},
    }
"""

IMAGE_SCRIPT = """
import json

from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse
from PIL import Image

def init():
    print("This is init()")

@rawhttp
def run(request):
    if request.method == "GET":
        return AMLResponse(str.encode(request.full_path), 200)
    if request.method == "POST":
        image = Image.open(request.files["image"]).convert("RGB")
        return AMLResponse(json.dumps(image.size), 200)
    return AMLResponse("bad request", 500)
"""


# --- JSON string mode -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ('{"data": [1, 2, 3]}', "application/json"),
        ("this is not json", "text/plain"),
        ("", None),
        ("[1, 2]", None),
    ],
)
def test_undecorated_run_receives_the_whole_raw_body_as_a_string(
    tmp_path: Path, body: str, content_type: str | None
) -> None:
    client = make_client(tmp_path, JSON_STRING_SCRIPT)
    response = client.post("/score", data=body, content_type=content_type)
    assert response.status_code == 200
    assert response.get_json() == {"type": "str", "data": body}


def test_undecorated_run_gets_an_empty_string_for_form_bodies(tmp_path: Path) -> None:
    client = make_client(tmp_path, JSON_STRING_SCRIPT)
    response = client.post("/score", data={"field": "value"})
    assert response.get_json() == {"type": "str", "data": ""}


def test_non_utf8_body_is_400_with_the_decode_error(tmp_path: Path) -> None:
    client = make_client(tmp_path, JSON_STRING_SCRIPT)
    response = client.post("/score", data=b"\xff\xfe")
    assert response.status_code == 400
    assert response.get_json() == {
        "message": "Input cannot be decoded as UTF-8: 'utf-8' codec can't decode byte 0xff in "
        "position 0: invalid start byte"
    }
    assert response.headers["x-ms-run-function-failed"] == "False"


def test_get_turns_the_query_into_a_json_string(tmp_path: Path) -> None:
    client = make_client(tmp_path, JSON_STRING_SCRIPT)
    response = client.get("/score?data=[1,2]&a=1&a=2&s=text&n=null")
    assert response.get_json()["data"] == ('{"data": [1, 2], "a": [1, 2], "s": "text", "n": null}')


def test_get_without_query_gives_an_empty_object_string(tmp_path: Path) -> None:
    client = make_client(tmp_path, JSON_STRING_SCRIPT)
    assert client.get("/score").get_json()["data"] == "{}"


def test_query_keys_are_case_sensitive(tmp_path: Path) -> None:
    client = make_client(tmp_path, JSON_STRING_SCRIPT)
    data = json.loads(client.get("/score?A=1&a=2").get_json()["data"])
    assert data == {"A": 1, "a": 2}


def test_request_headers_parameter_gets_title_cased_headers_in_every_mode(tmp_path: Path) -> None:
    source = """
    def init():
        pass

    def run(data, request_headers):
        return {"data": data, "custom": request_headers.get("X-Custom"),
                "content_type": request_headers.get("Content-Type")}
    """
    client = make_client(tmp_path, source)
    response = client.post(
        "/score", data="hi", headers={"x-custom": "yes"}, content_type="text/plain"
    )
    assert response.get_json() == {"data": "hi", "custom": "yes", "content_type": "text/plain"}


def test_keyword_only_data_parameter_is_accepted(tmp_path: Path) -> None:
    source = "def init():\n    pass\n\ndef run(*, payload):\n    return payload\n"
    client = make_client(tmp_path, source)
    assert client.post("/score", data="x").get_json() == "x"


# --- object mode ------------------------------------------------------------------------------


def test_object_mode_maps_json_keys_to_parameters_and_uses_defaults(tmp_path: Path) -> None:
    client = make_client(tmp_path, OBJECT_SCRIPT)
    response = client.post("/score", json={"Inputs": {"a": 5}, "extra": "ignored"})
    assert response.status_code == 200
    assert response.get_json() == {"Inputs": {"a": 5}, "GlobalParameters": 1.0}


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/problem+json"]
)
def test_object_mode_accepts_json_content_types_with_parameters_and_suffixes(
    tmp_path: Path, content_type: str
) -> None:
    client = make_client(tmp_path, OBJECT_SCRIPT)
    response = client.post("/score", data='{"Inputs": {}}', content_type=content_type)
    assert response.status_code == 200


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_object_mode_rejects_non_json_content_type_with_415(
    tmp_path: Path, content_type: str | None
) -> None:
    client = make_client(tmp_path, OBJECT_SCRIPT)
    response = client.post("/score", data='{"Inputs": {}}', content_type=content_type)
    assert response.status_code == 415
    assert response.get_json() == {"message": "Expects Content-Type to be application/json"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "POST body is empty. Expecting a JSON dictionary."),
        (
            '{"Inputs": }',
            "POST body could not be decoded as JSON: Expecting value: line 1 column 12 (char 11)",
        ),
        ("[1, 2]", "POST body should be a JSON dictionary."),
        ('"text"', "POST body should be a JSON dictionary."),
        ('{"data": [1]}', "A value is not provided for the 'Inputs' parameter."),
    ],
)
def test_object_mode_bad_bodies_get_400_with_the_spec_text(
    tmp_path: Path, body: str, message: str
) -> None:
    client = make_client(tmp_path, OBJECT_SCRIPT)
    response = client.post("/score", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json() == {"message": message}
    assert response.headers["x-ms-run-function-failed"] == "False"


def test_object_mode_non_utf8_body_is_a_clear_400_not_an_internal_error(tmp_path: Path) -> None:
    client = make_client(tmp_path, OBJECT_SCRIPT)
    response = client.post("/score", data=b"\xff{}", content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["message"].startswith("POST body could not be decoded as JSON: ")


def test_object_mode_get_uses_the_parsed_query_as_the_body(tmp_path: Path) -> None:
    client = make_client(tmp_path, OBJECT_SCRIPT)
    response = client.get('/score?Inputs={"a":[1,2]}&GlobalParameters=3')
    assert response.get_json() == {"Inputs": {"a": [1, 2]}, "GlobalParameters": 3}


def test_object_mode_get_without_query_is_the_missing_parameter_400(tmp_path: Path) -> None:
    client = make_client(tmp_path, OBJECT_SCRIPT)
    response = client.get("/score")
    assert response.status_code == 400
    assert response.get_json() == {"message": "A value is not provided for the 'Inputs' parameter."}


def test_output_schema_alone_selects_object_mode(tmp_path: Path) -> None:
    source = """
    from inference_schema.schema_decorators import output_schema
    from inference_schema.parameter_types.standard_py_parameter_type import (
        StandardPythonParameterType,
    )

    def init():
        pass

    @output_schema(StandardPythonParameterType({"ok": True}))
    def run(value):
        return {"ok": value}
    """
    client = make_client(tmp_path, source)
    assert client.post("/score", json={"value": 7}).get_json() == {"ok": 7}


def test_power_bi_script_converts_numpy_and_pandas_inputs(tmp_path: Path) -> None:
    client = make_client(tmp_path, POWER_BI_SCRIPT)
    body = {
        "Inputs": {
            "matrix": [[1, 0, 0, 0], [0, 0, 0, 1]],
            "people": [{"name": "Eva", "age": 20}],
            "scale": 1.0,
        },
        "GlobalParameters": 2.0,
    }
    response = client.post("/score", json=body)
    assert response.status_code == 200
    assert response.get_json() == {"Results": [2.0, 8.0], "people": 1}


def test_power_bi_global_parameters_may_be_omitted_when_defaulted(tmp_path: Path) -> None:
    client = make_client(tmp_path, POWER_BI_SCRIPT)
    body = {"Inputs": {"matrix": [[0, 0, 0, 1]], "people": [{"name": "Eva", "age": 20}]}}
    assert client.post("/score", json=body).get_json() == {"Results": [4.0], "people": 1}


def test_schema_validation_error_is_the_scoring_script_500_by_default(tmp_path: Path) -> None:
    client = make_client(tmp_path, POWER_BI_SCRIPT)
    response = client.post("/score", json={"Inputs": {"matrix": [[1, 2, 3]]}})
    assert response.status_code == 500
    assert response.get_json() == {
        "message": "An unexpected error occurred in scoring script. Check the logs for more info."
    }
    assert response.headers["x-ms-run-function-failed"] == "True"


def test_validation_400_opt_in_reports_the_inference_schema_message(tmp_path: Path) -> None:
    client = make_client(tmp_path, POWER_BI_SCRIPT, validation_400=True)
    response = client.post("/score", json={"Inputs": {"matrix": [[1, 2, 3]]}})
    assert response.status_code == 400
    assert response.get_json() == {
        "message": "Invalid input array: array has size 3 on dimension #1, "
        "while expected value is 4"
    }


def test_validation_400_leaves_value_errors_raised_by_run_itself_as_500(tmp_path: Path) -> None:
    source = OBJECT_SCRIPT.replace(
        "    return {", "    raise ValueError('my own check failed')\n    return {"
    )
    client = make_client(tmp_path, source, validation_400=True)
    response = client.post("/score", json={"Inputs": {"a": 1}})
    assert response.status_code == 500
    assert response.headers["x-ms-run-function-failed"] == "True"


# --- raw request mode -------------------------------------------------------------------------


def test_rawhttp_run_gets_the_flask_request_proxy(tmp_path: Path) -> None:
    client = make_client(tmp_path, RAW_SCRIPT)
    response = client.post("/score?k=1&k=2", json={"a": 1}, headers={"X-Custom": "v"})
    assert response.get_json() == {
        "is_aml_request": False,
        "method": "POST",
        "path": "/score",
        "full_path": "/score?k=1&k=2",
        "args": {"k": ["1", "2"]},
        "content_type": "application/json",
        "content_length": 8,
        "x_custom": "v",
        "json": {"a": 1},
        "form": {},
        "files": {},
    }


def test_rawhttp_run_sees_no_content_length_and_bare_full_path_on_plain_get(tmp_path: Path) -> None:
    client = make_client(tmp_path, RAW_SCRIPT)
    data = client.get("/score").get_json()
    assert data["full_path"] == "/score?"
    assert data["content_length"] is None


def test_rawhttp_run_reads_multipart_files_and_form_fields(tmp_path: Path) -> None:
    client = make_client(tmp_path, RAW_SCRIPT)
    response = client.post(
        "/score",
        data={"note": "hi", "file": (io.BytesIO(b"12345"), "a.bin", "application/octet-stream")},
    )
    data = response.get_json()
    assert data["form"] == {"note": "hi"}
    assert data["files"] == {"file": ["a.bin", "application/octet-stream", 5]}


def test_rawhttp_image_upload_returns_the_image_size(tmp_path: Path) -> None:
    image_module = pytest.importorskip("PIL.Image")
    png = io.BytesIO()
    image_module.new("RGB", (7, 3), "red").save(png, format="PNG")
    png.seek(0)
    client = make_client(tmp_path, IMAGE_SCRIPT)
    response = client.post("/score", data={"image": (png, "test.png", "image/png")})
    assert response.status_code == 200
    assert json.loads(response.data) == [7, 3]
    assert client.get("/score?x=1").data == b"/score?x=1"


def test_rawhttp_applied_to_any_function_switches_run_to_raw_mode(tmp_path: Path) -> None:
    source = """
    from azureml.contrib.services.aml_request import rawhttp

    @rawhttp
    def helper():
        pass

    def init():
        pass

    def run(request):
        return request.method
    """
    client = make_client(tmp_path, source)
    assert client.open("/score", method="OPTIONS").get_json() == "OPTIONS"
