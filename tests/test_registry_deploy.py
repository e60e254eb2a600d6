"""Registry.deploy: how each REF or path becomes a model of the deployment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_helpers import make_file, make_model_dir

from modelstore import Registry
from modelstore.errors import BadArgumentTypeError, DeploymentRefusedError, ModelNotFoundError


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    monkeypatch.delenv("MODELSTORE_DB_URL", raising=False)
    with Registry(tmp_path / "home") as opened:
        model = make_file(tmp_path / "src" / "model.pkl")
        opened.register(model, "m")
        opened.register(model, "m")
        opened.register(make_model_dir(tmp_path / "src" / "model_dir"), "folder_model")
        yield opened


def _deployed(registry: Registry, refs: list[str | os.PathLike[str]], app: Path) -> list[str]:
    deployment = registry.deploy(refs, app)
    return [f"{m.name}/{m.version}/{m.entry}:{m.registered}" for m in deployment.models]


def test_a_ref_names_a_registered_version_and_a_bare_name_the_latest(
    registry: Registry, tmp_path: Path
) -> None:
    app = tmp_path / "app"
    assert sorted(_deployed(registry, ["m:1", "folder_model"], app)) == [
        "folder_model/1/model_dir:True",
        "m/1/model.pkl:True",
    ]
    assert (app / "azureml-models" / "m" / "1" / "model.pkl").read_bytes() == b"model-bytes"


def test_latest_resolves_to_the_highest_version(registry: Registry, tmp_path: Path) -> None:
    assert _deployed(registry, ["m:latest"], tmp_path / "app") == ["m/2/model.pkl:True"]


def test_an_unknown_version_of_a_known_name_lists_the_versions(
    registry: Registry, tmp_path: Path
) -> None:
    with pytest.raises(ModelNotFoundError, match="no version 9; its versions are 1, 2"):
        registry.deploy(["m:9"], tmp_path / "app")
    assert not (tmp_path / "app").exists()


def test_an_unregistered_file_or_folder_is_deployed_as_version_0_under_its_basename(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_file(tmp_path / "work" / "a_rather_long_model_file_name_here.pkl")
    make_model_dir(tmp_path / "work" / "local_dir")
    monkeypatch.chdir(tmp_path / "work")
    assert sorted(
        _deployed(
            registry,
            ["a_rather_long_model_file_name_here.pkl", Path("local_dir")],
            tmp_path / "app",
        )
    ) == [
        "a_rather_long_model_file_name_/0/a_rather_long_model_file_name_here.pkl:False",
        "local_dir/0/local_dir:False",
    ]


def test_a_registered_name_wins_over_a_local_file_of_the_same_name(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_file(tmp_path / "work" / "m")
    monkeypatch.chdir(tmp_path / "work")
    assert _deployed(registry, ["m"], tmp_path / "app") == ["m/2/model.pkl:True"]


def test_a_ref_that_is_neither_registered_nor_on_disk_names_the_registered_models(
    registry: Registry, tmp_path: Path
) -> None:
    with pytest.raises(
        ModelNotFoundError, match=r"'nothing' is neither a registered model.*folder_model, m"
    ):
        registry.deploy(["nothing"], tmp_path / "app")


def test_the_same_version_twice_is_refused(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(DeploymentRefusedError, match="both deploy m:2"):
        registry.deploy(["m", "m:2"], tmp_path / "app")
    assert not (tmp_path / "app").exists()


def test_refs_must_be_a_list(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(BadArgumentTypeError, match="list"):
        registry.deploy("m", tmp_path / "app")


def test_a_temporary_deployment_resolves_refs_like_deploy_and_removes_itself(
    registry: Registry, tmp_path: Path
) -> None:
    parent = tmp_path / "tmp"
    parent.mkdir()

    with registry.temporary_deployment(["m:latest", "folder_model"], parent=parent) as deployment:
        laid_out = sorted(f"{m.name}/{m.version}/{m.entry}" for m in deployment.models)
        data = (deployment.app_root / "azureml-models" / "m" / "2" / "model.pkl").read_bytes()

    assert laid_out == ["folder_model/1/model_dir", "m/2/model.pkl"]
    assert data == b"model-bytes"
    assert os.listdir(parent) == []


def test_a_temporary_deployment_of_an_unknown_ref_fails_before_making_a_folder(
    registry: Registry, tmp_path: Path
) -> None:
    parent = tmp_path / "tmp"
    parent.mkdir()

    with pytest.raises(ModelNotFoundError, match="no version 9; its versions are 1, 2"):
        registry.temporary_deployment(["m:9"], parent=parent)

    assert os.listdir(parent) == []


def test_a_temporary_deployment_inside_the_store_is_refused(registry: Registry) -> None:
    with (
        pytest.raises(DeploymentRefusedError, match="inside the modelstore registry"),
        registry.temporary_deployment(["m"], parent=registry.home),
    ):
        pytest.fail("the block must not run")

    assert not [name for name in os.listdir(registry.home) if name.startswith("modelstore-app-")]
