"""Concurrent deployments into one app root, with real processes: they never collide, and a
reader never sees half a deployment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

WORKER = """
import json, os, sys, time
from pathlib import Path
from modelstore.deployment import ModelSource, build_deployment
from modelstore.errors import DeploymentRefusedError

store, app, go, names, rounds, force = sys.argv[1:7]
Path(f"{go}.ready-{os.getpid()}").touch()
while not os.path.exists(go):
    time.sleep(0.001)
outcomes = []
for _ in range(int(rounds)):
    sources = [
        ModelSource(name=n, version=1, entry_path=Path(store) / n / "model.pkl", registered=True)
        for n in names.split(",")
    ]
    try:
        build_deployment(sources, app, force=force == "1")
        outcomes.append("ok")
    except DeploymentRefusedError as exc:
        outcomes.append("refused")
print(json.dumps(outcomes))
"""

READER = """
import json, os, sys, time
from modelstore import get_model_path
from modelstore.errors import ModelLayoutError, ModelNotFoundError

app, go, stop, names = sys.argv[1:5]
os.environ["AML_APP_ROOT"] = app
seen = {"found": 0, "not-found": 0, "layout": 0, "no-models-folder": 0}
models = os.path.join(app, "azureml-models")
open(f"{go}.ready-{os.getpid()}", "x").close()
while not os.path.exists(go):
    time.sleep(0.001)
while not os.path.exists(stop):
    for _ in range(200):  # a tight loop, so that even a gap of microseconds is seen
        if not os.path.isdir(models):
            seen["no-models-folder"] += 1
    for name in names.split(","):
        try:
            get_model_path(name)
            seen["found"] += 1
        except ModelNotFoundError:
            seen["not-found"] += 1
        except ModelLayoutError as exc:
            seen["layout"] += 1
            print(exc, file=sys.stderr)
print(json.dumps(seen))
"""

GROUPS = ["a,b", "c,d", "e,f", "g,h"]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    for name in "abcdefgh":
        (root / name).mkdir(parents=True)
        (root / name / "model.pkl").write_bytes(name.encode())
    return root


def start_workers(
    store: Path, app: Path, go: Path, *, rounds: int, force: bool
) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WORKER,
                os.fspath(store),
                os.fspath(app),
                os.fspath(go),
                names,
                str(rounds),
                "1" if force else "0",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for names in GROUPS
    ]


def release_when_ready(go: Path, processes: list[subprocess.Popen[str]]) -> None:
    """Create ``go`` once every process has imported what it needs and is waiting for it (each
    says so with a ``<go>.ready-<pid>`` file), so that they all start at the same moment however
    slow the machine is."""
    waiting = {Path(f"{go}.ready-{process.pid}"): process for process in processes}
    deadline = time.monotonic() + 60
    while waiting:
        for ready, process in list(waiting.items()):
            if ready.exists():
                del waiting[ready]
            else:
                assert process.poll() is None, f"a worker died before it was ready: {ready}"
        assert time.monotonic() < deadline, f"workers never got ready: {list(waiting)}"
        time.sleep(0.005)
    go.touch()


def finish(process: subprocess.Popen[str]) -> list[str]:
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0
    outcomes: list[str] = json.loads(out)
    return outcomes


def deployed_names(app: Path) -> set[str]:
    return set(os.listdir(app / "azureml-models"))


@pytest.mark.slow
def test_concurrent_deployments_into_one_new_folder_never_mix(store: Path, tmp_path: Path) -> None:
    for attempt in range(3):
        app = tmp_path / f"app{attempt}"
        go = tmp_path / f"go{attempt}"
        workers = start_workers(store, app, go, rounds=1, force=False)
        release_when_ready(go, workers)
        outcomes = [finish(worker)[0] for worker in workers]

        winners = [GROUPS[i] for i, outcome in enumerate(outcomes) if outcome == "ok"]
        assert len(winners) <= 1, outcomes
        if winners:
            assert os.listdir(app) == ["azureml-models"]
            assert deployed_names(app) == set(winners[0].split(","))
        else:
            assert not app.exists() or os.listdir(app) == []


@pytest.mark.slow
def test_forced_redeployments_swap_whole_trees_while_a_reader_reads(
    store: Path, tmp_path: Path
) -> None:
    app = tmp_path / "app"
    go, stop, first_go = tmp_path / "go", tmp_path / "stop", tmp_path / "first-go"
    first_go.touch()
    subprocess.run(
        [
            sys.executable,
            "-c",
            WORKER,
            os.fspath(store),
            os.fspath(app),
            os.fspath(first_go),
            "a,b",
            "1",
            "0",
        ],
        check=True,
        capture_output=True,
    )
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            READER,
            os.fspath(app),
            os.fspath(go),
            os.fspath(stop),
            ",".join("abcdefgh"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    workers = start_workers(store, app, go, rounds=10, force=True)
    release_when_ready(go, [reader, *workers])
    results = [finish(worker) for worker in workers]
    stop.touch()
    seen = json.loads(reader.communicate(timeout=60)[0])

    assert all(outcome == "ok" for outcomes in results for outcome in outcomes), results
    assert deployed_names(app) in [set(group.split(",")) for group in GROUPS]
    assert os.listdir(app) == ["azureml-models"]
    assert seen["layout"] == 0, seen
    assert seen["found"] > 0
    if sys.platform.startswith("linux"):  # swapped in one atomic step: never missing
        assert seen["no-models-folder"] == 0, seen


KILLED_MID_BUILD = """
import os, sys, time
from pathlib import Path
import modelstore.deployment.layout as deployment
from modelstore.deployment import ModelSource, build_deployment

store, app, ready = sys.argv[1:4]
placed = deployment._place

def place_then_hang(model, models_dir, *, copy):
    placed(model, models_dir, copy=copy)
    Path(ready).touch()
    time.sleep(60)  # killed here, half-way through the build

deployment._place = place_then_hang
sources = [
    ModelSource(name=n, version=1, entry_path=Path(store) / n / "model.pkl", registered=True)
    for n in "ab"
]
build_deployment(sources, app)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="killed builds are recognised by flock")
@pytest.mark.parametrize("force", [False, True])
def test_a_deployment_killed_mid_build_leaves_nothing_that_blocks_the_next_one(
    store: Path, tmp_path: Path, force: bool
) -> None:
    from modelstore.deployment import ModelSource, build_deployment

    app, ready = tmp_path / "app", tmp_path / "ready"
    victim = subprocess.Popen(
        [sys.executable, "-c", KILLED_MID_BUILD, os.fspath(store), os.fspath(app), str(ready)]
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and victim.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ready.exists(), "the build never reached the kill point"
    finally:
        victim.kill()
        victim.wait()
    assert not (app / "azureml-models").exists()  # never half a deployment

    source = ModelSource(name="c", version=1, entry_path=store / "c" / "model.pkl", registered=True)
    build_deployment([source], app, force=force)

    assert os.listdir(app) == ["azureml-models"]  # the killed build's folder is gone too
    assert os.listdir(app / "azureml-models") == ["c"]
