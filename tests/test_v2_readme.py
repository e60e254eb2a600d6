"""README's "Azure ML v2 deployments" walk-through runs as written, from a copy of fixtures/:
register -f model.yml, score -f green (registered model), serve -f blue (inline model) and
curl, then the endpoint with both deployments under --auth, called with a key and the
azureml-model-deployment header and without a key, with the servers stopped and their app
roots removed at the end."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from test_readme_tour import (
    FENCE,
    FOREIGN,
    README,
    REPO,
    bin_dir_with_modelstore,
    run_in_own_session,
)

V2_TOUR = re.compile(r"<!-- v2-tour:begin -->\n(.*?)<!-- v2-tour:end -->", re.S)


def v2_block(readme: str) -> str:
    marked = V2_TOUR.findall(readme)
    assert len(marked) == 1, "README.md needs one <!-- v2-tour:begin --> ... end section"
    blocks = FENCE.findall(marked[0])
    assert [language for language, _ in blocks] == ["bash"]
    return str(blocks[0][1])


@pytest.mark.slow
def test_the_v2_walk_through_runs_as_written_and_leaves_nothing_running(tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("the walk-through calls the server with curl, which is not installed")
    work = tmp_path / "checkout"
    work.mkdir()
    shutil.copytree(
        REPO / "fixtures", work / "fixtures", ignore=shutil.ignore_patterns("__pycache__", "model")
    )
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN}
    env["PATH"] = f"{bin_dir_with_modelstore(tmp_path)}{os.pathsep}{env.get('PATH', '')}"
    env["TMPDIR"] = str(system_tmp)
    (work / "tour-v2").mkdir()  # the walk-through's log folder (the README's shell has it)

    result, leaked = run_in_own_session(
        ["bash", "-euo", "pipefail", "-c", v2_block(README.read_text(encoding="utf-8"))], work, env
    )
    log = work / "tour-v2" / "serve.log"
    explanation = f"{result.stdout}\n{result.stderr}\n{log.read_text() if log.exists() else ''}"
    assert result.returncode == 0, explanation
    assert not leaked, explanation
    lines = result.stdout.splitlines()
    stored = work / "tour-v2" / "registry" / "azureml-models" / "sklearn-regression" / "1"
    assert f"Registered sklearn-regression:1  ->  {stored / 'model'}" in lines
    answers = [json.loads(line) for line in lines if line.startswith('{"deployment"')]
    assert [answer["deployment"] for answer in answers] == ["green", "blue", "green"]
    assert answers[0]["prediction"] == answers[1]["prediction"]  # one model, two deployments
    assert "401" in lines  # the endpoint under --auth, called without a key
    assert "Info: Azure-only keys accepted and ignored here: instance_type, instance_count" in (
        log.read_text()
    )
    assert os.listdir(system_tmp) == []
