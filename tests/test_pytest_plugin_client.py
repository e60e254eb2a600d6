"""The client ``scoring_client`` returns: requests go in as a ``requests`` user writes them and
come back as the server answers them. Written with the plugin's fixtures, as users would."""

from __future__ import annotations

import io
import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from modelstore.errors import EntryScriptError
from modelstore.testing import ScoringClient, ScoringClientFactory

ECHO_SCRIPT = """
def init():
    pass

def run(data, request_headers):
    return {"data": data, "custom": request_headers.get("X-Custom")}
"""

RAW_SCRIPT = """
from azureml.contrib.services.aml_request import rawhttp
from azureml.contrib.services.aml_response import AMLResponse

def init():
    pass

@rawhttp
def run(request):
    if request.method == "GET" and request.args.get("binary"):
        return AMLResponse(b"\\x89PNG-bytes", 200, {"Content-Type": "image/png"})
    files = {
        field: {"filename": f.filename, "type": f.mimetype, "size": len(f.read())}
        for field, f in request.files.items()
    }
    return {"files": files, "form": dict(request.form), "method": request.method}
"""


def script(folder: Path, text: str, name: str = "score.py") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


@pytest.fixture
def echo(tmp_path: Path, scoring_client: ScoringClientFactory) -> ScoringClient:
    return scoring_client(script(tmp_path, ECHO_SCRIPT))


@pytest.fixture
def raw(tmp_path: Path, scoring_client: ScoringClientFactory) -> ScoringClient:
    return scoring_client(script(tmp_path, RAW_SCRIPT))


def test_json_is_sent_as_requests_sends_it_with_key_order_kept(echo: ScoringClient) -> None:
    response = echo.post(json={"zeta": 1, "alpha": [1.5, None]})
    assert response.status_code == 200
    assert response.json()["data"] == '{"zeta": 1, "alpha": [1.5, null]}'


def test_json_none_sends_the_json_null(echo: ScoringClient) -> None:
    assert echo.post(json=None).json()["data"] == "null"


def test_a_content_type_header_given_with_json_is_kept_as_requests_keeps_it(
    tmp_path: Path, scoring_client: ScoringClientFactory
) -> None:
    client = scoring_client(script(tmp_path, CONTENT_TYPE_SCRIPT))
    given = "application/json; charset=utf-8"
    response = client.post(json={"a": 1}, headers={"content-type": given})
    assert response.json() == {"type": given, "body": '{"a": 1}'}
    assert client.post(json={"a": 1}).json()["type"] == "application/json"


CONTENT_TYPE_SCRIPT = """
from azureml.contrib.services.aml_request import rawhttp

def init():
    pass

@rawhttp
def run(request):
    return {"type": request.headers.get("Content-Type"), "body": request.get_data(as_text=True)}
"""


def test_data_is_sent_as_the_raw_body(echo: ScoringClient) -> None:
    assert echo.post(data="not json at all").json()["data"] == "not json at all"
    assert echo.post(data=b"bytes too").json()["data"] == "bytes too"


def test_the_server_answers_bad_input_as_modelstore_serve_does(echo: ScoringClient) -> None:
    response = echo.post(data=b"\xff\xfe")
    assert response.status_code == 400
    assert response.json()["message"].startswith("Input cannot be decoded as UTF-8")
    assert response.headers["x-ms-run-function-failed"] == "False"


def test_headers_reach_run_and_response_headers_are_case_insensitive(echo: ScoringClient) -> None:
    response = echo.post(data="x", headers={"X-Custom": "42", "x-request-id": "my-id"})
    assert response.json()["custom"] == "42"
    assert response.headers["X-Request-Id"] == response.headers["x-request-id"] == "my-id"
    assert response.headers["Content-Type"] == "application/json"


def test_get_sends_params_as_the_query(echo: ScoringClient) -> None:
    response = echo.get(params={"data": "[1, 2]", "name": "text"})
    assert json.loads(response.json()["data"]) == {"data": [1, 2], "name": "text"}


def test_the_health_route_and_text_body(echo: ScoringClient) -> None:
    response = echo.get("/")
    assert (response.status_code, response.text) == (200, "Healthy")
    assert response.content == b"Healthy"
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_options_does_not_call_run(echo: ScoringClient) -> None:
    response = echo.options()
    assert (response.status_code, response.content) == (200, b"")
    assert response.headers["x-ms-run-function-failed"] == "False"


def test_files_are_uploaded_as_multipart_with_form_fields(raw: ScoringClient) -> None:
    upload = io.BytesIO(b"12345")
    upload.name = "/somewhere/photo.jpg"
    response = raw.post(
        files={
            "image": ("tiny.png", b"\x89PNG\r\n", "image/png"),
            "photo": upload,
            "note": ("note.txt", "hello"),
        },
        data={"caption": "a cat"},
    )
    assert response.json() == {
        "files": {
            "image": {"filename": "tiny.png", "type": "image/png", "size": 6},
            "photo": {"filename": "photo.jpg", "type": "image/jpeg", "size": 5},
            "note": {"filename": "note.txt", "type": "text/plain", "size": 5},
        },
        "form": {"caption": "a cat"},
        "method": "POST",
    }


def test_binary_responses_keep_their_bytes(raw: ScoringClient) -> None:
    response = raw.get(params={"binary": "1"})
    assert response.content == b"\x89PNG-bytes"
    assert response.headers["Content-Type"] == "image/png"


def test_other_methods_go_through_request(raw: ScoringClient) -> None:
    assert raw.request("PUT", "/score").status_code == 405


def test_json_with_data_is_a_usage_error(echo: ScoringClient) -> None:
    with pytest.raises(TypeError, match="either json= or data="):
        echo.post(json={}, data="x")


def test_settings_are_those_of_modelstore_serve(
    tmp_path: Path, scoring_client: ScoringClientFactory
) -> None:
    client = scoring_client(script(tmp_path, ECHO_SCRIPT), cors_origins="https://a.example")
    response = client.post(data="x", headers={"Origin": "https://a.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "https://a.example"


def test_a_script_in_the_fake_filesystem_loads_even_with_fs_requested_first(
    fs: object, fake_model_registry: object, scoring_client: ScoringClientFactory
) -> None:
    os.makedirs("/app")
    Path("/app/score.py").write_text("def init():\n    pass\n\ndef run(data):\n    return 'fake'\n")
    assert scoring_client("/app/score.py").post(data="x").json() == "fake"


def test_a_real_script_is_found_next_to_the_test_file_under_pyfakefs(
    fs: object, scoring_client: ScoringClientFactory
) -> None:
    gallery = Path(__file__).parent.parent / "fixtures" / "scripts" / "trivial" / "score.py"
    relative = os.path.relpath(gallery, Path(__file__).parent)
    client = scoring_client(relative)
    assert client.post(json={"data": [1, 2, 3]}).json() == {"items": 3}


def test_variables_the_test_sets_before_loading_reach_the_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scoring_client: ScoringClientFactory
) -> None:
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path / "hand-made"))
    reader = script(
        tmp_path,
        "import os\n\ndef init():\n    pass\n\ndef run(data):\n"
        "    return os.environ['AZUREML_MODEL_DIR']\n",
    )
    assert scoring_client(reader).post(data="").json() == str(tmp_path / "hand-made")


def test_get_model_path_outside_a_deployment_answers_from_the_test_registry(
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    scoring_client: ScoringClientFactory,
) -> None:
    from modelstore import Registry

    home = Path(os.environ.get("MODELSTORE_HOME", "/not/set"))
    assert home.is_relative_to(tmp_path_factory.getbasetemp())  # never the user's registry
    (tmp_path / "model.pkl").write_bytes(b"w")
    with Registry() as registry:  # MODELSTORE_HOME is already the test's own registry
        registry.register(tmp_path / "model.pkl", name="m")
    resolver = script(
        tmp_path,
        "from modelstore import get_model_path\n\ndef init():\n    pass\n\ndef run(data):\n"
        "    return get_model_path('m')\n",
    )
    answer = scoring_client(resolver).post(data="").json()
    assert answer.endswith("azureml-models/m/1/model.pkl")
    assert answer.startswith(os.environ["MODELSTORE_HOME"])


def test_a_run_past_the_scoring_timeout_is_answered_as_the_server_does(
    tmp_path: Path, scoring_client: ScoringClientFactory
) -> None:
    sleeper = script(
        tmp_path,
        "import time\n\ndef init():\n    pass\n\ndef run(data):\n    time.sleep(5)\n",
    )
    response = scoring_client(sleeper, scoring_timeout_ms=100).post(data="")
    assert response.status_code == 500
    assert response.json() == {"message": "Scoring timeout after 100 ms"}
    assert response.headers["x-ms-run-function-failed"] == "True"


def test_on_pyfakefs_a_sibling_module_only_in_the_fake_filesystem_is_explained(
    fs: Any, scoring_client: ScoringClientFactory
) -> None:
    fs.create_file("/app/helper.py", contents="X = 1\n")
    fs.create_file("/app/score.py", contents="import helper\n\ndef init():\n    pass\n")
    with pytest.raises(EntryScriptError, match="No module named 'helper'") as caught:
        scoring_client("/app/score.py")
    assert "a module the script imports must exist on the real disk" in str(caught.value)


def test_a_set_cookie_answer_reaches_the_test_as_the_server_sends_it(
    tmp_path: Path, scoring_client: ScoringClientFactory
) -> None:
    client = scoring_client(
        script(
            tmp_path,
            """
            from azureml.contrib.services.aml_response import AMLResponse

            def init():
                pass

            COOKIE = "a=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT"

            def run(data):
                return AMLResponse("ok", 200, {"Set-Cookie": COOKIE})
            """,
        )
    )

    response = client.post(json={})

    assert response.status_code == 200 and response.text == "ok"
    # AMLResponse splits header values at commas (docs/server.md): two Set-Cookie lines, as served.
    assert response.headers.getlist("Set-Cookie") == [
        "a=1; Expires=Wed",
        "21 Oct 2015 07:28:00 GMT",
    ]


def test_scoring_client_settings_come_from_the_one_resolver(
    scoring_client: ScoringClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelstore.serving.settings import ServingSettings

    calls: list[dict[str, Any]] = []
    original = ServingSettings.resolve.__func__  # type: ignore[attr-defined]

    def spy(cls: type[ServingSettings], *args: Any, **kwargs: Any) -> ServingSettings:
        settings: ServingSettings = original(cls, *args, **kwargs)
        calls.append(settings.model_dump())
        return settings

    monkeypatch.setattr(ServingSettings, "resolve", classmethod(spy))
    monkeypatch.setenv("SCORING_TIMEOUT_MS", "2500")
    path = script(tmp_path, ECHO_SCRIPT)

    client = scoring_client(path, service_name="svc")

    assert client.post(json={"a": 1}).status_code == 200
    assert len(calls) == 1
    assert (calls[0]["entry_script"], calls[0]["scoring_timeout_ms"]) == (path, 2500)
    assert calls[0]["service_name"] == "svc"


# --- from_deployment: a v2 deployment YAML ------------------------------------------------------

V2_ENV_SCRIPT = """
import os

def init():
    pass

def run(data):
    names = ["AML_APP_ROOT", "AZUREML_ENTRY_SCRIPT", "AZUREML_MODEL_DIR", "COLOR"]
    model = os.path.join(os.environ["AZUREML_MODEL_DIR"], "weights", "w.txt")
    with open(model) as handle:
        weights = handle.read()
    return {"env": {n: os.environ.get(n) for n in names}, "cwd": os.getcwd(), "w": weights}
"""

V2_DEPLOYMENT = """\
name: blue
endpoint_name: e
instance_type: Standard_DS3_v2
model:
  path: weights
code_configuration:
  code: src
  scoring_script: score.py
environment_variables:
  COLOR: blue
"""


def _v2_project(root: Path) -> Path:
    (root / "weights").mkdir(parents=True)
    (root / "weights" / "w.txt").write_text("0.5")
    (root / "src").mkdir()
    (root / "src" / "score.py").write_text(V2_ENV_SCRIPT)
    (root / "blue.yml").write_text(V2_DEPLOYMENT)
    return root / "blue.yml"


def _check_v2_answer(client: ScoringClient) -> None:
    body = client.post(json={}).json()
    env = body["env"]
    app_root = os.path.dirname(env["AML_APP_ROOT"])
    assert env["AML_APP_ROOT"].endswith("/src")
    assert env["AZUREML_ENTRY_SCRIPT"] == "score.py"
    assert env["AZUREML_MODEL_DIR"].startswith(f"{app_root}/azureml-models/")
    assert env["AZUREML_MODEL_DIR"].endswith("/1")
    assert env["COLOR"] == "blue"
    assert body["cwd"] == env["AML_APP_ROOT"]
    assert body["w"] == "0.5"


def test_from_deployment_gives_the_script_the_v2_environment(
    tmp_path: Path, scoring_client: ScoringClientFactory
) -> None:
    _check_v2_answer(scoring_client.from_deployment(_v2_project(tmp_path / "p")))


def test_from_deployment_works_on_a_fake_filesystem(
    fs: Any, scoring_client: ScoringClientFactory
) -> None:
    _check_v2_answer(scoring_client.from_deployment(_v2_project(Path("/project"))))


def test_from_deployment_refuses_a_second_deployment_in_one_test(
    tmp_path: Path, scoring_client: ScoringClientFactory
) -> None:
    from modelstore.errors import DeploymentRefusedError

    spec = _v2_project(tmp_path / "p")
    scoring_client.from_deployment(spec)
    with pytest.raises(DeploymentRefusedError, match="a test gets one deployment"):
        scoring_client.from_deployment(spec)


# --- from_endpoint: a v2 endpoint with several deployments ---------------------------------------

ENDPOINT_SCRIPT = """
import os

def init():
    pass

def run(data):
    return {"color": os.environ["COLOR"], "pid": os.getpid(), "cwd": os.getcwd()}
"""


def _endpoint_project(root: Path, traffic: str = "blue: 100\n  green: 0") -> list[Path]:
    """endpoint.yml and two deployments of one script, told apart by ``COLOR``."""
    (root / "src").mkdir(parents=True)
    (root / "src" / "score.py").write_text(ENDPOINT_SCRIPT)
    (root / "endpoint.yml").write_text(f"name: e\nauth_mode: key\ntraffic:\n  {traffic}\n")
    files = [root / "endpoint.yml"]
    for color in ("blue", "green"):
        deployment = V2_DEPLOYMENT.replace("name: blue", f"name: {color}")
        deployment = deployment.replace("COLOR: blue", f"COLOR: {color}")
        deployment = deployment.replace("model:\n  path: weights\n", "")
        (root / f"{color}.yml").write_text(deployment)
        files.append(root / f"{color}.yml")
    return files


def test_from_endpoint_routes_by_header_and_traffic_to_each_deployments_own_process(
    tmp_path: Path, scoring_client: ScoringClientFactory
) -> None:
    client = scoring_client.from_endpoint(*_endpoint_project(tmp_path / "p"))
    blue = client.post(json={})
    assert blue.status_code == 200
    assert blue.headers["azureml-model-deployment"] == "blue"  # traffic: blue 100
    green = client.post(json={}, headers={"azureml-model-deployment": "green"})
    assert green.headers["azureml-model-deployment"] == "green"
    assert green.json()["color"] == "green" and blue.json()["color"] == "blue"
    pids = {blue.json()["pid"], green.json()["pid"], os.getpid()}
    assert len(pids) == 3  # one process per deployment, neither of them the test's
    assert green.json()["cwd"].endswith("/src") and green.json()["cwd"] != os.getcwd()
    unknown = client.post(json={}, headers={"azureml-model-deployment": "red"})
    assert unknown.status_code == 404
    assert client.get("/").text == "Healthy"


def test_from_endpoint_traffic_and_seed_make_the_split_reproducible(
    tmp_path: Path, scoring_client: ScoringClientFactory
) -> None:
    files = _endpoint_project(tmp_path / "p")
    client = scoring_client.from_endpoint(*files, traffic={"blue": 50, "green": 50}, seed=7)
    chosen = [client.post(json={}).headers["azureml-model-deployment"] for _ in range(40)]
    assert set(chosen) == {"blue", "green"}
    again = scoring_client.from_endpoint(*files, traffic={"blue": 50, "green": 50}, seed=7)
    assert [again.post(json={}).headers["azureml-model-deployment"] for _ in range(40)] == chosen


def test_from_endpoint_with_auth_answers_401_without_one_of_its_keys(
    tmp_path: Path, scoring_client: ScoringClientFactory
) -> None:
    client = scoring_client.from_endpoint(*_endpoint_project(tmp_path / "p"), auth=True)
    assert client.post(json={}).status_code == 401
    assert len(client.keys) == 2
    keyed = client.post(json={}, headers={"Authorization": f"Bearer {client.keys[1]}"})
    assert keyed.status_code == 200


def test_from_endpoint_with_aml_token_auth_answers_401_without_its_token(
    tmp_path: Path, scoring_client: ScoringClientFactory
) -> None:
    """The in-process router must check what the endpoint's own router checks: before, it was
    given the keys only, so an aml_token endpoint let every request through."""
    files = _endpoint_project(tmp_path / "p")
    files[0].write_text(files[0].read_text().replace("auth_mode: key", "auth_mode: aml_token"))
    client = scoring_client.from_endpoint(*files, auth=True)
    assert client.keys == () and client.token is not None
    assert client.post(json={}).status_code == 401
    assert client.post(json={}, headers={"Authorization": "Bearer not-it"}).status_code == 401
    bearer = {"Authorization": f"Bearer {client.token.access_token}"}
    assert client.post(json={}, headers=bearer).status_code == 200


def test_from_endpoint_refuses_the_fake_filesystem(
    fs: Any, scoring_client: ScoringClientFactory
) -> None:
    from modelstore.errors import DeploymentRefusedError

    files = _endpoint_project(Path("/project"))
    with pytest.raises(DeploymentRefusedError, match="processes cannot see pyfakefs's files"):
        scoring_client.from_endpoint(*files)
