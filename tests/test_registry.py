"""Registry API: register, get, list, path, versions, metadata and delete on a real home."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from registry_helpers import make_file, make_model_dir, snapshot, tree_files

from modelstore import ModelVersion, Registry
from modelstore.catalog.records import VersionRecord
from modelstore.cli.errors import exit_code
from modelstore.errors import (
    BadArgumentTypeError,
    InvalidArgumentError,
    InvalidNameError,
    ModelNotFoundError,
    PropertyImmutableError,
    StorageError,
)
from modelstore.modelversion import RECORDED_FIELDS


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MODELSTORE_DB_URL", raising=False)
    monkeypatch.delenv("MODELSTORE_HOME", raising=False)
    # get_model_path here runs outside any deployment, whatever an earlier in-process
    # `modelstore score` left in os.environ (it sets AML_APP_ROOT to the working directory)
    monkeypatch.delenv("AML_APP_ROOT", raising=False)
    monkeypatch.delenv("AZUREML_MODEL_DIR", raising=False)
    return tmp_path / "home"


@pytest.fixture
def registry(home: Path) -> Iterator[Registry]:
    with Registry(home) as opened:
        yield opened


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    return make_file(tmp_path / "src" / "sklearn_regression_model.pkl", b"pickle" * 100)


def test_registering_a_file_stores_it_under_name_version_and_its_basename(
    registry: Registry, model_file: Path, home: Path
) -> None:
    mv = registry.register(model_file, "my_first_model", tags={"team": "fraud"})
    assert isinstance(mv, ModelVersion)
    assert (mv.name, mv.version, mv.id) == ("my_first_model", 1, "my_first_model:1")
    assert mv.entry == "sklearn_regression_model.pkl" and mv.kind == "file"
    expected = home / "azureml-models" / "my_first_model" / "1" / "sklearn_regression_model.pkl"
    assert mv.path == expected and expected.read_bytes() == model_file.read_bytes()
    assert mv.size == 600 and mv.file_count == 1 and len(mv.sha256) == 64
    assert mv.tags == {"team": "fraud"}
    assert os.listdir(expected.parent) == ["sklearn_regression_model.pkl"]


def test_registering_a_folder_keeps_its_name_and_whole_subtree(
    registry: Registry, tmp_path: Path
) -> None:
    folder = make_model_dir(tmp_path / "outputs" / "model_dir")
    mv = registry.register(str(folder) + os.sep, "m")  # a trailing separator is ignored
    assert mv.entry == "model_dir" and mv.kind == "folder" and mv.file_count == 3
    assert tree_files(mv.path.parent) == [
        "model_dir/a.txt",
        "model_dir/c.txt",
        "model_dir/sub/b.txt",
    ]


def test_child_paths_keep_only_the_listed_children_and_folders_recursively(
    registry: Registry, tmp_path: Path
) -> None:
    folder = make_model_dir(tmp_path / "model_dir")
    mv = registry.register(folder, "m", child_paths=["a.txt", "sub"])
    assert mv.entry == "model_dir"
    assert tree_files(mv.path.parent) == ["model_dir/a.txt", "model_dir/sub/b.txt"]


def test_a_relative_path_is_resolved_against_the_current_directory(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_file(tmp_path / "proj" / "outputs" / "model.pkl")
    monkeypatch.chdir(tmp_path / "proj")
    assert registry.register("./outputs/model.pkl", "m").entry == "model.pkl"


def test_a_path_outside_the_current_directory_is_accepted(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_file(tmp_path / "downloads" / "model.pkl")
    (tmp_path / "proj").mkdir()
    monkeypatch.chdir(tmp_path / "proj")
    assert registry.register("../downloads/model.pkl", "m").version == 1


def test_versions_count_up_from_one_per_name(registry: Registry, model_file: Path) -> None:
    assert [registry.register(model_file, "a").version for _ in range(3)] == [1, 2, 3]
    assert registry.register(model_file, "b").version == 1
    assert registry.versions("a") == [1, 2, 3] and registry.versions("unknown") == []


def test_deleting_a_version_never_reuses_its_number(registry: Registry, model_file: Path) -> None:
    registry.register(model_file, "m")
    registry.register(model_file, "m")
    registry.delete("m", 2)
    assert registry.register(model_file, "m").version == 3
    registry.delete("m")
    assert registry.versions("m") == []
    assert registry.register(model_file, "m").version == 4


def test_numbers_stay_spent_after_reopening_the_registry(home: Path, model_file: Path) -> None:
    with Registry(home) as first:
        first.register(model_file, "m")
        first.delete("m")
    with Registry(home) as second:
        assert second.register(model_file, "m").version == 2


def test_get_returns_the_latest_version_by_default_and_a_given_one_on_request(
    registry: Registry, model_file: Path
) -> None:
    for _ in range(3):
        registry.register(model_file, "m")
    assert registry.get("m").version == 3
    assert registry.get("m", 2).version == 2


def test_path_returns_the_entry_of_the_latest_or_given_version(
    registry: Registry, model_file: Path, home: Path
) -> None:
    for _ in range(10):
        registry.register(model_file, "m")
    assert registry.path("m") == home / "azureml-models/m/10/sklearn_regression_model.pkl"
    assert registry.path("m", 2) == home / "azureml-models/m/2/sklearn_regression_model.pkl"


def test_an_unknown_name_is_not_found_and_the_message_names_the_registered_models(
    registry: Registry, model_file: Path
) -> None:
    registry.register(model_file, "alpha")
    for call in (lambda: registry.get("beta"), lambda: registry.path("beta")):
        with pytest.raises(ModelNotFoundError, match=r"'beta' is not registered.*alpha"):
            call()


def test_an_unknown_version_is_not_found_and_the_message_lists_the_versions(
    registry: Registry, model_file: Path
) -> None:
    registry.register(model_file, "m")
    registry.register(model_file, "m")
    with pytest.raises(ModelNotFoundError, match=r"no version 7; its versions are 1, 2"):
        registry.path("m", 7)
    with pytest.raises(ModelNotFoundError, match=r"no version 7"):
        registry.get("m", 7)


def test_an_empty_registry_says_so_when_a_model_is_not_found(registry: Registry) -> None:
    with pytest.raises(ModelNotFoundError, match="registry is empty"):
        registry.get("m")


@pytest.mark.parametrize("version", ["1", 1.0, True])
def test_a_version_that_is_not_an_int_is_a_type_error(
    registry: Registry, model_file: Path, version: object
) -> None:
    registry.register(model_file, "m")
    with pytest.raises(BadArgumentTypeError):
        registry.get("m", version)  # type: ignore[arg-type]
    with pytest.raises(BadArgumentTypeError):
        registry.path("m", version)  # type: ignore[arg-type]


def test_list_orders_by_name_then_version_descending(registry: Registry, model_file: Path) -> None:
    for name in ("b", "a", "b", "a", "c"):
        registry.register(model_file, name)
    assert [m.id for m in registry.list()] == ["a:2", "a:1", "b:2", "b:1", "c:1"]
    assert [m.id for m in registry.list("b")] == ["b:2", "b:1"]


def test_list_filters_are_anded_and_items_are_keys_or_key_value_pairs(
    registry: Registry, model_file: Path
) -> None:
    registry.register(model_file, "m", tags={"team": "fraud", "stage": "dev"})
    registry.register(model_file, "m", tags={"team": "fraud", "stage": "prod"})
    registry.register(model_file, "n", tags={"team": "risk"}, properties={"auc": "0.9"})
    assert [m.id for m in registry.list(tags=["team"])] == ["m:2", "m:1", "n:1"]
    assert [m.id for m in registry.list(tags=[["team", "fraud"]])] == ["m:2", "m:1"]
    assert [m.id for m in registry.list(tags=[("team", "fraud"), ["stage", "dev"]])] == ["m:1"]
    assert [m.id for m in registry.list(tags=["team"], properties=["auc"])] == ["n:1"]
    assert registry.list(tags=[["team", "FRAUD"]]) == []


def test_filter_values_containing_commas_and_equals_signs_match_exactly(
    registry: Registry, model_file: Path
) -> None:
    registry.register(model_file, "m", tags={"q": "a=b,c"})
    assert [m.id for m in registry.list(tags=[["q", "a=b,c"]])] == ["m:1"]
    assert registry.list(tags=[["q", "a"]]) == []


def test_latest_keeps_per_name_the_highest_version_among_those_passing_the_filters(
    registry: Registry, model_file: Path
) -> None:
    registry.register(model_file, "m", tags={"ok": "1"})
    registry.register(model_file, "m", tags={"ok": "1"})
    registry.register(model_file, "m")
    registry.register(model_file, "n")
    assert [m.id for m in registry.list(latest=True)] == ["m:3", "n:1"]
    assert [m.id for m in registry.list(tags=["ok"], latest=True)] == ["m:2"]


@pytest.mark.parametrize("tags", [{"team": "x"}, "team", [["a", "b", "c"]], [1]])
def test_malformed_list_filters_are_refused(registry: Registry, tags: object) -> None:
    with pytest.raises((BadArgumentTypeError, InvalidArgumentError)):
        registry.list(tags=tags)  # type: ignore[arg-type]


def test_update_tags_adds_first_then_removes(registry: Registry, model_file: Path) -> None:
    registry.register(model_file, "m", tags={"a": "1", "b": "2"})
    mv = registry.update_tags("m", 1, add={"a": "9", "c": "3"}, remove=["b", "c", "absent"])
    assert mv.tags == {"a": "9"}
    assert registry.get("m", 1).tags == {"a": "9"}


def test_properties_are_add_only_and_a_refused_call_changes_nothing(
    registry: Registry, model_file: Path
) -> None:
    registry.register(model_file, "m", properties={"auc": "0.9"})
    assert registry.add_properties("m", 1, {"f1": "0.8"}).properties == {"auc": "0.9", "f1": "0.8"}
    with pytest.raises(
        PropertyImmutableError,
        match="Error, properties are immutable, the following keys cannot be added/modified: "
        "auc,f1",
    ):
        registry.add_properties("m", 1, {"auc": "1.0", "new": "x", "f1": "0.7"})
    assert registry.get("m", 1).properties == {"auc": "0.9", "f1": "0.8"}


def test_giving_a_property_its_current_value_again_is_not_a_change(
    registry: Registry, model_file: Path
) -> None:
    registry.register(model_file, "m", properties={"auc": "0.9"})
    after = registry.add_properties("m", 1, {"auc": "0.9", "f1": "0.8"})
    assert after.properties == {"auc": "0.9", "f1": "0.8"}
    with pytest.raises(PropertyImmutableError, match="added/modified: f1 "):
        registry.add_properties("m", 1, {"auc": "0.9", "f1": "0.7"})


def test_description_can_be_set_and_cleared(registry: Registry, model_file: Path) -> None:
    registry.register(model_file, "m", description="first")
    assert registry.set_description("m", 1, "second").description == "second"
    assert registry.set_description("m", 1, None).description is None
    assert registry.get("m").description is None


def test_metadata_updates_on_an_unknown_version_are_not_found(
    registry: Registry, model_file: Path
) -> None:
    registry.register(model_file, "m")
    for update in (
        lambda: registry.update_tags("m", 2, add={"a": "b"}),
        lambda: registry.change_tags("m", 2, remove=["a"]),
        lambda: registry.add_properties("m", 2, {"a": "b"}),
        lambda: registry.set_description("m", 2, "x"),
    ):
        with pytest.raises(ModelNotFoundError) as caught:
            update()
        assert (caught.value.name, caught.value.version, caught.value.versions) == ("m", 2, [1])
        assert str(caught.value) == (
            "model 'm' has no version 2; its versions are 1 (use one of them or m:latest)"
        )


def test_metadata_updates_without_a_version_change_the_latest(
    registry: Registry, model_file: Path
) -> None:
    registry.register(model_file, "m", tags={"team": "fraud"})
    registry.register(model_file, "m", tags={"team": "fraud"})
    change = registry.change_tags("m", None, add={"team": "risk"})
    assert (change.version.id, change.version.tags, change.previous) == (
        "m:2",
        {"team": "risk"},
        {"team": "fraud"},
    )
    assert registry.add_properties("m", None, {"auc": "0.9"}).id == "m:2"
    assert registry.set_description("m", None, "d").id == "m:2"
    assert registry.update_tags("m", None, remove=["team"]).id == "m:2"
    first, second = registry.get("m", 1), registry.get("m", 2)
    assert (first.tags, first.properties, first.description) == ({"team": "fraud"}, {}, None)
    assert (second.tags, second.properties, second.description) == ({}, {"auc": "0.9"}, "d")


def test_an_unknown_name_in_an_empty_registry_is_not_found_with_python_advice(
    registry: Registry,
) -> None:
    with pytest.raises(ModelNotFoundError) as caught:
        registry.get("m")
    assert (caught.value.name, caught.value.version, caught.value.versions) == ("m", None, [])
    assert caught.value.remedy == "register"
    assert str(caught.value) == (
        "model 'm' is not registered; the registry is empty; register one with "
        "Registry.register(path, name)"
    )


def test_framework_and_description_are_stored_unchanged(
    registry: Registry, model_file: Path
) -> None:
    mv = registry.register(
        model_file, "m", framework="ScikitLearn", framework_version="1.3", description=" d\n"
    )
    again = registry.get("m")
    assert (again.framework, again.framework_version, again.description) == (
        "ScikitLearn",
        "1.3",
        " d\n",
    )
    assert again == mv


def test_model_version_serialises_to_json_with_every_field(
    registry: Registry, model_file: Path
) -> None:
    data = json.loads(registry.register(model_file, "m").model_dump_json())
    assert set(data) >= {"name", "version", "id", "entry", "kind", "path", "size", "sha256"}


def test_a_model_version_carries_every_recorded_field_but_the_row_bookkeeping() -> None:
    recorded = {f.name for f in dataclasses.fields(VersionRecord)}
    assert set(RECORDED_FIELDS) == recorded - {"id", "state", "token"}
    assert set(ModelVersion.model_fields) == {*RECORDED_FIELDS, "id", "path"}


def test_delete_one_version_removes_its_folder_and_reports_bytes_freed(
    registry: Registry, model_file: Path, home: Path
) -> None:
    registry.register(model_file, "m")
    registry.register(model_file, "m")
    plan = registry.delete("m", 1)
    assert [v.id for v in plan.versions] == ["m:1"] and plan.bytes == 600 and not plan.dry_run
    assert os.listdir(home / "azureml-models" / "m") == ["2"]
    assert registry.versions("m") == [2]


def test_deleting_the_last_version_removes_the_name_folder_too(
    registry: Registry, model_file: Path, home: Path
) -> None:
    registry.register(model_file, "m")
    registry.register(model_file, "m")
    plan = registry.delete("m")
    assert [v.id for v in plan.versions] == ["m:2", "m:1"] and plan.bytes == 1200
    assert not (home / "azureml-models" / "m").exists()
    assert os.listdir(home / ".modelstore" / "trash") == []


def test_a_dry_run_delete_reports_without_removing(
    registry: Registry, model_file: Path, home: Path
) -> None:
    registry.register(model_file, "m")
    before = snapshot(home)
    plan = registry.delete("m", dry_run=True)
    assert plan.dry_run and [v.id for v in plan.versions] == ["m:1"] and plan.bytes == 600
    assert registry.plan_delete("m", 1) == plan
    assert snapshot(home) == before and registry.versions("m") == [1]


def test_deleting_a_plan_removes_exactly_its_versions_and_keeps_later_ones(
    registry: Registry, model_file: Path
) -> None:
    registry.register(model_file, "m")
    registry.register(model_file, "m")
    plan = registry.plan_delete("m")
    later = registry.register(model_file, "m")
    done = registry.delete_planned(plan)
    assert [v.id for v in done.versions] == ["m:2", "m:1"] and not done.dry_run
    assert done.bytes == plan.bytes
    assert [v.id for v in registry.list()] == ["m:3"] and later.path.exists()


def test_deleting_a_plan_skips_versions_deleted_meanwhile_and_fails_when_none_is_left(
    registry: Registry, model_file: Path
) -> None:
    registry.register(model_file, "m")
    registry.register(model_file, "m")
    plan = registry.plan_delete("m")
    registry.delete("m", 2)
    assert [v.id for v in registry.delete_planned(plan).versions] == ["m:1"]
    registry.register(model_file, "m")
    with pytest.raises(ModelNotFoundError, match=r"m:2, m:1 .*no longer registered"):
        registry.delete_planned(plan)
    assert [v.id for v in registry.list()] == ["m:3"]


def test_deleting_an_unknown_model_or_version_is_not_found(
    registry: Registry, model_file: Path
) -> None:
    registry.register(model_file, "m")
    with pytest.raises(ModelNotFoundError, match="no version 5"):
        registry.delete("m", 5)
    with pytest.raises(ModelNotFoundError, match="not registered"):
        registry.delete("other")
    assert registry.versions("m") == [1]


def test_stored_files_and_folders_are_read_only(registry: Registry, tmp_path: Path) -> None:
    mv = registry.register(make_model_dir(tmp_path / "model_dir"), "m")
    assert stat.S_IMODE(os.stat(mv.path / "sub" / "b.txt").st_mode) == 0o444
    assert stat.S_IMODE(os.stat(mv.path / "sub").st_mode) == 0o555
    assert stat.S_IMODE(os.stat(mv.path).st_mode) == 0o555


def test_progress_reports_bytes_copied_up_to_the_total(registry: Registry, tmp_path: Path) -> None:
    big = make_file(tmp_path / "big.bin", os.urandom(9 * 1024 * 1024 + 5))
    calls: list[tuple[int, int]] = []
    registry.register(big, "m", progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (big.stat().st_size, big.stat().st_size)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls) and len(calls) >= 3


def test_a_large_file_is_hashed_while_it_is_copied(registry: Registry, tmp_path: Path) -> None:
    import hashlib

    from modelstore.store.hashing import PIPELINE_MIN_SIZE

    content = os.urandom(PIPELINE_MIN_SIZE + 3 * 1024 * 1024 + 7)  # the two-thread path
    mv = registry.register(make_file(tmp_path / "big.bin", content), "big")
    files = registry._catalog.files(registry._catalog.rows()[0].id)
    assert files[0].sha256 == hashlib.sha256(content).hexdigest()
    assert mv.path.read_bytes() == content and registry.verify("big").ok


def test_a_home_that_is_a_file_is_refused_in_one_line(tmp_path: Path) -> None:
    from modelstore.errors import StorageError

    make_file(tmp_path / "home")
    with pytest.raises(StorageError) as caught:
        Registry(tmp_path / "home")
    assert str(caught.value) == (
        f"the registry home {tmp_path / 'home'} exists and is not a folder; choose another home"
    )
    assert (caught.value.path, caught.value.remedy) == (str(tmp_path / "home"), "choose_home")


def test_a_catalog_url_that_cannot_be_opened_is_a_catalog_error(tmp_path: Path) -> None:
    from modelstore.errors import CatalogError

    with pytest.raises(CatalogError, match="cannot") as caught:
        Registry(tmp_path / "home", db_url=f"sqlite:///{tmp_path}/no/such/dir/c.db")
    assert "\n" not in str(caught.value)


def test_the_home_is_a_valid_aml_app_root(registry: Registry, model_file: Path, home: Path) -> None:
    """The SDK's get_model_path logic finds the registered version under <home>."""
    registry.register(model_file, "m")
    registry.register(model_file, "m")
    models_dir = os.path.join(str(home), "azureml-models")
    versions = os.listdir(os.path.join(models_dir, "m"))
    latest = max(int(v) for v in versions)
    entries = os.listdir(os.path.join(models_dir, "m", str(latest)))
    assert len(entries) == 1
    assert os.path.join(models_dir, "m", str(latest), entries[0]) == str(registry.path("m"))


def test_home_comes_from_the_environment_when_not_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_file: Path
) -> None:
    monkeypatch.delenv("MODELSTORE_DB_URL", raising=False)
    monkeypatch.setenv("MODELSTORE_HOME", str(tmp_path / "envhome"))
    with Registry() as registry:
        registry.register(model_file, "m")
        assert registry.home == tmp_path / "envhome"
    assert (tmp_path / "envhome" / "registry.db").is_file()


def test_a_db_url_puts_the_catalog_elsewhere(tmp_path: Path, model_file: Path) -> None:
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    with Registry(tmp_path / "home", db_url=url) as registry:
        registry.register(model_file, "m")
    assert (tmp_path / "elsewhere.db").is_file()
    assert not (tmp_path / "home" / "registry.db").exists()
    with Registry(tmp_path / "home", db_url=url) as registry:
        assert registry.versions("m") == [1]


def test_open_existing_finds_nothing_and_creates_nothing_where_no_registry_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODELSTORE_DB_URL", raising=False)
    assert Registry.open_existing(tmp_path / "nowhere") is None
    assert Registry.open_existing(tmp_path / "x", db_url=f"sqlite:///{tmp_path}/no.db") is None
    assert list(tmp_path.iterdir()) == []


def test_open_existing_with_a_catalog_elsewhere_creates_no_home(
    tmp_path: Path, model_file: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    with Registry(tmp_path / "first-home", db_url=url) as registry:
        registry.register(model_file, "m")
    opened = Registry.open_existing(tmp_path / "other-home", db_url=url)
    assert opened is not None
    with opened:
        assert opened.versions("m") == [1]
    assert not (tmp_path / "other-home").exists()


def test_open_existing_opens_a_registry_that_exists(home: Path, model_file: Path) -> None:
    with Registry(home) as registry:
        registry.register(model_file, "m")
    opened = Registry.open_existing(home)
    assert opened is not None
    with opened:
        assert opened.versions("m") == [1]


def test_an_in_memory_catalog_is_private_to_its_registry(tmp_path: Path, model_file: Path) -> None:
    with Registry(tmp_path / "a", db_url="sqlite://") as first:
        first.register(model_file, "m")
        with Registry(tmp_path / "b", db_url="sqlite://") as second:
            assert second.versions("m") == []
        assert first.versions("m") == [1]


def test_a_shared_in_memory_catalog_is_seen_by_every_registry_of_the_process(
    tmp_path: Path, model_file: Path
) -> None:
    url = "sqlite:///file:shared_test_catalog?mode=memory&cache=shared&uri=true"
    with Registry(tmp_path / "h", db_url=url) as first:
        first.register(model_file, "m")
        with Registry(tmp_path / "h", db_url=url) as second:
            assert second.path("m") == first.path("m")
            second.register(model_file, "m")
        assert first.versions("m") == [1, 2]


def test_invalid_names_are_refused_before_anything_is_written(home: Path, model_file: Path) -> None:
    with Registry(home) as registry:
        before = snapshot(home)
        for name in ["../x", "a/b", "", "a" * 256, "ÄÖ", "model\n"]:
            with pytest.raises(InvalidNameError, match="provided model name is invalid"):
                registry.register(model_file, name)
        assert snapshot(home) == before and registry.list() == []


def test_an_interruption_between_the_copy_and_the_catalog_leaves_nothing_in_staging(
    registry: Registry, home: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (or any error) after the copy and before the number is taken: the staged copy is
    removed at once, not left for doctor."""
    import modelstore.registry.files as registry_module

    def interrupted(files: object) -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(registry_module, "manifest_digest", interrupted)
    with pytest.raises(KeyboardInterrupt):
        registry.register(model_file, "m")
    assert os.listdir(home / ".modelstore" / "staging") == []
    assert registry.list() == [] and registry.doctor().findings == []


def test_a_delete_whose_second_move_fails_puts_the_first_version_back(
    registry: Registry, home: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With something else in the name folder the versions move out one by one; when one move
    fails, the versions already moved must come back, not be emptied with the trash while the
    catalog still lists them."""
    registry.register(model_file, "m")
    registry.register(model_file, "m")
    make_file(home / "azureml-models" / "m" / "notes.txt")  # so not the whole name folder
    real_rename = os.rename

    def rename_failing_for_version_2(source: str, target: str) -> None:
        if os.fspath(source).endswith(f"{os.sep}m{os.sep}2"):
            raise OSError(28, "No space left on device", os.fspath(source))
        real_rename(source, target)

    monkeypatch.setattr(os, "rename", rename_failing_for_version_2)
    with pytest.raises(StorageError, match=r"disk is full.*nothing was removed"):
        registry.delete("m")
    monkeypatch.undo()
    assert registry.versions("m") == [1, 2]
    assert registry.verify().ok
    assert os.listdir(home / ".modelstore" / "trash") == []


@pytest.mark.parametrize(("owner", "method"), [("store", "unpublish"), ("catalog", "forget")])
def test_a_delete_that_fails_midway_leaves_no_lock_file(
    registry: Registry,
    home: Path,
    model_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    owner: str,
    method: str,
) -> None:
    """Its token lock file was unlinked only when the deletion succeeded."""
    registry.register(model_file, "m")

    def fail(*args: object, **kwargs: object) -> None:
        raise StorageError("injected failure")

    monkeypatch.setattr(getattr(registry, f"_{owner}"), method, fail)
    with pytest.raises(StorageError, match="injected failure"):
        registry.delete("m", 1)
    monkeypatch.undo()
    locks = os.listdir(home / ".modelstore" / "locks")
    assert [name for name in locks if name.startswith("token-")] == []
    registry.doctor(repair=True)
    assert registry.doctor().findings == []


# --- a lost catalog, a missing home: opening never creates over what is there -----------------


def _files(home: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``home`` with its bytes and mtime, the catalog included. Left out: the
    side files a SQLite reader may open beside a writable catalog (its ``-shm`` shared-memory
    index and an empty ``-wal``), which hold no data and are not the catalog."""
    found: dict[str, tuple[bytes, int]] = {}
    for dirpath, _dirs, files in os.walk(home):
        for name in files:
            path = Path(dirpath, name)
            if name.endswith("-shm") or (name.endswith("-wal") and path.stat().st_size == 0):
                continue
            found[os.path.relpath(path, home)] = (path.read_bytes(), path.stat().st_mtime_ns)
    return found


def _lose_catalog(home: Path, how: str) -> None:
    catalog = home / "registry.db"
    if how == "emptied":
        catalog.write_bytes(b"")
    elif how == "removed":
        for path in home.glob("registry.db*"):
            path.unlink()
    else:  # a valid SQLite file without modelstore's schema
        import sqlite3

        for path in home.glob("registry.db*"):
            path.unlink()
        connection = sqlite3.connect(catalog)
        connection.execute("PRAGMA user_version = 7")
        connection.close()


@pytest.mark.parametrize("how", ["emptied", "removed", "no_schema"])
def test_a_lost_catalog_beside_stored_versions_is_refused_by_every_open_and_nothing_is_written(
    home: Path, model_file: Path, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelstore.errors import CatalogLostError
    from modelstore.resolve import Model, get_model_path

    with Registry(home) as registry:
        for _ in range(3):
            registry.register(model_file, "m")
    _lose_catalog(home, how)
    before = _files(home)
    monkeypatch.setenv("MODELSTORE_HOME", str(home))
    opens: list[Callable[[], object]] = [
        lambda: Registry(home),
        lambda: Registry(home, read_only=True),
        lambda: Registry.open_existing(home),
        lambda: get_model_path("m"),
        lambda: Model.get_model_path("m", version=2),
    ]
    for open_ in opens:
        with pytest.raises(CatalogLostError) as caught:
            open_()
        assert caught.value.versions == 3 and caught.value.catalog == str(home / "registry.db")
        assert (caught.value.home, caught.value.remedy) == (str(home), "rebuild_catalog")
        assert "Registry.rebuild_catalog(Registry.plan_rebuild_catalog(home))" in str(caught.value)
        assert "--" not in str(caught.value) and "`" not in str(caught.value)
    assert _files(home) == before


def test_lookups_never_create_or_change_any_file(
    home: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelstore.resolve import get_model_path

    with Registry(home) as registry:
        registry.register(model_file, "m")
    before = _files(home)
    monkeypatch.setenv("MODELSTORE_HOME", str(home))
    assert get_model_path("m") == str(home / "azureml-models" / "m" / "1" / model_file.name)
    with Registry(home, read_only=True) as reader:
        assert [v.id for v in reader.list()] == ["m:1"] and reader.get("m").version == 1
        assert reader.path("m", 1).is_file() and reader.verify().ok
    assert _files(home) == before


def test_reading_a_home_that_does_not_exist_is_registry_not_found_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelstore.errors import RegistryNotFoundError

    monkeypatch.delenv("MODELSTORE_DB_URL", raising=False)
    home = tmp_path / "nonexistent" / "path"
    with pytest.raises(RegistryNotFoundError) as caught:
        Registry(home, read_only=True)
    assert caught.value.home == str(home) and exit_code(caught.value) == 1
    assert caught.value.catalog == str(home / "registry.db")
    assert str(caught.value) == (
        f"there is no modelstore registry at {home} (its catalog {home / 'registry.db'} does not "
        "exist); check home= / MODELSTORE_HOME, or register a model to create one"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_new_home_is_still_created_by_a_write_where_no_tree_holds_versions(
    home: Path, model_file: Path
) -> None:
    (home / "azureml-models").mkdir(parents=True)  # an empty tree holds nothing to lose
    with Registry(home) as registry:
        assert registry.register(model_file, "m").version == 1


# --- register_spec: a v2 model.yml ------------------------------------------------------------


def _model_yml(folder: Path, extra: str = "") -> Path:
    make_model_dir(folder / "model")
    path = folder / "model.yml"
    path.write_text(
        "name: sklearn-regression\npath: model\ntype: mlflow_model\n"
        "description: Ridge\ntags:\n  team: fraud\nproperties:\n  features: 10\n" + extra
    )
    return path


def test_register_spec_records_what_the_model_yaml_says(registry: Registry, tmp_path: Path) -> None:
    version = registry.register_spec(_model_yml(tmp_path / "project", "version: 4\n"))
    assert (version.name, version.version, version.description) == (
        "sklearn-regression",
        4,
        "Ridge",
    )
    assert version.tags == {"team": "fraud"}
    assert version.properties == {"features": "10", "modelstore.v2.type": "mlflow_model"}
    assert version.path == registry.path("sklearn-regression", 4)
    assert tree_files(version.path) == tree_files(tmp_path / "project" / "model")
    assert version.path.name == "model"  # the folder keeps its own name


def test_register_spec_without_a_version_takes_the_next_number(
    registry: Registry, tmp_path: Path
) -> None:
    spec = _model_yml(tmp_path / "project")
    assert registry.register_spec(spec).version == 1
    assert registry.register_spec(spec).version == 2


def test_register_spec_refuses_a_taken_version_and_leaves_the_store_unchanged(
    registry: Registry, home: Path, tmp_path: Path
) -> None:
    from modelstore.errors import VersionTakenError

    spec = _model_yml(tmp_path / "project", "version: 1\n")
    registry.register_spec(spec)
    before = snapshot(home)
    with pytest.raises(VersionTakenError, match="version 1 of 'sklearn-regression' exists"):
        registry.register_spec(spec)
    assert snapshot(home) == before
    assert registry.versions("sklearn-regression") == [1]


def test_register_with_a_version_that_is_not_a_positive_int_is_refused_before_copying(
    registry: Registry, home: Path, tmp_path: Path
) -> None:
    model = make_file(tmp_path / "m.pkl")
    before = snapshot(home)
    with pytest.raises(BadArgumentTypeError, match="version must be an int"):
        registry.register(model, "m", version="3")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="version must be 1 or more"):
        registry.register(model, "m", version=0)
    assert snapshot(home) == before
    assert registry.register(model, "m", version=7).version == 7


def test_files_lists_a_versions_manifest_by_path(registry: Registry, tmp_path: Path) -> None:
    import hashlib

    source = make_model_dir(tmp_path / "model_dir")
    registry.register(source, "m")
    registry.register(make_file(tmp_path / "one.bin", b"one"), "m")
    files = registry.files("m", 1)
    assert [(f.path, f.size) for f in files] == [
        ("model_dir/a.txt", 1),
        ("model_dir/c.txt", 1),
        ("model_dir/sub/b.txt", 1),
    ]
    assert files[2].sha256 == hashlib.sha256(b"b").hexdigest()
    assert [f.path for f in registry.files("m")] == ["one.bin"]  # the latest version
    with pytest.raises(ModelNotFoundError):
        registry.files("m", 3)
    with pytest.raises(InvalidNameError):
        registry.files("bad name")
