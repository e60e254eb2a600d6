"""``modelstore exec``: real processes, the caller's streams, CMD's exit code, and clean-up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from modelstore.registry import Registry

PRINT_ENV_AND_MODEL = (
    "import json, os, sys\n"
    "from modelstore import get_model_path\n"
    "print(json.dumps({'root': os.environ['AML_APP_ROOT'], 'dir': os.environ['AZUREML_MODEL_DIR'],"
    " 'm': get_model_path('m'), 'cwd': os.getcwd(), 'stdin': sys.stdin.read(),"
    " 'data': open(get_model_path('m'), 'rb').read().decode()}))\n"
)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment of a modelstore process: a registry holding m:1 and m:2, and a private
    TMPDIR so leftovers of the temporary deployment can be seen."""
    home = tmp_path / "home"
    with Registry(home) as registry:
        for payload in (b"one", b"two"):
            (tmp_path / "model.pkl").write_bytes(payload)
            registry.register(tmp_path / "model.pkl", "m")
    (tmp_path / "tmp").mkdir()
    (tmp_path / "cwd").mkdir()
    variables = {
        k: v
        for k, v in os.environ.items()
        if k not in {"AML_APP_ROOT", "AZUREML_MODEL_DIR", "MODELSTORE_DB_URL"}
    }
    variables.update(MODELSTORE_HOME=os.fspath(home), TMPDIR=os.fspath(tmp_path / "tmp"))
    return variables


def modelstore_exec(
    env: dict[str, str], cwd: Path, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelstore", "exec", *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_exec_runs_cmd_inside_a_temporary_deployment_and_removes_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    cwd = tmp_path / "cwd"
    result = modelstore_exec(
        env, cwd, "--model", "m:1", "--", sys.executable, "-c", PRINT_ENV_AND_MODEL, stdin="hello"
    )

    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    root = seen["root"]
    assert root.startswith(os.fspath(tmp_path / "tmp"))
    assert seen["dir"] == f"{root}/azureml-models/m/1"
    assert seen["m"] == f"{root}/azureml-models/m/1/model.pkl"
    assert seen["data"] == "one"
    assert seen["cwd"] == os.fspath(cwd)
    assert seen["stdin"] == "hello"
    assert os.listdir(tmp_path / "tmp") == []


def test_exec_passes_on_cmd_exit_code_and_stderr(env: dict[str, str], tmp_path: Path) -> None:
    script = "import sys; sys.stderr.write('oops'); sys.exit(3)"
    result = modelstore_exec(
        env, tmp_path / "cwd", "--model", "m", "--", sys.executable, "-c", script
    )

    assert result.returncode == 3
    assert result.stderr == "oops"
    assert os.listdir(tmp_path / "tmp") == []


def test_exec_exits_128_plus_n_when_a_signal_ends_cmd(env: dict[str, str], tmp_path: Path) -> None:
    script = "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    result = modelstore_exec(
        env, tmp_path / "cwd", "--model", "m", "--", sys.executable, "-c", script
    )

    assert result.returncode == 128 + signal.SIGTERM
    assert os.listdir(tmp_path / "tmp") == []


def start_waiting_exec(env: dict[str, str], tmp_path: Path, **popen: Any) -> subprocess.Popen[str]:
    """`modelstore exec` running a CMD that has started (said 'ready') and now waits."""
    script = "import time; print('ready', flush=True); time.sleep(30)"
    cmd = [sys.executable, "-c", script]
    process = subprocess.Popen(
        [sys.executable, "-m", "modelstore", "exec", "--model", "m", "--", *cmd],
        env=env,
        cwd=tmp_path / "cwd",
        stdout=subprocess.PIPE,
        text=True,
        **popen,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    return process


def test_exec_forwards_sigterm_to_cmd_and_still_cleans_up(
    env: dict[str, str], tmp_path: Path
) -> None:
    process = start_waiting_exec(env, tmp_path)
    process.send_signal(signal.SIGTERM)

    assert process.wait(timeout=20) == 128 + signal.SIGTERM
    assert os.listdir(tmp_path / "tmp") == []


def test_exec_reports_a_missing_command_in_one_line_with_exit_127(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = modelstore_exec(env, tmp_path / "cwd", "--model", "m", "--", "no-such-command-xyz")

    assert result.returncode == 127
    assert result.stderr.strip().splitlines() == [
        "Error: command not found: no-such-command-xyz (check the name or your PATH)"
    ]
    assert os.listdir(tmp_path / "tmp") == []


def test_exec_keep_leaves_the_deployment_and_says_where(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = modelstore_exec(env, tmp_path / "cwd", "--keep", "--model", "m", "--", "true")

    assert result.returncode == 0, result.stderr
    [kept] = os.listdir(tmp_path / "tmp")
    kept_root = tmp_path / "tmp" / kept
    assert result.stderr.strip() == f"modelstore: the deployment is kept in {kept_root}"
    assert (kept_root / "azureml-models" / "m" / "2" / "model.pkl").read_bytes() == b"two"


def test_exec_into_a_given_folder_removes_only_the_models_it_laid_out(
    env: dict[str, str], tmp_path: Path
) -> None:
    app = tmp_path / "app"
    script = "import os; open(os.path.join(os.environ['AML_APP_ROOT'], 'out.txt'), 'w').write('x')"

    result = modelstore_exec(
        env,
        tmp_path / "cwd",
        "--app-root",
        os.fspath(app),
        "--model",
        "m:1",
        "--",
        sys.executable,
        "-c",
        script,
    )

    assert result.returncode == 0, result.stderr
    assert os.listdir(app) == ["out.txt"]
    assert (tmp_path / "home" / "azureml-models" / "m" / "1" / "model.pkl").read_bytes() == b"one"


def test_exec_into_a_new_folder_leaves_no_trace(env: dict[str, str], tmp_path: Path) -> None:
    app = tmp_path / "new" / "app"
    result = modelstore_exec(
        env, tmp_path / "cwd", "--app-root", os.fspath(app), "--model", "m", "--", "true"
    )

    assert result.returncode == 0, result.stderr
    assert not app.exists()


def test_exec_into_a_new_nested_folder_also_removes_the_parent_folders_it_created(
    env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "existing").mkdir()
    app = tmp_path / "existing" / "new" / "deeper" / "app"
    result = modelstore_exec(
        env, tmp_path / "cwd", "--app-root", os.fspath(app), "--model", "m", "--", "true"
    )

    assert result.returncode == 0, result.stderr
    assert os.listdir(tmp_path / "existing") == []


def test_exec_keeps_a_created_parent_folder_that_cmd_wrote_into(
    env: dict[str, str], tmp_path: Path
) -> None:
    app = tmp_path / "new" / "app"
    script = "open('../user.txt', 'w').write('mine')"
    result = modelstore_exec(
        env,
        tmp_path / "cwd",
        "--app-root",
        os.fspath(app),
        "--model",
        "m",
        "--",
        "sh",
        "-c",
        f'cd "$AML_APP_ROOT" && {sys.executable} -c "{script}"',
    )

    assert result.returncode == 0, result.stderr
    assert os.listdir(tmp_path / "new") == ["user.txt"]


def test_exec_refuses_an_unknown_model_before_running_anything(
    env: dict[str, str], tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    result = modelstore_exec(
        env, tmp_path / "cwd", "--model", "m:9", "--", "touch", os.fspath(marker)
    )

    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: ") and "1, 2" in line
    assert not marker.exists()
    assert os.listdir(tmp_path / "tmp") == []


def test_exec_refuses_a_non_empty_app_root_and_leaves_it_alone(
    env: dict[str, str], tmp_path: Path
) -> None:
    app = tmp_path / "app"
    (app / "azureml-models").mkdir(parents=True)
    (app / "azureml-models" / "mine.txt").write_text("user data")

    result = modelstore_exec(
        env, tmp_path / "cwd", "--app-root", os.fspath(app), "--model", "m", "--", "true"
    )

    assert result.returncode == 2
    assert (app / "azureml-models" / "mine.txt").read_text() == "user data"


def test_exec_refusing_a_non_empty_app_root_suggests_only_what_exec_offers(
    env: dict[str, str], tmp_path: Path
) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "notes.txt").write_text("user data")

    result = modelstore_exec(
        env, tmp_path / "cwd", "--app-root", os.fspath(app), "--model", "m", "--", "true"
    )

    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: the app root {app} is not empty")
    assert "--force" not in line and "force=True" not in line  # exec has no --force
    assert "--app-root" in line
    assert os.listdir(app) == ["notes.txt"]


def test_exec_reclaims_an_app_root_that_holds_only_a_killed_deployments_build(
    env: dict[str, str], tmp_path: Path
) -> None:
    app = tmp_path / "app"
    leftover = app / ".modelstore-deploy-killed"
    leftover.mkdir(parents=True)
    (leftover / ".building").touch()  # its lock is free: the builder is gone

    result = modelstore_exec(
        env, tmp_path / "cwd", "--app-root", os.fspath(app), "--model", "m", "--", "true"
    )

    assert result.returncode == 0, result.stderr
    assert os.listdir(app) == []


def test_exec_passes_options_after_cmd_to_cmd(env: dict[str, str], tmp_path: Path) -> None:
    script = "import sys; print(sys.argv[1:])"
    result = modelstore_exec(
        env, tmp_path / "cwd", "--model", "m", "--", sys.executable, "-c", script, "--keep", "-x"
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['--keep', '-x']"
    assert os.listdir(tmp_path / "tmp") == []


def test_exec_lets_ctrl_c_reach_cmd_and_still_cleans_up(
    env: dict[str, str], tmp_path: Path
) -> None:
    process = start_waiting_exec(env, tmp_path, stderr=subprocess.DEVNULL, start_new_session=True)
    os.killpg(process.pid, signal.SIGINT)  # what a terminal does: the whole foreground group

    assert process.wait(timeout=20) == 128 + signal.SIGINT
    assert os.listdir(tmp_path / "tmp") == []


def test_exec_reports_a_command_that_cannot_run_with_exit_126(
    env: dict[str, str], tmp_path: Path
) -> None:
    script = tmp_path / "not-executable.sh"
    script.write_text("#!/bin/sh\necho ran\n")
    script.chmod(0o644)  # no execute bit: even root cannot run it

    result = modelstore_exec(env, tmp_path / "cwd", "--model", "m", "--", os.fspath(script))

    assert result.returncode == 126
    assert result.stderr.strip().splitlines() == [
        f"Error: cannot execute {script}: permission denied"
    ]
    assert result.stdout == ""
    assert os.listdir(tmp_path / "tmp") == []
