"""build_deployment: the Azure ML tree, its environment, and every refusal (nothing written).

Each behaviour runs twice: on the real disk and inside a pyfakefs ``fs`` fixture (the pytest
plugin builds deployments there), links included.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelstore import get_model_path
from modelstore.cli.errors import exit_code
from modelstore.deployment import ModelSource, build_deployment, temporary
from modelstore.deployment import layout as deployment_module
from modelstore.errors import DeploymentRefusedError, ModelNotFoundError, StorageError
from modelstore.layout import local_model_name
from modelstore.registry import Registry  # imported before pyfakefs starts (pydantic models)
from modelstore.store.fsops import remove_tree


@pytest.fixture(params=["real-disk", "pyfakefs"])
def base(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """A working folder on the real disk or in a fake filesystem."""
    if request.param == "real-disk":
        yield tmp_path
    else:
        fake = request.getfixturevalue("fs")
        fake.create_dir("/work")
        yield Path("/work")


def make_store(base: Path) -> Path:
    """A store-like tree with read-only entries: m/1/model.pkl, m/2/model.pkl, d/1/model_dir."""
    store = base / "store"
    for version, payload in ((1, b"one"), (2, b"two")):
        entry = store / "azureml-models" / "m" / str(version) / "model.pkl"
        entry.parent.mkdir(parents=True)
        entry.write_bytes(payload)
        entry.chmod(0o444)
    folder = store / "azureml-models" / "d" / "1" / "model_dir"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "sub" / "b.txt").write_text("b")
    for item in (folder / "a.txt", folder / "sub" / "b.txt"):
        item.chmod(0o444)
    (folder / "sub").chmod(0o555)
    folder.chmod(0o555)
    return store


def source(store: Path, name: str, version: int, entry: str) -> ModelSource:
    return ModelSource(
        name=name,
        version=version,
        entry_path=store / "azureml-models" / name / str(version) / entry,
        registered=True,
    )


def tree(root: Path) -> list[str]:
    """Every path under root (links not followed), to prove nothing was written."""
    if not root.exists():
        return []
    found = []
    for folder, subfolders, files in os.walk(root):
        for item in subfolders + files:
            found.append(os.path.relpath(os.path.join(folder, item), root))
    return sorted(found)


def regular_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


def test_one_file_model_is_linked_not_copied_and_gets_the_single_model_environment(
    base: Path,
) -> None:
    store = make_store(base)
    app = base / "app"

    deployed = build_deployment([source(store, "m", 2, "model.pkl")], app, store_dir=store)

    entry = app / "azureml-models" / "m" / "2" / "model.pkl"
    assert entry.is_symlink()
    assert os.readlink(entry) == os.fspath(store / "azureml-models" / "m" / "2" / "model.pkl")
    assert entry.read_bytes() == b"two"
    assert regular_files(app) == []
    assert deployed.app_root == app
    assert deployed.model_dir == app / "azureml-models" / "m" / "2"
    assert deployed.env == {
        "AML_APP_ROOT": os.fspath(app),
        "AZUREML_MODEL_DIR": os.fspath(app / "azureml-models" / "m" / "2"),
    }
    [model] = deployed.models
    assert (model.name, model.version, model.entry, model.registered) == ("m", 2, "model.pkl", True)
    assert model.path == entry
    assert model.source == store / "azureml-models" / "m" / "2" / "model.pkl"


def test_a_relative_app_root_is_reported_as_an_absolute_path(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(base)
    monkeypatch.chdir(base)

    deployed = build_deployment([source(store, "m", 1, "model.pkl")], "rel/app")

    assert deployed.env["AML_APP_ROOT"] == os.fspath(base / "rel" / "app")
    assert os.path.isabs(deployed.env["AZUREML_MODEL_DIR"])
    assert (
        base / "rel" / "app" / "azureml-models" / "m" / "1" / "model.pkl"
    ).read_bytes() == b"one"


def test_a_folder_model_keeps_its_folder_name_and_whole_subtree(base: Path) -> None:
    store = make_store(base)
    app = base / "app"

    build_deployment([source(store, "d", 1, "model_dir")], app)

    entry = app / "azureml-models" / "d" / "1" / "model_dir"
    assert entry.is_symlink()
    assert (entry / "sub" / "b.txt").read_text() == "b"
    assert os.listdir(entry.parent) == ["model_dir"]


def test_several_models_get_the_models_root_as_azureml_model_dir(base: Path) -> None:
    store = make_store(base)
    app = base / "app"

    deployed = build_deployment(
        [
            source(store, "m", 1, "model.pkl"),
            source(store, "m", 2, "model.pkl"),
            source(store, "d", 1, "model_dir"),
        ],
        app,
    )

    assert deployed.model_dir == app / "azureml-models"
    assert deployed.env["AZUREML_MODEL_DIR"] == os.fspath(app / "azureml-models")
    assert tree(app) == [
        "azureml-models",
        "azureml-models/d",
        "azureml-models/d/1",
        "azureml-models/d/1/model_dir",
        "azureml-models/m",
        "azureml-models/m/1",
        "azureml-models/m/1/model.pkl",
        "azureml-models/m/2",
        "azureml-models/m/2/model.pkl",
    ]


def test_zero_models_give_an_empty_models_root_and_the_multi_model_form(base: Path) -> None:
    app = base / "app"

    deployed = build_deployment([], app)

    assert tree(app) == ["azureml-models"]
    assert deployed.model_dir == app / "azureml-models"
    assert deployed.models == []


def test_an_existing_empty_folder_is_a_valid_app_root(base: Path) -> None:
    store = make_store(base)
    app = base / "app"
    app.mkdir()

    build_deployment([source(store, "m", 1, "model.pkl")], app)

    assert tree(app)[0] == "azureml-models"


def test_copy_makes_a_self_contained_writable_folder(base: Path) -> None:
    store = make_store(base)
    app = base / "app"

    build_deployment(
        [source(store, "m", 1, "model.pkl"), source(store, "d", 1, "model_dir")], app, copy=True
    )

    copied_file = app / "azureml-models" / "m" / "1" / "model.pkl"
    copied_dir = app / "azureml-models" / "d" / "1" / "model_dir"
    assert not copied_file.is_symlink() and not copied_dir.is_symlink()
    assert len(regular_files(app)) == 3
    assert copied_file.stat().st_mode & stat.S_IWUSR
    assert (copied_dir / "sub").stat().st_mode & stat.S_IWUSR
    # the store keeps its read-only entries
    assert not (store / "azureml-models" / "m" / "1" / "model.pkl").stat().st_mode & stat.S_IWUSR
    os.chmod(store / "azureml-models" / "d" / "1" / "model_dir", 0o755)
    (store / "azureml-models" / "d" / "1" / "model_dir" / "a.txt").unlink()
    assert (copied_dir / "a.txt").read_text() == "a"


def test_an_unregistered_local_model_is_laid_out_as_a_local_deployment_does(base: Path) -> None:
    local = base / "outputs" / "sklearn_regression_model_with_a_long_name.pkl"
    local.parent.mkdir()
    local.write_bytes(b"local")
    app = base / "app"
    name = local_model_name(local)

    deployed = build_deployment(
        [ModelSource(name=name, version=0, entry_path=local, registered=False)], app
    )

    assert name == "sklearn_regression_model_with_"
    entry = app / "azureml-models" / name / "0" / local.name
    assert entry.read_bytes() == b"local"
    assert deployed.env["AZUREML_MODEL_DIR"] == os.fspath(app / "azureml-models" / name / "0")
    assert deployed.models[0].registered is False


def test_no_build_folder_is_left_behind(base: Path) -> None:
    store = make_store(base)
    app = base / "app"

    build_deployment([source(store, "m", 1, "model.pkl")], app)

    assert os.listdir(app) == ["azureml-models"]


# --- refusals: DeploymentRefusedError (exit 2) and nothing written ---------------------------


def test_a_non_empty_app_root_is_refused_and_left_unchanged(base: Path) -> None:
    store = make_store(base)
    app = base / "app"
    app.mkdir()
    (app / "score.py").write_text("x")

    with pytest.raises(DeploymentRefusedError) as caught:
        build_deployment([source(store, "m", 1, "model.pkl")], app)

    assert exit_code(caught.value) == 2
    assert str(caught.value) == (
        f"the app root {app} is not empty (it holds 'score.py'); choose a new or empty folder, "
        f"or pass force=True to replace only {app / 'azureml-models'} (nothing was written)"
    )
    assert (caught.value.app_root, caught.value.models_dir, caught.value.remedy) == (
        str(app),
        str(app / "azureml-models"),
        "force",
    )
    assert tree(app) == ["score.py"]


def test_an_app_root_that_is_a_file_is_refused(base: Path) -> None:
    app = base / "app"
    app.write_text("x")

    with pytest.raises(DeploymentRefusedError, match="is not a folder"):
        build_deployment([], app)

    assert app.read_text() == "x"


@pytest.mark.parametrize("inside", ["", "azureml-models", "sub/dir"])
def test_an_app_root_inside_the_store_is_refused(base: Path, inside: str) -> None:
    store = make_store(base)
    before = tree(store)
    app = store / inside if inside else store

    with pytest.raises(DeploymentRefusedError, match="inside the modelstore registry"):
        build_deployment([source(store, "m", 1, "model.pkl")], app, force=True, store_dir=store)

    assert tree(store) == before


def test_a_registered_version_listed_twice_is_refused(base: Path) -> None:
    store = make_store(base)
    app = base / "app"

    with pytest.raises(DeploymentRefusedError, match="m:1 is listed twice"):
        build_deployment(
            [source(store, "m", 1, "model.pkl"), source(store, "m", 1, "model.pkl")], app
        )

    assert not app.exists()


def test_two_local_models_cut_to_the_same_30_character_folder_are_refused(base: Path) -> None:
    first = base / ("x" * 30 + "_first.pkl")
    second = base / ("x" * 30 + "_second.pkl")
    first.write_bytes(b"1")
    second.write_bytes(b"2")
    app = base / "app"
    sources = [
        ModelSource(name=local_model_name(p), version=0, entry_path=p, registered=False)
        for p in (first, second)
    ]

    with pytest.raises(DeploymentRefusedError, match="cuts an unregistered model's folder name"):
        build_deployment(sources, app)

    assert not app.exists()


def test_two_local_models_with_the_same_basename_are_refused(base: Path) -> None:
    for folder in ("a", "b"):
        (base / folder).mkdir()
        (base / folder / "model.pkl").write_bytes(b"x")
    sources = [
        ModelSource(
            name="model.pkl", version=0, entry_path=base / f / "model.pkl", registered=False
        )
        for f in ("a", "b")
    ]

    with pytest.raises(DeploymentRefusedError, match=r"both are named 'model\.pkl'"):
        build_deployment(sources, base / "app")

    assert not (base / "app").exists()


@pytest.mark.parametrize("name", ["", ".", "..", "a/b"])
def test_a_name_that_cannot_be_a_folder_is_refused(base: Path, name: str) -> None:
    (base / "model.pkl").write_bytes(b"x")

    with pytest.raises(DeploymentRefusedError, match="cannot be a model folder name"):
        build_deployment(
            [ModelSource(name=name, version=0, entry_path=base / "model.pkl", registered=False)],
            base / "app",
        )

    assert not (base / "app").exists()


def test_a_missing_source_entry_is_not_found_and_nothing_is_written(base: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        build_deployment(
            [ModelSource(name="m", version=1, entry_path=base / "nope.pkl", registered=True)],
            base / "app",
        )

    assert not (base / "app").exists()


def test_a_source_folder_holding_the_app_root_is_refused(base: Path) -> None:
    project = base / "project"
    project.mkdir()

    with pytest.raises(DeploymentRefusedError, match="contains the app root"):
        build_deployment(
            [ModelSource(name="project", version=0, entry_path=project, registered=False)],
            project / "app",
            copy=True,
        )

    assert tree(project) == []


# --- force: replaces only azureml-models -----------------------------------------------------


def test_force_replaces_only_the_models_folder(base: Path) -> None:
    store = make_store(base)
    app = base / "app"
    build_deployment([source(store, "m", 1, "model.pkl")], app)
    (app / "score.py").write_text("keep me")

    deployed = build_deployment([source(store, "m", 2, "model.pkl")], app, force=True)

    assert tree(app) == [
        "azureml-models",
        "azureml-models/m",
        "azureml-models/m/2",
        "azureml-models/m/2/model.pkl",
        "score.py",
    ]
    assert (app / "score.py").read_text() == "keep me"
    assert deployed.env["AZUREML_MODEL_DIR"] == os.fspath(app / "azureml-models" / "m" / "2")
    # the old links were removed, never followed: the store is intact
    assert (store / "azureml-models" / "m" / "1" / "model.pkl").read_bytes() == b"one"


def test_force_replaces_a_copied_deployment_of_read_only_entries(base: Path) -> None:
    store = make_store(base)
    app = base / "app"
    build_deployment([source(store, "d", 1, "model_dir")], app, copy=True)

    build_deployment([source(store, "m", 1, "model.pkl")], app, force=True)

    assert tree(app) == [
        "azureml-models",
        "azureml-models/m",
        "azureml-models/m/1",
        "azureml-models/m/1/model.pkl",
    ]


def test_force_refuses_to_link_to_models_inside_the_folder_it_replaces(base: Path) -> None:
    store = make_store(base)
    app = base / "app"
    build_deployment([source(store, "m", 1, "model.pkl")], app, copy=True)
    inner = app / "azureml-models" / "m" / "1" / "model.pkl"
    before = tree(app)

    with pytest.raises(DeploymentRefusedError) as caught:
        build_deployment(
            [ModelSource(name="model.pkl", version=0, entry_path=inner, registered=False)],
            app,
            force=True,
        )

    assert str(caught.value) == (
        f"{inner} lies inside {app / 'azureml-models'}, which a forced deployment replaces, so a "
        "link to it would break; deploy it with copy=True or from elsewhere (nothing was written)"
    )
    assert caught.value.remedy == "copy"
    assert tree(app) == before


def test_force_with_copy_can_redeploy_models_from_the_folder_it_replaces(base: Path) -> None:
    store = make_store(base)
    app = base / "app"
    build_deployment([source(store, "m", 1, "model.pkl")], app, copy=True)
    inner = app / "azureml-models" / "m" / "1" / "model.pkl"

    build_deployment(
        [ModelSource(name="model.pkl", version=0, entry_path=inner, registered=False)],
        app,
        force=True,
        copy=True,
    )

    assert (app / "azureml-models" / "model.pkl" / "0" / "model.pkl").read_bytes() == b"one"
    assert not (app / "azureml-models" / "m").exists()


def test_force_refuses_an_app_root_whose_models_folder_holds_the_store(base: Path) -> None:
    app = base / "app"
    store = app / "azureml-models" / "store"
    store.mkdir(parents=True)

    with pytest.raises(DeploymentRefusedError) as caught:
        build_deployment([], app, force=True, store_dir=store)

    assert str(caught.value) == (
        f"the modelstore registry at {store} lies inside {app / 'azureml-models'}, which a "
        "forced deployment replaces; choose another app root (nothing was written)"
    )
    assert caught.value.remedy is None  # no option makes it go through

    assert store.is_dir()


# --- failures while building leave nothing half-written -------------------------------------


def fail_on_second_place(monkeypatch: pytest.MonkeyPatch) -> None:
    real_place = deployment_module._place
    calls = []

    def flaky(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_place(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(deployment_module, "_place", flaky)


def test_a_failure_while_building_removes_the_app_root_it_created(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(base)
    fail_on_second_place(monkeypatch)

    with pytest.raises(StorageError, match=r"No space left on device.*nothing was written"):
        build_deployment(
            [source(store, "m", 1, "model.pkl"), source(store, "d", 1, "model_dir")],
            base / "new" / "app",
            copy=True,
        )

    assert not (base / "new").exists()


def test_a_failed_forced_redeploy_keeps_the_previous_deployment_whole(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(base)
    app = base / "app"
    build_deployment([source(store, "m", 1, "model.pkl")], app)
    before = tree(app)
    fail_on_second_place(monkeypatch)

    with pytest.raises(StorageError):
        build_deployment(
            [source(store, "m", 2, "model.pkl"), source(store, "d", 1, "model_dir")],
            app,
            force=True,
        )

    assert tree(app) == before


def test_registry_deploy_and_get_model_path_work_inside_pyfakefs(
    fs: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("/project").mkdir()
    Path("/project/model.pkl").write_bytes(b"fake")
    with Registry("/home", db_url="sqlite://") as registry:
        registry.register("/project/model.pkl", "m")
        registry.register("/project/model.pkl", "m")
        deployed = registry.deploy(["m:1", "m", "/project/model.pkl"], "/app")

    assert Path("/app/azureml-models/m/2/model.pkl").is_symlink()
    assert deployed.env["AZUREML_MODEL_DIR"] == "/app/azureml-models"
    monkeypatch.setenv("AML_APP_ROOT", "/app")
    monkeypatch.delenv("AZUREML_MODEL_DIR", raising=False)
    assert get_model_path("m") == "/app/azureml-models/m/2/model.pkl"
    assert get_model_path("model.pkl", 0) == "/app/azureml-models/model.pkl/0/model.pkl"
    assert Path(get_model_path("m", 1)).read_bytes() == b"fake"


def test_a_new_app_root_removed_by_a_refused_concurrent_deployment_is_made_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two deployments into one new folder: the refused one removes the (empty) folder it made
    while this one is about to build in it. This one must make it again, not fail."""
    store = make_store(tmp_path)
    app = tmp_path / "new" / "app"
    real_mkdtemp = tempfile.mkdtemp
    calls = []

    def mkdtemp_after_the_other_deployment_gave_up(*, prefix: str, dir: Path) -> str:
        calls.append((prefix, dir))
        if len(calls) == 1:
            os.rmdir(app)  # what the refused deployment's clean-up does
        return real_mkdtemp(prefix=prefix, dir=dir)

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp_after_the_other_deployment_gave_up)
    deployed = build_deployment([source(store, "m", 2, "model.pkl")], app)

    assert len(calls) == 2
    assert (app / "azureml-models" / "m" / "2" / "model.pkl").read_bytes() == b"two"
    assert os.listdir(app) == ["azureml-models"]
    assert deployed.env["AZUREML_MODEL_DIR"] == str(app / "azureml-models" / "m" / "2")


# --- temporary: deploy for a block, then remove everything laid out --------------------------


def scratch(base: Path) -> Path:
    """An empty folder standing for the system's temporary folder."""
    folder = base / "tmp"
    folder.mkdir()
    return folder


def test_a_temporary_deployment_lives_for_the_block_and_leaves_nothing_after(base: Path) -> None:
    store, parent = make_store(base), scratch(base)

    with temporary(
        [source(store, "m", 2, "model.pkl")], store_dir=store, prefix="ms-", parent=parent
    ) as deployment:
        [folder] = os.listdir(parent)
        (deployment.app_root / "written-by-the-block.txt").write_text("x")
        seen = (deployment.models[0].path.read_bytes(), dict(deployment.env))

    assert folder.startswith("ms-")
    assert deployment.app_root == parent / folder
    assert seen == (
        b"two",
        {
            "AML_APP_ROOT": str(parent / folder),
            "AZUREML_MODEL_DIR": str(parent / folder / "azureml-models" / "m" / "2"),
        },
    )
    assert os.listdir(parent) == []
    assert (store / "azureml-models" / "m" / "2" / "model.pkl").read_bytes() == b"two"


def test_a_temporary_deployment_does_not_set_the_process_environment(
    base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, parent = make_store(base), scratch(base)
    monkeypatch.delenv("AML_APP_ROOT", raising=False)
    monkeypatch.delenv("AZUREML_MODEL_DIR", raising=False)

    with temporary([source(store, "m", 1, "model.pkl")], parent=parent):
        seen = (os.environ.get("AML_APP_ROOT"), os.environ.get("AZUREML_MODEL_DIR"))

    assert seen == (None, None)


def test_a_temporary_deployment_can_have_its_app_root_in_a_subfolder(base: Path) -> None:
    store, parent = make_store(base), scratch(base)

    with temporary([source(store, "m", 1, "model.pkl")], parent=parent, subfolder="app") as dep:
        [folder] = os.listdir(parent)
        laid_out = tree(parent / folder)

    assert dep.app_root == parent / folder / "app"
    assert laid_out == [
        "app",
        "app/azureml-models",
        "app/azureml-models/m",
        "app/azureml-models/m/1",
        "app/azureml-models/m/1/model.pkl",
    ]
    assert os.listdir(parent) == []


@pytest.mark.parametrize("error", [RuntimeError("the body failed"), KeyboardInterrupt()])
def test_a_temporary_deployment_is_removed_when_the_block_raises_or_is_interrupted(
    base: Path, error: BaseException
) -> None:
    store, parent = make_store(base), scratch(base)

    with (
        pytest.raises(type(error)),
        temporary([source(store, "d", 1, "model_dir")], copy=True, parent=parent),
    ):
        assert len(os.listdir(parent)) == 1
        raise error

    assert os.listdir(parent) == []


def test_a_copied_temporary_deployment_of_read_only_entries_is_removed(base: Path) -> None:
    store, parent = make_store(base), scratch(base)
    app = base / "new" / "app"

    with temporary([source(store, "d", 1, "model_dir")], app, copy=True) as deployment:
        assert (deployment.models[0].path / "sub" / "b.txt").read_text() == "b"
    with temporary([source(store, "d", 1, "model_dir")], copy=True, parent=parent):
        pass

    assert not (base / "new").exists()
    assert os.listdir(parent) == []


def test_keep_leaves_a_temporary_deployment_in_place(base: Path) -> None:
    store, parent = make_store(base), scratch(base)

    with temporary([source(store, "m", 1, "model.pkl")], keep=True, parent=parent) as deployment:
        pass

    assert deployment.models[0].path.read_bytes() == b"one"
    assert os.listdir(parent) == [deployment.app_root.name]


def test_a_failed_layout_leaves_no_temporary_folder_even_with_keep(base: Path) -> None:
    store, parent = make_store(base), scratch(base)
    missing = ModelSource(name="gone", version=1, entry_path=base / "nothing", registered=True)

    with (
        pytest.raises(ModelNotFoundError),
        temporary([source(store, "m", 1, "model.pkl"), missing], keep=True, parent=parent),
    ):
        pytest.fail("the block must not run")

    assert os.listdir(parent) == []


def test_a_given_existing_app_root_keeps_itself_and_what_the_block_wrote(base: Path) -> None:
    store, app = make_store(base), base / "app"
    app.mkdir()

    with temporary([source(store, "m", 1, "model.pkl")], app) as deployment:
        (app / "out.txt").write_text("the user's")

    assert deployment.app_root == app
    assert tree(app) == ["out.txt"]
    empty = base / "empty"
    empty.mkdir()
    with temporary([source(store, "m", 1, "model.pkl")], empty):
        pass
    assert empty.is_dir() and tree(empty) == []  # it was there before: not ours to remove


def test_a_given_new_app_root_goes_with_the_parents_made_for_it_and_no_others(
    base: Path,
) -> None:
    store = make_store(base)
    (base / "existing").mkdir()
    app = base / "existing" / "new" / "deeper" / "app"

    with temporary([source(store, "m", 1, "model.pkl")], app):
        assert (app / "azureml-models" / "m" / "1" / "model.pkl").read_bytes() == b"one"

    assert (base / "existing").is_dir()
    assert tree(base / "existing") == []


def test_a_created_parent_the_block_wrote_into_is_kept(base: Path) -> None:
    store = make_store(base)
    app = base / "new" / "app"

    with temporary([source(store, "m", 1, "model.pkl")], app):
        (base / "new" / "user.txt").write_text("mine")

    assert tree(base / "new") == ["user.txt"]


def test_a_temporary_deployment_never_removes_a_models_folder_replaced_by_a_link(
    base: Path,
) -> None:
    store = make_store(base)
    app = base / "app"
    elsewhere = base / "elsewhere"
    (elsewhere / "keep.txt").parent.mkdir()
    (elsewhere / "keep.txt").write_text("keep")

    with temporary([source(store, "m", 1, "model.pkl")], app):
        remove_tree(app / "azureml-models")
        (app / "azureml-models").symlink_to(elsewhere, target_is_directory=True)

    assert (app / "azureml-models").is_symlink()
    assert (elsewhere / "keep.txt").read_text() == "keep"


def test_a_non_empty_given_app_root_is_refused_without_offering_force(base: Path) -> None:
    store, app = make_store(base), base / "app"
    app.mkdir()
    (app / "notes.txt").write_text("user data")

    with (
        pytest.raises(DeploymentRefusedError) as refused,
        temporary([source(store, "m", 1, "model.pkl")], app),
    ):
        pytest.fail("the block must not run")

    message = str(refused.value)
    assert message.startswith(f"the app root {app} is not empty (it holds 'notes.txt')")
    assert "force" not in message and "app_root=None" in message
    assert tree(app) == ["notes.txt"]


def test_a_temporary_deployment_is_removed_only_by_the_process_that_made_it(
    tmp_path: Path,
) -> None:
    """A gunicorn worker is a fork that leaves the block through SystemExit while its siblings
    still serve from the deployment."""
    store, parent = make_store(tmp_path), scratch(tmp_path)
    block = temporary([source(store, "m", 1, "model.pkl")], parent=parent)
    deployment = block.__enter__()

    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            block.__exit__(SystemExit, SystemExit(0), None)
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    still_there = deployment.models[0].path.read_bytes()
    block.__exit__(None, None, None)

    assert still_there == b"one"
    assert os.listdir(parent) == []
