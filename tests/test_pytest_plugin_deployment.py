"""``azureml_deployment`` as users call it: the layout and environment Azure ML would give."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from modelstore import Registry, get_model_path
from modelstore.testing import DeploymentFactory


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.pkl"
    path.write_bytes(b"weights")
    return path


def test_one_model_gets_the_single_model_environment(
    model_registry: Registry, azureml_deployment: DeploymentFactory, model_file: Path
) -> None:
    model_registry.register(model_file, name="m")
    model_registry.register(model_file, name="m")
    deployment = azureml_deployment("m:1")
    assert os.environ["AML_APP_ROOT"] == str(deployment.app_root)
    assert os.environ["AZUREML_MODEL_DIR"] == str(deployment.app_root / "azureml-models/m/1")
    assert get_model_path("m") == str(deployment.app_root / "azureml-models/m/1/model.pkl")
    assert (deployment.model_dir / "model.pkl").is_symlink()  # linked, not copied


def test_copy_makes_a_self_contained_deployment(
    model_registry: Registry, azureml_deployment: DeploymentFactory, model_file: Path
) -> None:
    model_registry.register(model_file, name="m")
    deployment = azureml_deployment("m", copy=True)
    entry = deployment.model_dir / "model.pkl"
    assert not entry.is_symlink()
    assert entry.read_bytes() == b"weights"


def test_an_unregistered_local_file_is_deployed_as_version_0(
    azureml_deployment: DeploymentFactory, model_file: Path
) -> None:
    deployment = azureml_deployment(model_file)
    assert os.environ["AZUREML_MODEL_DIR"].endswith("azureml-models/model.pkl/0")
    assert (deployment.model_dir / "model.pkl").read_bytes() == b"weights"
    assert [(m.name, m.version, m.registered) for m in deployment.models] == [
        ("model.pkl", 0, False)
    ]


def test_the_fake_registry_deploys_inside_the_fake_filesystem_only(
    fs: Any, fake_model_registry: Registry, azureml_deployment: DeploymentFactory
) -> None:
    data = Path(f"/fake-only-{uuid.uuid4().hex}")
    data.mkdir()
    (data / "model.pkl").write_bytes(b"fake weights")
    fake_model_registry.register(data / "model.pkl", name="m")
    deployment = azureml_deployment("m:1")
    with open(get_model_path("m"), "rb") as entry:
        assert entry.read() == b"fake weights"
    fs.pause()
    try:
        for written in (data, fake_model_registry.home, deployment.app_root):
            assert not os.path.exists(written), written
    finally:
        fs.resume()


def test_no_models_get_the_several_models_environment(
    model_registry: Registry, azureml_deployment: DeploymentFactory
) -> None:
    deployment = azureml_deployment()
    assert deployment.models == []
    assert os.environ["AZUREML_MODEL_DIR"] == str(deployment.app_root / "azureml-models")


def test_the_fake_catalog_lives_as_long_as_the_test_not_as_a_connection(
    fs: Any, fake_model_registry: Registry
) -> None:
    fs.create_file("/models/model.pkl", contents=b"weights")
    with Registry() as code_under_test:  # opened from MODELSTORE_HOME / MODELSTORE_DB_URL
        code_under_test.register("/models/model.pkl", name="m")
    fake_model_registry.close()
    with Registry() as reopened:
        assert reopened.versions("m") == [1]


def test_libraries_can_read_their_own_data_files_on_pyfakefs(
    fake_model_registry: Registry,
) -> None:
    import importlib.metadata

    assert importlib.metadata.version("pytest") == pytest.__version__
