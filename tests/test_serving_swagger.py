"""GET /swagger.json: versions, 404 texts, inference-schema schemas, user files (docs/server.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from serving_helpers import make_client

from modelstore.errors import EntryScriptError

pytest.importorskip("inference_schema")

PLAIN = "def init():\n    pass\n\ndef run(data):\n    return data\n"
DECORATED = """
from inference_schema.schema_decorators import input_schema, output_schema
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType

def init():
    pass

@input_schema("Inputs", StandardPythonParameterType({"x": 1.5, "when": "a"}))
@output_schema(StandardPythonParameterType({"Results": [1.0]}))
def run(Inputs, GlobalParameters=1.0, request_headers=None):
    return {"Results": [Inputs["x"]]}
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


@pytest.mark.parametrize(
    ("query", "key", "value"),
    [
        ("", "swagger", "2.0"),
        ("?version=2", "swagger", "2.0"),
        ("?version=2.0", "swagger", "2.0"),
        ("?version=3", "openapi", "3.0.3"),
        ("?version=3.0", "openapi", "3.0.3"),
        ("?version=3.1", "openapi", "3.1.0"),
    ],
)
def test_swagger_versions_and_aliases(tmp_path: Path, query: str, key: str, value: str) -> None:
    response = make_client(tmp_path, PLAIN).get(f"/swagger.json{query}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["x-ms-run-function-failed"] == "False"
    assert response.get_json()[key] == value


@pytest.mark.parametrize("version", ["4", "", "2.1", "v2"])
def test_invalid_swagger_version_is_404_with_the_supported_list(
    tmp_path: Path, version: str
) -> None:
    response = make_client(tmp_path, PLAIN).get(f"/swagger.json?version={version}")
    assert response.status_code == 404
    assert response.get_json() == {
        "message": f"Swagger version [{version}] is not valid. Supported versions: [2, 3, 3.1]."
    }


def test_undecorated_script_gets_empty_object_schemas(tmp_path: Path) -> None:
    document = make_client(tmp_path, PLAIN).get("/swagger.json").get_json()
    empty = {"type": "object", "example": {}}
    assert document["definitions"]["ServiceInput"] == empty
    assert document["definitions"]["ServiceOutput"] == empty
    assert document["definitions"]["ErrorResponse"] == {
        "type": "object",
        "properties": {"message": {"type": "string"}},
    }


def test_generated_template_has_info_security_and_paths(tmp_path: Path) -> None:
    client = make_client(
        tmp_path, PLAIN, service_name="fraud", service_version="7", service_path_prefix="/api/v1/"
    )
    v2 = client.get("/swagger.json").get_json()
    assert v2["info"] == {
        "title": "fraud",
        "description": "API specification for the Azure Machine Learning service fraud",
        "version": "7",
    }
    assert v2["schemes"] == ["https"]
    assert v2["consumes"] == v2["produces"] == ["application/json"]
    assert v2["securityDefinitions"]["Bearer"]["in"] == "header"
    assert list(v2["paths"]) == ["/api/v1/", "/api/v1/score", "/api/v1/swagger.json"]
    assert list(v2["paths"]["/api/v1/score"]) == ["post"]
    assert v2["paths"]["/api/v1/score"]["post"]["operationId"] == "RunMLService"
    v3 = client.get("/swagger.json?version=3").get_json()
    assert v3["security"] == [{"Bearer": []}]
    assert set(v3["components"]) == {"schemas", "securitySchemes"}
    assert v3["paths"]["/api/v1/swagger.json"]["get"]["parameters"][0]["schema"] == {
        "type": "integer",
        "enum": [2, 3],
    }


def test_path_prefix_moves_only_the_documented_paths(tmp_path: Path) -> None:
    client = make_client(tmp_path, PLAIN, service_path_prefix="api")
    assert "/api/score" in client.get("/swagger.json").get_json()["paths"]
    assert client.post("/score", data="x").status_code == 200
    assert client.post("/api/score", data="x").status_code == 404


def test_decorated_script_schemas_come_from_inference_schema_samples(tmp_path: Path) -> None:
    document = make_client(tmp_path, DECORATED).get("/swagger.json?version=3").get_json()
    service_input = document["components"]["schemas"]["ServiceInput"]
    assert list(service_input["properties"]) == ["Inputs", "GlobalParameters", "request_headers"]
    assert service_input["properties"]["Inputs"] == {
        "type": "object",
        "required": ["x", "when"],
        "properties": {"x": {"type": "number", "format": "double"}, "when": {"type": "string"}},
    }
    assert service_input["properties"]["GlobalParameters"] == {}
    assert service_input["example"] == {
        "Inputs": {"x": 1.5, "when": "a"},
        "GlobalParameters": "",
        "request_headers": "",
    }
    assert "required" not in service_input
    assert document["components"]["schemas"]["ServiceOutput"]["required"] == ["Results"]


def test_mixed_type_sample_makes_default_swagger_404_but_version_3_works(tmp_path: Path) -> None:
    client = make_client(tmp_path, MIXED)
    response = client.get("/swagger.json")
    assert response.status_code == 404
    assert response.get_json() == {
        "message": "Swagger version [2] is not supported for the scoring script. "
        "Supported swagger versions: [3, 3.1]."
    }
    assert client.get("/swagger.json?version=2.0").status_code == 404
    assert client.get("/swagger.json?version=3").status_code == 200
    assert client.get("/swagger.json?version=9").get_json() == {
        "message": "Swagger version [9] is not valid. Supported versions: [3, 3.1]."
    }


@pytest.mark.parametrize(
    ("filename", "version"),
    [
        ("swagger.json", "2"),
        ("swagger2.json", "2"),
        ("swagger3.json", "3"),
        ("swagger3.1.json", "3.1"),
    ],
)
def test_user_swagger_file_replaces_only_its_version(
    tmp_path: Path, filename: str, version: str
) -> None:
    (tmp_path / filename).write_text('{ "mine" :  true }', encoding="utf-8")
    client = make_client(tmp_path, PLAIN)
    response = client.get(f"/swagger.json?version={version}")
    assert response.data == b'{"mine": true}'  # parsed and re-serialised
    for other in {"2", "3", "3.1"} - {version}:
        assert "mine" not in client.get(f"/swagger.json?version={other}").get_json()


def test_swagger_json_wins_over_swagger2_json(tmp_path: Path) -> None:
    (tmp_path / "swagger.json").write_text('{"file": 1}', encoding="utf-8")
    (tmp_path / "swagger2.json").write_text('{"file": 2}', encoding="utf-8")
    assert make_client(tmp_path, PLAIN).get("/swagger.json").get_json() == {"file": 1}


def test_user_file_makes_an_unsupported_version_available(tmp_path: Path) -> None:
    (tmp_path / "swagger2.json").write_text('{"hand": "written"}', encoding="utf-8")
    assert make_client(tmp_path, MIXED).get("/swagger.json").get_json() == {"hand": "written"}


def test_user_swagger_file_with_bad_json_stops_start_up_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "swagger3.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(EntryScriptError, match=r"swagger file .*swagger3\.json cannot be used"):
        make_client(tmp_path, PLAIN)


def test_documents_are_served_as_compact_json_dumps(tmp_path: Path) -> None:
    data = make_client(tmp_path, PLAIN).get("/swagger.json").data
    assert data == json.dumps(json.loads(data)).encode()
