"""get_model_path beyond the SDK's branch table: modelstore's departures D1-D3
(docs/get_model_path.md), deployment detection, the Model stand-in, argument checks and import
weight."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from modelstore import Model, get_model_path
from modelstore.deployment import ModelSource, build_deployment
from modelstore.errors import BadArgumentTypeError, ModelLayoutError, ModelNotFoundError


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No deployment variables, no registry, and a fresh cwd; returns the cwd."""
    for variable in ("AML_APP_ROOT", "AZUREML_MODEL_DIR", "MODELSTORE_DB_URL"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("MODELSTORE_HOME", os.fspath(tmp_path / "home"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def put(path: Path, payload: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


def registry_with(home: Path, tmp_path: Path, *versions: bytes) -> None:
    from modelstore.registry import Registry

    with Registry(home) as registry:
        for payload in versions:
            registry.register(put(tmp_path / "src" / "model.pkl", payload), "m")


# --- D1: AML_APP_ROOT is read at every call -----------------------------------------------------


def test_a_changed_aml_app_root_is_followed_at_the_next_call(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(tmp_path / "one" / "azureml-models" / "m" / "1" / "model.pkl")
    put(tmp_path / "two" / "azureml-models" / "m" / "4" / "model.pkl")

    monkeypatch.setenv("AML_APP_ROOT", os.fspath(tmp_path / "one"))
    first = get_model_path("m")
    monkeypatch.setenv("AML_APP_ROOT", os.fspath(tmp_path / "two"))
    second = get_model_path("m")

    assert first == f"{tmp_path}/one/azureml-models/m/1/model.pkl"
    assert second == f"{tmp_path}/two/azureml-models/m/4/model.pkl"


def test_a_relative_aml_app_root_gives_a_relative_answer(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(clean_env / "app" / "azureml-models" / "m" / "1" / "model.pkl")
    monkeypatch.setenv("AML_APP_ROOT", "app")

    assert get_model_path("m") == "app/azureml-models/m/1/model.pkl"


# --- D2: AZUREML_MODEL_DIR when the models root has nothing --------------------------------------


def test_single_form_model_dir_answers_when_the_models_root_has_no_such_model(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(tmp_path / "elsewhere" / "m" / "3" / "model.pkl")
    monkeypatch.setenv("AZUREML_MODEL_DIR", f"{tmp_path}/elsewhere/m/3/")

    assert get_model_path("m") == f"{tmp_path}/elsewhere/m/3/model.pkl"
    assert get_model_path("m", 3) == f"{tmp_path}/elsewhere/m/3/model.pkl"


def test_single_form_model_dir_keeps_a_relative_value_relative(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(clean_env / "models" / "m" / "2" / "model_dir" / "a.txt")
    monkeypatch.setenv("AZUREML_MODEL_DIR", "models/m/2")

    assert get_model_path("m") == "models/m/2/model_dir"


def test_single_form_model_dir_does_not_answer_for_another_version_or_name(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(tmp_path / "d" / "m" / "3" / "model.pkl")
    monkeypatch.setenv("AZUREML_MODEL_DIR", f"{tmp_path}/d/m/3")

    with pytest.raises(ModelNotFoundError, match=r"AZUREML_MODEL_DIR="):
        get_model_path("m", 2)
    with pytest.raises(ModelNotFoundError):
        get_model_path("n")


def test_single_form_model_dir_applies_the_one_entry_rule(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(tmp_path / "d" / "m" / "3" / "model.pkl")
    put(tmp_path / "d" / "m" / "3" / ".DS_Store")
    monkeypatch.setenv("AZUREML_MODEL_DIR", f"{tmp_path}/d/m/3")

    with pytest.raises(ModelLayoutError, match=rf"^Dir {tmp_path}/d/m/3 can contain only 1 file"):
        get_model_path("m")


def test_multi_form_model_dir_probes_like_the_models_root(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for version in (1, 2, 10):
        put(tmp_path / "root" / "m" / str(version) / "model.pkl")
    monkeypatch.setenv("AZUREML_MODEL_DIR", f"{tmp_path}/root")

    assert get_model_path("m") == f"{tmp_path}/root/m/10/model.pkl"
    assert get_model_path("m", 2) == f"{tmp_path}/root/m/2/model.pkl"
    with pytest.raises(ModelNotFoundError, match="Versions of m that exist there: 1, 2, 10"):
        get_model_path("m", 5)


def test_multi_form_model_dir_layout_faults_are_layout_errors(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(tmp_path / "root" / "m" / "latest" / "model.pkl")
    (tmp_path / "root" / "e").mkdir()
    monkeypatch.setenv("AZUREML_MODEL_DIR", f"{tmp_path}/root")

    with pytest.raises(ModelLayoutError, match="invalid literal for int"):
        get_model_path("m")
    with pytest.raises(ModelLayoutError, match=r"^versions is empty"):
        get_model_path("e")


def test_the_models_root_and_the_cwd_come_before_azureml_model_dir(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(tmp_path / "app" / "azureml-models" / "m" / "1" / "model.pkl")
    put(tmp_path / "root" / "m" / "9" / "model.pkl")
    put(tmp_path / "root" / "c" / "9" / "model.pkl")
    put(clean_env / "c")
    monkeypatch.setenv("AML_APP_ROOT", f"{tmp_path}/app")
    monkeypatch.setenv("AZUREML_MODEL_DIR", f"{tmp_path}/root")

    assert get_model_path("m") == f"{tmp_path}/app/azureml-models/m/1/model.pkl"
    assert get_model_path("c") == "c"


def test_an_empty_azureml_model_dir_counts_as_unset(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZUREML_MODEL_DIR", "")

    with pytest.raises(ModelNotFoundError, match="There is no modelstore registry"):
        get_model_path("m")


def test_relative_single_form_model_dir_holding_the_entry_file_is_not_found_as_in_the_sdk(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK's local deployment layout: the entry's file name is not a model name."""
    put(clean_env / "azureml-models" / "mymodel" / "1" / "model.pkl")
    monkeypatch.setenv("AZUREML_MODEL_DIR", "azureml-models/mymodel/1")

    with pytest.raises(ModelNotFoundError, match=r"^Model model.pkl not found in cache at "):
        get_model_path("model.pkl")
    assert get_model_path("mymodel") == "azureml-models/mymodel/1/model.pkl"


def test_an_unreadable_model_dir_folder_is_absent_and_named_in_the_not_found_error(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(tmp_path / "root" / "m" / "1" / "model.pkl")
    monkeypatch.setenv("AZUREML_MODEL_DIR", f"{tmp_path}/root")
    locked = f"{tmp_path}/root/m"
    real_listdir = os.listdir

    def listdir(path: str) -> list[str]:  # root may read any folder: simulate the permission
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", path)
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", listdir)

    with pytest.raises(ModelNotFoundError) as caught:
        get_model_path("m")

    assert f"AZUREML_MODEL_DIR={tmp_path}/root ({locked} could not be read: Permission denied)" in (
        str(caught.value)
    )


@pytest.mark.parametrize("model_dir", ["", "root", "root/m/1"])
def test_a_name_no_file_can_have_is_not_found_inside_a_deployment_as_in_the_sdk(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, model_dir: str
) -> None:
    """The SDK's ``os.path.exists`` says False for a name with a NUL byte: "not found"."""
    put(clean_env / "azureml-models" / "m" / "1" / "model.pkl")
    put(tmp_path / "root" / "m" / "1" / "model.pkl")
    if model_dir:
        monkeypatch.setenv("AZUREML_MODEL_DIR", f"{tmp_path}/{model_dir}")

    for version in (None, 1):
        with pytest.raises(ModelNotFoundError, match=re.escape("Model m\0 not found in cache at ")):
            get_model_path("m\0", version)


# --- deployment detection: inside a deployment the registry is never consulted -----------------


@pytest.mark.parametrize("signal", ["AML_APP_ROOT", "AZUREML_MODEL_DIR", "./azureml-models"])
def test_inside_a_deployment_the_registry_does_not_answer_it_explains_the_missing_model(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signal: str
) -> None:
    registry_with(tmp_path / "home", tmp_path, b"one", b"two")
    if signal == "./azureml-models":
        (clean_env / "azureml-models").mkdir()
    else:
        monkeypatch.setenv(signal, os.fspath(tmp_path / "empty-app"))

    with pytest.raises(ModelNotFoundError) as caught:
        get_model_path("m")
    with pytest.raises(ModelNotFoundError) as caught_v1:
        get_model_path("m", 1)

    home = tmp_path / "home"
    assert str(caught.value).endswith(
        f" m:2 is registered in the modelstore registry at {home} but is not deployed here; "
        "add it to the deployment with `--model m:2` (modelstore serve, score, exec or deploy), "
        "or 'm:2' among the models given to Registry.deploy or azureml_deployment in Python."
    )
    assert "`--model m:1`" in str(caught_v1.value)


def test_inside_a_deployment_a_version_the_registry_lacks_lists_the_registered_ones(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry_with(tmp_path / "home", tmp_path, b"one", b"two")
    put(tmp_path / "app" / "azureml-models" / "m" / "1" / "model.pkl")
    monkeypatch.setenv("AML_APP_ROOT", os.fspath(tmp_path / "app"))

    with pytest.raises(ModelNotFoundError) as caught:
        get_model_path("m", 5)

    assert str(caught.value).endswith(
        "Versions of m that exist there: 1. The modelstore registry at "
        f"{tmp_path / 'home'} has versions 1, 2 of m, not version 5."
    )


def test_inside_a_deployment_a_model_not_in_the_registry_gets_no_registry_note(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry_with(tmp_path / "home", tmp_path, b"one")
    monkeypatch.setenv("AML_APP_ROOT", os.fspath(tmp_path / "app"))

    with pytest.raises(ModelNotFoundError) as caught:
        get_model_path("n")

    assert "registry" not in str(caught.value)


def test_inside_a_deployment_a_failing_registry_read_keeps_the_not_found_error(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelstore.registry import Registry

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("catalog unreadable")

    monkeypatch.setattr(Registry, "open_existing", broken)
    monkeypatch.setenv("AML_APP_ROOT", os.fspath(tmp_path / "app"))

    with pytest.raises(ModelNotFoundError, match=r"^Model m not found in cache") as caught:
        get_model_path("m")

    assert "registry" not in str(caught.value)


def test_inside_a_deployment_a_lookup_never_creates_a_registry(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AML_APP_ROOT", os.fspath(tmp_path / "app"))

    with pytest.raises(ModelNotFoundError):
        get_model_path("m")

    assert not (tmp_path / "home").exists()


# --- D3: outside any deployment, the local registry answers ---------------------------------------


def test_outside_a_deployment_the_registry_gives_the_stored_entry(
    clean_env: Path, tmp_path: Path
) -> None:
    registry_with(tmp_path / "home", tmp_path, b"one", b"two")
    stored = tmp_path / "home" / "azureml-models" / "m"

    assert get_model_path("m") == f"{stored}/2/model.pkl"
    assert Path(get_model_path("m", 1)).read_bytes() == b"one"


def test_outside_a_deployment_a_missing_version_lists_the_registered_ones(
    clean_env: Path, tmp_path: Path
) -> None:
    registry_with(tmp_path / "home", tmp_path, b"one", b"two")

    for version in (3, 0, -1, 2**63):  # 2**63: beyond SQLite INTEGER, still just not found
        with pytest.raises(ModelNotFoundError, match="has versions 1, 2 of m") as caught:
            get_model_path("m", version)
        assert str(caught.value).startswith(
            f"Model m not found in cache at azureml-models or in current working directory "
            f"{clean_env}. For more info, set logging level to DEBUG."
        )


def test_outside_a_deployment_an_unknown_name_says_the_registry_lacks_it(
    clean_env: Path, tmp_path: Path
) -> None:
    registry_with(tmp_path / "home", tmp_path, b"one")

    with pytest.raises(ModelNotFoundError, match="has no model named n"):
        get_model_path("n")
    with pytest.raises(ModelNotFoundError, match="has no model named a/b"):
        get_model_path("a/b")


def test_outside_a_deployment_the_cwd_fallback_comes_before_the_registry(
    clean_env: Path, tmp_path: Path
) -> None:
    registry_with(tmp_path / "home", tmp_path, b"one")
    put(clean_env / "m")

    assert get_model_path("m") == "m"


def test_a_lookup_never_creates_a_registry(clean_env: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=f"There is no modelstore registry at {tmp_path}"):
        get_model_path("m")

    assert not (tmp_path / "home").exists()


def test_bool_versions_are_refused_everywhere(clean_env: Path, tmp_path: Path) -> None:
    registry_with(tmp_path / "home", tmp_path, b"one")

    for version in (True, False):
        with pytest.raises(BadArgumentTypeError, match=r"^version should be an int"):
            get_model_path("m", version)


# --- arguments, the Model stand-in, side effects ---------------------------------------------


def test_a_non_string_model_name_is_a_type_error(clean_env: Path) -> None:
    with pytest.raises(BadArgumentTypeError, match="model_name should be a str"):
        get_model_path(Path("m"))  # type: ignore[arg-type]


def test_model_get_model_path_is_a_static_drop_in(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(tmp_path / "app" / "azureml-models" / "m" / "1" / "model.pkl")
    monkeypatch.setenv("AML_APP_ROOT", os.fspath(tmp_path / "app"))

    expected = f"{tmp_path}/app/azureml-models/m/1/model.pkl"
    assert Model.get_model_path("m") == expected
    assert Model.get_model_path(model_name="m", version=1) == expected
    assert Model.get_model_path("m", None, _workspace=object()) == expected
    with pytest.raises(BadArgumentTypeError, match="cannot be instantiated"):
        Model()


def test_get_model_path_prints_nothing(
    clean_env: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    registry_with(tmp_path / "home", tmp_path, b"one")
    get_model_path("m")
    with pytest.raises(ModelNotFoundError):
        get_model_path("n")

    assert capfd.readouterr() == ("", "")


def test_importing_get_model_path_loads_no_heavy_library() -> None:
    code = (
        "import json, sys\n"
        "from modelstore import get_model_path, Model\n"
        "heavy = ['pydantic', 'sqlalchemy', 'flask', 'numpy', 'click', 'alembic',"
        " 'platformdirs', 'modelstore.registry', 'modelstore.deployment']\n"
        "print(json.dumps([m for m in heavy if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout

    assert json.loads(out) == []


def test_it_resolves_a_deployment_built_inside_pyfakefs(
    fs: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    put(Path("/store/azureml-models/m/1/model.pkl"), b"fake")
    put(Path("/store/azureml-models/m/2/model_dir/a.txt"), b"fake")
    sources = [
        ModelSource(
            name="m",
            version=v,
            entry_path=Path(f"/store/azureml-models/m/{v}/{e}"),
            registered=True,
        )
        for v, e in ((1, "model.pkl"), (2, "model_dir"))
    ]
    deployment = build_deployment(sources, "/app")
    monkeypatch.delenv("AZUREML_MODEL_DIR", raising=False)
    monkeypatch.setenv("AML_APP_ROOT", os.fspath(deployment.app_root))

    assert get_model_path("m") == "/app/azureml-models/m/2/model_dir"
    assert Path(get_model_path("m", 1)).read_bytes() == b"fake"
