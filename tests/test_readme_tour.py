"""The README's tour runs as written, from a copy of a clean checkout.

The tour is the first thing a user copies; when it drifts from the code (a missing file, a model
of the wrong shape, a server left running) the user is the one who finds out. So this test
takes the fenced blocks between ``<!-- tour:begin -->`` and ``<!-- tour:end -->`` out of
README.md, verbatim, and runs them for real: the bash block under ``bash -euo pipefail`` with
this virtualenv on PATH, then the Python block, in a temporary folder holding a copy of
``fixtures/``, with a temporary registry.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
TOUR = re.compile(r"<!-- tour:begin -->\n(.*?)<!-- tour:end -->", re.S)
FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)
# Variables of the developer's own shell that would point the tour at another registry or
# deployment.
FOREIGN = {"AML_APP_ROOT", "AZUREML_MODEL_DIR", "MODELSTORE_HOME", "MODELSTORE_DB_URL"}
TIMEOUT_S = 240


def tour_blocks(readme: str) -> dict[str, str]:
    """The tour's fenced blocks by language; exactly one bash and one python block."""
    marked = TOUR.findall(readme)
    assert len(marked) == 1, "README.md needs exactly one <!-- tour:begin --> ... end section"
    blocks = FENCE.findall(marked[0])
    languages = [language for language, _ in blocks]
    assert languages == ["bash", "python"], f"the tour's blocks are {languages}"
    return dict(blocks)


def bin_dir_with_modelstore(tmp_path: Path) -> Path:
    """This interpreter's bin folder, which holds ``modelstore`` once the package is installed.

    A source tree used without ``pip install`` has no console script; a one-line stand-in that
    runs ``python -m modelstore`` (the same entry point) keeps the tour runnable there.
    """
    bin_dir = Path(sys.executable).parent
    if (bin_dir / "modelstore").exists():
        return bin_dir
    shim_dir = tmp_path / "bin"
    shim_dir.mkdir()
    shim = shim_dir / "modelstore"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m modelstore "$@"\n', encoding="utf-8")
    shim.chmod(0o755)
    return shim_dir


def run_in_own_session(
    argv: list[str], cwd: Path, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], bool]:
    """Run ``argv`` in a new session; report whether any process of it outlived the command.

    The tour starts ``modelstore serve`` in the background and must stop it. Whatever it leaves
    behind is still in the session's process group: that is checked, then killed, so a broken
    tour never leaks a server into the test run.
    """
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"{argv[0]} did not finish in {TIMEOUT_S} s\n{stdout}\n{stderr}")
    try:
        os.killpg(process.pid, signal.SIGKILL)
        leaked = True
    except ProcessLookupError:
        leaked = False
    return subprocess.CompletedProcess(argv, process.returncode, stdout, stderr), leaked


def explain(result: subprocess.CompletedProcess[str], work: Path) -> str:
    log = work / "tour" / "serve.log"
    server_log = log.read_text(encoding="utf-8") if log.exists() else "(no serve.log)"
    return (
        f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        f"\n--- tour/serve.log\n{server_log}"
    )


@pytest.mark.slow
def test_the_readme_tour_runs_as_written_and_stops_its_server(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("the tour calls the server with curl, which is not installed")
    blocks = tour_blocks(README.read_text(encoding="utf-8"))
    work = tmp_path / "checkout"
    work.mkdir()
    shutil.copytree(
        REPO / "fixtures", work / "fixtures", ignore=shutil.ignore_patterns("__pycache__")
    )
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN}
    env["PATH"] = f"{bin_dir_with_modelstore(tmp_path)}{os.pathsep}{env.get('PATH', '')}"
    env["MODELSTORE_HOME"] = str(tmp_path / "not-the-tour-registry")  # the tour sets its own
    env["TMPDIR"] = str(tmp_path)  # modelstore exec's temporary deployment lands here too

    bash = ["bash", "-euo", "pipefail", "-c", blocks["bash"]]
    shell, leaked = run_in_own_session(bash, work, env)
    assert shell.returncode == 0, explain(shell, work)
    assert not leaked, "the tour left a process running:\n" + explain(shell, work)

    registry = work / "tour" / "registry"
    lines = shell.stdout.splitlines()
    first = registry / "azureml-models" / "my_first_model" / "1" / "my_first_model.pkl"
    assert f"Registered my_first_model:1  ->  {first}" in lines
    deployed = work / "tour" / "app" / "azureml-models" / "my_second_model" / "2"
    assert str(deployed / "my_second_model.pkl") in lines  # get_model_path inside the deployment
    answers = [json.loads(line) for line in lines if line.startswith('{"my_first_model"')]
    assert len(answers) == 2  # modelstore score, then the server
    for answer in answers:
        assert sorted(answer) == ["my_first_model", "my_second_model"]
        assert all(len(predictions) == 1 for predictions in answer.values())
    assert "500" in lines  # the POST without Content-Type: application/json
    assert not (tmp_path / "not-the-tour-registry").exists()

    script = tmp_path / "tour.py"
    script.write_text(blocks["python"], encoding="utf-8")
    env["MODELSTORE_HOME"] = str(registry)  # "in the same shell"
    python, leaked = run_in_own_session([sys.executable, str(script)], work, env)
    assert python.returncode == 0, explain(python, work)
    assert not leaked
    printed = python.stdout.splitlines()
    assert printed[0] == "sklearn_regression_model:1"
    stored = registry / "azureml-models" / "sklearn_regression_model" / "1"
    assert printed[1] == str(stored / "sklearn_regression_model.pkl")
    app = work / "tour" / "app-py"
    assert json.loads(printed[2].replace("'", '"')) == {
        "AML_APP_ROOT": str(app),
        "AZUREML_MODEL_DIR": str(app / "azureml-models"),
    }
    second = registry / "azureml-models" / "my_second_model"
    assert printed[3:] == [
        str(second / "2" / "my_second_model.pkl"),
        str(second / "1" / "my_second_model.pkl"),
    ]
