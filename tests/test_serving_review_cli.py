"""Review findings on ``modelstore serve`` options: bad values name what the user set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = "def init():\n    pass\n\ndef run(data):\n    return data\n"


def serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "score.py"
    script.write_text(SCRIPT, encoding="utf-8")
    environment = {k: v for k, v in os.environ.items() if k != "WORKER_COUNT"}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "modelstore", "serve", "--entry-script", str(script), *args],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("value", ["abc", "0", "-1"])
def test_a_bad_worker_count_variable_is_named_as_the_variable(tmp_path: Path, value: str) -> None:
    result = serve(tmp_path, "--port", "0", WORKER_COUNT=value)

    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"Error: WORKER_COUNT={value!r} is not a whole number of worker processes (1 or more); "
        "set it to e.g. WORKER_COUNT=2 or unset it"
    ]


def test_a_bad_workers_option_still_names_the_option(tmp_path: Path) -> None:
    result = serve(tmp_path, "--port", "0", "--workers", "0", WORKER_COUNT="2")

    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "Error: Invalid value for '--workers' / '--worker_count': 0 is not in the range x>=1"
        )
    )
