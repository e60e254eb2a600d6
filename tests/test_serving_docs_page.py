"""GET /docs: Swagger UI over the server's own /swagger.json, offline, and ``--no-docs``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from serving_helpers import make_client
from test_serve_http import clean_environment, running, write_script

from modelstore.serving.docs_page import MISSING_ASSETS

pytest.importorskip("flask_swagger_ui")

PLAIN = "def init():\n    pass\n\ndef run(data):\n    return data\n"


def _config(html: str) -> dict[str, list[dict[str, str]]]:
    match = re.search(r'<script id="docs-config" type="application/json">(.*?)</script>', html)
    assert match, html
    config: dict[str, list[dict[str, str]]] = json.loads(match.group(1))
    return config


def test_docs_page_loads_the_servers_own_swagger_json_from_local_assets(tmp_path: Path) -> None:
    client = make_client(tmp_path, PLAIN)
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    urls = [item["url"] for item in _config(html)["urls"]]
    assert urls == [
        "/swagger.json?version=3",
        "/swagger.json?version=3.1",
        "/swagger.json?version=2",
    ]
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(source.startswith("/docs/assets/") for source in sources), sources
    for source in sources:
        asset = client.get(source)
        assert asset.status_code == 200, source
        assert len(asset.data) > 5_000
    for url in urls:
        assert client.get(url).status_code == 200


def test_docs_page_runs_no_inline_script_and_says_so_in_its_policy(tmp_path: Path) -> None:
    """So it keeps to its ``script-src 'self'`` policy: every script is a file, or JSON data.
    (tests/test_ui_browser.py fails on any policy violation Chromium reports.)"""
    answer = make_client(tmp_path, PLAIN).get("/docs")
    assert "script-src 'self';" in answer.headers["Content-Security-Policy"]
    html = answer.get_data(as_text=True)
    tags = re.findall(r"<script[^>]*>", html)
    assert len(tags) == 4, tags
    for tag in tags:
        assert ' src="/docs/assets/' in tag or 'type="application/json"' in tag, tag
    assert "modelstore-docs.js" in html


RAWHTTP = """
from azureml.contrib.services.aml_request import rawhttp

def init():
    pass

@rawhttp
def run(request):
    return request.get_data()
"""
SCHEMA = """
from inference_schema.schema_decorators import input_schema
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType

def init():
    pass

@input_schema("data", StandardPythonParameterType([1, 2, 3]))
def run(data):
    return data
"""


@pytest.mark.parametrize(
    ("source", "mode"),
    [(RAWHTTP, "raw request"), (SCHEMA, "object"), (PLAIN, "JSON string")],
    ids=["rawhttp", "inference-schema", "plain"],
)
def test_docs_script_json_tells_the_page_the_scripts_input_mode(
    tmp_path: Path, source: str, mode: str
) -> None:
    if source is SCHEMA:
        pytest.importorskip("inference_schema")
    answer = make_client(tmp_path, source).get("/docs/script.json")
    assert answer.status_code == 200
    assert answer.json == {"input_mode": mode}


def test_docs_assets_serve_only_the_swagger_ui_files(tmp_path: Path) -> None:
    client = make_client(tmp_path, PLAIN)
    assert client.get("/docs/assets/oauth2-redirect.html").status_code == 404
    assert client.get("/docs/assets/..%2f__init__.py").status_code == 404


def test_service_name_is_escaped_in_the_docs_page(tmp_path: Path) -> None:
    client = make_client(tmp_path, PLAIN, service_name='</title><script>alert("x")</script>')
    html = client.get("/docs").get_data(as_text=True)
    assert "<script>alert" not in html
    assert "&lt;/title&gt;&lt;script&gt;" in html


def test_no_docs_setting_leaves_the_route_out(tmp_path: Path) -> None:
    client = make_client(tmp_path, PLAIN, docs_page=False)
    answer = client.get("/docs")
    assert answer.status_code == 404
    assert answer.is_json  # the server's usual JSON 404, as azmlinfsrv answers unknown paths
    assert client.get("/docs/assets/swagger-ui.css").status_code == 404
    assert client.get("/docs/assets/modelstore-docs.js").status_code == 404
    assert client.get("/docs/script.json").status_code == 404


def test_docs_page_without_the_ui_extra_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(tmp_path, PLAIN)
    monkeypatch.setitem(__import__("sys").modules, "flask_swagger_ui", None)  # import fails
    answer = client.get("/docs")
    assert answer.status_code == 501
    assert answer.get_data(as_text=True) == MISSING_ASSETS + "\n"
    assert "pip install 'modelstore[ui]'" in MISSING_ASSETS


def test_serve_no_docs_option_turns_the_page_off(tmp_path: Path) -> None:
    script = write_script(tmp_path, PLAIN)
    env = clean_environment(tmp_path / "home")
    with running(["--entry-script", str(script)], tmp_path / "on", cwd=tmp_path, env=env) as on:
        assert on.get("/docs").status_code == 200
    args = ["--entry-script", str(script), "--no-docs"]
    with running(args, tmp_path / "off", cwd=tmp_path, env=env) as off:
        assert off.get("/docs").status_code == 404
        assert off.get("/score", params={"data": "1"}).status_code == 200
