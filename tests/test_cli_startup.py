"""The lazy design of the CLI, proved without timing anything.

``modelstore --help`` (and a sub-command's ``--help``) must not import SQLAlchemy, pydantic,
Flask or alembic: those imports are what would make the command slow to start. Each check runs
in a fresh interpreter, because this test process has long since imported them all.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ["sqlalchemy", "pydantic", "flask", "alembic", "numpy", "gunicorn"]

PROBE = """
import json, sys
from modelstore.cli import main
code = None
try:
    main(sys.argv[1:], prog_name="modelstore")
except SystemExit as exit_:
    code = exit_.code
heavy = sorted({name.split(".")[0] for name in sys.modules} & set(HEAVY_NAMES))
print("HEAVY=" + json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""


def run_probe(*args: str) -> dict[str, object]:
    script = PROBE.replace("HEAVY_NAMES", repr(HEAVY))
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=60
    )
    line = next(line for line in done.stderr.splitlines() if line.startswith("HEAVY="))
    result: dict[str, object] = json.loads(line.removeprefix("HEAVY="))
    result["stdout"] = done.stdout
    return result


def test_modelstore_help_lists_the_commands_without_importing_heavy_libraries() -> None:
    result = run_probe("--help")
    assert result["code"] == 0
    assert result["heavy"] == []
    lines = str(result["stdout"]).splitlines()
    registry_commands = ["register", "list", "show", "path", "tag", "untag", "property"]
    registry_commands += ["describe", "delete", "verify", "doctor"]
    for name in registry_commands:
        line = next(line for line in lines if line.startswith(f"  {name} "))
        assert not line.endswith("..."), f"the summary of {name} is cut: {line}"


@pytest.mark.parametrize(
    "command", ["register", "list", "delete", "verify", "doctor", "completion"]
)
def test_a_sub_command_help_does_not_import_heavy_libraries(command: str) -> None:
    result = run_probe(command, "--help")
    assert result["code"] == 0
    assert result["heavy"] == []
    assert "Usage: modelstore " + command in str(result["stdout"])


def test_python_dash_m_modelstore_help_works() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "modelstore", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "register" in done.stdout


def test_the_modelstore_console_script_is_installed_and_answers_help() -> None:
    script = Path(sys.executable).parent / "modelstore"
    if not script.exists():  # pragma: no cover - only when run outside an installed env
        pytest.skip("the modelstore console script is not installed beside this interpreter")
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Usage: modelstore" in done.stdout
