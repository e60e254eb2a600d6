"""Store logic on pyfakefs: the tree and locks in the fake file system, the catalog in memory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyfakefs.fake_filesystem import FakeFilesystem
from pyfakefs.fake_filesystem_unittest import Patcher

from modelstore import Registry
from modelstore.errors import InvalidModelPathError, StorageError
from modelstore.layout import StoreLayout
from modelstore.store import Store, plan_source

HOME = "/home/ds/.modelstore-home"


@pytest.fixture
def registry(fs: FakeFilesystem) -> Iterator[Registry]:
    with Registry(HOME, db_url="sqlite://") as opened:
        yield opened


def _leave_free(fs: FakeFilesystem, free: int) -> None:
    fs.set_disk_usage(10**12)  # pyfakefs counts usage only once a size is set
    fs.set_disk_usage(fs.get_disk_usage()[1] + free)  # (total, used, free)


def _leftovers() -> list[str]:
    found = []
    for area in ("staging", "trash"):
        path = os.path.join(HOME, ".modelstore", area)
        if os.path.isdir(path):
            found += [f"{area}/{item}" for item in os.listdir(path)]
    return found


def test_a_registry_works_entirely_inside_the_fake_file_system(
    fs: FakeFilesystem, registry: Registry
) -> None:
    fs.create_file("/data/outputs/model.pkl", contents=b"weights")
    fs.create_file("/data/outputs/model_dir/a.txt", contents=b"a")
    fs.create_file("/data/outputs/model_dir/sub/b.txt", contents=b"b")
    first = registry.register("/data/outputs/model.pkl", "m")
    second = registry.register("/data/outputs/model_dir", "m")
    assert str(first.path) == f"{HOME}/azureml-models/m/1/model.pkl"
    assert sorted(os.listdir(f"{HOME}/azureml-models/m")) == ["1", "2"]
    assert registry.path("m") == second.path and second.file_count == 2
    assert registry.verify().ok
    registry.delete("m")
    assert not os.path.exists(f"{HOME}/azureml-models/m") and _leftovers() == []


def test_a_full_disk_during_the_copy_leaves_nothing_behind(
    fs: FakeFilesystem, registry: Registry
) -> None:
    fs.create_file("/data/seed.pkl", contents=b"s" * 10)
    registry.register("/data/seed.pkl", "seed")
    fs.create_file("/data/model_dir/a.bin", contents=b"a" * 1000)
    fs.create_file("/data/model_dir/b.bin", contents=b"b" * 50_000)
    _leave_free(fs, 20_000)  # room for a.bin, not for b.bin
    with pytest.raises(StorageError, match=r"disk is full.*free some space") as caught:
        registry.register("/data/model_dir", "m")
    assert "\n" not in str(caught.value)
    assert _leftovers() == []
    assert not os.path.exists(f"{HOME}/azureml-models/m")
    assert [v.id for v in registry.list()] == ["seed:1"]


def test_space_freed_after_a_full_disk_lets_the_next_registration_take_number_one(
    fs: FakeFilesystem, registry: Registry
) -> None:
    fs.create_file("/data/model.bin", contents=b"x" * 50_000)
    _leave_free(fs, 10_000)
    with pytest.raises(StorageError):
        registry.register("/data/model.bin", "m")
    fs.set_disk_usage(10**9)
    assert registry.register("/data/model.bin", "m").version == 1


def test_a_registration_failing_on_a_full_disk_leaves_no_lock_file(
    fs: FakeFilesystem, registry: Registry
) -> None:
    """Its token lock file was unlinked only when the registration succeeded."""
    fs.create_file("/data/model.bin", contents=b"x" * 50_000)
    _leave_free(fs, 10_000)
    with pytest.raises(StorageError):
        registry.register("/data/model.bin", "m")
    assert os.listdir(f"{HOME}/.modelstore/locks") == []


def test_an_unreadable_file_is_refused_before_anything_is_copied() -> None:
    with Patcher(allow_root_user=False) as patcher:
        fs = patcher.fs
        assert fs is not None
        fs.create_file("/data/model_dir/a.txt", contents=b"a")
        fs.create_file("/data/model_dir/secret.txt", contents=b"s")
        os.chmod("/data/model_dir/secret.txt", 0o000)
        with Registry(HOME, db_url="sqlite://") as registry:
            with pytest.raises(InvalidModelPathError, match=r"cannot read 'model_dir/secret.txt'"):
                registry.register("/data/model_dir", "m")
            with pytest.raises(InvalidModelPathError, match="permission denied"):
                registry.register("/data/model_dir/secret.txt", "m")
            assert registry.list() == [] and _leftovers() == []


def test_an_unreadable_subfolder_is_refused() -> None:
    with Patcher(allow_root_user=False) as patcher:
        fs = patcher.fs
        assert fs is not None
        fs.create_file("/data/model_dir/sub/a.txt", contents=b"a")
        os.chmod("/data/model_dir/sub", 0o000)
        with (
            Registry(HOME, db_url="sqlite://") as registry,
            pytest.raises(InvalidModelPathError, match="cannot read the folder 'model_dir/sub'"),
        ):
            registry.register("/data/model_dir", "m")


def test_a_read_only_home_gives_a_storage_error_and_no_version() -> None:
    with Patcher(allow_root_user=False) as patcher:
        fake = patcher.fs
        assert fake is not None
        fake.create_file("/data/model.pkl", contents=b"x")
        with Registry(HOME, db_url="sqlite://") as registry:
            os.makedirs(f"{HOME}/.modelstore/locks")
            os.chmod(f"{HOME}/.modelstore", 0o555)
            with pytest.raises(StorageError, match="not writable"):
                registry.register("/data/model.pkl", "m")
            assert registry.list() == []


def test_plan_lists_files_sorted_with_child_paths_deduplicated(fs: FakeFilesystem) -> None:
    for rel in ("a.txt", "sub/b.txt", "sub/deeper/c.txt", "z.txt"):
        fs.create_file(f"/m/model_dir/{rel}", contents=rel.encode())
    plan = plan_source("/m/model_dir", ["sub", "sub/b.txt", "a.txt"])
    assert plan.entry == "model_dir" and plan.kind == "folder"
    assert [f.relpath for f in plan.files] == [
        "model_dir/a.txt",
        "model_dir/sub/b.txt",
        "model_dir/sub/deeper/c.txt",
    ]
    assert plan.total_size == len("a.txt") + len("sub/b.txt") + len("sub/deeper/c.txt")


def test_staging_copies_hash_and_discards_on_request(fs: FakeFilesystem) -> None:
    fs.create_file("/m/model.pkl", contents=b"abc")
    store = Store(StoreLayout(Path(HOME)))
    staged = store.stage(plan_source("/m/model.pkl"), "tok")
    assert [(f.relpath, f.size) for f in staged] == [("model.pkl", 3)]
    assert staged[0].sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert os.listdir(store.staging_path("tok")) == ["model.pkl"]
    store.discard("tok")
    assert not os.path.exists(store.staging_path("tok"))


def test_publishing_a_new_name_moves_the_whole_name_folder_in_one_rename(
    fs: FakeFilesystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs.create_file("/m/model.pkl", contents=b"abc")
    store = Store(StoreLayout(Path(HOME)))
    store.stage(plan_source("/m/model.pkl"), "tok")
    renames: list[tuple[str, str]] = []
    real_rename = os.rename

    def spy(src: str, dst: str) -> None:
        renames.append((os.fspath(src), os.fspath(dst)))
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", spy)
    store.publish("tok", "m", 1, "model.pkl")
    into_tree = [dst for _src, dst in renames if "azureml-models" in dst]
    assert into_tree == [f"{HOME}/azureml-models/m"]
    assert os.listdir(f"{HOME}/.modelstore/staging") == []
    assert os.listdir(f"{HOME}/azureml-models/m/1") == ["model.pkl"]


def test_publishing_to_an_existing_name_renames_only_the_version_folder(
    fs: FakeFilesystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs.create_file("/m/model.pkl", contents=b"abc")
    store = Store(StoreLayout(Path(HOME)))
    store.stage(plan_source("/m/model.pkl"), "t1")
    store.publish("t1", "m", 1, "model.pkl")
    store.stage(plan_source("/m/model.pkl"), "t2")
    renames: list[str] = []
    real_rename = os.rename

    def spy(src: str, dst: str) -> None:
        renames.append(os.fspath(dst))
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", spy)
    store.publish("t2", "m", 2, "model.pkl")
    assert renames == [f"{HOME}/azureml-models/m/2"]


def test_publishing_over_an_existing_version_folder_is_refused_and_cleaned(
    fs: FakeFilesystem,
) -> None:
    fs.create_file("/m/model.pkl", contents=b"abc")
    fs.create_file(f"{HOME}/azureml-models/m/1/stray.bin")
    store = Store(StoreLayout(Path(HOME)))
    store.stage(plan_source("/m/model.pkl"), "tok")
    with pytest.raises(StorageError) as caught:
        store.publish("tok", "m", 1, "model.pkl")
    assert str(caught.value) == (
        f"cannot publish m:1: {HOME}/azureml-models/m/1 already exists (left by an earlier "
        "crash); clean up with Registry.doctor(repair=True) and retry"
    )
    assert (caught.value.path, caught.value.remedy) == (f"{HOME}/azureml-models/m/1", "repair")
    assert os.listdir(f"{HOME}/.modelstore/staging") == []
    assert os.listdir(f"{HOME}/azureml-models/m/1") == ["stray.bin"]


def test_a_delete_that_cannot_move_the_files_out_changes_nothing() -> None:
    with Patcher(allow_root_user=False) as patcher:
        fake = patcher.fs
        assert fake is not None
        fake.create_file("/data/model.pkl", contents=b"x")
        with Registry(HOME, db_url="sqlite://") as registry:
            registry.register("/data/model.pkl", "m")
            os.chmod(f"{HOME}/azureml-models", 0o555)
            with pytest.raises(StorageError, match=r"not writable.*nothing was removed"):
                registry.delete("m")
            assert registry.versions("m") == [1] and registry.verify().ok
            assert _leftovers() == []
            os.chmod(f"{HOME}/azureml-models", 0o755)
            assert registry.delete("m").bytes == 1


def test_read_only_entries_can_still_be_deleted_and_cleaned_by_a_non_root_user() -> None:
    """Stored folders are 0o555 and files 0o444; delete and doctor must still remove them (a
    non-root user is needed to prove it: root ignores permissions)."""
    with Patcher(allow_root_user=False) as patcher:
        fake = patcher.fs
        assert fake is not None
        fake.create_file("/data/model_dir/sub/deep/a.bin", contents=b"a")
        fake.create_file("/data/model_dir/b.bin", contents=b"b")
        with Registry(HOME, db_url="sqlite://") as registry:
            first = registry.register("/data/model_dir", "m")
            registry.register("/data/model_dir", "m")
            assert os.stat(first.path / "sub" / "deep").st_mode & 0o777 == 0o555
            with pytest.raises(PermissionError):
                open(first.path / "b.bin", "ab")  # noqa: SIM115 - read-only for its owner too
            registry.delete("m", 1)
            registry.delete("m")
            assert not os.path.exists(f"{HOME}/azureml-models/m") and _leftovers() == []
            stray = registry.register("/data/model_dir", "n")  # then a deletion killed midway:
            registry._catalog.start_delete("n", None, "dead-token")
            report = registry.doctor(repair=True)
            assert [f.kind for f in report.findings] == ["unfinished_deletion"]
            assert not os.path.exists(stray.path.parent.parent)
            assert _leftovers() == []
