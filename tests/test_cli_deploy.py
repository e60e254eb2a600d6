"""``modelstore deploy``: export lines or JSON, links or copies, and every refusal (exit 2, one
``Error:`` line, nothing written)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from modelstore.cli import main
from modelstore.registry import Registry


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A registry with m:1, m:2 (files) and d:1 (a folder); the cwd is an empty project."""
    for variable in ("AML_APP_ROOT", "AZUREML_MODEL_DIR", "MODELSTORE_DB_URL"):
        monkeypatch.delenv(variable, raising=False)
    store = tmp_path / "home"
    source = tmp_path / "src"
    (source / "model_dir" / "sub").mkdir(parents=True)
    (source / "model_dir" / "sub" / "b.txt").write_text("b")
    with Registry(store) as registry:
        for payload in (b"one", b"two"):
            (source / "model.pkl").write_bytes(payload)
            registry.register(source / "model.pkl", "m")
        registry.register(source / "model_dir", "d")
    monkeypatch.setenv("MODELSTORE_HOME", os.fspath(store))
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    yield store


def deploy(*args: str) -> Result:
    return CliRunner().invoke(main, ["deploy", *args])


def tree(root: Path) -> list[str]:
    found: list[str] = []
    for folder, subfolders, files in os.walk(root):
        found.extend(os.path.relpath(os.path.join(folder, i), root) for i in subfolders + files)
    return sorted(found)


def test_deploy_prints_export_lines_that_a_shell_can_eval(home: Path, tmp_path: Path) -> None:
    app = tmp_path / "my app $HOME"

    result = deploy("m:1", "--app-root", os.fspath(app))

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("export AML_APP_ROOT=")
    shell = subprocess.run(
        ["bash", "-c", 'eval "$(cat)"; printf "%s\\n%s\\n" "$AML_APP_ROOT" "$AZUREML_MODEL_DIR"'],
        input=result.output,
        capture_output=True,
        text=True,
        check=True,
    )
    assert shell.stdout.splitlines() == [f"{app}", f"{app}/azureml-models/m/1"]
    entry = app / "azureml-models" / "m" / "1" / "model.pkl"
    assert entry.is_symlink() and entry.read_bytes() == b"one"


def test_deploy_latest_and_several_models_use_the_models_root(home: Path, tmp_path: Path) -> None:
    app = tmp_path / "app"

    result = deploy("m", "d:1", "--app-root", os.fspath(app), "--json")

    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["env"] == {
        "AML_APP_ROOT": os.fspath(app),
        "AZUREML_MODEL_DIR": os.fspath(app / "azureml-models"),
    }
    assert [(m["name"], m["version"], m["entry"]) for m in payload["models"]] == [
        ("m", 2, "model.pkl"),
        ("d", 1, "model_dir"),
    ]
    assert (app / "azureml-models" / "d" / "1" / "model_dir" / "sub" / "b.txt").read_text() == "b"


def test_deploy_relative_app_root_prints_absolute_paths(home: Path) -> None:
    result = deploy("m:2", "--app-root", "app")

    assert result.exit_code == 0, result.output
    assert f"export AML_APP_ROOT={Path.cwd() / 'app'}" in result.output


def test_deploy_lays_out_an_unregistered_local_file_as_version_0(home: Path) -> None:
    Path("sklearn_regression_model.pkl").write_bytes(b"local")

    result = deploy("sklearn_regression_model.pkl", "--app-root", "app", "--json")

    assert result.exit_code == 0, result.output
    entry = Path("app/azureml-models/sklearn_regression_model.pkl/0/sklearn_regression_model.pkl")
    assert entry.read_bytes() == b"local"
    assert json.loads(result.output)["models"][0]["registered"] is False


def test_deploy_copy_writes_real_files(home: Path) -> None:
    result = deploy("m:1", "d:1", "--app-root", "app", "--copy")

    assert result.exit_code == 0, result.output
    entries = [Path("app/azureml-models/m/1/model.pkl"), Path("app/azureml-models/d/1/model_dir")]
    assert not any(entry.is_symlink() for entry in entries)
    assert entries[0].read_bytes() == b"one"


def test_deploy_force_replaces_only_the_models_folder(home: Path) -> None:
    assert deploy("m:1", "--app-root", "app").exit_code == 0
    Path("app/score.py").write_text("keep")

    result = deploy("m:2", "--app-root", "app", "--force")

    assert result.exit_code == 0, result.output
    assert tree(Path("app")) == [
        "azureml-models",
        "azureml-models/m",
        "azureml-models/m/2",
        "azureml-models/m/2/model.pkl",
        "score.py",
    ]


# --- refusals ------------------------------------------------------------------------------


def assert_refused(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_deploy_refuses_a_non_empty_app_root(home: Path) -> None:
    Path("app").mkdir()
    Path("app/score.py").write_text("x")

    assert_refused(deploy("m:1", "--app-root", "app"), "is not empty", "--force")
    assert tree(Path("app")) == ["score.py"]


def test_deploy_refuses_an_app_root_inside_the_store(home: Path) -> None:
    before = tree(home / "azureml-models")

    assert_refused(deploy("m:1", "--app-root", os.fspath(home / "x")), "inside the modelstore")
    assert tree(home / "azureml-models") == before
    assert not (home / "x").exists()


def test_deploy_refuses_an_unknown_version_and_lists_the_existing_ones(home: Path) -> None:
    assert_refused(deploy("m:7", "--app-root", "app"), "1, 2")
    assert not Path("app").exists()


@pytest.mark.parametrize("ref", ["m:0", "m:-1", "m:x"])
def test_deploy_of_a_malformed_version_of_a_registered_name_says_why_and_lists_versions(
    home: Path, ref: str
) -> None:
    assert_refused(
        deploy(ref, "--app-root", "app"), "invalid model reference", "m has versions 1, 2"
    )
    assert not Path("app").exists()


def test_deploy_refuses_an_unknown_name(home: Path) -> None:
    assert_refused(deploy("nope", "--app-root", "app"), "'nope'", "registered models: d, m")
    assert not Path("app").exists()


def test_deploy_refuses_the_same_version_twice(home: Path) -> None:
    assert_refused(deploy("m:2", "m:latest", "--app-root", "app"), "m:2")
    assert not Path("app").exists()


def test_deploy_without_app_root_is_one_usage_line(home: Path) -> None:
    assert_refused(deploy("m:1"), "--app-root")


def test_deploy_without_refs_is_one_usage_line(home: Path) -> None:
    assert_refused(deploy("--app-root", "app"), "REF")
    assert not Path("app").exists()
