"""``modelstore score``: one request through the serving app, no server, as a real subprocess."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "fixtures" / "scripts"
TINY_PNG = REPO / "fixtures" / "images" / "tiny.png"
SERVING_VARIABLES = {
    "AML_APP_ROOT",
    "AZUREML_MODEL_DIR",
    "AZUREML_ENTRY_SCRIPT",
    "AML_CORS_ORIGINS",
    "SCORING_TIMEOUT_MS",
    "MODELSTORE_HOME",
    "MODELSTORE_DB_URL",
}

SCRIPT_ERROR = "An unexpected error occurred in scoring script. Check the logs for more info."
ECHO_SCRIPT = """
    import json

    def init():
        print("echo script ready")

    def run(data, request_headers):
        return {"data": data, "custom": request_headers.get("X-Custom")}
"""


def score(
    *args: str, cwd: Path, home: Path | None = None, stdin: bytes | None = None, **env: str
) -> subprocess.CompletedProcess[bytes]:
    environment = {k: v for k, v in os.environ.items() if k not in SERVING_VARIABLES}
    environment["MODELSTORE_HOME"] = str(home or cwd / "home")
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "modelstore", "score", *args],
        cwd=cwd,
        env=environment,
        input=stdin,
        capture_output=True,
        timeout=120,
    )


def write_script(folder: Path, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "score.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = importlib.util.spec_from_file_location("make_models", REPO / "fixtures/make_models.py")
    assert spec is not None and spec.loader is not None
    make_models = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_models)
    folder = tmp_path_factory.mktemp("models")
    make_models.write_regression_model(folder)
    make_models.write_multi_models(folder)
    return folder


def test_powerbi_script_prints_status_line_and_results(models_dir: Path, tmp_path: Path) -> None:
    body = {"Inputs": {"input1": [[1.0] * 10], "input2": [{"name": "a", "age": 1}], "input3": 0}}

    result = score(
        "--entry-script",
        str(SCRIPTS / "powerbi" / "score.py"),
        "--model-dir",
        str(models_dir),
        "--data",
        json.dumps(body),
        cwd=tmp_path,
    )

    status, answer = result.stdout.decode().splitlines()
    assert result.returncode == 0, result.stderr.decode()
    assert status == "HTTP/1.1 200 OK"
    assert len(json.loads(answer)["Results"]) == 1


def test_a_non_2xx_answer_exits_1_and_prints_the_servers_body(tmp_path: Path) -> None:
    script = write_script(
        tmp_path, "def init():\n    pass\n\ndef run(data):\n    raise ValueError\n"
    )

    result = score("--entry-script", str(script), "--data", "{}", cwd=tmp_path)

    assert result.returncode == 1
    assert result.stdout.decode().splitlines() == [
        "HTTP/1.1 500 INTERNAL SERVER ERROR",
        json.dumps({"message": SCRIPT_ERROR}),
    ]


def test_stdout_holds_only_the_answer_and_the_scripts_prints_go_to_the_log(tmp_path: Path) -> None:
    script = write_script(tmp_path, ECHO_SCRIPT)

    result = score("--entry-script", str(script), "--data", '{"a": 1}', cwd=tmp_path)

    assert result.stdout.decode().splitlines() == [
        "HTTP/1.1 200 OK",
        '{"data": "{\\"a\\": 1}", "custom": null}',
    ]
    assert "echo script ready" in result.stderr.decode()


def test_data_from_a_file_and_from_stdin_is_sent_as_is(tmp_path: Path) -> None:
    script = write_script(tmp_path, ECHO_SCRIPT)
    (tmp_path / "body.json").write_bytes(b'{"from": "file"}')

    from_file = score("--entry-script", str(script), "--data", "@body.json", cwd=tmp_path)
    from_stdin = score("--entry-script", str(script), "--data", "@-", cwd=tmp_path, stdin=b"raw")

    assert json.loads(from_file.stdout.decode().splitlines()[1])["data"] == '{"from": "file"}'
    assert json.loads(from_stdin.stdout.decode().splitlines()[1])["data"] == "raw"


def warnings_in(result: subprocess.CompletedProcess[bytes]) -> list[str]:
    return [line for line in result.stderr.decode().splitlines() if line.startswith("Warning: ")]


def test_a_post_without_data_warns_and_still_sends_an_empty_body(tmp_path: Path) -> None:
    script = write_script(tmp_path, ECHO_SCRIPT)

    result = score("--entry-script", str(script), cwd=tmp_path)

    assert result.returncode == 0
    assert json.loads(result.stdout.decode().splitlines()[1])["data"] == ""
    assert warnings_in(result) == [
        "Warning: no --data given: POST /score is sent with an empty body; give the body with "
        "--data JSON, --data @FILE or --data @- (stdin)"
    ]


def test_data_that_is_not_json_while_declared_json_warns_and_is_sent_as_is(
    tmp_path: Path,
) -> None:
    script = write_script(tmp_path, ECHO_SCRIPT)

    result = score("--entry-script", str(script), "--data", '{"a": 1,}', cwd=tmp_path)

    assert result.returncode == 0
    assert json.loads(result.stdout.decode().splitlines()[1])["data"] == '{"a": 1,}'
    assert warnings_in(result) == [
        "Warning: --data is not valid JSON (Expecting property name enclosed in double quotes "
        "at line 1, column 9) but is sent as is with Content-Type application/json; fix the "
        "JSON, or pass --content-type text/plain for a text body"
    ]


@pytest.mark.parametrize(
    "options",
    [
        ["--data", '{"a": [1, 2]}'],
        ["--data", "plain words", "--content-type", "text/plain"],
        ["--data", "plain words", "--header", "Content-Type: text/csv"],
        ["--method", "GET"],
    ],
)
def test_json_data_a_declared_text_body_or_a_get_gets_no_warning(
    tmp_path: Path, options: list[str]
) -> None:
    script = write_script(tmp_path, ECHO_SCRIPT)

    result = score("--entry-script", str(script), *options, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert warnings_in(result) == []


def test_score_help_says_what_body_is_sent() -> None:
    help_text = subprocess.run(
        [sys.executable, "-m", "modelstore", "score", "--help"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    words = " ".join(help_text.split())
    assert "The body sent is --data exactly as given, with Content-Type application/json" in words
    assert "Without --data a POST sends an empty body" in words


def test_get_with_a_query_and_headers_reaches_run_and_include_prints_headers(
    tmp_path: Path,
) -> None:
    script = write_script(tmp_path, ECHO_SCRIPT)

    result = score(
        "--entry-script",
        str(script),
        "--method",
        "GET",
        "--query",
        "data=[1,2]&s=text",
        "--header",
        "X-Custom: hello",
        "--header",
        "x-request-id: my-id",
        "-i",
        cwd=tmp_path,
    )

    lines = result.stdout.decode().splitlines()
    assert result.returncode == 0
    assert lines[0] == "HTTP/1.1 200 OK"
    assert "x-request-id: my-id" in lines
    assert json.loads(lines[-1]) == {"data": '{"data": [1, 2], "s": "text"}', "custom": "hello"}


def test_file_uploads_reach_a_rawhttp_script_as_multipart(tmp_path: Path) -> None:
    result = score(
        "--entry-script",
        str(SCRIPTS / "rawhttp_image" / "score.py"),
        "--file",
        f"image={TINY_PNG}",
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().splitlines() == ["HTTP/1.1 200 OK", "[12, 7]"]


def test_registry_models_are_deployed_for_the_request_and_removed_after(
    models_dir: Path, tmp_path: Path
) -> None:
    from modelstore import Registry

    home = tmp_path / "home"
    registry = Registry(home)
    registry.register(models_dir / "my_first_model.pkl", "my_first_model")
    for _ in range(2):
        registry.register(models_dir / "my_second_model.pkl", "my_second_model")
    scratch = tmp_path / "tmp"
    scratch.mkdir()

    result = score(
        "--entry-script",
        str(SCRIPTS / "multi_model" / "score.py"),
        "--model",
        "my_first_model:1",
        "--model",
        "my_second_model:2",
        "--data",
        json.dumps({"data": [[0.0] * 10]}),
        cwd=tmp_path,
        home=home,
        TMPDIR=str(scratch),
    )

    assert result.returncode == 0, result.stderr.decode()
    assert set(json.loads(result.stdout.decode().splitlines()[1])) == {
        "my_first_model",
        "my_second_model",
    }
    assert not list(scratch.iterdir())


def test_a_missing_script_exits_3_with_one_error_line(tmp_path: Path) -> None:
    result = score("--entry-script", "missing.py", "--data", "{}", cwd=tmp_path)

    assert result.returncode == 3
    assert result.stdout == b""
    last = result.stderr.decode().strip().splitlines()[-1]
    assert last.startswith("Error: entry script ") and "missing.py does not exist" in last


def test_an_init_failure_exits_3(tmp_path: Path) -> None:
    script = write_script(tmp_path, "def init():\n    1 / 0\n\ndef run(data):\n    pass\n")

    result = score("--entry-script", str(script), cwd=tmp_path)

    assert result.returncode == 3
    assert "ZeroDivisionError" in result.stderr.decode().strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("option", "value", "complaint"),
    [
        ("--header", "no-colon", "must look like 'Name: value'"),
        ("--file", "image", "must look like FIELD=PATH"),
        ("--file", "image=nothing.png", "is not a readable file"),
        ("--data", "@nothing.json", "cannot read nothing.json"),
    ],
)
def test_malformed_request_options_are_one_line_and_exit_2(
    tmp_path: Path, option: str, value: str, complaint: str
) -> None:
    script = write_script(tmp_path, ECHO_SCRIPT)

    result = score("--entry-script", str(script), option, value, cwd=tmp_path)

    assert result.returncode == 2
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and complaint in lines[0]


def test_a_set_cookie_answer_is_printed_as_the_server_sends_it(tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        """
        from azureml.contrib.services.aml_response import AMLResponse

        def init():
            pass

        def run(data):
            expires = "a=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT"
            return AMLResponse("ok", 200, {"Set-Cookie": expires})
        """,
    )

    result = score("--entry-script", str(script), "--data", "{}", "-i", cwd=tmp_path)

    lines = result.stdout.decode().splitlines()
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert lines[0] == "HTTP/1.1 200 OK"
    # AMLResponse splits header values at commas (docs/server.md): two Set-Cookie lines, as served.
    assert "Set-Cookie: a=1; Expires=Wed" in lines
    assert "Set-Cookie: 21 Oct 2015 07:28:00 GMT" in lines
    assert lines[-1] == "ok"


def test_a_relative_entry_script_is_looked_up_from_the_current_folder_as_the_error_says(
    tmp_path: Path,
) -> None:
    app_root = tmp_path / "app"
    write_script(app_root / "src", ECHO_SCRIPT)
    launch = tmp_path / "launch"
    launch.mkdir()

    result = score(
        "--entry-script", "src/score.py", "--data", "{}", cwd=launch, AML_APP_ROOT=str(app_root)
    )

    assert result.returncode == 3
    last = result.stderr.decode().strip().splitlines()[-1]
    # Like azmlinfsrv's realpath(--entry_script): the launch folder, not AML_APP_ROOT.
    missing = launch.resolve() / "src" / "score.py"
    assert last == f"Error: entry script {missing} does not exist; pass the path of your score.py"


def test_a_scripts_own_log_warning_keeps_its_level_and_logger_name_as_in_azmlinfsrv(
    tmp_path: Path,
) -> None:
    script = write_script(
        tmp_path,
        """
        import logging

        def init():
            pass

        def run(data):
            logging.getLogger("mine").warning("warned")
            return "ok"
        """,
    )

    result = score("--entry-script", str(script), "--data", "{}", cwd=tmp_path)

    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert "WARNING:mine:warned" in result.stderr.decode().splitlines()


def test_score_resolves_its_settings_once_from_options_environment_and_launch_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process, to see the one resolver at work: the options given, this process's
    environment and the launch directory go in; the script sees what it exports."""
    from click.testing import CliRunner

    from modelstore.cli import main
    from modelstore.serving.settings import ServingSettings

    write_script(
        tmp_path / "src",
        """
        import os

        def init():
            pass

        def run(data):
            names = ("AML_APP_ROOT", "AZUREML_ENTRY_SCRIPT", "AZUREML_MODEL_DIR")
            return {name: os.environ.get(name) for name in names}
        """,
    )
    calls: list[ServingSettings] = []
    original = ServingSettings.resolve.__func__  # type: ignore[attr-defined]

    def spy(cls: type[ServingSettings], *args: Any, **kwargs: Any) -> ServingSettings:
        settings: ServingSettings = original(cls, *args, **kwargs)
        calls.append(settings)
        return settings

    monkeypatch.setattr(ServingSettings, "resolve", classmethod(spy))
    for name in SERVING_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODELSTORE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SCORING_TIMEOUT_MS", "2500")
    monkeypatch.chdir(tmp_path)

    result = CliRunner().invoke(
        main,
        ["score", "--entry-script", "src/score.py", "--model-dir", "m", "--data", "{}",
         "--max-body", "2"],
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    [settings] = calls
    assert settings.entry_script == tmp_path / "src" / "score.py"
    assert (settings.app_root, settings.model_dir) == (tmp_path, "m")
    assert (settings.scoring_timeout_ms, settings.max_body_bytes) == (2500, 2 * 1024 * 1024)
    status, body = result.stdout.split("\n", 1)
    assert status == "HTTP/1.1 200 OK"
    assert json.loads(body) == {
        "AML_APP_ROOT": str(tmp_path),
        "AZUREML_ENTRY_SCRIPT": str(tmp_path / "src" / "score.py"),
        "AZUREML_MODEL_DIR": "m",
    }
