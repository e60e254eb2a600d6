"""A registry shared by several homes: one catalog, one model store (``MODELSTORE_STORE_URL``),
each home a cache materialised on first use. The catalog here is a SQLite file outside the homes
(what matters is that it is one catalog); the PostgreSQL test runs the same protocol with real
processes on a server."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from registry_helpers import child_command, make_file, make_model_dir, tree_files, wait_for

from modelstore import Registry
from modelstore.catalog import PENDING
from modelstore.cli import main
from modelstore.errors import (
    IntegrityError,
    InvalidArgumentError,
    SharedHomeError,
    StorageError,
    StoreMismatchError,
)
from modelstore.store.identity import IDENTITY_NAME
from modelstore.store.shared import STORE_URL_ENV


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A shared store folder and a shared catalog, set in the environment as a team would."""
    root = tmp_path / "store"
    root.mkdir()
    monkeypatch.setenv(STORE_URL_ENV, f"file://{root}")
    monkeypatch.setenv("MODELSTORE_DB_URL", f"sqlite:///{tmp_path / 'catalog.db'}")
    return root


def blobs(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "sha256").glob("*/*"))


def test_a_version_registered_in_one_home_is_materialised_in_another_on_first_path(
    store: Path, tmp_path: Path
) -> None:
    source = make_model_dir(tmp_path / "model_dir")
    with Registry(tmp_path / "a") as a:
        registered = a.register(source, "m")
    assert len(blobs(store)) == 3  # a.txt, c.txt, sub/b.txt
    b_home = tmp_path / "b"
    with Registry(b_home) as b:
        assert not (b_home / "azureml-models").exists()  # nothing cached before first use
        path = b.path("m", 1)
        assert path == b_home / "azureml-models" / "m" / "1" / "model_dir"
        assert tree_files(path) == ["a.txt", "c.txt", "sub/b.txt"]
        assert (path / "sub" / "b.txt").read_bytes() == b"b"
        assert (path / "a.txt").stat().st_mode & 0o777 == 0o444
        assert os.listdir(path.parent) == ["model_dir"]  # one entry: an Azure ML app root
        assert b.path("m") == path  # cached: the same folder, not copied again
        assert b.verify().ok
        assert b.get("m", 1).sha256 == registered.sha256


def test_lookups_that_need_no_bytes_work_while_the_store_cannot_be_reached(
    store: Path, tmp_path: Path
) -> None:
    """``list``, ``show`` and a cached ``path`` read the catalog and the home only: a store
    that is unmounted (or an Azure store without credentials) must not stop them, nor make
    them wait; only what needs the store's bytes then fails, in one line."""
    with Registry(tmp_path / "a") as a, Registry(tmp_path / "b") as b:
        a.register(make_file(tmp_path / "one.pkl", b"one"), "m")
        cached = b.path("m", 1)  # m:1 is cached in home b...
        a.register(make_file(tmp_path / "two.pkl", b"two"), "m")  # ...m:2 is not
    store.rename(tmp_path / "unmounted")
    with Registry(tmp_path / "b", read_only=True) as b:
        assert [v.version for v in b.list("m")] == [2, 1]
        assert b.get("m", 2).sha256 and b.store_url == f"file://{store}"
        assert b.path("m", 1) == cached
        with pytest.raises(StorageError, match="does not exist"):
            b.path("m", 2)
    with pytest.raises(StorageError, match="does not exist"):
        Registry(tmp_path / "b")  # a writing open reaches the store before any work


def test_a_cache_opened_without_its_shared_catalog_says_which_registry_it_caches(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forgetting MODELSTORE_DB_URL on a team machine used to meet "the catalog is missing ...
    rebuild it", which would have made the cache a private registry of copies."""
    home = tmp_path / "a"
    with Registry(home) as a:
        a.register(make_file(tmp_path / "one.pkl", b"one"), "m")
    shared_catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    monkeypatch.delenv("MODELSTORE_DB_URL")
    monkeypatch.delenv(STORE_URL_ENV)
    before = sorted(p.relative_to(home) for p in home.rglob("*"))
    for read_only in (True, False):
        with pytest.raises(SharedHomeError) as refused:
            Registry(home, read_only=read_only)
        assert (refused.value.catalog, refused.value.store) == (shared_catalog, f"file://{store}")
        assert "set MODELSTORE_DB_URL to that catalog" in str(refused.value)
    with pytest.raises(SharedHomeError):
        Registry.plan_rebuild_catalog(home)
    result = CliRunner().invoke(main, ["--home", str(home), "list"])
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1
    assert f"caches the shared registry whose catalog is {shared_catalog}" in result.stderr
    assert sorted(p.relative_to(home) for p in home.rglob("*")) == before


def test_a_home_without_a_shared_store_records_no_shared_registry(tmp_path: Path) -> None:
    with Registry(tmp_path / "own") as own:
        own.register(make_file(tmp_path / "one.pkl", b"one"), "m")
        assert own.store_url is None
    assert not (tmp_path / "own" / ".modelstore" / "shared-registry.json").exists()


def test_registering_the_same_bytes_twice_stores_no_new_blob(store: Path, tmp_path: Path) -> None:
    source = make_file(tmp_path / "model.pkl", b"weights")
    with Registry(tmp_path / "a") as a:
        a.register(source, "m")
        [blob] = blobs(store)
        written = (store / "sha256" / blob[:2] / blob).stat()
        a.register(source, "m")
        a.register(source, "other")
    assert blobs(store) == [blob]
    assert (store / "sha256" / blob[:2] / blob).stat().st_mtime_ns == written.st_mtime_ns


def _entry_file(home: Path, name: str, version: int, entry: str) -> Path:
    return home / "azureml-models" / name / str(version) / entry


def test_reregistering_cached_bytes_links_the_cached_file_and_uploads_nothing(
    store: Path, tmp_path: Path
) -> None:
    source = make_file(tmp_path / "model.pkl", b"weights" * 1000)
    home = tmp_path / "a"
    with Registry(home) as a:
        a.register(source, "m")
        [blob] = blobs(store)
        written = (store / "sha256" / blob[:2] / blob).stat().st_mtime_ns
        a.register(source, "m")
        first, second = (_entry_file(home, "m", v, "model.pkl").stat() for v in (1, 2))
        assert (first.st_ino, first.st_nlink) == (second.st_ino, 2)  # one file, two names
        assert second.st_mode & 0o777 == 0o444
        assert a.verify().ok
        a.delete("m", 1)  # deleting either version unlinks one name; the other keeps the bytes
        assert _entry_file(home, "m", 2, "model.pkl").read_bytes() == b"weights" * 1000
        assert a.verify().ok
    assert blobs(store) == [blob]
    assert (store / "sha256" / blob[:2] / blob).stat().st_mtime_ns == written


def test_a_cached_file_written_since_it_was_stored_is_copied_not_linked(
    store: Path, tmp_path: Path
) -> None:
    source = make_file(tmp_path / "model.pkl", b"weights")
    home = tmp_path / "a"
    with Registry(home) as a:
        a.register(source, "m")
        cached = _entry_file(home, "m", 1, "model.pkl")
        cached.chmod(0o644)
        cached.write_bytes(b"weights")  # the same bytes, but written since: not vouched for
        cached.chmod(0o444)
        a.register(source, "m")
        copy = _entry_file(home, "m", 2, "model.pkl")
        assert copy.stat().st_ino != cached.stat().st_ino
        assert copy.read_bytes() == b"weights"
        cached.chmod(0o644)
        cached.write_bytes(b"damaged")
        a.register(source, "m")  # never linked to a damaged file
        assert _entry_file(home, "m", 3, "model.pkl").read_bytes() == b"weights"
        assert [c.id for c in a.verify().versions if not c.ok] == ["m:1"]


def test_bytes_of_a_cached_size_but_other_content_are_copied_uploaded_and_counted_once(
    store: Path, tmp_path: Path
) -> None:
    home = tmp_path / "a"
    with Registry(home) as a:
        a.register(make_file(tmp_path / "v1" / "model.pkl", b"weights-1"), "m")
        seen: list[tuple[int, int]] = []
        a.register(
            make_file(tmp_path / "v2" / "model.pkl", b"weights-2"),
            "m",
            progress=lambda done, total: seen.append((done, total)),
        )
        assert _entry_file(home, "m", 2, "model.pkl").stat().st_nlink == 1
        assert seen[-1] == (9, 9) and all(done <= total for done, total in seen)
    assert len(blobs(store)) == 2
    with Registry(tmp_path / "b") as b:
        assert b.path("m", 2).read_bytes() == b"weights-2"


def test_without_a_shared_store_every_version_keeps_its_own_copy(tmp_path: Path) -> None:
    source = make_file(tmp_path / "model.pkl", b"weights")
    home = tmp_path / "a"
    with Registry(home) as a:
        a.register(source, "m")
        a.register(source, "m")
    assert _entry_file(home, "m", 1, "model.pkl").stat().st_nlink == 1
    assert _entry_file(home, "m", 2, "model.pkl").stat().st_nlink == 1


def test_without_extended_attributes_nothing_is_vouched_for_and_versions_are_copied(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(os, "setxattr")  # as on a file system or platform without them
    source = make_file(tmp_path / "model.pkl", b"weights")
    home = tmp_path / "a"
    with Registry(home) as a:
        a.register(source, "m")
        a.register(source, "m")
        assert a.verify().ok
    assert _entry_file(home, "m", 2, "model.pkl").stat().st_nlink == 1


def test_materialising_links_bytes_an_earlier_cached_version_holds_instead_of_downloading(
    store: Path, tmp_path: Path
) -> None:
    source = make_model_dir(tmp_path / "model_dir")
    with Registry(tmp_path / "a") as a:
        a.register(source, "m")
        (source / "a.txt").write_bytes(b"new a")  # v2: one file changed, two the same
        a.register(source, "m")
    with Registry(tmp_path / "b") as b:
        first = b.path("m", 1)
        changed = {f.sha256 for f in b.files("m", 2) if f.path == "model_dir/a.txt"}
        for digest in set(blobs(store)) - changed:  # only a link can bring these files in now
            (store / "sha256" / digest[:2] / digest).unlink()
        second = b.path("m", 2)
        assert (second / "sub" / "b.txt").stat().st_ino == (first / "sub" / "b.txt").stat().st_ino
        assert (second / "a.txt").read_bytes() == b"new a"
        assert b.verify().ok


def test_a_corrupted_blob_is_refused_on_materialisation_and_nothing_appears_in_the_cache(
    store: Path, tmp_path: Path
) -> None:
    with Registry(tmp_path / "a") as a:
        a.register(make_file(tmp_path / "model.pkl", b"weights"), "m")
    [digest] = blobs(store)
    blob = store / "sha256" / digest[:2] / digest
    blob.chmod(0o644)
    blob.write_bytes(b"weightz")
    b_home = tmp_path / "b"
    with Registry(b_home) as b:
        with pytest.raises(IntegrityError, match="does not match the catalog") as caught:
            b.path("m", 1)
        assert "\n" not in str(caught.value)
        assert not (b_home / "azureml-models" / "m").exists()
        assert os.listdir(b_home / ".modelstore" / "staging") == []
        report = b.verify(store=True)
        assert [(c.id, c.changed) for c in report.versions] == [("m:1", ["model.pkl"])]


def test_a_blob_missing_from_the_store_is_one_line_and_nothing_is_cached(
    store: Path, tmp_path: Path
) -> None:
    with Registry(tmp_path / "a") as a:
        a.register(make_file(tmp_path / "model.pkl", b"weights"), "m")
    [digest] = blobs(store)
    (store / "sha256" / digest[:2] / digest).unlink()
    with Registry(tmp_path / "b") as b:
        with pytest.raises(Exception, match="is missing from the model store") as caught:
            b.path("m", 1)
        assert "\n" not in str(caught.value)
        assert not (tmp_path / "b" / "azureml-models" / "m").exists()
        assert [c.missing for c in b.verify(store=True).versions] == [["model.pkl"]]


def test_deploy_and_an_alias_in_another_home_materialise_the_version(
    store: Path, tmp_path: Path
) -> None:
    with Registry(tmp_path / "a") as a:
        a.register(make_file(tmp_path / "model.pkl", b"one"), "m")
        a.register(make_file(tmp_path / "model.pkl", b"two"), "m")
        a.set_alias("m:1", "prod")
    with Registry(tmp_path / "b") as b:
        deployment = b.deploy(["m:2"], tmp_path / "app")
        deployed = Path(deployment.env["AZUREML_MODEL_DIR"]) / "model.pkl"  # one model
        assert deployed.read_bytes() == b"two"
        assert b.path("m@prod").read_bytes() == b"one"


def test_get_model_path_outside_a_deployment_materialises_from_the_shared_store(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelstore.resolve import get_model_path

    with Registry(tmp_path / "a") as a:
        a.register(make_file(tmp_path / "model.pkl", b"weights"), "m")
    for variable in ("AML_APP_ROOT", "AZUREML_MODEL_DIR"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("MODELSTORE_HOME", os.fspath(tmp_path / "b"))
    monkeypatch.chdir(tmp_path)
    found = get_model_path("m", 1)
    assert found == f"{tmp_path / 'b'}/azureml-models/m/1/model.pkl"
    assert Path(found).read_bytes() == b"weights"


def test_verify_counts_versions_not_cached_and_checks_the_store_on_request(
    store: Path, tmp_path: Path
) -> None:
    with Registry(tmp_path / "a") as a:
        a.register(make_file(tmp_path / "model.pkl", b"one"), "m")
        a.register(make_file(tmp_path / "model.pkl", b"two"), "m")
    with Registry(tmp_path / "b") as b:
        b.path("m", 2)
        report = b.verify()
        assert [(c.id, c.cached, c.ok) for c in report.versions] == [
            ("m:2", True, True),
            ("m:1", False, True),
        ]
        assert all(c.cached and c.ok for c in b.verify(store=True).versions)


def test_verify_of_the_store_without_a_store_is_refused(tmp_path: Path) -> None:
    with (
        Registry(tmp_path / "home") as registry,
        pytest.raises(InvalidArgumentError, match="no shared model store"),
    ):
        registry.verify(store=True)


@pytest.mark.parametrize(
    ("first", "then", "message"),
    [
        (
            "store",
            "other",
            "belongs to the store file://.*/store, but this home is configured "
            "with the store file://.*/other",
        ),
        ("store", None, "belongs to the store .* configured with no MODELSTORE_STORE_URL"),
        (
            None,
            "store",
            "belongs to its own home's tree, but this home is configured with the store",
        ),
    ],
)
def test_a_home_configured_with_another_store_than_the_catalogs_is_refused(
    tmp_path: Path, first: str | None, then: str | None, message: str
) -> None:
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    for folder in ("store", "other"):
        (tmp_path / folder).mkdir()

    def url(folder: str | None) -> str | None:
        return None if folder is None else f"file://{tmp_path / folder}"

    with Registry(tmp_path / "a", catalog, store_url=url(first)) as a:
        a.register(make_file(tmp_path / "model.pkl"), "m")
    before = (tmp_path / "catalog.db").read_bytes()
    with pytest.raises(StoreMismatchError, match=message) as caught:
        Registry(tmp_path / "b", catalog, store_url=url(then))
    assert "\n" not in str(caught.value)
    assert (caught.value.store, caught.value.catalog_store) == (
        url(then) or "local",
        url(first) or "local",
    )
    assert (tmp_path / "catalog.db").read_bytes() == before
    marker = tmp_path / "a" / ".modelstore" / "shared-registry.json"
    recorded = marker.read_text() if marker.exists() else None
    with pytest.raises(StoreMismatchError):  # home a itself, opened with the wrong store
        Registry(tmp_path / "a", catalog, store_url=url(then))
    assert (marker.read_text() if marker.exists() else None) == recorded  # not rewritten


@pytest.mark.parametrize("replacement", ["empty folder", "another registry's store"])
def test_another_store_behind_the_same_url_is_refused_in_one_line(
    tmp_path: Path, replacement: str
) -> None:
    """The folder a ``file://`` URL names on another machine (another server mounted there),
    like the container an ``az://`` URL names in another storage account, is another store:
    its identity marker is not the one the catalog records."""
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    url = f"file://{tmp_path / 'store'}"
    (tmp_path / "store").mkdir()
    with Registry(tmp_path / "a", catalog, store_url=url) as a:
        a.register(make_file(tmp_path / "model.pkl"), "m")
        recorded = a._catalog.info()["model_store_id"]
    assert (tmp_path / "store" / IDENTITY_NAME).read_text() == (f'{{"store_id": "{recorded}"}}\n')
    (tmp_path / "store").rename(tmp_path / "first-store")
    (tmp_path / "store").mkdir()
    other = None
    if replacement != "empty folder":
        with Registry(tmp_path / "other", store_url=url) as elsewhere:
            elsewhere.register(make_file(tmp_path / "other.pkl", b"other"), "x")
        other = (tmp_path / "store" / IDENTITY_NAME).read_text().split('"')[3]
    before = (tmp_path / "catalog.db").read_bytes(), sorted(os.listdir(tmp_path / "store"))
    with pytest.raises(StoreMismatchError) as caught:
        Registry(tmp_path / "b", catalog, store_url=url)
    reached = (
        f"has no identity marker ({IDENTITY_NAME})"
        if other is None
        else f"is the store with id {other}"
    )
    assert str(caught.value) == (
        f"the catalog {catalog} belongs to the store {url} with id {recorded}, "
        f"but the store this home reaches as {url} {reached}: another storage account or "
        "folder of the same name; nothing was changed (check the credentials "
        "(AZURE_STORAGE_*) or the mount; if the marker was removed, write "
        f'{{"store_id": "{recorded}"}} back to {IDENTITY_NAME} at the store\'s root)'
    )
    assert (caught.value.store_id, caught.value.catalog_store_id) == (other, recorded)
    assert ((tmp_path / "catalog.db").read_bytes(), sorted(os.listdir(tmp_path / "store"))) == (
        before
    )
    (tmp_path / "store").rename(tmp_path / "second-store")
    (tmp_path / "first-store").rename(tmp_path / "store")
    with Registry(tmp_path / "b", catalog, store_url=url) as b:  # the right store again
        assert b.path("m", 1).read_bytes() == b"model-bytes"


def test_a_catalog_and_store_from_before_identity_markers_are_claimed_on_first_open(
    tmp_path: Path,
) -> None:
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    url = f"file://{tmp_path / 'store'}"
    (tmp_path / "store").mkdir()
    with Registry(tmp_path / "a", catalog, store_url=url) as a:
        a.register(make_file(tmp_path / "model.pkl"), "m")
        with a._catalog._engine.begin() as connection:  # as an earlier release left them
            connection.exec_driver_sql("DELETE FROM catalog_info WHERE key = 'model_store_id'")
    (tmp_path / "store" / IDENTITY_NAME).unlink()
    with Registry(tmp_path / "b", catalog, store_url=url) as b:
        assert b.path("m", 1).read_bytes() == b"model-bytes"
        found = (tmp_path / "store" / IDENTITY_NAME).read_text()
        assert found == f'{{"store_id": "{b._catalog.info()["model_store_id"]}"}}\n'


def test_doctor_in_one_home_reports_a_registration_under_way_in_another_as_live(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Home B's doctor cannot see home A's token lock, but it sees A's lease in the catalog
    (here the same process: its pid is alive); its repair leaves the registration alone."""
    a = Registry(tmp_path / "a")
    b = Registry(tmp_path / "b")
    reports = []
    publish = a._store.publish

    def publish_while_b_repairs(*args: object) -> Path:
        reports.append(b.doctor(repair=True))
        return publish(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(a._store, "publish", publish_while_b_repairs)
    registered = a.register(make_file(tmp_path / "model.pkl"), "m")
    [finding] = reports[0].findings
    assert (finding.kind, finding.subject, finding.repaired) == ("work_in_progress", "m:1", False)
    assert registered.version == 1 and b.path("m", 1).read_bytes() == b"model-bytes"
    a.close()
    b.close()


def test_doctor_in_a_home_that_cached_nothing_drops_no_row_and_no_blob(
    store: Path, tmp_path: Path
) -> None:
    with Registry(tmp_path / "a") as a:
        a.register(make_file(tmp_path / "model.pkl", b"one"), "m")
        a.register(make_file(tmp_path / "model.pkl", b"two"), "m")
    with Registry(tmp_path / "b") as b:
        assert b.doctor(repair=True).findings == []
        assert b.versions("m") == [1, 2]
    assert len(blobs(store)) == 2


def _drop_leases(db_url: str) -> None:
    """Make the catalog's work in progress look like a release before leases wrote it."""
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM leases"))
    engine.dispose()


def test_doctor_completes_its_own_homes_interrupted_registration_that_has_no_lease(
    store: Path, tmp_path: Path
) -> None:
    """A pending row without a lease (written by a release before leases) is settled only by
    the home holding a trace of its token (its lock file, staging or trash); every file is in
    the store, so it completes it, as a doctor of any home does with a leased one."""
    home = tmp_path / "a"
    child = subprocess.run(
        child_command(
            "die_after", str(home), str(make_model_dir(tmp_path / "m")), "catalog", "reserve"
        ),
        capture_output=True,
        text=True,
        env=os.environ.copy(),
    )
    assert child.returncode != 0
    _drop_leases(os.environ["MODELSTORE_DB_URL"])
    with Registry(tmp_path / "b") as b:
        [finding] = b.doctor(repair=True).findings
        assert finding.kind == "other_home_work"
    with Registry(home) as a:
        assert [r.state for r in a._catalog.rows()] == [PENDING]
        kinds = {f.kind for f in a.doctor(repair=True).findings}
        assert "unfinished_registration" in kinds
        assert a.versions("m") == [1] and a.verify("m", 1).ok
        assert a.doctor().findings == []


def test_several_processes_of_one_home_materialise_a_version_once(
    store: Path, tmp_path: Path
) -> None:
    with Registry(tmp_path / "a") as a:
        a.register(make_model_dir(tmp_path / "model_dir"), "m")
    home, log, flag = tmp_path / "b", tmp_path / "fetches.log", tmp_path / "go"
    command = child_command("path_counting_fetches", str(home), "m", "1", str(log), str(flag))
    children = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    flag.touch()
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert (child.returncode, err) == (0, ""), err
        outputs.append(out.strip())
    entry = home / "azureml-models" / "m" / "1" / "model_dir"
    assert outputs == [str(entry)] * 6
    assert len(log.read_text().splitlines()) == 3  # each of the 3 files fetched by one process
    assert tree_files(entry) == ["a.txt", "c.txt", "sub/b.txt"]
    assert os.listdir(home / ".modelstore" / "staging") == []


def _archive(tmp_path: Path) -> Path:
    """m:1 (a folder) and m:2 (a file), exported from a registry of its own (no store)."""
    archive = tmp_path / "m.tar"
    plain = f"sqlite:///{tmp_path / 'plain.db'}"
    with pytest.MonkeyPatch.context() as env:
        env.delenv(STORE_URL_ENV)
        with Registry(tmp_path / "plain", plain) as elsewhere:
            elsewhere.register(make_model_dir(tmp_path / "model_dir"), "m", tags={"k": "v"})
            elsewhere.register(make_file(tmp_path / "model.pkl", b"weights"), "m")
            elsewhere.export(["m:1", "m:2"], archive)
    return archive


def test_an_archive_imported_in_one_home_is_uploaded_and_materialised_in_another(
    store: Path, tmp_path: Path
) -> None:
    archive = _archive(tmp_path)
    with Registry(tmp_path / "a") as a:
        plan = a.import_(archive)
        assert [(v.name, v.version) for v in plan.add] == [("m", 1), ("m", 2)]
        assert a.verify().ok  # cached here at once
    assert len(blobs(store)) == 4  # a.txt, c.txt, sub/b.txt, model.pkl
    with Registry(tmp_path / "b") as b:
        assert tree_files(b.path("m", 1)) == ["a.txt", "c.txt", "sub/b.txt"]
        assert b.path("m", 2).read_bytes() == b"weights"
        assert b.get("m", 1).tags == {"k": "v"}
        assert b.verify(store=True).ok


def test_an_import_whose_upload_fails_imports_nothing_and_takes_no_number(
    store: Path, tmp_path: Path
) -> None:
    archive = _archive(tmp_path)
    (store / "tmp").write_bytes(b"")  # where the store writes a blob first is not a folder
    home = tmp_path / "a"
    with Registry(home) as a:
        with pytest.raises(StorageError, match="cannot write to the model store") as caught:
            a.import_(archive)
        assert "\n" not in str(caught.value)
        assert a._catalog.rows() == [] and a.list() == []
        assert os.listdir(home / ".modelstore" / "staging") == []
        assert not (home / "azureml-models" / "m").exists()
        (store / "tmp").unlink()
        assert [v.version for v in a.import_(archive).add] == [1, 2]  # no number was spent


def test_the_cli_verify_store_checks_the_blobs(store: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from modelstore.cli import main

    with Registry(tmp_path / "a") as a:
        a.register(make_file(tmp_path / "model.pkl", b"one"), "m")
    home = ["--home", str(tmp_path / "b")]
    result = CliRunner().invoke(main, [*home, "verify"])
    assert result.stdout == (
        "OK: this home caches none of the 1 version asked for, so nothing was re-hashed; "
        "--store checks the shared store's copies.\n"
    )
    result = CliRunner().invoke(main, [*home, "verify", "--store"])
    assert result.stdout == "OK: 1 version verified in the shared store, every file matches.\n"
    assert json.loads(CliRunner().invoke(main, [*home, "verify", "--json"]).stdout)["ok"]
    with Registry(tmp_path / "b") as b, Registry(tmp_path / "a") as a:
        b.path("m", 1)  # cached in b now, m:2 not
        a.register(make_file(tmp_path / "model.pkl", b"two"), "m")
    result = CliRunner().invoke(main, [*home, "verify"])
    assert result.stdout == (
        "OK: 1 version verified, every file matches (1 not cached in this home).\n"
    )


@pytest.mark.slow
@pytest.mark.postgres
def test_two_homes_of_four_processes_share_one_postgresql_catalog_and_one_store(
    tmp_path: Path, pg_url: str
) -> None:
    """2 homes x 4 processes x 50 registrations of one name: versions 1..400 exactly, one
    blob for the one content, and every version readable, deployable and verifiable from the
    home that did not register it."""
    root = tmp_path / "store"
    root.mkdir()
    env = {**os.environ, "MODELSTORE_DB_URL": pg_url, STORE_URL_ENV: f"file://{root}"}
    source = make_file(tmp_path / "model.pkl", b"m" * 4096)
    flag = tmp_path / "go"
    homes = [tmp_path / "a", tmp_path / "b"]
    commands = [
        (home, child_command("register_many", str(home), str(source), "m", "50", str(flag)))
        for home in homes
        for _ in range(4)
    ]
    children = [
        (
            home,
            subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
            ),
        )
        for home, command in commands
    ]
    flag.touch()
    by_home: dict[Path, list[int]] = {home: [] for home in homes}
    for home, child in children:
        out, err = child.communicate(timeout=240)
        assert (child.returncode, err) == (0, ""), err
        by_home[home] += json.loads(out)
    assert sorted(by_home[homes[0]] + by_home[homes[1]]) == list(range(1, 401))
    assert len(blobs(root)) == 1
    store_url = f"file://{root}"
    for home, other in (homes, reversed(homes)):
        with Registry(other, pg_url, store_url=store_url) as reader:
            for version in by_home[home][:3]:
                assert reader.path("m", version).read_bytes() == b"m" * 4096
                assert reader.verify("m", version).ok
            deployed = reader.deploy([f"m:{by_home[home][0]}"], tmp_path / f"app-{other.name}")
            assert (Path(deployed.env["AZUREML_MODEL_DIR"]) / "model.pkl").is_file()
            assert reader.doctor().findings == []


def test_a_home_that_cannot_hold_a_cache_is_one_line(store: Path, tmp_path: Path) -> None:
    from modelstore.errors import StorageError

    with Registry(tmp_path / "a") as a:
        a.register(make_file(tmp_path / "model.pkl"), "m")
    home = tmp_path / "b"
    home.mkdir()
    (home / ".modelstore").write_text("not a folder")  # its locks and staging cannot be made
    with Registry(home, read_only=True) as b:
        with pytest.raises(StorageError, match=r"cannot cache m:1 in .*/b \(") as caught:
            b.path("m", 1)
        assert "\n" not in str(caught.value)
        assert not (home / "azureml-models" / "m").exists()


def test_the_cli_doctor_lists_other_homes_work_without_a_lease_and_exits_0(
    store: Path, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from modelstore.cli import main

    source = make_model_dir(tmp_path / "m")
    subprocess.run(
        child_command("die_after", str(tmp_path / "a"), str(source), "catalog", "reserve"),
        capture_output=True,
        env=os.environ.copy(),
    )
    _drop_leases(os.environ["MODELSTORE_DB_URL"])
    result = CliRunner().invoke(main, ["--home", str(tmp_path / "b"), "doctor", "--repair"])
    assert (result.exit_code, result.stdout.splitlines()) == (
        0,
        [
            "[found] m:1: a registration under way (or interrupted) in another home of the "
            "shared catalog -> leave it: only the doctor of the home that started it may "
            "finish or roll it back",
            "1 operation of other homes (listed above) left to the home that started it: only "
            "its doctor finishes or rolls it back.",
        ],
    )


# --- work in progress belongs to the catalog: leases ---------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def team(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A shared store and a shared catalog (a SQLite file, or a PostgreSQL database), set in
    the environment for this process and its children; the catalog's URL."""
    root = tmp_path / "store"
    root.mkdir()
    url = (
        f"sqlite:///{tmp_path / 'catalog.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    monkeypatch.setenv(STORE_URL_ENV, f"file://{root}")
    monkeypatch.setenv("MODELSTORE_DB_URL", url)
    return url


class Held:
    """A registration in another home's process, held at a checkpoint (see
    ``registry_helpers.register_held``) until ``go``."""

    def __init__(self, tmp_path: Path, home: Path, checkpoint: str) -> None:
        self.reached = tmp_path / f"reached-{checkpoint}"
        self.go = tmp_path / f"go-{checkpoint}"
        source = make_file(tmp_path / "model.pkl")
        self.process = subprocess.Popen(
            child_command(
                "register_held", str(home), str(source), "m", checkpoint,
                str(self.reached), str(self.go),
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )  # fmt: skip
        try:
            wait_for(str(self.reached), timeout=60)
        except TimeoutError:
            self.process.kill()
            raise AssertionError(self.process.communicate()[1]) from None

    def finish(self) -> tuple[int, str, str]:
        self.go.touch()
        out, err = self.process.communicate(timeout=60)
        return self.process.returncode, out, err

    def kill(self) -> None:
        self.process.kill()  # SIGKILL
        self.process.communicate(timeout=60)


def _lease_rows(url: str) -> list[dict[str, object]]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return [dict(r) for r in connection.execute(text("SELECT * FROM leases")).mappings()]
    finally:
        engine.dispose()


def _rewrite_lease(url: str, **values: object) -> None:
    """Make the lease look like another host's (its fields as that host would write them)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            sets = ", ".join(f"{column} = :{column}" for column in values)
            connection.execute(text(f"UPDATE leases SET {sets}"), values)
    finally:
        engine.dispose()


@pytest.mark.parametrize(("checkpoint", "subject"), [("publish", "m:1"), ("upload", "m")])
def test_a_registration_held_in_one_home_is_live_for_another_homes_doctor_and_survives_repair(
    team: str, tmp_path: Path, checkpoint: str, subject: str
) -> None:
    """Held before its number is taken (only its lease is in the catalog) or after (its row
    pending): home B's doctor names its home and process and its repair changes nothing."""
    held = Held(tmp_path, tmp_path / "a", checkpoint)
    with Registry(tmp_path / "b") as b:
        before = b._catalog.rows()
        report = b.doctor(repair=True)
        [finding] = report.findings
        assert (finding.kind, finding.subject, finding.repaired) == (
            "work_in_progress",
            subject,
            False,
        )
        assert finding.detail == (
            f"a registration{' of m' if checkpoint == 'upload' else ''} under way in home "
            f"{tmp_path / 'a'} on host {socket.gethostname()} (pid {held.process.pid})"
        )
        assert b._catalog.rows() == before and len(_lease_rows(team)) == 1
    assert held.finish() == (0, "1\n", "")
    with Registry(tmp_path / "b") as b:
        assert b.path("m", 1).read_bytes() == b"model-bytes"
        assert b.doctor().findings == []
    assert _lease_rows(team) == []


def test_a_registration_killed_after_taking_its_number_is_completed_by_the_other_homes_doctor(
    team: str, tmp_path: Path
) -> None:
    """Same host, its pid dead: home B settles it through the catalog. Every byte is in the
    store, so the version is completed (not rolled back); home A's staging copy is A's."""
    held = Held(tmp_path, tmp_path / "a", "publish")
    pid = held.process.pid
    held.kill()
    with Registry(tmp_path / "b") as b:
        [finding] = b.doctor(repair=True).findings
        assert (finding.kind, finding.subject, finding.repaired) == (
            "unfinished_registration",
            "m:1",
            True,
        )
        assert finding.detail == (
            f"registration in home {tmp_path / 'a'} on host {socket.gethostname()} "
            f"(pid {pid}), whose process has ended, was interrupted once every file was in the "
            "store"
        )
        assert finding.action == "complete it (the version becomes visible)"
        assert b.path("m", 1).read_bytes() == b"model-bytes"
        assert b.verify("m", 1).ok and b.verify(store=True).ok
        assert b.doctor().findings == []
    assert _lease_rows(team) == []
    with Registry(tmp_path / "a") as a:  # its staging copy and lock file: its own doctor's
        kinds = sorted(f.kind for f in a.doctor(repair=True).findings)
        assert kinds == ["staging_leftover"]  # with its token's lock file
        assert a.doctor().findings == []
        assert a.path("m", 1).read_bytes() == b"model-bytes"
        assert os.listdir(tmp_path / "a" / ".modelstore" / "staging") == []


def test_a_registration_killed_before_taking_a_number_leaves_a_lease_another_home_drops(
    team: str, tmp_path: Path
) -> None:
    held = Held(tmp_path, tmp_path / "a", "upload")
    pid = held.process.pid
    held.kill()
    with Registry(tmp_path / "b") as b:
        [finding] = b.doctor(repair=True).findings
        assert (finding.kind, finding.subject, finding.repaired) == ("abandoned_lease", "m", True)
        assert finding.detail == (
            f"the lease of a registration of m in home {tmp_path / 'a'} on host "
            f"{socket.gethostname()} (pid {pid}), whose process has ended, before it wrote "
            "anything else to the catalog"
        )
        assert _lease_rows(team) == []
        assert b.doctor().findings == []
        assert b.register(make_file(tmp_path / "other.pkl"), "m").version == 1  # none spent
    with Registry(tmp_path / "a") as a:
        kinds = sorted(f.kind for f in a.doctor(repair=True).findings)
        assert kinds == ["staging_leftover"]
        assert a.doctor().findings == []


def test_a_lease_of_another_host_is_live_until_its_heartbeat_expires_then_completed(
    team: str, tmp_path: Path
) -> None:
    """Another host's pid means nothing here: only the heartbeat tells. The owner, stopped
    past the expiry, finds its version completed by the doctor and reports it registered."""
    from modelstore.catalog.leases import LEASE_EXPIRY_S

    held = Held(tmp_path, tmp_path / "a", "publish")
    [lease] = _lease_rows(team)
    _rewrite_lease(team, host="build-agent-7", host_id="elsewhere", pid=4242)
    with Registry(tmp_path / "b") as b:
        [finding] = b.doctor(repair=True).findings
        assert (finding.kind, finding.repaired) == ("work_in_progress", False)
        assert "on host build-agent-7 (pid 4242)" in finding.detail
        _rewrite_lease(team, heartbeat=int(str(lease["heartbeat"])) - LEASE_EXPIRY_S - 5)
        [finding] = b.doctor(repair=True).findings
        assert (finding.kind, finding.subject, finding.repaired) == (
            "unfinished_registration",
            "m:1",
            True,
        )
        assert re.fullmatch(
            rf"registration in home {re.escape(str(tmp_path / 'a'))} on host build-agent-7 "
            rf"\(pid 4242\), whose last heartbeat was 1[23]\d s ago \(leases expire after "
            rf"{LEASE_EXPIRY_S} s\), was interrupted once every file was in the store",
            finding.detail,
        ), finding.detail
        assert b.versions("m") == [1]
    assert held.finish() == (0, "1\n", "")
    with Registry(tmp_path / "a") as a:
        assert a.verify("m", 1).ok and a.doctor().findings == []


def test_a_lease_expired_before_its_files_were_stored_is_rolled_back_and_its_owner_fails(
    team: str, tmp_path: Path
) -> None:
    """The doctor rolls back (a blob is missing from the store); the owner, resumed, finds its
    lease gone: one line, exit 1, and the folder it had published is taken out again."""
    from modelstore.catalog.leases import LEASE_EXPIRY_S

    held = Held(tmp_path, tmp_path / "a", "publish")
    [lease] = _lease_rows(team)
    _rewrite_lease(
        team,
        host="build-agent-7",
        host_id="elsewhere",
        pid=4242,
        heartbeat=int(str(lease["heartbeat"])) - LEASE_EXPIRY_S - 5,
    )
    for blob in (tmp_path / "store" / "sha256").glob("*/*"):
        blob.unlink()  # as if the store lost it
    with Registry(tmp_path / "b") as b:
        [finding] = b.doctor(repair=True).findings
        assert (finding.kind, finding.action, finding.repaired) == (
            "unfinished_registration",
            "roll it back (its version number stays unused)",
            True,
        )
        assert b._catalog.rows() == []
    code, out, err = held.finish()
    assert (code, out) == (1, "")
    assert err == (
        "Error: the operation on 'm' lost its lease in the catalog: a doctor found no heartbeat "
        f"from it for {LEASE_EXPIRY_S} s and settled its work; nothing more was written; check "
        "the model with 'modelstore list m' and run the operation again if needed\n"
    )
    assert not (tmp_path / "a" / "azureml-models" / "m").exists()
    with Registry(tmp_path / "a") as a:
        assert a.register(make_file(tmp_path / "again.pkl"), "m").version == 2


def test_the_cli_doctor_lists_work_under_way_in_another_home_and_exits_0(
    team: str, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from modelstore.cli import main

    held = Held(tmp_path, tmp_path / "a", "publish")
    result = CliRunner().invoke(main, ["--home", str(tmp_path / "b"), "doctor", "--repair"])
    assert (result.exit_code, result.stdout.splitlines()) == (
        0,
        [
            f"[found] m:1: a registration under way in home {tmp_path / 'a'} on host "
            f"{socket.gethostname()} (pid {held.process.pid}) -> leave it: its process is alive",
            "1 operation under way (listed above) left to its process.",
        ],
    )
    assert held.finish()[0] == 0


@pytest.mark.slow
@pytest.mark.postgres
def test_doctor_repairing_over_and_over_in_one_home_loses_nothing_another_home_registers(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Home B runs doctor --repair in a loop while 4 processes of home A register 25 versions
    each, and a fifth registration of A is held after taking its number (so that every run
    overlaps work under way: the others are over in a few milliseconds, often between the
    doctor's snapshot and its check): every registration succeeds, versions are exactly
    1..101, and B never repairs a thing: it sees A's leases as live work (their pids run on
    this host) and leaves them."""
    root = tmp_path / "store"
    root.mkdir()
    store_url = f"file://{root}"
    monkeypatch.setenv("MODELSTORE_DB_URL", pg_url)
    monkeypatch.setenv(STORE_URL_ENV, store_url)
    env = os.environ.copy()
    source = make_file(tmp_path / "weights.pkl", b"m" * 4096)
    go, stop = tmp_path / "go", tmp_path / "stop"
    home_a, home_b = tmp_path / "a", tmp_path / "b"

    def start(command: list[str]) -> subprocess.Popen[str]:
        return subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )

    held = Held(tmp_path, home_a, "publish")
    doctor = start(child_command("doctor_until", str(home_b), str(stop)))
    registrars = [
        start(child_command("register_many", str(home_a), str(source), "m", "25", str(go)))
        for _ in range(4)
    ]
    go.touch()
    versions: list[int] = []
    for child in registrars:
        out, err = child.communicate(timeout=240)
        assert (child.returncode, err) == (0, ""), err
        versions += json.loads(out)
    code, out, err = held.finish()
    assert (code, err) == (0, ""), err
    assert int(out) == 1  # it took its number first
    versions.append(1)
    stop.touch()
    out, err = doctor.communicate(timeout=120)
    assert (doctor.returncode, err) == (0, ""), err
    loop = json.loads(out)
    assert loop["runs"] > 1 and loop["live"] > 0 and loop["repaired"] == [], loop
    assert sorted(versions) == list(range(1, 102))
    with Registry(home_b, pg_url, store_url=store_url) as b:
        assert b.versions("m") == list(range(1, 102))
        assert b.doctor().findings == []
        assert b.path("m", 101).read_bytes() == b"m" * 4096
    with Registry(home_a, pg_url, store_url=store_url) as a:
        assert a.doctor().findings == [] and a.verify().ok
    assert _lease_rows(pg_url) == []


def test_a_deletion_killed_in_one_home_is_finished_by_the_other_homes_doctor(
    team: str, tmp_path: Path
) -> None:
    """Rows only: the folder still in home A's cache is A's own doctor's to remove (every byte
    of it is in the store)."""
    source = make_file(tmp_path / "model.pkl")
    with Registry(tmp_path / "a") as a:
        a.register(source, "m")
        a.register(source, "m")
    child = subprocess.run(
        child_command("die_after", str(tmp_path / "a"), str(source), "catalog", "start_delete"),
        capture_output=True,
        env=os.environ.copy(),
    )
    assert child.returncode != 0
    with Registry(tmp_path / "b") as b:
        [finding] = b.doctor(repair=True).findings
        assert (finding.kind, finding.subject, finding.repaired) == (
            "unfinished_deletion",
            "m:1",
            True,
        )
        assert finding.action == "finish deleting it (a copy cached in that home is its doctor's)"
        assert "whose process has ended, was interrupted" in finding.detail
        assert b.versions("m") == [2] and b.doctor().findings == []
    assert _lease_rows(team) == []
    with Registry(tmp_path / "a") as a:
        kinds = sorted(f.kind for f in a.doctor(repair=True).findings)
        assert kinds == ["deleted_version_cache", "stale_lock"]
        assert not (tmp_path / "a" / "azureml-models" / "m" / "1").exists()
        assert a.path("m", 2).read_bytes() == b"model-bytes" and a.verify().ok
        assert a.doctor().findings == []


def test_a_version_deleted_in_one_home_leaves_the_others_cache_through_their_doctor(
    team: str, tmp_path: Path
) -> None:
    """Only a copy whose every byte is in the store: one changed since it was cached (its
    bytes in no blob) is a foreign folder, reported and never deleted."""
    with Registry(tmp_path / "a") as a:
        for index in range(3):
            a.register(make_file(tmp_path / f"v{index}.pkl", f"weights-{index}".encode()), "m")
    with Registry(tmp_path / "b") as b:
        for version in (1, 2, 3):
            b.path("m", version)
    with Registry(tmp_path / "a") as a:
        a.delete("m", 1)
        a.delete("m", 2)
    changed = tmp_path / "b" / "azureml-models" / "m" / "2" / "v1.pkl"
    changed.chmod(0o644)
    changed.write_bytes(b"edited by hand")
    with Registry(tmp_path / "b") as b:
        report = b.doctor()
        assert [(f.kind, f.subject) for f in report.findings] == [
            ("deleted_version_cache", "m:1"),
            ("orphan_folder", str(tmp_path / "b" / "azureml-models" / "m" / "2")),
        ]
        assert report.findings[0].detail == (
            "this home's cached copy of a version the catalog no longer has (deleted, or rolled "
            "back, from another home); every byte of it is in the shared store"
        )
        assert (tmp_path / "b" / "azureml-models" / "m" / "1").is_dir()  # only reported
        repaired = b.doctor(repair=True).findings
        assert [(f.kind, f.repaired) for f in repaired] == [
            ("deleted_version_cache", True),
            ("orphan_folder", False),
        ]
        assert not (tmp_path / "b" / "azureml-models" / "m" / "1").exists()
        assert changed.read_bytes() == b"edited by hand"  # never deleted
        assert b.path("m", 3).read_bytes() == b"weights-2" and b.verify().ok


def test_a_homes_own_doctor_completes_its_killed_registration_whose_files_are_all_stored(
    team: str, tmp_path: Path
) -> None:
    """The same outcome as from another home: which doctor runs first does not decide whether
    the version is kept."""
    held = Held(tmp_path, tmp_path / "a", "publish")
    held.kill()
    with Registry(tmp_path / "a") as a:
        findings = a.doctor(repair=True).findings
        assert [(f.kind, f.detail, f.repaired) for f in findings] == [
            (
                "unfinished_registration",
                "registration was interrupted once every file was in the store",
                True,
            )
        ]
        assert a.path("m", 1).read_bytes() == b"model-bytes" and a.doctor().findings == []
    assert _lease_rows(team) == []


# --- found by a new user's walk through "Sharing a registry" ------------------------------------


@pytest.mark.parametrize("command", [["path", "m:1"], ["verify", "--store"]])
def test_a_read_that_reaches_another_store_behind_the_same_url_is_refused_as_another_store(
    store: Path, tmp_path: Path, command: list[str]
) -> None:
    """A second machine whose credentials reach another storage account (or whose mount shows
    another server) with a container of the same name: ``deploy`` and ``register`` are refused
    with the identity-marker line, but ``path`` said "the store lost it: restore it or register
    the version again" and ``verify --store`` listed every version ``missing`` and advised
    deleting them, which would have made the team delete its good versions."""
    with Registry(tmp_path / "a") as a:
        a.register(make_file(tmp_path / "model.pkl"), "m")
    store.rename(tmp_path / "team-store")
    store.mkdir()  # an empty container of the same name in another account
    result = CliRunner().invoke(main, ["--home", str(tmp_path / "b"), *command])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert "has no identity marker (modelstore-store.json)" in result.stderr
    assert os.listdir(store) == []  # nothing written into the other store


@pytest.mark.postgres
@pytest.mark.parametrize("command", ["list", "register"])
def test_a_database_user_without_privileges_on_the_catalog_is_told_so(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """A team whose DBA gives each member a role of their own: a role that may connect but
    was not granted the catalog's tables got "there is no modelstore registry ... register a
    model to create one" from ``list`` and "the database already holds tables ... point
    MODELSTORE_DB_URL at a modelstore catalog or an empty database" from ``register``, both
    sending the user to another database instead of to the missing GRANT."""
    import sqlalchemy

    root = tmp_path / "store"
    root.mkdir()
    monkeypatch.setenv(STORE_URL_ENV, f"file://{root}")
    source = make_file(tmp_path / "model.pkl")
    with Registry(tmp_path / "a", pg_url) as a:
        a.register(source, "m")
    engine = sqlalchemy.create_engine(pg_url)
    database = pg_url.rsplit("/", 1)[1]
    with engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE ROLE member{database} LOGIN PASSWORD 'member'")
        connection.exec_driver_sql(f"GRANT CONNECT ON DATABASE {database} TO member{database}")
    engine.dispose()
    member = (
        sqlalchemy.make_url(pg_url)
        .set(username=f"member{database}", password="member")
        .render_as_string(hide_password=False)
    )
    monkeypatch.setenv("MODELSTORE_DB_URL", member)
    args = ["list"] if command == "list" else ["register", str(source), "--name", "m"]
    result = CliRunner().invoke(main, ["--home", str(tmp_path / "b"), *args])
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(
        f"Error: the database user member{database} may connect to the catalog database "
        f"{database} but not use its tables (permission denied for table "
    )
    assert result.stderr.endswith(
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO member{database}; with the "
        "catalog's own schema in place of public if it has one)\n"
    )
    assert "member'" not in result.stderr and ":member@" not in result.stderr  # no password


def test_verifying_the_store_hashes_each_blob_once_however_many_versions_share_it(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store keeps each content once, and re-registering identical bytes is encouraged
    as nearly free; ``verify --store`` should then cost the store's bytes, not the versions'."""
    from modelstore.store.shared import FileBlobStore

    checked: list[str] = []
    original = FileBlobStore.check

    def counting(self: FileBlobStore, sha256: str, size: int, buffer: bytearray) -> str | None:
        checked.append(sha256)
        return original(self, sha256, size, buffer)

    monkeypatch.setattr(FileBlobStore, "check", counting)
    with Registry(tmp_path / "a") as a:
        for _ in range(3):
            a.register(make_file(tmp_path / "model.pkl"), "m")
        assert a.verify(store=True).ok
    assert len(checked) == len(set(checked)) == 1


def test_a_private_registry_home_opened_with_the_teams_settings_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A developer adds the team's two variables to their shell profile and keeps using the
    default home, which already holds their own registry. ``path m:1`` printed their own
    m:1 (other bytes) as the team's m:1, exit 0; ``verify`` then called it ``changed`` and
    advised deleting it, from the team's catalog."""
    mine = tmp_path / "mine"
    with Registry(mine) as own:
        own.register(make_file(tmp_path / "model.pkl", b"private"), "m")
    root = tmp_path / "store"
    root.mkdir()
    monkeypatch.setenv(STORE_URL_ENV, f"file://{root}")
    monkeypatch.setenv("MODELSTORE_DB_URL", f"sqlite:///{tmp_path / 'catalog.db'}")
    with Registry(tmp_path / "a") as team:
        team.register(make_file(tmp_path / "model.pkl", b"team"), "m")
    before = (mine / "registry.db").read_bytes()
    result = CliRunner().invoke(main, ["--home", str(mine), "path", "m:1"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: {mine} holds a registry of its own ({mine / 'registry.db'}) but was opened "
        f"with the catalog sqlite:///{tmp_path / 'catalog.db'}; nothing was changed (use "
        "another home for that catalog, e.g. MODELSTORE_HOME=~/team-models; or unset "
        "MODELSTORE_DB_URL and MODELSTORE_STORE_URL to use this home's own registry)\n"
    )
    assert (mine / "registry.db").read_bytes() == before
    monkeypatch.delenv("MODELSTORE_DB_URL")
    monkeypatch.delenv(STORE_URL_ENV)
    with Registry(mine) as own:  # its own registry, as it was
        assert own.path("m", 1).read_bytes() == b"private"
