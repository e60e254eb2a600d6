"""Several real processes on one registry: distinct consecutive versions, no lock errors."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from registry_helpers import child_command, make_file, make_model_dir

from modelstore import Registry

pytestmark = pytest.mark.slow


def _run_children(commands: list[list[str]], start_flag: Path) -> list[list[int]]:
    env = {k: v for k, v in os.environ.items() if k != "MODELSTORE_DB_URL"}
    children = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for cmd in commands
    ]
    start_flag.touch()  # all of them start at once (they poll for this file)
    results = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        assert err == "", err  # no "database is locked", no warning of any kind
        results.append(json.loads(out))
    return results


def test_four_processes_registering_the_same_name_get_versions_1_to_100(tmp_path: Path) -> None:
    home = tmp_path / "home"  # not created yet: the first opens race too
    source = make_file(tmp_path / "model.pkl", b"m" * 4096)
    flag = tmp_path / "go"
    results = _run_children(
        [child_command("register_many", str(home), str(source), "m", "25", str(flag))] * 4,
        flag,
    )
    every = sorted(v for versions in results for v in versions)
    assert every == list(range(1, 101))
    for versions in results:
        assert versions == sorted(versions)  # each process sees its numbers grow
    with Registry(home, db_url=None) as registry:
        assert registry.versions("m") == list(range(1, 101))
        assert sorted(os.listdir(home / "azureml-models" / "m"), key=int) == [
            str(v) for v in range(1, 101)
        ]
        assert registry.verify().ok and registry.doctor().findings == []


def test_concurrent_registrations_and_deletions_leave_catalog_and_tree_in_agreement(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    source = make_model_dir(tmp_path / "model_dir")
    flag = tmp_path / "go"
    commands = [child_command("register_many", str(home), str(source), "m", "20", str(flag))] * 3
    commands.append(child_command("delete_latest_repeatedly", str(home), "m", "30", str(flag)))
    *registered, deleted = _run_children(commands, flag)
    numbers = sorted(v for versions in registered for v in versions)
    assert numbers == list(range(1, 61))
    assert len(deleted) == 30 and len(set(deleted)) == 30  # each deleted once
    with Registry(home) as registry:
        remaining = registry.versions("m")
        assert sorted(remaining + deleted) == numbers
        tree = home / "azureml-models" / "m"
        on_disk = sorted(int(v) for v in os.listdir(tree)) if tree.exists() else []
        assert on_disk == remaining
        assert registry.verify().ok and registry.doctor().findings == []
        assert os.listdir(home / ".modelstore" / "staging") == []
        assert os.listdir(home / ".modelstore" / "trash") == []
        assert not [f for f in os.listdir(home / ".modelstore" / "locks") if "token" in f]


def churn_for(home: str, source: str, seconds: str, role: str, start_flag: str) -> None:
    """Child: register (role 'register') or delete a random version / a confirmed plan (role
    'delete') of ``m`` for ``seconds``; print ``[how many operations succeeded]``."""
    import contextlib
    import random
    import time

    from registry_helpers import wait_for

    from modelstore.errors import ModelNotFoundError

    wait_for(start_flag)
    rng = random.Random(role)
    done = 0
    deadline = time.monotonic() + float(seconds)
    with Registry(home) as registry:
        while time.monotonic() < deadline:
            if role == "register":
                registry.register(source, "m")
                done += 1
                continue
            versions = registry.versions("m")
            with contextlib.suppress(ModelNotFoundError):  # nothing left, or a racing delete
                if len(versions) > 3 and rng.random() < 0.3:
                    registry.delete_planned(registry.plan_delete("m"))
                elif versions:
                    registry.delete("m", rng.choice(versions))
                done += 1
    print(json.dumps([done]))


def doctor_for(home: str, seconds: str, start_flag: str) -> None:
    """Child: run ``doctor --repair`` again and again; print every finding it made."""
    import time

    from registry_helpers import wait_for

    wait_for(start_flag)
    findings: list[list[str]] = []
    deadline = time.monotonic() + float(seconds)
    with Registry(home) as registry:
        while time.monotonic() < deadline:
            findings += [[f.kind, f.subject] for f in registry.doctor(repair=True).findings]
    print(json.dumps(findings))


def _this_module(function: str, *args: str) -> list[str]:
    import sys

    tests = os.path.dirname(os.path.abspath(__file__))
    code = (
        f"import sys; sys.path.insert(0, {tests!r}); import test_concurrency as t; "
        f"t.{function}(*sys.argv[1:])"
    )
    return [sys.executable, "-c", code, *args]


def test_doctor_repairing_alongside_registrations_and_deletions_finds_and_touches_nothing(
    tmp_path: Path,
) -> None:
    """Work finished by a live process between doctor's snapshot and its checks is not a
    leftover, and a row id read in the snapshot may name a newer version by the time doctor
    acts: doctor run next to normal work must neither report nor 'repair' anything."""
    home = tmp_path / "home"
    source = make_model_dir(tmp_path / "model_dir")
    flag = tmp_path / "go"
    Registry(home).close()
    seconds = "5"
    *work, findings = _run_children(
        [
            _this_module("churn_for", str(home), str(source), seconds, "register", str(flag)),
            _this_module("churn_for", str(home), str(source), seconds, "delete", str(flag)),
            _this_module("doctor_for", str(home), seconds, str(flag)),
        ],
        flag,
    )
    assert all(count > 0 for [count] in work)  # both really worked alongside the doctor
    assert findings == []
    with Registry(home) as registry:
        assert registry.verify().ok and registry.doctor().findings == []


def test_verify_while_another_process_deletes_versions_reports_no_damage(tmp_path: Path) -> None:
    """Versions deleted while verify walks them are gone, not damaged: before, about half of
    such runs reported them missing and exited 1."""
    home = tmp_path / "home"
    source = make_model_dir(tmp_path / "model_dir")
    for index in range(8):  # more files: a longer walk, a wider window for the race
        (source / f"part{index}.bin").write_bytes(os.urandom(4096))
    flag = tmp_path / "go"
    with Registry(home) as registry:
        for _ in range(40):
            registry.register(source, "m")
        env = {k: v for k, v in os.environ.items() if k != "MODELSTORE_DB_URL"}
        deleter = subprocess.Popen(
            child_command("delete_latest_repeatedly", str(home), "m", "40", str(flag)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        flag.touch()
        damaged: list[str] = []
        verifications = 0
        while deleter.poll() is None:
            report = registry.verify()
            damaged += [check.id for check in report.versions if not check.ok]
            verifications += 1
        out, err = deleter.communicate(timeout=60)
        assert deleter.returncode == 0, err
        assert sorted(json.loads(out)) == list(range(1, 41))  # it deleted every version
        assert verifications > 1 and damaged == []
        assert registry.verify().versions == []
