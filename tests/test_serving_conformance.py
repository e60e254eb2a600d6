"""Differential check against the real azmlinfsrv 1.5.1, request by request.

Runs only when ``MODELSTORE_AZMLINFSRV_PYTHON`` names a Python that has
``azureml-inference-server-http==1.5.1`` installed (not in CI: it pulls in Azure telemetry
packages). Each scenario's requests go through both apps with Flask's test client in separate
processes; status, headers and body must be equal, except for the documented safe fix that adds
request ids and ``x-ms-server-version`` to routing 404/405 answers.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

AZMLINFSRV_PYTHON = os.environ.get("MODELSTORE_AZMLINFSRV_PYTHON")
pytestmark = pytest.mark.skipif(
    not AZMLINFSRV_PYTHON, reason="set MODELSTORE_AZMLINFSRV_PYTHON to compare with azmlinfsrv"
)

RUNNER = r"""
import base64, json, os, re, sys
impl, script, cases_file, out_file = sys.argv[1:5]
cases = json.load(open(cases_file))
os.environ.update(cases.get("env", {}))
os.environ["AZUREML_ENTRY_SCRIPT"] = script
os.environ["AML_APP_ROOT"] = os.path.dirname(script)
os.environ["HTTP_X_MS_SERVER_VERSION"] = "azmlinfsrv/1.5.1"
if impl == "azmlinfsrv":
    from azureml_inference_server_http.server.create_app import create
    app = create()
else:
    from modelstore.serving.app import create_app
    from modelstore.serving.settings import ServingSettings
    app = create_app(ServingSettings.from_environ(os.environ, entry_script=script))
client = app.test_client()
uuid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
out = []
for case in cases["requests"]:
    kw = {}
    if "data" in case:
        kw["data"] = case["data"]
    if "data_b64" in case:
        kw["data"] = base64.b64decode(case["data_b64"])
    if "content_type" in case:
        kw["content_type"] = case["content_type"]
    r = client.open(case["path"], method=case.get("method", "GET"),
                    headers=case.get("headers", {}), **kw)
    headers = []
    for k, v in r.headers.items():
        if k.lower() == "x-ms-run-fn-exec-ms":
            v = "<ms>"
        if k.lower() == "allow":
            v = ", ".join(sorted(v.split(", ")))
        headers.append([k, uuid.sub("<uuid>", v)])
    out.append({"status": r.status_code, "headers": sorted(headers),
                "body": r.get_data().decode("latin1")})
json.dump(out, open(out_file, "w"))
"""

PLAIN = """
import time

def init():
    print("init")

def run(data, request_headers):
    if data == "boom":
        raise RuntimeError("x")
    if data == "sleep":
        time.sleep(3)
    if data == "timeout-error":
        raise TimeoutError()
    if data == "bytes":
        return b"x"
    if data == "none":
        return None
    if data == "json-text":
        return '{"a": 1}'
    if data == "nan":
        return float("nan")
    if data == "header":
        return request_headers.get("X-Custom")
    return {"got": data}
"""
OBJECT = """
import datetime
from inference_schema.schema_decorators import input_schema, output_schema
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType

def init():
    pass

sample = StandardPythonParameterType(
    {"a": 1, "b": [1.0, 2.0], "when": datetime.date(2020, 1, 1), "name": "x", "flag": True}
)

@input_schema("Inputs", sample)
@input_schema("GlobalParameters", StandardPythonParameterType(1.0))
@output_schema(StandardPythonParameterType({"Results": [1.0]}))
def run(Inputs, GlobalParameters=2.0, request_headers=None):
    return {"Results": [Inputs.get("a")], "g": GlobalParameters, "when": str(Inputs.get("when"))}
"""
RAW = """
import json
from azureml.contrib.services.aml_request import AMLRequest, rawhttp
from azureml.contrib.services.aml_response import AMLResponse

def init():
    pass

@rawhttp
def run(request):
    kind = request.args.get("kind", "")
    if kind == "none":
        return AMLResponse(None, 202)
    if kind == "json":
        return AMLResponse({"a": 1}, 200, json_str=True)
    if kind == "lower":
        return AMLResponse(b"x", 200, {"content-type": "image/png"})
    if kind == "exact":
        return AMLResponse(b"x", 200, {"Content-Type": "image/png"})
    if kind == "json-ct":
        return AMLResponse({"a": 1}, 200, {"Content-Type": "application/json"}, json_str=True)
    if kind == "methods":
        return AMLResponse("ok", 200, {"Access-Control-Allow-Methods": "GET, POST, OPTIONS"})
    if kind == "int":
        return AMLResponse("ok", 200, {"X": 3})
    if kind == "busy":
        return AMLResponse("busy", 503)
    if kind == "dict":
        return {"d": 1}
    if kind == "gen":
        return AMLResponse((c for c in ["a", "b"]), 200)
    return AMLResponse(json.dumps({
        "method": request.method, "full_path": request.full_path,
        "length": request.content_length, "data": request.get_data(as_text=True),
        "files": list(request.files), "form": request.form.to_dict(),
    }), 200)
"""
MIXED = """
from inference_schema.schema_decorators import input_schema
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType

def init():
    pass

@input_schema("values", StandardPythonParameterType([1, "two", 3.0]))
def run(values):
    return values
"""

COMMON: list[dict[str, Any]] = [
    {"path": "/"},
    {"path": "/", "method": "HEAD"},
    {"path": "/", "method": "OPTIONS"},
    {"path": "/swagger.json", "method": "OPTIONS"},
    {"path": "/", "method": "POST"},
    {"path": "/score", "method": "PUT"},
    {"path": "/nope"},
    {"path": "/score/"},
    *({"path": f"/swagger.json{q}"} for q in ["", "?version=2.0", "?version=3", "?version=3.0"]),
    *({"path": f"/swagger.json{q}"} for q in ["?version=3.1", "?version=", "?version=4"]),
    {"path": "/score", "method": "OPTIONS"},
    {"path": "/score", "method": "HEAD"},
    {"path": "/score", "headers": {"x-request-id": "A"}},
    {"path": "/score", "headers": {"x-ms-request-id": "B"}},
    {"path": "/score", "headers": {"x-ms-client-request-id": "C"}},
    {"path": "/score", "headers": {"x-ms-request-id": "B", "x-ms-client-request-id": "C"}},
    {"path": "/score", "headers": {"x-request-id": "A", "x-ms-client-request-id": "C"}},
    {
        "path": "/score",
        "headers": {"x-request-id": "A", "x-ms-request-id": "B", "x-ms-client-request-id": "C"},
    },
    {"path": "/score", "headers": {"x-request-id": "a" * 101}},
    {"path": "/score", "headers": {"x-ms-request-id": "b" * 101, "x-request-id": "A"}},
    {"path": "/score", "headers": {"x-ms-client-request-id": "c" * 101}},
    {"path": "/", "headers": {"TraceId": "T1"}},
    {"path": "/score", "headers": {"TraceId": "T1"}},
    {"path": "/score?data=[1,2]&a=1&a=2&s=text&n=null"},
    {"path": "/score"},
    {"path": "/score", "method": "POST", "data": "not json", "content_type": "text/plain"},
    {"path": "/score", "method": "POST", "data": "", "content_type": "application/json"},
    {"path": "/score", "method": "POST", "data": "[1,2]", "content_type": "application/json"},
    {"path": "/score", "method": "POST", "data": '{"I": }', "content_type": "application/json"},
    {"path": "/score", "method": "POST", "data": '{"data": 1}', "content_type": "application/json"},
    {"path": "/score", "method": "POST", "data": "{}", "content_type": "application/vnd.x+json"},
    {"path": "/score", "method": "POST", "data": '{"data": 1}'},
    {
        "path": "/score",
        "method": "POST",
        "data_b64": base64.b64encode(b"\xff\xfe").decode(),
        "content_type": "text/plain",
    },
]


def _post_json(body: Any, content_type: str = "application/json") -> dict[str, Any]:
    return {
        "path": "/score",
        "method": "POST",
        "data": json.dumps(body),
        "content_type": content_type,
    }


SCENARIOS: dict[str, tuple[str, dict[str, Any]]] = {
    "plain": (
        PLAIN,
        {
            "env": {"SCORING_TIMEOUT_MS": "300"},
            "requests": [
                *COMMON,
                *(
                    {"path": "/score", "method": "POST", "data": d}
                    for d in ["boom", "timeout-error", "bytes", "none", "json-text", "nan", "x"]
                ),
                {
                    "path": "/score",
                    "method": "POST",
                    "data": "header",
                    "headers": {"X-Custom": "v"},
                },
                {"path": "/score", "method": "POST", "data": "sleep"},
            ],
        },
    ),
    "object": (
        OBJECT,
        {
            "requests": [
                *COMMON,
                _post_json({"Inputs": {"a": 5, "b": [1, 2], "when": "2021-02-03"}, "x": 1}),
                _post_json({"Inputs": {"a": 5}, "GlobalParameters": 7}, "application/json; a=b"),
                _post_json({"Inputs": [1]}),
                _post_json({"Inputs": {"when": "not a date"}}),
                {"path": '/score?Inputs={"a":[1,2]}&GlobalParameters=3'},
            ]
        },
    ),
    "raw": (
        RAW,
        {
            "requests": [
                *COMMON,
                *({"path": f"/score?kind={kind}"} for kind in ["none", "json", "lower", "exact"]),
                *({"path": f"/score?kind={kind}"} for kind in ["json-ct", "methods", "int"]),
                *({"path": f"/score?kind={kind}"} for kind in ["busy", "dict", "gen"]),
                {"path": "/score", "method": "POST", "data": "abc", "content_type": "text/plain"},
            ]
        },
    ),
    "mixed-swagger": (MIXED, {"requests": COMMON}),
    "cors": (
        PLAIN,
        {
            "env": {"AML_CORS_ORIGINS": " https://a.example , https://b.example"},
            "requests": [
                {
                    "path": "/score",
                    "method": "OPTIONS",
                    "headers": {
                        "Origin": "https://a.example",
                        "Access-Control-Request-Method": "POST",
                        "Access-Control-Request-Headers": "content-type",
                    },
                },
                {
                    "path": "/score",
                    "method": "POST",
                    "data": "x",
                    "headers": {"Origin": "https://b.example"},
                },
                {"path": "/", "headers": {"Origin": "https://b.example"}},
                {"path": "/swagger.json", "headers": {"Origin": "https://b.example"}},
                {
                    "path": "/score",
                    "method": "POST",
                    "data": "x",
                    "headers": {"Origin": "https://c.example"},
                },
                {"path": "/score", "method": "PUT", "headers": {"Origin": "https://b.example"}},
            ],
        },
    ),
    "wildcard-cors-and-service-info": (
        PLAIN,
        {
            "env": {
                "AML_CORS_ORIGINS": "*",
                "SERVICE_NAME": "svc",
                "SERVICE_VERSION": "4",
                "SERVICE_PATH_PREFIX": "/api/",
            },
            "requests": [
                {
                    "path": "/score",
                    "method": "POST",
                    "data": "x",
                    "headers": {"Origin": "https://o.example"},
                },
                {"path": "/swagger.json"},
                {"path": "/swagger.json?version=3"},
            ],
        },
    ),
}

SAFE_FIX_HEADERS = {"x-request-id", "x-ms-request-id", "x-ms-server-version"}


def _run(python: str, implementation: str, folder: Path, cases: dict[str, Any]) -> Any:
    runner = folder / "runner.py"
    runner.write_text(RUNNER, encoding="utf-8")
    cases_file = folder / "cases.json"
    cases_file.write_text(json.dumps(cases), encoding="utf-8")
    out_file = folder / f"{implementation}.json"
    script = folder / "score.py"
    completed = subprocess.run(
        [python, str(runner), implementation, str(script), str(cases_file), str(out_file)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(out_file.read_text(encoding="utf-8"))


def _without_routing_fix(answer: dict[str, Any]) -> dict[str, Any]:
    body = answer["body"]
    routing = answer["status"] in (404, 405) and (
        "The requested URL was not found" in body
        or "method is not allowed for the requested" in body
    )
    if not routing:
        return answer
    headers = [h for h in answer["headers"] if h[0].lower() not in SAFE_FIX_HEADERS]
    return {**answer, "headers": headers}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_answers_match_azmlinfsrv(tmp_path: Path, scenario: str) -> None:
    assert AZMLINFSRV_PYTHON is not None
    source, cases = SCENARIOS[scenario]
    (tmp_path / "score.py").write_text(textwrap.dedent(source), encoding="utf-8")
    theirs = _run(AZMLINFSRV_PYTHON, "azmlinfsrv", tmp_path, cases)
    ours = _run(sys.executable, "modelstore", tmp_path, cases)
    assert len(ours) == len(theirs) == len(cases["requests"])
    for request, expected, got in zip(cases["requests"], theirs, ours, strict=True):
        assert _without_routing_fix(got) == _without_routing_fix(expected), request
    uuid = re.compile("<uuid>")
    assert any(uuid.search(str(answer["headers"])) for answer in ours)
