"""SIGKILL registering and deleting processes at random moments, many times; then the tree holds
only complete versions, the catalog only verifiable ones, and doctor restores exact agreement."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from registry_helpers import child_command, make_model_dir, tree_files

from modelstore import Registry

pytestmark = pytest.mark.slow

KILLS = 40


def _kill_at_random_moments(home: Path, folder: Path, file: Path, kills: int) -> None:
    rng = random.Random(20261122)
    env = {k: v for k, v in os.environ.items() if k != "MODELSTORE_DB_URL"}
    for round_ in range(kills):
        child = subprocess.Popen(
            child_command("churn_until_killed", str(home), str(folder), str(file), str(round_)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert child.stdout is not None
        assert child.stdout.readline() == b"ready\n", child.stderr.read() if child.stderr else ""
        time.sleep(rng.uniform(0.0, 0.12))
        if child.poll() is not None:  # it must still be working when killed
            raise AssertionError(child.stderr.read() if child.stderr else "child exited")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        child.stdout.close()
        if child.stderr is not None:
            child.stderr.close()


def test_sigkill_at_any_moment_never_exposes_a_partial_version(tmp_path: Path) -> None:
    home = tmp_path / "home"
    source = make_model_dir(tmp_path / "model_dir")
    for index in range(6):  # a few more files widen the copy window
        (source / f"part{index}.bin").write_bytes(os.urandom(2048))
    single = source / "part0.bin"
    expected = {
        "model_dir": {"model_dir/" + f: (source / f).read_bytes() for f in tree_files(source)},
        "part0.bin": {"part0.bin": single.read_bytes()},
    }
    Registry(home).close()

    _kill_at_random_moments(home, source, single, KILLS)

    models = home / "azureml-models"
    with Registry(home) as registry:
        # 1. Whatever is in the tree is complete: one entry per version, every file, right bytes.
        on_disk: set[tuple[str, int]] = set()
        for name in os.listdir(models):
            assert os.listdir(models / name), f"empty name folder {name}"
            for version in os.listdir(models / name):
                folder = models / name / version
                entries = os.listdir(folder)
                assert len(entries) == 1 and entries[0] in expected, folder
                wanted = expected[entries[0]]
                assert tree_files(folder) == sorted(wanted), folder
                for rel, content in wanted.items():
                    assert (folder / rel).read_bytes() == content, folder / rel
                on_disk.add((name, int(version)))
        # 2. Every version the catalog shows is in the tree and verifies.
        listed = {(m.name, m.version) for m in registry.list()}
        assert listed <= on_disk
        assert registry.verify().ok
        # 3. Versions were never handed out twice, even across kills.
        rows = registry._catalog.rows()
        assert len({(r.name, r.version) for r in rows}) == len(rows)

        report = registry.doctor(repair=True)
        assert all(f.repaired for f in report.findings)

        # 4. After repair: exactly the catalog's versions are in the tree, nothing else is left.
        listed = {(m.name, m.version) for m in registry.list()}
        on_disk = {
            (name, int(version))
            for name in os.listdir(models)
            for version in os.listdir(models / name)
        }
        assert listed == on_disk
        assert all(r.state == "ready" for r in registry._catalog.rows())
        assert os.listdir(home / ".modelstore" / "staging") == []
        assert os.listdir(home / ".modelstore" / "trash") == []
        assert registry.verify().ok
        assert registry.doctor().findings == []
        # 5. And the registry carries on: numbers continue above everything ever handed out.
        top = max((v for n, v in {(r.name, r.version) for r in rows} if n == "crash_a"), default=0)
        assert registry.register(source, "crash_a").version > top


# Each step boundary of register and delete, hit on purpose:
# (object, method, what doctor finds, the next version of "m" afterwards).
KILL_POINTS = {
    # before a number is taken: its copy, and its lease in the catalog (nothing else there)
    "after_staging": ("store", "stage", {"staging_leftover", "abandoned_lease"}, 2),
    "after_reserve": ("catalog", "reserve", {"unfinished_registration"}, 3),
    "after_publish": ("store", "publish", {"unfinished_registration"}, 3),
    "after_start_delete": ("catalog", "start_delete", {"unfinished_deletion"}, 2),
    "after_unpublish": ("store", "unpublish", {"unfinished_deletion"}, 2),
    "after_forget": ("catalog", "forget", {"trash_leftover"}, 2),
    # killed after its last commit: nothing is left but its token lock file
    "after_commit": ("catalog", "set_state", {"stale_lock"}, 3),
}


def _empty_or_missing(path: Path) -> bool:
    return not path.exists() or os.listdir(path) == []


@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_a_kill_right_after_each_step_is_repaired_by_doctor(tmp_path: Path, point: str) -> None:
    home = tmp_path / "home"
    folder = make_model_dir(tmp_path / "model_dir")
    with Registry(home) as registry:
        registry.register(folder, "keep")
        registry.register(folder, "m")
    env = {k: v for k, v in os.environ.items() if k != "MODELSTORE_DB_URL"}
    owner, method, kinds, next_version = KILL_POINTS[point]
    child = subprocess.run(
        child_command("die_after", str(home), str(folder), owner, method),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    with Registry(home) as registry:
        report = registry.doctor(repair=True)
        assert {f.kind for f in report.findings} == kinds
        listed = {(m.name, m.version) for m in registry.list()}
        models = home / "azureml-models"
        on_disk = {(n, int(v)) for n in os.listdir(models) for v in os.listdir(models / n)}
        assert listed == on_disk and ("keep", 1) in listed
        assert registry.verify().ok and registry.doctor().findings == []
        assert _empty_or_missing(home / ".modelstore" / "staging")
        assert _empty_or_missing(home / ".modelstore" / "trash")
        locks = os.listdir(home / ".modelstore" / "locks")
        assert [name for name in locks if name.startswith("token-")] == []
        assert registry.register(folder, "m").version == next_version  # never a spent number
