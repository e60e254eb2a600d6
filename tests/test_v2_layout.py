"""The v2 layout: a deployment YAML laid out as Azure's container sees it (app root, model
folder, code folder, environment), and removed afterwards."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from v2_helpers import copy_gallery

from modelstore import Registry
from modelstore.errors import AliasNotFoundError, DeploymentRefusedError, ModelNotFoundError
from modelstore.v2 import load_deployment_spec
from modelstore.v2.layout import (
    V2_PREFIX,
    anonymous_model_name,
    deployment_environment,
    temporary_v2_deployment,
)


@pytest.fixture
def gallery(tmp_path: Path) -> Path:
    return copy_gallery(tmp_path / "v2")


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(V2_PREFIX))


def test_an_inline_model_folder_lands_under_an_anonymous_name_version_1_keeping_its_name(
    gallery: Path, tmp_path: Path
) -> None:
    spec = load_deployment_spec(gallery / "blue-deployment.yml")
    with temporary_v2_deployment(spec, parent=tmp_path) as deployment:
        name = anonymous_model_name(gallery / "model")
        model_dir = deployment.app_root / "azureml-models" / name / "1"
        assert len(name) == 64 and int(name, 16) >= 0
        assert deployment.env["AZUREML_MODEL_DIR"] == os.fspath(model_dir)
        pickle = model_dir / "model" / "sklearn_regression_model.pkl"
        assert pickle.read_bytes() == b"placeholder"
        assert os.listdir(model_dir) == ["model"]


def test_the_code_folder_appears_under_its_own_name_and_is_the_app_root(
    gallery: Path, tmp_path: Path
) -> None:
    spec = load_deployment_spec(gallery / "blue-deployment.yml")
    with temporary_v2_deployment(spec, parent=tmp_path) as deployment:
        code = deployment.app_root / "onlinescoring"
        assert deployment.env["AML_APP_ROOT"] == os.fspath(code)
        assert deployment.code_dir == code
        assert (code / "score.py").read_bytes() == (gallery / "onlinescoring/score.py").read_bytes()
        assert deployment.working_dir == code
        assert deployment.script_path == code / "score.py"
        assert sorted(os.listdir(deployment.app_root)) == ["azureml-models", "onlinescoring"]


def test_the_entry_script_is_the_scoring_script_as_written(gallery: Path) -> None:
    (gallery / "onlinescoring" / "sub").mkdir()
    (gallery / "onlinescoring" / "sub" / "main.py").write_text("")
    text = (gallery / "blue-deployment.yml").read_text().replace("score.py", "sub/main.py")
    spec = load_deployment_spec(_write(gallery, "d.yml", text))
    env = deployment_environment(spec, Path("/app"), None)
    assert env["AZUREML_ENTRY_SCRIPT"] == "sub/main.py"
    assert env["AML_APP_ROOT"] == "/app/onlinescoring"


def test_environment_variables_come_on_top_and_win_over_the_containers(gallery: Path) -> None:
    text = (gallery / "blue-deployment.yml").read_text()
    text = text.replace("  MODEL_COLOR: blue\n", "  MODEL_COLOR: blue\n  AML_APP_ROOT: /mine\n")
    spec = load_deployment_spec(_write(gallery, "d.yml", text))
    env = deployment_environment(spec, Path("/app"), None)
    assert env["MODEL_COLOR"] == "blue"
    assert env["WORKER_COUNT"] == "1"
    assert env["AML_APP_ROOT"] == "/mine"
    assert "AZUREML_MODEL_DIR" not in env  # no model given to the function


def test_a_registered_model_is_laid_out_under_its_name_and_version(
    gallery: Path, tmp_path: Path
) -> None:
    registry = Registry(tmp_path / "home")
    registry.register(gallery / "model", name="sklearn-regression")
    spec = load_deployment_spec(gallery / "green-deployment.yml")
    with temporary_v2_deployment(spec, registry, parent=tmp_path) as deployment:
        model_dir = deployment.app_root / "azureml-models" / "sklearn-regression" / "1"
        assert deployment.env["AZUREML_MODEL_DIR"] == os.fspath(model_dir)
        assert (model_dir / "model" / "sklearn_regression_model.pkl").is_file()
        assert deployment.model is not None and deployment.model.registered


def test_at_latest_resolves_to_the_highest_registered_version(
    gallery: Path, tmp_path: Path
) -> None:
    registry = Registry(tmp_path / "home")
    registry.register(gallery / "model", name="sklearn-regression")
    registry.register(gallery / "model", name="sklearn-regression")
    text = (gallery / "green-deployment.yml").read_text().replace(":1\n", "@latest\n")
    spec = load_deployment_spec(_write(gallery, "d.yml", text))
    with temporary_v2_deployment(spec, registry, parent=tmp_path) as deployment:
        assert deployment.env["AZUREML_MODEL_DIR"].endswith("/sklearn-regression/2")


def test_an_alias_label_resolves_to_the_version_the_alias_points_at(
    gallery: Path, tmp_path: Path
) -> None:
    registry = Registry(tmp_path / "home")
    registry.register(gallery / "model", name="sklearn-regression")
    registry.register(gallery / "model", name="sklearn-regression")
    registry.set_alias("sklearn-regression:1", "champion")
    text = (gallery / "green-deployment.yml").read_text().replace(":1\n", "@champion\n")
    spec = load_deployment_spec(_write(gallery, "d.yml", text))
    with temporary_v2_deployment(spec, registry, parent=tmp_path) as deployment:
        assert deployment.env["AZUREML_MODEL_DIR"].endswith("/sklearn-regression/1")
        assert deployment.model is not None and deployment.model.version == 1


def test_an_unknown_alias_is_refused_in_one_line_before_anything_is_written(
    gallery: Path, tmp_path: Path
) -> None:
    registry = Registry(tmp_path / "home")
    registry.register(gallery / "model", name="sklearn-regression")
    registry.set_alias("sklearn-regression:1", "champion")
    text = (gallery / "green-deployment.yml").read_text().replace(":1\n", "@gold\n")
    spec = load_deployment_spec(_write(gallery, "d.yml", text))
    parent = tmp_path / "parent"
    parent.mkdir()
    with (
        pytest.raises(AliasNotFoundError) as refused,
        temporary_v2_deployment(spec, registry, parent=parent),
    ):
        pass
    assert (refused.value.name, refused.value.alias) == ("sklearn-regression", "gold")
    assert str(refused.value) == (
        "model azureml:sklearn-regression@gold: model 'sklearn-regression' has no alias 'gold'; "
        f"its aliases are champion (registry {registry.home}); set one with "
        "Registry.set_alias('sklearn-regression:VERSION', 'gold')"
    )
    assert _leftovers(parent) == []


def test_an_unknown_registered_model_is_refused_before_anything_is_written(
    gallery: Path, tmp_path: Path
) -> None:
    registry = Registry(tmp_path / "home")
    spec = load_deployment_spec(gallery / "green-deployment.yml")
    parent = tmp_path / "parent"
    parent.mkdir()
    with (
        pytest.raises(ModelNotFoundError, match="azureml:sklearn-regression:1"),
        temporary_v2_deployment(spec, registry, parent=parent),
    ):
        pass
    assert _leftovers(parent) == []


def test_without_a_model_there_is_no_models_folder_and_no_model_dir(gallery: Path) -> None:
    text = (gallery / "blue-deployment.yml").read_text().replace("model:\n  path: model\n", "")
    spec = load_deployment_spec(_write(gallery, "d.yml", text))
    with temporary_v2_deployment(spec, parent=gallery) as deployment:
        assert "AZUREML_MODEL_DIR" not in deployment.env
        assert os.listdir(deployment.app_root) == ["onlinescoring"]


def test_the_app_root_is_removed_on_exit_and_on_an_error(gallery: Path, tmp_path: Path) -> None:
    spec = load_deployment_spec(gallery / "blue-deployment.yml")
    parent = tmp_path / "parent"
    parent.mkdir()
    with temporary_v2_deployment(spec, parent=parent) as deployment:
        assert deployment.app_root.parent == parent
    assert _leftovers(parent) == []
    with pytest.raises(KeyboardInterrupt), temporary_v2_deployment(spec, parent=parent):
        raise KeyboardInterrupt
    assert _leftovers(parent) == []
    assert (gallery / "model" / "sklearn_regression_model.pkl").read_bytes() == b"placeholder"
    assert (gallery / "onlinescoring" / "score.py").is_file()


def test_a_copied_deployment_holds_no_links(gallery: Path, tmp_path: Path) -> None:
    spec = load_deployment_spec(gallery / "blue-deployment.yml")
    with temporary_v2_deployment(spec, copy=True, parent=tmp_path) as deployment:
        for path in [deployment.app_root, *deployment.app_root.rglob("*")]:
            assert not path.is_symlink(), path


def test_a_code_folder_named_like_the_models_folder_is_refused(
    gallery: Path, tmp_path: Path
) -> None:
    (gallery / "onlinescoring").rename(gallery / "azureml-models")
    text = (gallery / "blue-deployment.yml").read_text().replace("onlinescoring", "azureml-models")
    spec = load_deployment_spec(_write(gallery, "d.yml", text))
    with (
        pytest.raises(DeploymentRefusedError, match="rename the code folder"),
        temporary_v2_deployment(spec, parent=tmp_path),
    ):
        pass
    assert _leftovers(tmp_path) == []


def test_the_anonymous_name_follows_the_content(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "m.pkl").write_bytes(b"one")
    first = anonymous_model_name(tmp_path / "a")
    assert anonymous_model_name(tmp_path / "a") == first
    (tmp_path / "a" / "m.pkl").write_bytes(b"two")
    assert anonymous_model_name(tmp_path / "a") != first


def test_the_layout_works_on_a_fake_filesystem(fs: object) -> None:
    root = Path("/project")
    (root / "model").mkdir(parents=True)
    (root / "model" / "m.pkl").write_bytes(b"bytes")
    (root / "src").mkdir()
    (root / "src" / "score.py").write_text("def init(): pass\ndef run(d): return d\n")
    spec = load_deployment_spec(
        _write(
            root,
            "d.yml",
            "name: blue\nendpoint_name: e\ninstance_type: x\nmodel:\n  path: model\n"
            "code_configuration:\n  code: src\n  scoring_script: score.py\n",
        )
    )
    with temporary_v2_deployment(spec, parent="/tmp") as deployment:
        model_dir = Path(deployment.env["AZUREML_MODEL_DIR"])
        assert (model_dir / "model" / "m.pkl").read_bytes() == b"bytes"
        assert (Path(deployment.env["AML_APP_ROOT"]) / "score.py").is_file()
    assert [p for p in os.listdir("/tmp") if p.startswith(V2_PREFIX)] == []


def test_files_written_in_the_code_folder_stay_out_of_the_users_source(
    gallery: Path, tmp_path: Path
) -> None:
    spec = load_deployment_spec(gallery / "blue-deployment.yml")
    with temporary_v2_deployment(spec, parent=tmp_path) as deployment:
        assert deployment.code_dir is not None
        (deployment.code_dir / "cache.txt").write_text("written by the script")
        assert os.path.realpath(deployment.code_dir) == os.fspath(deployment.code_dir)
    assert sorted(os.listdir(gallery / "onlinescoring")) == ["score.py"]
