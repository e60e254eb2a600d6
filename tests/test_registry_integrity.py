"""verify (stored files against their manifest) and doctor (leftovers of interrupted work)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from registry_helpers import make_file, make_model_dir, snapshot

from modelstore import Registry
from modelstore.catalog import DELETING, READY, FileRecord, NewVersion
from modelstore.catalog.records import VersionRecord
from modelstore.errors import InvalidArgumentError, ModelNotFoundError
from modelstore.registry import VersionCheck
from modelstore.store import manifest_digest, plan_source, remove_tree


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MODELSTORE_DB_URL", raising=False)
    return tmp_path / "home"


@pytest.fixture
def registry(home: Path) -> Iterator[Registry]:
    with Registry(home) as opened:
        yield opened


@pytest.fixture
def folder_model(registry: Registry, tmp_path: Path) -> Path:
    return registry.register(make_model_dir(tmp_path / "model_dir"), "m").path


def _writable(path: Path) -> None:
    for parent in [path, *path.parents][:4]:
        if parent.exists():
            os.chmod(parent, 0o755 if parent.is_dir() else 0o644)


def test_an_untouched_store_verifies(registry: Registry, folder_model: Path) -> None:
    report = registry.verify()
    assert report.ok and [c.id for c in report.versions] == ["m:1"]


def test_verify_reports_a_file_changed_in_place_with_the_same_size(
    registry: Registry, folder_model: Path
) -> None:
    target = folder_model / "sub" / "b.txt"
    _writable(target)
    target.write_bytes(b"X")
    check = registry.verify("m", 1).versions[0]
    assert not check.ok and check.changed == ["model_dir/sub/b.txt"]
    assert not registry.verify().ok


def test_verify_reports_missing_and_extra_files_and_a_second_entry(
    registry: Registry, folder_model: Path
) -> None:
    _writable(folder_model / "sub")
    (folder_model / "a.txt").unlink()
    make_file(folder_model / "sub" / "new.txt")
    make_file(folder_model.parent / ".DS_Store")
    check = registry.verify("m").versions[0]
    assert check.missing == ["model_dir/a.txt"]
    assert check.extra == ["model_dir/sub/new.txt"]
    assert check.foreign_entries == [".DS_Store"]
    assert check.changed == [] and not check.ok


def test_verify_reports_a_resized_file_model(registry: Registry, tmp_path: Path) -> None:
    mv = registry.register(make_file(tmp_path / "model.pkl", b"abc"), "f")
    _writable(mv.path)
    mv.path.write_bytes(b"abcd")
    assert registry.verify("f", 1).versions[0].changed == ["model.pkl"]


def test_verify_of_an_unknown_model_is_not_found(registry: Registry, folder_model: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        registry.verify("other")
    with pytest.raises(ModelNotFoundError, match="no version 2"):
        registry.verify("m", 2)
    with pytest.raises(InvalidArgumentError, match="needs a model name"):
        registry.verify(version=1)


def _check_with(
    registry: Registry, monkeypatch: pytest.MonkeyPatch, version: int, around: Any
) -> None:
    """Run ``around(check)`` instead of checking ``m:<version>``: what another process does
    between verify's catalog snapshot and its first look at the folder."""
    real = registry._check
    pending = [version]  # once: verify may look at the version again

    def check(record: VersionRecord, *args: Any) -> VersionCheck:
        if record.name == "m" and record.version in pending:
            pending.clear()
            return around(lambda: real(record, *args))  # type: ignore[no-any-return]
        return real(record, *args)

    monkeypatch.setattr(registry, "_check", check)


def test_a_version_deleted_while_verify_runs_is_not_reported_as_damaged(
    registry: Registry, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_model_dir(tmp_path / "model_dir")
    for _ in range(3):
        registry.register(source, "m")
    (registry.path("m", 1) / "a.txt").chmod(0o644)
    (registry.path("m", 1) / "a.txt").write_bytes(b"A")  # real damage, still reported
    with Registry(home) as other:  # another connection to the same SQLite file
        _check_with(registry, monkeypatch, 2, lambda check: (other.delete("m", 2), check())[1])
        report = registry.verify()
    assert [(c.id, c.ok) for c in report.versions] == [("m:3", True), ("m:1", False)]
    assert report.versions[1].changed == ["model_dir/a.txt"]


def test_verify_of_one_version_deleted_while_it_is_checked_says_it_is_not_found(
    registry: Registry, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = make_model_dir(tmp_path / "model_dir")
    registry.register(source, "m")
    registry.register(source, "m")
    with Registry(home) as other:
        _check_with(registry, monkeypatch, 2, lambda check: (other.delete("m", 2), check())[1])
        with pytest.raises(ModelNotFoundError, match="no version 2; its versions are 1"):
            registry.verify("m", 2)


def test_a_version_a_failed_delete_moved_out_and_back_while_verify_looked_is_checked_again(
    registry: Registry, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delete marks the row deleting, moves the folder out, fails and puts both back: the
    first look saw no files, yet the version is intact and ready again."""
    registry.register(make_model_dir(tmp_path / "model_dir"), "m")
    folder = home / "azureml-models" / "m" / "1"
    aside = tmp_path / "aside"

    def failed_delete_around(check: Any) -> VersionCheck:
        with Registry(home) as other:
            [row] = other._catalog.start_delete("m", [1], "failed-delete-token")
            os.rename(folder, aside)
            seen: VersionCheck = check()
            os.rename(aside, folder)
            other._catalog.set_state(row.id, READY, expected=DELETING)
        assert seen.missing  # the first look really saw the folder gone
        return seen

    _check_with(registry, monkeypatch, 1, failed_delete_around)
    report = registry.verify()
    assert report.ok and [c.id for c in report.versions] == ["m:1"]


# --- doctor -------------------------------------------------------------------------------------


def _stage_and_reserve(registry: Registry, source: Path, name: str) -> tuple[str, int, int]:
    """The first half of a registration, as a process killed right after its catalog commit
    leaves it: (token, row id, version)."""
    store, catalog = registry._store, registry._catalog
    plan = plan_source(source)
    token = store.new_token()
    staged = store.stage(plan, token)
    record = catalog.reserve(
        NewVersion(
            name=name,
            entry=plan.entry,
            kind=plan.kind,
            size=sum(f.size for f in staged),
            file_count=len(staged),
            sha256=manifest_digest((f.relpath, f.size, f.sha256) for f in staged),
            created_at=datetime.now(timezone.utc),
            token=token,
            files=[FileRecord(f.relpath, f.size, f.sha256) for f in staged],
        )
    )
    return token, record.id, record.version


def _kinds(registry: Registry, repair: bool = False) -> list[tuple[str, str]]:
    return [(f.kind, f.subject) for f in registry.doctor(repair=repair).findings]


def test_doctor_finds_nothing_in_a_healthy_registry(registry: Registry, folder_model: Path) -> None:
    report = registry.doctor(repair=True)
    assert report.findings == [] and report.ok


def test_a_registration_killed_after_its_rename_is_completed_by_doctor(
    registry: Registry, tmp_path: Path, home: Path
) -> None:
    token, _row, version = _stage_and_reserve(registry, make_file(tmp_path / "x.pkl"), "m")
    registry._store.publish(token, "m", version, "x.pkl")
    assert registry.versions("m") == []  # pending: invisible
    report = registry.doctor()
    assert [(f.kind, f.subject, f.repaired) for f in report.findings] == [
        ("unfinished_registration", "m:1", False)
    ]
    assert not report.ok and registry.versions("m") == []
    assert registry.doctor(repair=True).ok
    assert registry.versions("m") == [1] and registry.verify().ok
    assert _kinds(registry) == []


def test_a_registration_killed_before_its_rename_is_rolled_back_and_its_number_stays_spent(
    registry: Registry, tmp_path: Path, home: Path
) -> None:
    source = make_file(tmp_path / "x.pkl")
    _stage_and_reserve(registry, source, "m")
    assert _kinds(registry) == [("unfinished_registration", "m:1")]
    registry.doctor(repair=True)
    assert os.listdir(home / ".modelstore" / "staging") == []
    assert registry._catalog.rows() == []
    assert registry.register(source, "m").version == 2
    assert _kinds(registry) == []


def test_a_deletion_killed_midway_is_finished_by_doctor(
    registry: Registry, folder_model: Path, home: Path
) -> None:
    registry._catalog.start_delete("m", [1], "dead-token")
    assert registry.versions("m") == []
    assert _kinds(registry) == [("unfinished_deletion", "m:1")]
    registry.doctor(repair=True)
    assert not (home / "azureml-models" / "m").exists()
    assert registry._catalog.rows() == [] and _kinds(registry) == []


def test_a_version_whose_folder_vanished_is_dropped_from_the_catalog(
    registry: Registry, folder_model: Path
) -> None:
    remove_tree(folder_model.parent.parent)
    assert _kinds(registry) == [("missing_folder", "m:1")]
    registry.doctor(repair=True)
    assert registry.versions("m") == [] and _kinds(registry) == []


def test_a_version_whose_entry_vanished_is_dropped_with_whatever_is_left_in_its_folder(
    registry: Registry, folder_model: Path, home: Path
) -> None:
    remove_tree(folder_model)
    make_file(folder_model.parent / "stray.txt")
    assert _kinds(registry) == [("missing_folder", "m:1")]
    registry.doctor(repair=True)
    assert not (home / "azureml-models" / "m").exists() and _kinds(registry) == []


def _foreign_items(home: Path) -> Path:
    models = home / "azureml-models"
    make_file(models / "m" / "7" / "model.pkl", b"seven")
    make_file(models / "m" / "latest" / "model.pkl")
    make_file(models / "ghost" / "1" / "weights" / "w.bin", b"ghost weights")
    make_file(models / "README.txt")
    (models / "empty").mkdir()
    return models


def test_repair_reports_tree_items_the_catalog_does_not_know_and_deletes_none_of_them(
    registry: Registry, folder_model: Path, home: Path
) -> None:
    models = _foreign_items(home)
    found = sorted(_kinds(registry))
    assert found == sorted(
        [
            ("orphan_folder", str(models / "m" / "7")),
            ("orphan_folder", str(models / "m" / "latest")),
            ("orphan_folder", str(models / "ghost" / "1")),
            ("stray_item", str(models / "README.txt")),
            ("empty_name_folder", str(models / "empty")),
        ]
    )
    before = snapshot(home)
    report = registry.doctor(repair=True)
    assert [f.kind for f in report.findings if f.repaired] == ["empty_name_folder"]
    assert {f.action for f in report.findings if not f.repaired} == {
        "leave it (never deleted): doctor(repair=True, foreign='adopt') records a version folder "
        "as it is, foreign='move-aside' moves it into .modelstore/foreign/"
    }
    assert not report.ok
    del before[os.path.join("azureml-models", "empty")]
    assert snapshot(home) == before  # every byte still there, only the empty folder gone


def test_repair_adopts_foreign_version_folders_as_they_are_and_leaves_the_rest(
    registry: Registry, folder_model: Path, home: Path
) -> None:
    models = _foreign_items(home)
    report = registry.doctor(repair=True, foreign="adopt")
    adopted = sorted(f.subject for f in report.findings if f.repaired and f.kind == "orphan_folder")
    assert adopted == [str(models / "ghost" / "1"), str(models / "m" / "7")]
    ghost = registry.get("ghost", 1)
    assert (ghost.entry, ghost.kind, ghost.size, ghost.file_count) == ("weights", "folder", 13, 1)
    assert [v.version for v in registry.list("m")] == [7, 1]
    assert registry.verify().ok
    assert registry.register(folder_model, "m").version == 8  # the number is never reused
    left = sorted(f.subject for f in registry.doctor().findings)
    assert left == [str(models / "README.txt"), str(models / "m" / "latest")]


def test_repair_moves_foreign_items_aside_into_the_working_space(
    registry: Registry, folder_model: Path, home: Path
) -> None:
    models = _foreign_items(home)
    report = registry.doctor(repair=True, foreign="move-aside")
    assert report.ok and _kinds(registry) == []
    assert sorted(os.listdir(models)) == ["m"] and os.listdir(models / "m") == ["1"]
    aside = home / ".modelstore" / "foreign"
    (run,) = os.listdir(aside)
    assert (aside / run / "ghost" / "1" / "weights" / "w.bin").read_bytes() == b"ghost weights"
    assert (aside / run / "m" / "7" / "model.pkl").read_bytes() == b"seven"
    assert (aside / run / "README.txt").exists()
    assert registry.verify().ok


def test_staging_and_trash_leftovers_are_removed(registry: Registry, home: Path) -> None:
    make_file(home / ".modelstore" / "staging" / "dead1" / "model.pkl")
    make_file(home / ".modelstore" / "staging" / "dead2.name" / "3" / "model.pkl")
    make_file(home / ".modelstore" / "trash" / "dead3" / "m" / "1" / "model.pkl")
    os.chmod(home / ".modelstore" / "trash" / "dead3" / "m" / "1", 0o555)
    assert sorted(k for k, _ in _kinds(registry)) == [
        "staging_leftover",
        "staging_leftover",
        "trash_leftover",
    ]
    registry.doctor(repair=True)
    assert os.listdir(home / ".modelstore" / "staging") == []
    assert os.listdir(home / ".modelstore" / "trash") == []


def test_doctor_without_repair_changes_nothing(
    registry: Registry, folder_model: Path, home: Path
) -> None:
    make_file(home / ".modelstore" / "staging" / "dead" / "model.pkl")
    make_file(home / "azureml-models" / "ghost" / "1" / "model.pkl")
    before = snapshot(home)
    report = registry.doctor()
    assert len(report.findings) == 2 and not any(f.repaired for f in report.findings)
    assert snapshot(home) == before


def test_doctor_leaves_the_work_of_live_processes_alone(
    registry: Registry, tmp_path: Path, home: Path
) -> None:
    token, _row, _version = _stage_and_reserve(registry, make_file(tmp_path / "x.pkl"), "m")
    with registry._store.token_lock(token):  # as the registering process would hold it
        assert registry.doctor(repair=True).findings == []
        assert os.listdir(home / ".modelstore" / "staging") == [token]
    assert _kinds(registry) == [("unfinished_registration", "m:1")]


def test_doctor_tolerates_a_name_folder_deleted_while_it_lists_the_tree(
    registry: Registry, tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process deletes the last version of a name between doctor's listing of
    ``azureml-models`` and its listing of that name's folder (found by a real stress run)."""
    source = make_file(tmp_path / "x.pkl")
    registry.register(source, "gone")
    registry.register(source, "kept")
    gone = os.fspath(home / "azureml-models" / "gone")
    real_listdir = os.listdir

    def delete_then_listdir(path: str | os.PathLike[str] = ".") -> list[str]:
        if os.fspath(path) == gone and os.path.isdir(gone):
            monkeypatch.setattr(os, "listdir", real_listdir)
            with Registry(home) as other:
                other.delete("gone")
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", delete_then_listdir)
    report = registry.doctor(repair=True)
    monkeypatch.undo()
    assert report.findings == []
    assert [m.id for m in registry.list()] == ["kept:1"] and registry.doctor().findings == []


def test_doctor_acting_on_a_stale_snapshot_leaves_a_version_that_reused_the_row_id_alone(
    registry: Registry, tmp_path: Path, home: Path
) -> None:
    """SQLite gives a deleted newest row's id to the next row. A doctor that read a dead
    registration's row, while another doctor rolled it back and a live registration took the
    same id, must not complete or roll back that live registration."""
    from modelstore.registry.doctor import Doctor

    source = make_file(tmp_path / "x.pkl")
    _stage_and_reserve(registry, source, "dead")  # a killed registration: row pending, no lock
    stale = registry._catalog.rows()
    registry.doctor(repair=True)  # the first doctor rolls it back
    token, row_id, _version = _stage_and_reserve(registry, source, "live")
    assert row_id == stale[0].id  # the premise: the id was handed out again
    with registry._store.token_lock(token):  # the live registration holds its token
        late = Doctor(registry._catalog, registry._store, registry._check, registry._adopt)
        late.repair = True
        late._pending(stale[0], set())
        assert late.findings == []
        assert [(r.name, r.state) for r in registry._catalog.rows()] == [("live", "pending")]
        assert os.listdir(home / ".modelstore" / "staging") == [token]


# --- token lock files ---------------------------------------------------------------------------


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], text=True,
                           capture_output=True, check=True)  # fmt: skip
    return int(child.stdout)


def _token_locks(home: Path) -> list[str]:
    return sorted(n for n in os.listdir(home / ".modelstore" / "locks") if n.startswith("token-"))


def test_a_lock_file_left_by_a_dead_process_is_reported_and_removed_by_repair(
    registry: Registry, folder_model: Path, home: Path
) -> None:
    """A process killed after its last commit leaves only its token lock file (test_crash kills
    one there); every other piece of its work is complete."""
    lock = home / ".modelstore" / "locks" / f"token-{_dead_pid()}-0123abcd.lock"
    lock.touch()
    assert _kinds(registry) == [("stale_lock", str(lock))]
    assert lock.exists()  # without --repair nothing is touched
    assert _kinds(registry, repair=True) == [("stale_lock", str(lock))]
    assert _token_locks(home) == [] and _kinds(registry) == []


def test_a_lock_file_a_live_process_holds_is_never_reported_or_removed(
    registry: Registry, folder_model: Path, home: Path
) -> None:
    """Held by a real process (flock), even an old file of a pid that looks dead."""
    lock = home / ".modelstore" / "locks" / f"token-{_dead_pid()}-0123abcd.lock"
    code = (
        "import sys; from modelstore.store import locks\n"
        "with locks.hold(sys.argv[1]):\n"
        "    print('held', flush=True); sys.stdin.read()\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(lock)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdout is not None and holder.stdin is not None
    try:
        assert holder.stdout.readline() == "held\n"
        os.utime(lock, (time.time() - 3600, time.time() - 3600))
        assert _kinds(registry, repair=True) == []
        assert _token_locks(home) == [lock.name]
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert _kinds(registry, repair=True) == [("stale_lock", str(lock))]  # released: a leftover


def test_a_free_lock_file_of_a_live_process_is_left_alone_while_it_may_be_about_to_lock_it(
    registry: Registry, folder_model: Path, home: Path
) -> None:
    """Its creator opens the file, then locks it: for that moment the lock is free. A minute
    later it is a leftover whatever the pid (the pid may have been reused)."""
    lock = home / ".modelstore" / "locks" / f"token-{os.getpid()}-0123abcd.lock"
    lock.touch()
    assert _kinds(registry, repair=True) == [] and lock.exists()
    os.utime(lock, (time.time() - 120, time.time() - 120))
    assert _kinds(registry, repair=True) == [("stale_lock", str(lock))]
    assert _token_locks(home) == []


# --- a damaged or lost catalog ---------------------------------------------------------------


def _corrupt_an_index_page(home: Path) -> None:
    """Overwrite the first page of the manifest table's unique index with garbage: the pages
    ``list`` and ``path`` read stay intact, so only a full check (or a write that touches the
    index) meets the damage. Every connection is closed first, so the file holds every page."""
    import sqlite3

    catalog = home / "registry.db"
    connection = sqlite3.connect(catalog)
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    (root,) = connection.execute(
        "SELECT rootpage FROM sqlite_master WHERE type = 'index' AND tbl_name = 'version_files'"
    ).fetchone()
    connection.close()
    with open(catalog, "r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(b"\xff" * 64)


def test_a_damaged_catalog_is_reported_by_doctor_and_refused_by_verify_delete_and_register(
    home: Path, tmp_path: Path
) -> None:
    from modelstore.errors import CatalogDamagedError

    source = make_file(tmp_path / "model.pkl")
    with Registry(home) as registry:
        for _ in range(3):
            registry.register(source, "m")
    _corrupt_an_index_page(home)
    before = snapshot(home)
    with Registry(home) as registry:
        assert [v.version for v in registry.list()] == [3, 2, 1]  # lookups still answer
        for action in (
            registry.doctor,
            lambda: registry.doctor(repair=True),
            registry.verify,
            lambda: registry.delete("m", 1),
            lambda: registry.register(source, "m"),
        ):
            with pytest.raises(CatalogDamagedError) as caught:
                action()
            assert caught.value.catalog == str(home / "registry.db")
            assert caught.value.remedy == "rebuild_catalog" and caught.value.problems
            assert "Registry.rebuild_catalog(" in str(caught.value)
            assert "--" not in str(caught.value) and "`" not in str(caught.value)
    assert snapshot(home) == before


def test_rebuild_catalog_recreates_a_lost_catalog_from_the_tree_and_moves_the_old_one_aside(
    home: Path, tmp_path: Path
) -> None:
    from modelstore.errors import CatalogLostError

    file_source = make_file(tmp_path / "model.pkl", b"weights")
    folder_source = make_model_dir(tmp_path / "model_dir")
    with Registry(home) as registry:
        registry.register(file_source, "m", tags={"team": "fraud"})
        registry.register(folder_source, "m")
        registry.register(file_source, "m")
        registry.register(folder_source, "other")
        registry.delete("m", 2)
        before = {v.id: v for v in registry.list()}
    (home / "registry.db").write_bytes(b"")
    with pytest.raises(CatalogLostError):
        Registry(home)
    plan = Registry.plan_rebuild_catalog(home)
    assert plan.dry_run and [v.id for v in plan.versions] == ["m:1", "m:3", "other:1"]
    assert "is empty" in plan.problem and any("tags" in lost for lost in plan.lost)
    assert os.path.getsize(home / "registry.db") == 0  # planning changes nothing

    done = Registry.rebuild_catalog(plan)
    assert not done.dry_run and done.moved_to is not None
    assert os.path.getsize(Path(done.moved_to) / "registry.db") == 0  # kept, never deleted
    with Registry(home) as registry:
        after = {v.id: v for v in registry.list()}
        assert sorted(after) == sorted(before)
        for key, version in after.items():
            old = before[key]
            assert (version.entry, version.kind, version.size, version.file_count) == (
                old.entry,
                old.kind,
                old.size,
                old.file_count,
            )
            assert version.sha256 == old.sha256 and version.path == old.path
        assert after["m:1"].tags == {}  # only the lost catalog held it: reported as lost
        assert registry.verify().ok and registry.doctor().ok
        assert registry.register(file_source, "m").version == 4


def test_rebuild_catalog_replaces_a_damaged_catalog(home: Path, tmp_path: Path) -> None:
    source = make_file(tmp_path / "model.pkl")
    with Registry(home) as registry:
        registry.register(source, "m")
    (home / "registry.db").write_bytes(b"this is not a database" * 200)
    plan = Registry.plan_rebuild_catalog(home)
    assert "damaged" in plan.problem and [v.id for v in plan.versions] == ["m:1"]
    Registry.rebuild_catalog(plan)
    with Registry(home) as registry:
        assert registry.verify().ok and registry.versions("m") == [1]


def test_rebuild_catalog_refuses_a_healthy_catalog(registry: Registry, folder_model: Path) -> None:
    from modelstore.errors import CatalogError

    with pytest.raises(CatalogError, match="nothing to rebuild"):
        Registry.plan_rebuild_catalog(registry.home)
    assert registry.versions("m") == [1]


def test_rebuild_keeps_what_a_damaged_catalog_can_still_tell_where_the_files_match_it(
    home: Path, tmp_path: Path
) -> None:
    source = make_file(tmp_path / "model.pkl", b"weights")
    with Registry(home) as registry:
        first = registry.register(source, "m", tags={"team": "fraud"}, description="first")
        registry.register(source, "m", properties={"auc": "0.9"}, framework="Onnx")
        registry.register(source, "m")
        registry.delete("m", 3)  # its number must stay spent
        changed = registry.register(source, "n", tags={"stale": "yes"})
    _writable(changed.path)
    changed.path.write_bytes(b"edited by hand")  # its old row no longer describes its files
    _corrupt_an_index_page(home)
    plan = Registry.plan_rebuild_catalog(home)
    assert "damaged" in plan.problem
    assert plan.lost[0].startswith("tags, properties, description, framework and registration")
    Registry.rebuild_catalog(plan)
    with Registry(home) as registry:
        kept = registry.get("m", 1)
        assert (kept.tags, kept.description, kept.created_at) == (
            {"team": "fraud"},
            "first",
            first.created_at,
        )
        second = registry.get("m", 2)
        assert (second.properties, second.framework) == ({"auc": "0.9"}, "Onnx")
        assert registry.get("n", 1).tags == {}  # not vouched for by the files any more
        assert registry.verify().ok
        assert registry.register(source, "m").version == 4
