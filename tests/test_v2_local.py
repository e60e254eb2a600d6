"""Serving one v2 deployment YAML here: ``modelstore.v2.local`` (what is checked, said and laid
out before a server starts), ``modelstore score -f`` in process and ``modelstore serve -f`` as a
real process over loopback."""

from __future__ import annotations

import os
import runpy
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from test_serve_http import clean_environment, running, stop
from v2_helpers import GALLERY, copy_gallery, gated_deployment, wait_entered

from modelstore.cli import main
from modelstore.errors import InvalidArgumentError
from modelstore.serving.limits import InFlightGauge
from modelstore.testing import ScoringClientFactory
from modelstore.v2 import load_deployment_spec
from modelstore.v2.local import (
    EnvironmentMismatchError,
    environment_mismatches,
    load_one_deployment,
    local_deployment,
    startup_notes,
    worker_count,
)

ROWS = '{"data": [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]}'


@pytest.fixture
def gallery(tmp_path: Path) -> Path:
    return copy_gallery(tmp_path / "v2")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fixtures/v2 with the real Ridge model trained into ``model/``."""
    root = tmp_path_factory.mktemp("trained") / "v2"
    shutil.copytree(GALLERY, root, ignore=shutil.ignore_patterns("model", "__pycache__"))
    runpy.run_path(str(GALLERY.parent / "make_models.py"))["write_regression_model"](root / "model")
    return root


@pytest.fixture
def temp_parent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system temporary folder, for this test only: where app roots would be left."""
    folder = tmp_path / "system-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _edit(path: Path, old: str, new: str) -> Path:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


def _conda(gallery: Path, *packages: str) -> None:
    lines = "".join(f"      - {p}\n" for p in packages)
    (gallery / "environment" / "conda.yaml").write_text(
        "name: e\ndependencies:\n  - python=3\n  - pip\n  - pip:\n" + lines
    )


# --- what is checked and said before a start -------------------------------------------------


def test_one_deployment_loading_sends_an_endpoint_or_two_files_to_serve(gallery: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="endpoint YAML, which only 'modelstore serve'"):
        load_one_deployment([gallery / "endpoint.yml"])
    with pytest.raises(InvalidArgumentError, match=r"several files .* make an endpoint"):
        load_one_deployment([gallery / "blue-deployment.yml", gallery / "green-deployment.yml"])


def test_conda_packages_missing_or_at_another_version_are_listed(gallery: Path) -> None:
    _conda(gallery, "azureml-inference-server-http", "numpy==0.0.1", "nosuch-package-xyz", "click")
    spec = load_deployment_spec(gallery / "blue-deployment.yml")
    assert spec.environment is not None and not isinstance(spec.environment, str)
    shown, mismatches = environment_mismatches(spec.environment)
    assert shown == os.fspath(gallery / "environment" / "conda.yaml")
    import numpy

    assert mismatches == [
        f"numpy==0.0.1 (here {numpy.__version__})",
        "nosuch-package-xyz (not installed)",
    ]


def test_a_conda_version_means_every_release_starting_with_it(gallery: Path) -> None:
    major, minor = sys.version_info[:2]
    (gallery / "environment" / "conda.yaml").write_text(
        f"dependencies:\n  - python={major}.{minor}\n  - numpy>=1\n  - python=2.7\n"
    )
    spec = load_deployment_spec(gallery / "blue-deployment.yml")
    assert spec.environment is not None and not isinstance(spec.environment, str)
    here = ".".join(map(str, sys.version_info[:3]))
    assert environment_mismatches(spec.environment)[1] == [f"python=2.7 (here {here})"]


def test_the_notes_say_what_is_not_emulated_one_line_each(gallery: Path) -> None:
    _conda(gallery, "nosuch-package-xyz")
    spec = load_deployment_spec(gallery / "blue-deployment.yml")
    notes = startup_notes(spec, workers=2)
    assert notes[0].startswith("Warning: environment: is not emulated; the scoring script runs in ")
    assert notes[1].endswith(
        "missing or at another version here: nosuch-package-xyz (not installed)"
    )
    assert (
        notes[2] == "Info: Azure-only keys accepted and ignored here: instance_type, instance_count"
    )
    assert notes[3].startswith(
        "Warning: request_settings.max_concurrent_requests_per_instance is 1 but the server "
        "runs 2 workers (WORKER_COUNT)"
    )
    assert all("\n" not in note for note in notes)
    assert len(startup_notes(spec, workers=1)) == 3


def test_check_env_makes_a_mismatch_an_error(gallery: Path) -> None:
    _conda(gallery, "nosuch-package-xyz")
    spec = load_deployment_spec(gallery / "blue-deployment.yml")
    with pytest.raises(EnvironmentMismatchError, match="pass check_env=False") as refused:
        startup_notes(spec, workers=1, check_env=True)
    assert refused.value.mismatches == ["nosuch-package-xyz (not installed)"]


def test_workers_come_from_the_option_then_the_yamls_worker_count(gallery: Path) -> None:
    spec = load_deployment_spec(
        _edit(gallery / "blue-deployment.yml", "WORKER_COUNT: 1", "WORKER_COUNT: 3")
    )
    assert worker_count(spec, None) == 3
    assert worker_count(spec, 2) == 2
    bad = load_deployment_spec(
        _edit(gallery / "blue-deployment.yml", "WORKER_COUNT: 3", "WORKER_COUNT: x")
    )
    with pytest.raises(InvalidArgumentError, match=r"environment_variables\.WORKER_COUNT='x'"):
        worker_count(bad, None)


def test_local_deployment_resolves_settings_from_the_deployments_environment(
    gallery: Path, temp_parent: Path
) -> None:
    with local_deployment(
        [gallery / "blue-deployment.yml"], environ={"SERVICE_NAME": "s"}
    ) as local:
        app_root = local.deployment.app_root
        assert local.settings.request_timeout_ms == 3000
        assert local.settings.app_root == app_root / "onlinescoring"
        assert local.settings.entry_script == app_root / "onlinescoring" / "score.py"
        assert local.settings.service_name == "s"
        assert local.env["MODEL_COLOR"] == "blue"
        assert local.workers == 1
    assert os.listdir(temp_parent) == []


def test_a_refused_check_env_leaves_nothing_behind(gallery: Path, temp_parent: Path) -> None:
    _conda(gallery, "nosuch-package-xyz")
    with (
        pytest.raises(EnvironmentMismatchError),
        local_deployment([gallery / "blue-deployment.yml"], check_env=True),
    ):
        pass
    assert os.listdir(temp_parent) == []


# --- request_timeout_ms: the front end's 408 -----------------------------------------------------

SLOW_SCRIPT = """
import time

def init():
    pass

def run(data):
    time.sleep(float(data))
    return "done"
"""


def _slow_project(root: Path, request_timeout_ms: int) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "score.py").write_text(SLOW_SCRIPT)
    path = root / "slow.yml"
    path.write_text(
        "name: slow\nendpoint_name: e\ninstance_type: x\n"
        "code_configuration:\n  code: src\n  scoring_script: score.py\n"
        f"request_settings:\n  request_timeout_ms: {request_timeout_ms}\n"
    )
    return path


def test_a_run_longer_than_request_timeout_ms_is_answered_408_by_the_front_end(
    tmp_path: Path, scoring_client: ScoringClientFactory
) -> None:
    client = scoring_client.from_deployment(_slow_project(tmp_path, 200))
    assert client.post(data="0").status_code == 200
    response = client.post(data="5")
    assert response.status_code == 408
    assert response.json() == {
        "message": "Request timed out after 200 ms: the deployment's "
        "request_settings.request_timeout_ms was reached before run() answered; raise it "
        "(at most 180000) or make run() faster"
    }


def test_a_shorter_container_scoring_timeout_still_answers_500(
    tmp_path: Path, scoring_client: ScoringClientFactory
) -> None:
    client = scoring_client.from_deployment(_slow_project(tmp_path, 5000), scoring_timeout_ms=200)
    response = client.post(data="5")
    assert response.status_code == 500
    assert response.json() == {"message": "Scoring timeout after 200 ms"}


# --- modelstore score -f --------------------------------------------------------------------------


def _score(*args: str, home: Path) -> Result:
    return CliRunner().invoke(main, ["--home", str(home), "score", *args])


def test_score_f_answers_with_the_deployments_model(
    trained: Path, tmp_path: Path, temp_parent: Path
) -> None:
    before = os.getcwd()
    result = _score("-f", str(trained / "blue-deployment.yml"), "--data", ROWS, home=tmp_path / "h")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith('HTTP/1.1 200 OK\n{"deployment": "blue", "prediction": [')
    assert "Warning: environment: is not emulated" in result.stderr
    assert "Info: Azure-only keys accepted and ignored here: instance_type, instance_count" in (
        result.stderr
    )
    assert os.getcwd() == before
    assert os.listdir(temp_parent) == []


def _registered(home: Path, model_yml: Path) -> Path:
    """``home`` holding what ``modelstore register -f MODEL.yml`` registers."""
    registered = CliRunner().invoke(main, ["--home", str(home), "register", "-f", str(model_yml)])
    assert registered.exit_code == 0, registered.stderr
    return home


def test_score_f_resolves_a_registered_model(
    trained: Path, tmp_path: Path, temp_parent: Path
) -> None:
    home = _registered(tmp_path / "h", trained / "model.yml")
    result = _score("-f", str(trained / "green-deployment.yml"), "--data", ROWS, home=home)
    assert result.exit_code == 0, result.stderr
    assert '"deployment": "green"' in result.stdout
    assert (
        "Info: Azure-only keys accepted and ignored here: instance_type, instance_count, "
        "app_insights_enabled" in result.stderr
    )


def test_score_f_with_an_unknown_alias_is_one_line_exit_1_and_leaves_nothing(
    gallery: Path, tmp_path: Path, temp_parent: Path
) -> None:
    home = _registered(tmp_path / "h", gallery / "model.yml")
    deployment = _edit(
        gallery / "green-deployment.yml", "sklearn-regression:1", "sklearn-regression@gold"
    )
    result = _score("-f", str(deployment), "--data", ROWS, home=home)
    assert result.exit_code == 1, result.stderr
    assert result.stderr.startswith(
        "Error: model azureml:sklearn-regression@gold: model 'sklearn-regression' has no alias "
        "'gold'; it has no alias (registry "
    )
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""
    assert os.listdir(temp_parent) == []


@pytest.mark.parametrize(
    ("args", "start"),
    [
        (
            ["-f", "endpoint.yml"],
            "Error: endpoint.yml is an online endpoint YAML, which only 'modelstore serve' "
            "(or modelstore.v2.endpoint.local_endpoint) runs",
        ),
        (
            ["-f", "blue-deployment.yml", "-f", "green-deployment.yml"],
            "Error: several files (blue-deployment.yml, green-deployment.yml) make an endpoint",
        ),
        (
            ["-f", "blue-deployment.yml", "--entry-script", "x.py"],
            "Error: -f DEPLOYMENT.yml names the script and its model, so --entry-script",
        ),
        (["-f", "nosuch.yml"], "Error: nosuch.yml"),
    ],
)
def test_score_f_refusals_are_one_line_exit_2_and_leave_nothing(
    gallery: Path,
    tmp_path: Path,
    temp_parent: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    start: str,
) -> None:
    monkeypatch.chdir(gallery)
    result = _score(*args, "--data", ROWS, home=tmp_path / "h")
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith(start)
    assert result.stderr.count("\n") == 1
    assert os.listdir(temp_parent) == []
    assert not (tmp_path / "h").exists()


def test_score_f_with_check_env_refuses_a_missing_package(
    gallery: Path, tmp_path: Path, temp_parent: Path
) -> None:
    _conda(gallery, "nosuch-package-xyz")
    result = _score(
        "-f",
        str(gallery / "blue-deployment.yml"),
        "--check-env",
        "--data",
        ROWS,
        home=tmp_path / "h",
    )
    assert result.exit_code == 2
    conda = gallery / "environment" / "conda.yaml"
    assert result.stderr == (
        f"Error: packages of {conda} missing or at another version here: nosuch-package-xyz "
        "(not installed); install them in this Python, or serve without --check-env (nothing "
        "was started)\n"
    )
    assert os.listdir(temp_parent) == []


def test_serve_without_entry_script_or_f_says_both(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--home", str(tmp_path / "h"), "serve"])
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "Error: Missing option '--entry-script' (or -f DEPLOYMENT.yml); see '"
    )


# --- modelstore serve -f, a real process ---------------------------------------------------------


def test_serve_f_answers_score_over_loopback_and_leaves_no_app_root(
    trained: Path, tmp_path: Path
) -> None:
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    env = clean_environment(tmp_path / "home", {"TMPDIR": str(system_tmp)})
    args = ["-f", str(trained / "blue-deployment.yml")]
    with running(args, tmp_path / "logs", cwd=tmp_path, env=env) as server:
        response = server.post("/score", data=ROWS, headers={"Content-Type": "application/json"})
        assert response.status_code == 200, server.log()
        body = response.json()
        assert body["deployment"] == "blue" and len(body["prediction"]) == 1
        (app_root,) = [p for p in os.listdir(system_tmp) if p.startswith("modelstore-serve-app-")]
        assert (
            "Found user script at " + str(system_tmp / app_root / "onlinescoring" / "score.py")
            in server.log()
        )
        assert "Warning: environment: is not emulated" in server.log()
        stop(server.process)
        assert server.process.returncode == 0
    assert os.listdir(system_tmp) == []


def test_serve_f_with_a_bad_yaml_is_one_line_exit_2_and_starts_nothing(
    gallery: Path, tmp_path: Path
) -> None:
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    _edit(gallery / "blue-deployment.yml", "instance_count: 1", "instance_cuont: 1")
    env = clean_environment(tmp_path / "home", {"TMPDIR": str(system_tmp)})
    result = subprocess.run(
        [sys.executable, "-m", "modelstore", "serve", "--port", "0", "-f", "blue-deployment.yml"],
        cwd=gallery,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "Error: blue-deployment.yml:25: instance_cuont: unknown key; did you mean instance_count?\n"
    )
    assert os.listdir(system_tmp) == []


def test_serve_f_whose_init_fails_exits_3_and_leaves_no_app_root(
    gallery: Path, tmp_path: Path
) -> None:
    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    (gallery / "onlinescoring" / "score.py").write_text(
        "def init():\n    raise RuntimeError('boom')\n\ndef run(data):\n    return data\n"
    )
    env = clean_environment(tmp_path / "home", {"TMPDIR": str(system_tmp)})
    result = subprocess.run(
        [sys.executable, "-m", "modelstore", "serve", "--port", "0", "-f", "blue-deployment.yml"],
        cwd=gallery,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3, result.stderr
    assert result.stderr.splitlines()[-1].startswith("Error: init() of ")
    assert "raised RuntimeError: boom" in result.stderr.splitlines()[-1]
    assert os.listdir(system_tmp) == []


@pytest.mark.parametrize(("workers", "max_concurrent"), [(3, 1), (5, 2)])
def test_serve_f_answers_429_past_twice_max_concurrent_requests_in_flight_across_workers(
    tmp_path: Path, workers: int, max_concurrent: int
) -> None:
    """Azure's front end admits 2 x max_concurrent_requests_per_instance requests per
    instance; one more is refused with 429 at once, whichever worker takes it."""
    gate = tmp_path / "gate"
    gate.mkdir()
    yml = gated_deployment(
        tmp_path / "d", "blue", workers=workers, max_concurrent=max_concurrent, gate=gate
    )
    env = clean_environment(tmp_path / "home")
    admitted = 2 * max_concurrent
    with (
        running(["-f", str(yml)], tmp_path / "logs", cwd=tmp_path, env=env) as server,
        ThreadPoolExecutor(admitted) as pool,
    ):
        held = []
        for count in range(1, admitted + 1):  # one at a time: each on a free worker
            held.append(pool.submit(server.post, "/score", json={"n": count}))
            wait_entered(gate, count)
        refused = server.post("/score", json={"n": 0}, headers={"x-request-id": "over-1"})
        assert refused.status_code == 429, server.log()
        assert refused.json()["message"].startswith("Too many pending requests: ")
        assert f"2 x {max_concurrent}" in refused.json()["message"]
        assert refused.headers["x-request-id"] == "over-1"
        assert refused.headers["x-ms-request-id"] == "over-1"
        assert len([p for p in gate.iterdir() if p.name.startswith("entered-")]) == admitted
        (gate / "release").touch()
        assert [future.result().status_code for future in held] == [200] * admitted
        assert server.post("/score", json={"n": 1}).json() == {"deployment": "blue"}


def test_a_worker_that_died_mid_request_leaves_its_in_flight_slot_to_the_next() -> None:
    """A gunicorn worker killed while it held a request must not hold the count up forever:
    the next process to claim a slot (its replacement) frees every dead one's, not only the
    first it finds."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    gauge = InFlightGauge(slots=4)
    claimed, leave = context.Event(), context.Event()
    idle = context.Process(target=_claim_and_wait, args=(gauge, claimed, leave))
    idle.start()
    assert claimed.wait(30)  # the idle worker holds the first slot
    busy = context.Process(target=_enter_and_die, args=(gauge,))
    busy.start()
    busy.join()  # died in the middle of its request
    leave.set()
    idle.join()  # and the idle one is gone too, before its slot
    assert gauge.count(1) == 1
    gauge.claim()  # a replacement worker
    assert gauge.count(1) == 0
    assert gauge.enter(1, 1) and gauge.count(1) == 1


def _claim_and_wait(gauge: object, claimed: Any, leave: Any) -> None:
    assert isinstance(gauge, InFlightGauge)
    gauge.claim()
    claimed.set()
    leave.wait(30)
    os._exit(0)


def _enter_and_die(gauge: object) -> None:
    assert isinstance(gauge, InFlightGauge)
    gauge.claim()
    assert gauge.enter(1, 2)
    os._exit(0)  # gone with its request in flight, as a SIGKILLed worker
