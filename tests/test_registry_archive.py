"""``Registry.export`` / ``plan_import`` / ``import_planned``: archives between registries and
adopting an ``azureml-models`` folder, all or nothing, on real stores and real tar files."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import sqlite3
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from registry_helpers import child_command, make_file, make_model_dir, snapshot

from modelstore import Registry
from modelstore.cli.errors import exit_code
from modelstore.errors import (
    ArchiveError,
    ImportConflictError,
    IntegrityError,
    InvalidArgumentError,
    StorageError,
)
from modelstore.registry.archive import MANIFEST_NAME

# --- helpers ---------------------------------------------------------------------------------


def store_state(home: Path) -> tuple[dict[str, bytes | None], list[str]]:
    """Every byte under the home but the catalog files, and the catalog's content: equal before
    and after a refusal means the store was left exactly as it was."""
    connection = sqlite3.connect(home / "registry.db")
    try:
        dump = list(connection.iterdump())
    finally:
        connection.close()
    return snapshot(home), dump


def source_registry(tmp_path: Path) -> Registry:
    """2 names x 2 versions: a folder model with metadata, and a file model."""
    registry = Registry(tmp_path / "src-home")
    folder = make_model_dir(tmp_path / "model_dir")
    registry.register(
        folder,
        "folder_model",
        tags={"stage": "test"},
        properties={"auc": "0.9"},
        description="a folder",
        framework="ScikitLearn",
        framework_version="1.3",
    )
    make_file(folder / "sub" / "b.txt", b"b2")
    registry.register(folder, "folder_model", tags={"stage": "prod"})
    model = make_file(tmp_path / "model.pkl", b"pickle-1")
    registry.register(model, "file_model")
    make_file(model, b"pickle-2")
    registry.register(model, "file_model", description="second")
    return registry


def exported(tmp_path: Path, name: str = "models.tar") -> Path:
    with source_registry(tmp_path) as registry:
        target = tmp_path / name
        registry.export(["folder_model:1", "folder_model:2", "file_model:1", "file_model"], target)
    return target


def described(model: Any) -> dict[str, Any]:
    fields = ["id", "entry", "kind", "size", "file_count", "sha256", "created_at", "tags"]
    fields += ["properties", "description", "framework", "framework_version"]
    return {field: getattr(model, field) for field in fields}


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def file_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    return info


def manifest_for(files: dict[str, bytes], name: str = "m", version: int = 1) -> bytes:
    """A manifest for one folder version ``<name>:<version>`` with entry ``e``."""
    return json.dumps(
        {
            "format": "modelstore-archive",
            "format_version": 1,
            "versions": [
                {
                    "name": name,
                    "version": version,
                    "entry": "e",
                    "kind": "folder",
                    "created_at": "2026-01-01T00:00:00+00:00",
                    "files": [
                        {
                            "relpath": relpath,
                            "size": len(data),
                            "sha256": hashlib.sha256(data).hexdigest(),
                        }
                        for relpath, data in files.items()
                    ],
                }
            ],
        }
    ).encode()


def hostile_archive(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], manifest: bytes
) -> Path:
    path = tmp_path / "hostile.tar"
    path.write_bytes(tar_bytes([(file_info(MANIFEST_NAME, len(manifest)), manifest), *members]))
    return path


@pytest.fixture
def target(tmp_path: Path) -> Registry:
    """A registry with one version of its own, so that 'unchanged' has something to keep."""
    registry = Registry(tmp_path / "home")
    registry.register(make_file(tmp_path / "own.bin", b"own"), "own")
    return registry


# --- round trip ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".tgz", ".tar.xz", ".tar.bz2"])
def test_an_exported_archive_imports_every_version_with_its_number_files_and_metadata(
    tmp_path: Path, target: Registry, suffix: str
) -> None:
    archive = exported(tmp_path, f"models{suffix}")
    plan = target.plan_import(archive)
    assert [v.id for v in plan.add] == [
        "folder_model:1",
        "folder_model:2",
        "file_model:1",
        "file_model:2",
    ]
    target.import_planned(plan)
    with Registry(tmp_path / "src-home") as source:
        originals = {m.id: described(m) for m in source.list()}
    imported = {m.id: described(m) for m in target.list() if m.name != "own"}
    assert imported == originals
    assert target.verify().ok
    assert target.path("folder_model", 2).joinpath("sub", "b.txt").read_bytes() == b"b2"
    assert target.doctor().findings == []


def test_export_names_versions_by_ref_and_writes_the_manifest_first(tmp_path: Path) -> None:
    with source_registry(tmp_path) as registry:
        report = registry.export(["file_model", "file_model:2"], tmp_path / "one.tar")
    assert report.versions == ["file_model:2"]  # NAME is the latest; duplicates once
    with tarfile.open(tmp_path / "one.tar") as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile(MANIFEST_NAME))  # type: ignore[arg-type]
    assert names == [MANIFEST_NAME, "file_model/2/model.pkl"]
    (version,) = manifest["versions"]
    assert version["files"] == [
        {"relpath": "model.pkl", "size": 8, "sha256": hashlib.sha256(b"pickle-2").hexdigest()}
    ]
    assert version["description"] == "second" and manifest["format_version"] == 1


def test_an_existing_version_with_the_same_files_is_refused_without_skip_existing(
    tmp_path: Path, target: Registry
) -> None:
    archive = exported(tmp_path)
    target.import_(archive)
    before = store_state(target.home)
    with pytest.raises(ImportConflictError) as caught:
        target.import_(archive)
    assert ("file_model", 1, "exists with the same files (--skip-existing skips it)") in (
        caught.value.conflicts
    )
    assert store_state(target.home) == before


def test_skip_existing_skips_equal_versions_and_imports_the_rest(
    tmp_path: Path, target: Registry
) -> None:
    with source_registry(tmp_path) as registry:
        registry.export(["file_model:1"], tmp_path / "one.tar")
        registry.export(["file_model:1", "file_model:2"], tmp_path / "two.tar")
    target.import_(tmp_path / "one.tar")
    plan = target.import_(tmp_path / "two.tar", skip_existing=True)
    assert [v.id for v in plan.skip] == ["file_model:1"]
    assert [v.id for v in plan.add] == ["file_model:2"]
    assert target.versions("file_model") == [1, 2] and target.verify().ok


def test_a_version_with_other_files_is_refused_even_with_skip_existing(
    tmp_path: Path, target: Registry
) -> None:
    archive = exported(tmp_path)
    target.register(make_file(tmp_path / "other.pkl", b"other"), "file_model")  # file_model:1
    before = store_state(target.home)
    with pytest.raises(ImportConflictError) as caught:
        target.import_(archive, skip_existing=True)
    assert caught.value.conflicts == [("file_model", 1, "exists with other files")]
    assert exit_code(caught.value) == 1
    assert store_state(target.home) == before


def test_a_number_used_by_a_deleted_version_is_refused(tmp_path: Path, target: Registry) -> None:
    archive = exported(tmp_path)
    target.register(make_file(tmp_path / "x.pkl", b"x"), "file_model")
    target.delete("file_model", 1)
    before = store_state(target.home)
    with pytest.raises(ImportConflictError, match="numbers are never reused"):
        target.import_(archive)
    assert store_state(target.home) == before


def test_imported_numbers_are_never_handed_out_again_by_register(
    tmp_path: Path, target: Registry
) -> None:
    with source_registry(tmp_path) as registry:
        registry.export(["file_model:2"], tmp_path / "two.tar")
    target.import_(tmp_path / "two.tar")
    assert target.register(tmp_path / "model.pkl", "file_model").version == 3


# --- export safety ---------------------------------------------------------------------------


def test_an_interrupted_export_leaves_no_file_under_the_target_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelstore.registry import archive as registry_archive

    real = registry_archive._add_file
    calls = []

    def interrupted(*args: Any) -> None:
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(*args)

    monkeypatch.setattr(registry_archive, "_add_file", interrupted)
    with source_registry(tmp_path) as registry, pytest.raises(KeyboardInterrupt):
        registry.export(["folder_model:1"], tmp_path / "out.tar.gz")
    assert sorted(os.listdir(tmp_path)) == ["model.pkl", "model_dir", "src-home"]


def test_a_killed_export_leaves_no_file_at_all(tmp_path: Path) -> None:
    with Registry(tmp_path / "home") as registry:
        for content in (b"one", b"two"):
            registry.register(make_file(tmp_path / "w.bin", content), "m")
    env = {k: v for k, v in os.environ.items() if k != "MODELSTORE_DB_URL"}
    child = subprocess.run(
        child_command("export_and_die_midway", str(tmp_path / "home"), str(tmp_path / "m.tar")),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert sorted(os.listdir(tmp_path)) == ["home", "w.bin"]


def test_without_unnamed_files_export_writes_a_named_temporary_and_renames_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelstore.registry import archive as registry_archive

    monkeypatch.setattr(registry_archive, "_open_unnamed", lambda folder: None)
    real = registry_archive._add_file
    seen: list[list[str]] = []

    def watching(*args: Any) -> None:
        seen.append(sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out.tar")))
        real(*args)

    monkeypatch.setattr(registry_archive, "_add_file", watching)
    with source_registry(tmp_path) as registry:
        registry.export(["file_model:1"], tmp_path / "out.tar")
        digest = registry.get("file_model", 1).sha256
    ((partial,),) = seen
    assert partial.startswith("out.tar.tmp-")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("out")) == ["out.tar"]
    with Registry(tmp_path / "other") as other:
        other.import_(tmp_path / "out.tar")
        assert other.get("file_model", 1).sha256 == digest


def test_a_file_created_under_the_target_name_during_export_is_kept_and_export_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelstore.registry import archive as registry_archive

    real = registry_archive._add_file

    def someone_else_writes_the_target(*args: Any) -> None:
        (tmp_path / "out.tar").write_bytes(b"theirs")
        real(*args)

    monkeypatch.setattr(registry_archive, "_add_file", someone_else_writes_the_target)
    with (
        source_registry(tmp_path) as registry,
        pytest.raises(
            InvalidArgumentError, match="created by someone else while the archive was written"
        ),
    ):
        registry.export(["file_model:1"], tmp_path / "out.tar")
    assert (tmp_path / "out.tar").read_bytes() == b"theirs"
    assert sorted(os.listdir(tmp_path)) == ["model.pkl", "model_dir", "out.tar", "src-home"]


def test_export_refuses_a_damaged_version_and_writes_nothing(tmp_path: Path) -> None:
    with source_registry(tmp_path) as registry:
        stored = registry.path("file_model", 1)
        os.chmod(stored, 0o644)
        stored.write_bytes(b"pickle-X")  # same size, other bytes
        with pytest.raises(IntegrityError, match="file_model:1"):
            registry.export(["file_model:1"], tmp_path / "out.tar")
    assert not any(p.name.startswith("out.tar") for p in tmp_path.iterdir())


def test_large_files_spanning_many_buffers_survive_export_and_import_byte_for_byte(
    tmp_path: Path, target: Registry
) -> None:
    from modelstore.store.hashing import BUFFER_SIZE, PIPELINE_MIN_SIZE

    folder = tmp_path / "big"
    folder.mkdir()
    sizes = {"pipelined.bin": PIPELINE_MIN_SIZE + 12345, "simple.bin": 3 * BUFFER_SIZE + 7}
    for file_name, size in sizes.items():
        (folder / file_name).write_bytes(os.urandom(size))
    with Registry(tmp_path / "src-home") as source:
        source.register(folder, "big")
        for suffix in (".tar", ".tar.gz"):
            source.export(["big:1"], tmp_path / f"big{suffix}")
    for suffix, home in ((".tar", target.home), (".tar.gz", tmp_path / "gz-home")):
        with Registry(home) as registry:
            registry.import_(tmp_path / f"big{suffix}")
            for file_name in sizes:
                stored = registry.path("big", 1) / file_name
                assert stored.read_bytes() == (folder / file_name).read_bytes(), suffix
            assert registry.verify("big", 1).ok


def test_export_refuses_a_large_file_damaged_in_its_last_chunk(tmp_path: Path) -> None:
    from modelstore.store.hashing import BUFFER_SIZE

    with Registry(tmp_path / "src-home") as registry:
        registry.register(make_file(tmp_path / "big.bin", os.urandom(5 * BUFFER_SIZE + 3)), "big")
        stored = registry.path("big", 1)
        os.chmod(stored, 0o644)
        with open(stored, "r+b") as handle:
            handle.seek(-2, os.SEEK_END)
            handle.write(b"XY")
        with pytest.raises(IntegrityError, match="big:1"):
            registry.export(["big:1"], tmp_path / "out.tar")
    assert not any(p.name.startswith("out.tar") for p in tmp_path.iterdir())


def test_every_imported_file_is_fsynced_before_any_version_reaches_the_tree(
    tmp_path: Path, target: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The durability rule of ``register``: no version is renamed into the tree before the data
    of its files are on disk (an import fsyncs them all once every file is checked)."""
    from modelstore.store.tree import Store

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc to name the fsync'd descriptors")
    archive = exported(tmp_path)
    plan = target.plan_import(archive)
    events: list[tuple[str, str]] = []
    real_fsync, real_publish = os.fsync, Store.publish

    def fsync(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        if os.path.isfile(path):
            events.append(("fsync", path))
        real_fsync(fd)

    def publish(self: Store, *args: Any) -> Path:
        events.append(("publish", ""))
        return real_publish(self, *args)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(Store, "publish", publish)
    target.import_planned(plan)
    first_publish = events.index(("publish", ""))
    synced = {path for kind, path in events[:first_publish] if kind == "fsync"}
    staged = {path for path in synced if f"{os.sep}staging{os.sep}" in path}
    assert len(staged) == sum(len(v.files) for v in plan.add) == 8


def test_a_plain_tar_is_copied_from_the_file_without_tarfiles_member_reader(
    tmp_path: Path, target: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = exported(tmp_path)

    def no_extractfile(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a plain tar's members are read with preadv")

    if not hasattr(os, "preadv"):
        pytest.skip("os.preadv is not available here")
    monkeypatch.setattr(tarfile.TarFile, "extractfile", no_extractfile, raising=True)
    monkeypatch.setattr(
        "modelstore.registry.archive._archive_versions", _manifest_reader_without_extractfile()
    )
    target.import_(archive)
    assert target.verify().ok
    assert target.path("folder_model", 2).joinpath("sub", "b.txt").read_bytes() == b"b2"


def _manifest_reader_without_extractfile() -> Any:
    """The manifest is read by tarfile (it is small); only the members' data must not be."""
    from modelstore.registry import archive as registry_archive

    real = registry_archive._archive_versions

    def read(path: str, compression: Any) -> Any:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(tarfile.TarFile, "extractfile", _REAL_EXTRACTFILE)
            return real(path, compression)

    return read


_REAL_EXTRACTFILE = tarfile.TarFile.extractfile


def aliased_archive(tmp_path: Path) -> Path:
    """``exported`` with folder_model@champion -> 2, folder_model@old -> 1 and
    file_model@champion -> 1 in the source."""
    with source_registry(tmp_path) as registry:
        registry.set_alias("folder_model:2", "champion")
        registry.set_alias("folder_model:1", "old")
        registry.set_alias("file_model:1", "champion")
        target = tmp_path / "aliased.tar"
        registry.export(["folder_model:1", "folder_model:2", "file_model:1"], target)
    return target


def test_export_records_the_aliases_pointing_at_each_version(tmp_path: Path) -> None:
    with tarfile.open(aliased_archive(tmp_path)) as tar:
        handle = tar.extractfile(MANIFEST_NAME)
        assert handle is not None
        manifest = json.load(handle)
    assert {(v["name"], v["version"]): v["aliases"] for v in manifest["versions"]} == {
        ("folder_model", 1): ["old"],
        ("folder_model", 2): ["champion"],
        ("file_model", 1): ["champion"],
    }


def test_import_with_aliases_sets_them_and_records_each_in_the_history(
    tmp_path: Path, target: Registry
) -> None:
    plan = target.plan_import(aliased_archive(tmp_path), with_aliases=True)
    target.import_planned(plan)
    assert {(a.name, a.alias, a.version) for a in target.aliases()} == {
        ("folder_model", "champion", 2),
        ("folder_model", "old", 1),
        ("file_model", "champion", 1),
    }
    history = target.alias_history("folder_model")
    assert sorted((m.alias, m.from_version, m.to_version) for m in history) == [
        ("champion", None, 2),
        ("old", None, 1),
    ]
    assert all("@" in m.by for m in history)
    assert target.get("folder_model@champion").version == 2


def test_import_without_with_aliases_sets_no_alias(tmp_path: Path, target: Registry) -> None:
    target.import_(aliased_archive(tmp_path))
    assert target.aliases() == []
    assert target.alias_history("folder_model") == []


def test_import_with_aliases_keeps_an_alias_already_pointing_at_the_same_version(
    tmp_path: Path, target: Registry
) -> None:
    archive = aliased_archive(tmp_path)
    target.import_(archive)
    target.set_alias("folder_model:2", "champion")
    plan = target.import_(archive, skip_existing=True, with_aliases=True)
    assert plan.add == []
    assert sorted(plan.aliases) == [("file_model", "champion", 1), ("folder_model", "old", 1)]
    assert [
        (m.alias, m.from_version, m.to_version) for m in target.alias_history("folder_model")
    ] == [
        ("champion", None, 2),
        ("old", None, 1),
    ]


def test_import_with_aliases_refuses_an_alias_that_points_elsewhere_and_changes_nothing(
    tmp_path: Path, target: Registry
) -> None:
    archive = aliased_archive(tmp_path)
    target.import_(archive, skip_existing=False)
    target.set_alias("folder_model:1", "champion")  # the archive has it at 2
    before = store_state(target.home)
    with pytest.raises(ImportConflictError, match="points at folder_model:1 here") as caught:
        target.import_(archive, skip_existing=True, with_aliases=True)
    assert caught.value.conflicts[0][:2] == ("folder_model", 2)
    assert store_state(target.home) == before


def test_an_alias_set_elsewhere_between_plan_and_import_refuses_the_whole_import(
    tmp_path: Path, target: Registry
) -> None:
    archive = aliased_archive(tmp_path)
    with Registry(tmp_path / "src-home") as source:
        source.export(["folder_model:1"], tmp_path / "first.tar")
    target.import_(tmp_path / "first.tar")
    plan = target.plan_import(archive, skip_existing=True, with_aliases=True)
    assert [v.id for v in plan.add] == ["folder_model:2", "file_model:1"]
    with Registry(target.home) as other:  # another process's move, after the plan
        other.set_alias("folder_model:1", "champion")  # the archive has it at 2
    before = store_state(target.home)
    with pytest.raises(ImportConflictError, match="folder_model@champion was set to"):
        target.import_planned(plan)
    after = store_state(target.home)  # folder_model:2 and file_model:1 were rolled back
    trash = target.home / ".modelstore" / "trash"
    assert list(trash.iterdir()) == []  # their folders went out through the trash
    assert ({k: v for k, v in after[0].items() if k != ".modelstore/trash"}, after[1]) == before
    assert target.doctor().findings == []


def test_an_archive_alias_that_breaks_the_alias_rule_is_refused(
    tmp_path: Path, target: Registry
) -> None:
    manifest = json.loads(manifest_for(GOOD))
    manifest["versions"][0]["aliases"] = ["latest"]
    archive = hostile_archive(tmp_path, [], json.dumps(manifest).encode())
    with pytest.raises(ArchiveError, match="invalid alias 'latest'"):
        target.plan_import(archive, with_aliases=True)


def test_export_refuses_an_existing_target_or_an_unknown_suffix(tmp_path: Path) -> None:
    with source_registry(tmp_path) as registry:
        (tmp_path / "taken.tar").write_bytes(b"mine")
        with pytest.raises(InvalidArgumentError, match="already exists"):
            registry.export(["file_model"], tmp_path / "taken.tar")
        with pytest.raises(InvalidArgumentError, match=r"\.tar\.gz"):
            registry.export(["file_model"], tmp_path / "out.zip")
    assert (tmp_path / "taken.tar").read_bytes() == b"mine"


# --- hostile and lying archives --------------------------------------------------------------

GOOD = {"e/w.bin": b"weights"}


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _device(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    return info


HOSTILE: dict[str, tuple[list[tuple[tarfile.TarInfo, bytes | None]], bytes, str]] = {
    "absolute path": (
        [(file_info("/tmp/evil", 4), b"evil")],
        manifest_for(GOOD),
        "absolute path",
    ),
    "dot-dot": (
        [(file_info("m/1/e/../../../../evil", 4), b"evil")],
        manifest_for(GOOD),
        "'..'",
    ),
    "symlink out": (
        [(_link("m/1/e/w.bin", "/etc/passwd", tarfile.SYMTYPE), None)],
        manifest_for(GOOD),
        "is a link",
    ),
    "hard link out": (
        [(_link("m/1/e/w.bin", "../../etc/passwd", tarfile.LNKTYPE), None)],
        manifest_for(GOOD),
        "is a link",
    ),
    "device": ([(_device("m/1/e/w.bin"), None)], manifest_for(GOOD), "device"),
    "not in manifest": (
        [(file_info("m/1/e/w.bin", 7), b"weights"), (file_info("m/1/e/x.bin", 1), b"x")],
        manifest_for(GOOD),
        "not listed in the manifest",
    ),
    "size lie": (
        [(file_info("m/1/e/w.bin", 8), b"weights!")],
        manifest_for(GOOD),
        "is 8 bytes but the manifest says 7",
    ),
    "sha256 lie": (
        [(file_info("m/1/e/w.bin", 7), b"WEIGHTS")],
        manifest_for(GOOD),
        "does not match its sha256",
    ),
    "missing file": ([], manifest_for(GOOD), "listed in the manifest but missing"),
    "manifest path escapes": (
        [(file_info("m/1/e/w.bin", 7), b"weights")],
        manifest_for({"e/../../x": b"weights"}),
        "leaves its folder",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_archive_is_refused_in_one_line_with_the_store_unchanged(
    tmp_path: Path, target: Registry, case: str
) -> None:
    members, manifest, expected = HOSTILE[case]
    archive = hostile_archive(tmp_path, members, manifest)
    before = store_state(target.home)
    with pytest.raises(ArchiveError) as caught:
        target.import_(archive)
    message = str(caught.value)
    assert expected in message and "\n" not in message
    assert exit_code(caught.value) == 2
    assert store_state(target.home) == before
    assert not os.path.exists("/tmp/evil") or case != "absolute path"


def test_a_decompression_bomb_is_refused_before_it_is_inflated(
    tmp_path: Path, target: Registry
) -> None:
    """A member announced small by the manifest but huge in its header is refused on its
    header; one the manifest itself announces huge is refused against the free disk space;
    neither is ever decompressed."""
    import gzip

    huge = 10**15
    header_bomb = file_info("m/1/e/w.bin", huge)
    manifest = manifest_for(GOOD)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(file_info(MANIFEST_NAME, len(manifest)), io.BytesIO(manifest))
        tar.addfile(header_bomb)  # header only: the data that would follow is never read
    (tmp_path / "bomb.tar.gz").write_bytes(gzip.compress(raw.getvalue()))
    claimed = json.loads(manifest)
    claimed["versions"][0]["files"][0]["size"] = huge
    big_manifest = json.dumps(claimed).encode()
    (tmp_path / "claims.tar").write_bytes(
        tar_bytes([(file_info(MANIFEST_NAME, len(big_manifest)), big_manifest)])
    )
    before = store_state(target.home)
    with pytest.raises(ArchiveError, match=f"is {huge} bytes but the manifest says 7"):
        target.import_(tmp_path / "bomb.tar.gz")
    with pytest.raises(ArchiveError, match="bytes are free"):
        target.import_(tmp_path / "claims.tar")
    assert store_state(target.home) == before


def test_data_beyond_what_the_manifest_announces_is_not_read(
    tmp_path: Path, target: Registry
) -> None:
    """A tar's own headers can hide data (a pax header of any size): reading stops at what
    the manifest accounts for."""
    from modelstore.registry import archive as registry_archive

    manifest = manifest_for(GOOD)
    info = file_info("m/1/e/w.bin", 7)
    info.pax_headers = {"comment": "x" * (registry_archive._HEADER_ALLOWANCE * 64)}
    archive = hostile_archive(tmp_path, [(info, b"weights")], manifest)
    before = store_state(target.home)
    with pytest.raises(ArchiveError, match="more data than its manifest announces"):
        target.import_(archive)
    assert store_state(target.home) == before


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"not a tar at all", "not a readable modelstore archive"),
        (b"", "not a readable modelstore archive"),
    ],
)
def test_a_file_that_is_no_archive_is_refused(
    tmp_path: Path, target: Registry, content: bytes, expected: str
) -> None:
    path = tmp_path / "junk.tar"
    path.write_bytes(content)
    with pytest.raises(ArchiveError, match=expected):
        target.plan_import(path)


def test_a_tar_without_a_manifest_first_is_not_a_modelstore_archive(
    tmp_path: Path, target: Registry
) -> None:
    path = tmp_path / "plain.tar"
    path.write_bytes(tar_bytes([(file_info("m/1/e/w.bin", 7), b"weights")]))
    with pytest.raises(ArchiveError, match=f"its first member is not {MANIFEST_NAME}"):
        target.plan_import(path)


def test_a_truncated_archive_is_refused_and_nothing_is_imported(
    tmp_path: Path, target: Registry
) -> None:
    archive = exported(tmp_path)
    with tarfile.open(archive) as tar:
        last = tar.getmembers()[-1]
    data = archive.read_bytes()
    archive.write_bytes(data[: last.offset_data + 2])  # within the last file's data
    before = store_state(target.home)
    with pytest.raises(ArchiveError):
        target.import_(archive)
    assert store_state(target.home) == before


def test_a_manifest_from_a_newer_format_is_refused(tmp_path: Path, target: Registry) -> None:
    manifest = json.loads(manifest_for(GOOD))
    manifest["format_version"] = 2
    data = json.dumps(manifest).encode()
    archive = hostile_archive(tmp_path, [], data)
    with pytest.raises(ArchiveError, match="format_version 2 is not supported"):
        target.plan_import(archive)


# --- all or nothing --------------------------------------------------------------------------


def test_a_failed_publish_rolls_back_the_versions_already_published(
    tmp_path: Path, target: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = exported(tmp_path)
    real = target._store.publish
    calls: list[str] = []

    def fail_third(token: str, name: str, version: int, entry: str) -> Path:
        calls.append(f"{name}:{version}")
        if len(calls) == 3:
            raise StorageError("disk full")
        return real(token, name, version, entry)

    monkeypatch.setattr(target._store, "publish", fail_third)
    before = store_state(target.home)
    with pytest.raises(StorageError):
        target.import_(archive)
    monkeypatch.undo()
    models = target.home / "azureml-models"
    assert sorted(os.listdir(models)) == ["own"]
    assert [m.name for m in target.list()] == ["own"]
    assert target.doctor().findings == []
    # the numbers were given back: the same import succeeds once the disk has room
    assert store_state(target.home)[1] == before[1]
    assert len(target.import_(archive).add) == 4


def test_a_number_taken_between_plan_and_import_refuses_every_version(
    tmp_path: Path, target: Registry
) -> None:
    """The catalog reserves all numbers in one transaction: one taken meanwhile (a register
    racing the import) refuses the whole import, and nothing it staged stays behind."""
    archive = exported(tmp_path)
    plan = target.plan_import(archive)
    target.register(make_file(tmp_path / "racer.pkl", b"racer"), "file_model")  # takes 1
    before = store_state(target.home)
    with pytest.raises(ImportConflictError, match="file_model:1 was taken meanwhile"):
        target.import_planned(plan)
    assert store_state(target.home) == before
    assert os.listdir(target.home / ".modelstore" / "staging") == []


def test_a_killed_import_leaves_nothing_visible_and_doctor_rolls_it_back(
    tmp_path: Path, target: Registry
) -> None:
    archive = exported(tmp_path)
    target.close()
    env = {k: v for k, v in os.environ.items() if k != "MODELSTORE_DB_URL"}
    child = subprocess.run(
        child_command("import_and_die_after_publish", str(target.home), str(archive), "2"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    with Registry(target.home) as registry:
        assert [m.id for m in registry.list()] == ["own:1"]  # two versions are in the tree
        report = registry.doctor(repair=True)
        assert [f.kind for f in report.findings] == ["unfinished_registration"] * 4
        assert sorted(os.listdir(target.home / "azureml-models")) == ["own"]
        assert os.listdir(target.home / ".modelstore" / "staging") == []
        assert registry.doctor().findings == [] and registry.verify().ok


# --- adopting an azureml-models folder -------------------------------------------------------


def deployed_copy(tmp_path: Path) -> Path:
    """What `modelstore deploy --copy` lays out: app_root/azureml-models/<name>/<n>/<entry>."""
    with source_registry(tmp_path) as registry:
        registry.deploy(["folder_model:2", "file_model:1"], tmp_path / "app", copy=True)
    return tmp_path / "app" / "azureml-models"


def test_an_azureml_models_folder_is_adopted_under_its_names_and_numbers(
    tmp_path: Path, target: Registry
) -> None:
    folder = deployed_copy(tmp_path)
    plan = target.import_(folder)
    assert sorted(v.id for v in plan.add) == ["file_model:1", "folder_model:2"]
    assert target.versions("folder_model") == [2]
    with Registry(tmp_path / "src-home") as source:
        assert target.get("folder_model", 2).sha256 == source.get("folder_model", 2).sha256
    assert target.path("file_model", 1).read_bytes() == b"pickle-1"
    assert target.verify().ok and target.doctor().findings == []
    assert target.register(tmp_path / "model.pkl", "folder_model").version == 3


def test_adopting_refuses_the_whole_folder_when_a_number_is_taken(
    tmp_path: Path, target: Registry
) -> None:
    folder = deployed_copy(tmp_path)
    target.register(make_file(tmp_path / "x.pkl", b"x"), "file_model")  # takes file_model:1
    before = store_state(target.home)
    with pytest.raises(ImportConflictError, match="file_model:1 exists with other files"):
        target.import_(folder, skip_existing=True)
    assert store_state(target.home) == before


def test_adopting_with_skip_existing_skips_versions_already_held(
    tmp_path: Path, target: Registry
) -> None:
    folder = deployed_copy(tmp_path)
    with Registry(tmp_path / "src-home") as source:
        source.export(["file_model:1"], tmp_path / "one.tar")
    target.import_(tmp_path / "one.tar")
    before = store_state(target.home)
    with pytest.raises(ImportConflictError, match="same files"):
        target.import_(folder)
    assert store_state(target.home) == before
    plan = target.import_(folder, skip_existing=True)
    assert [v.id for v in plan.skip] == ["file_model:1"]
    assert [v.id for v in plan.add] == ["folder_model:2"]


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ({"m/x/e.bin": b"1"}, "not a version folder"),
        ({"m/1/a.bin": b"1", "m/1/b.bin": b"2"}, "holds 2 items"),
        ({"bad name!/1/e.bin": b"1"}, "not a valid model name"),
        ({"loose.bin": b"1"}, "is not a model name folder"),
    ],
)
def test_a_folder_not_laid_out_as_azureml_models_is_refused(
    tmp_path: Path, target: Registry, layout: dict[str, bytes], expected: str
) -> None:
    root = tmp_path / "azureml-models"
    for relpath, data in layout.items():
        make_file(root / relpath, data)
    before = store_state(target.home)
    with pytest.raises(ArchiveError, match=expected):
        target.import_(root)
    assert store_state(target.home) == before


def test_importing_a_path_that_does_not_exist_is_bad_input(
    target: Registry, tmp_path: Path
) -> None:
    with pytest.raises(ArchiveError, match="does not exist") as caught:
        target.plan_import(tmp_path / "nope.tar")
    assert exit_code(caught.value) == 2
