"""modelstore.v2.model_spec: ``model.yml`` with an integer version, a local path resolved
against the file's folder, and string tags and properties."""

from __future__ import annotations

from pathlib import Path

import pytest
from v2_helpers import copy_gallery

from modelstore.errors import SpecError
from modelstore.v2 import ModelSpec, load_model_spec


def load(folder: Path, text: str) -> ModelSpec:
    path = folder / "m.yml"
    path.write_text(text, encoding="utf-8")
    return load_model_spec(path)


def test_the_gallery_model_yml_names_a_folder_with_version_1(tmp_path: Path) -> None:
    gallery = copy_gallery(tmp_path / "v2")
    spec = load_model_spec(gallery / "model.yml")
    assert (spec.name, spec.version, spec.path, spec.type) == (
        "sklearn-regression",
        1,
        gallery / "model",
        "custom_model",
    )
    assert spec.tags == {"framework": "scikit-learn"}
    assert spec.properties == {"features": "10"}  # an unquoted number kept as its text


@pytest.mark.parametrize(("written", "version"), [("3", 3), ("'3'", 3), (None, None)])
def test_an_integer_version_is_honoured_and_may_be_left_out(
    tmp_path: Path, written: str | None, version: int | None
) -> None:
    (tmp_path / "model.pkl").write_bytes(b"x")
    line = f"version: {written}\n" if written is not None else ""
    assert load(tmp_path, f"name: m\n{line}path: model.pkl\n").version == version


@pytest.mark.parametrize("written", ["0", "-1", "1.5", "one", "true", "'2a'"])
def test_a_version_that_is_not_a_positive_integer_is_refused(tmp_path: Path, written: str) -> None:
    (tmp_path / "model.pkl").write_bytes(b"x")
    with pytest.raises(SpecError) as refused:
        load(tmp_path, f"name: m\nversion: {written}\npath: model.pkl\n")
    assert (refused.value.key, refused.value.line) == ("version", 2)


def test_a_path_is_resolved_against_the_yaml_folder_and_must_exist(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "model.pkl").write_bytes(b"x")
    assert load(tmp_path, "name: m\npath: sub/../sub/model.pkl\n").path == (
        tmp_path / "sub" / "model.pkl"
    )
    with pytest.raises(SpecError) as refused:
        load(tmp_path, "name: m\npath: missing.pkl\n")
    assert refused.value.problem == (
        f"expected an existing model file or folder, {tmp_path / 'missing.pkl'} does not exist"
    )
    with pytest.raises(SpecError, match="path: required key is missing"):
        load(tmp_path, "name: m\n")


def test_a_cloud_path_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as refused:
        load(tmp_path, "name: m\npath: https://example.invalid/model.pkl\n")
    assert refused.value.problem == (
        "'https://example.invalid/model.pkl' is a cloud location, which modelstore cannot read; "
        "download the model and give its local path"
    )


def test_catalog_only_keys_are_accepted_and_reported(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    spec = load(
        tmp_path,
        "name: m\npath: model\ntype: mlflow_model\nstage: Production\n"
        "flavors:\n  python_function: {}\n",
    )
    assert spec.ignored_keys == ("flavors", "stage")
