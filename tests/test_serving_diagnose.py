"""The help after a failed ``init()`` that missed a model file: the nearest real path, the rule
broken, and the models tree in one line."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from modelstore.serving.diagnose import (
    explain_init_failure,
    missing_model_path,
    nearest_real_path,
)


def put(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def missing(path: str | Path) -> FileNotFoundError:
    return FileNotFoundError(2, "No such file or directory", os.fspath(path))


# --- nearest_real_path ------------------------------------------------------------------------


def test_the_same_name_inside_the_registered_folder_is_nearer_than_in_another_model(
    tmp_path: Path,
) -> None:
    root = tmp_path / "azureml-models"
    put(root / "aaa" / "1" / "model.pkl")  # sorts first, but is another model
    inside = put(root / "m" / "1" / "model" / "model.pkl")

    found = nearest_real_path(str(root / "m" / "1" / "model.pkl"), str(root))

    assert found == str(inside)


def test_an_exact_name_beats_one_that_matches_only_ignoring_case(tmp_path: Path) -> None:
    root = tmp_path / "models"
    put(root / "m" / "1" / "Model.PKL")
    exact = put(root / "n" / "7" / "deep" / "model.pkl")

    assert nearest_real_path(str(root / "m" / "1" / "model.pkl"), str(root)) == str(exact)


def test_a_name_that_differs_only_by_case_is_suggested_when_nothing_else_matches(
    tmp_path: Path,
) -> None:
    root = tmp_path / "models"
    other_case = put(root / "m" / "1" / "Model.pkl")

    assert nearest_real_path(str(root / "m" / "1" / "model.pkl"), str(root)) == str(other_case)


def test_no_path_with_that_name_means_no_suggestion(tmp_path: Path) -> None:
    root = tmp_path / "models"
    put(root / "m" / "1" / "weights.bin")

    assert nearest_real_path(str(root / "m" / "1" / "model.pkl"), str(root)) is None


def test_the_search_stops_after_its_entry_budget(tmp_path: Path) -> None:
    root = tmp_path / "models"
    for index in range(30):
        put(root / f"a{index:02}")
    late = put(root / "z" / "model.pkl")
    wanted = str(root / "m" / "model.pkl")

    assert nearest_real_path(wanted, str(root), max_entries=20) is None
    assert nearest_real_path(wanted, str(root)) == str(late)


def test_a_symlink_loop_in_the_models_tree_is_walked_once(tmp_path: Path) -> None:
    root = tmp_path / "models"
    target = put(root / "m" / "1" / "model" / "model.pkl")
    (root / "m" / "1" / "model" / "again").symlink_to(root / "m")

    assert nearest_real_path(str(root / "m" / "1" / "model.pkl"), str(root)) == str(target)


def test_symlinked_entries_are_searched_as_deployments_link_them(tmp_path: Path) -> None:
    store = put(tmp_path / "store" / "model" / "model.pkl").parent
    version = tmp_path / "models" / "m" / "1"
    version.mkdir(parents=True)
    (version / "model").symlink_to(store)

    found = nearest_real_path(str(version / "model.pkl"), str(tmp_path / "models"))

    assert found == str(version / "model" / "model.pkl")


# --- missing_model_path: which failures get help ----------------------------------------------


def test_the_registered_folder_mistake_gets_the_folder_rule_with_a_relative_model_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    put(tmp_path / "azureml-models" / "mymodel" / "1" / "model" / "sklearn_regression_model.pkl")
    environ = {"AZUREML_MODEL_DIR": "azureml-models/mymodel/1"}
    error = missing("azureml-models/mymodel/1/sklearn_regression_model.pkl")

    found = missing_model_path(error, environ)

    assert found is not None
    assert found.reason() == (
        "azureml-models/mymodel/1/sklearn_regression_model.pkl does not exist: did you mean "
        "azureml-models/mymodel/1/model/sklearn_regression_model.pkl? A registered folder keeps "
        "its own name under AZUREML_MODEL_DIR. (files under azureml-models: "
        "mymodel/1/model/sklearn_regression_model.pkl)"
    )


def test_a_file_model_joined_under_a_folder_name_gets_the_file_rule(tmp_path: Path) -> None:
    model_dir = tmp_path / "app" / "azureml-models" / "m" / "3"
    put(model_dir / "model.pkl")
    environ = {"AML_APP_ROOT": str(tmp_path / "app"), "AZUREML_MODEL_DIR": str(model_dir)}

    found = missing_model_path(missing(model_dir / "model" / "model.pkl"), environ)

    assert found is not None
    assert found.suggestion == str(model_dir / "model.pkl")
    assert "A registered file sits directly in its version folder" in found.reason()


def test_the_summary_lists_a_few_files_and_says_when_there_are_more(tmp_path: Path) -> None:
    models = tmp_path / "models"
    for index in range(12):
        put(models / f"n{index:02}" / "1" / "model.pkl")
    environ = {"AZUREML_MODEL_DIR": str(models)}

    found = missing_model_path(missing(models / "weights.bin"), environ)

    assert found is not None
    assert found.advice() == (
        f"; nothing named weights.bin is under {models} (files under {models}: "
        + ", ".join(f"n{index:02}/1/model.pkl" for index in range(8))
        + ", ...)"
    )


def test_a_missing_path_outside_the_models_tree_gets_no_help(tmp_path: Path) -> None:
    put(tmp_path / "models" / "m" / "1" / "model.pkl")
    environ = {"AZUREML_MODEL_DIR": str(tmp_path / "models")}

    assert missing_model_path(missing(tmp_path / "elsewhere" / "model.pkl"), environ) is None
    assert missing_model_path(ValueError("model.pkl"), environ) is None


def test_a_not_found_error_wrapped_by_a_library_is_still_recognised(tmp_path: Path) -> None:
    models = tmp_path / "models"
    put(models / "m" / "1" / "model" / "model.pkl")
    environ = {"AZUREML_MODEL_DIR": str(models / "m" / "1")}
    try:
        try:
            raise missing(models / "m" / "1" / "model.pkl")
        except FileNotFoundError as inner:
            raise RuntimeError("could not load the model") from inner
    except RuntimeError as outer:
        found = missing_model_path(outer, environ)

    assert found is not None
    assert found.suggestion == str(models / "m" / "1" / "model" / "model.pkl")


def test_a_script_that_opens_a_folder_entry_as_a_file_parent_gets_help(tmp_path: Path) -> None:
    """``NotADirectoryError``: the script took the file entry for a folder."""
    model_dir = tmp_path / "models" / "m" / "1"
    put(model_dir / "model.pkl")
    environ = {"AZUREML_MODEL_DIR": str(tmp_path / "models")}
    error = NotADirectoryError(20, "Not a directory", str(model_dir / "model.pkl" / "x.bin"))

    found = missing_model_path(error, environ)

    assert found is not None
    assert found.suggestion is None
    assert found.files == ("m/1/model.pkl",)


def test_opening_a_folder_model_as_a_file_suggests_its_only_file(tmp_path: Path) -> None:
    folder = tmp_path / "models" / "m" / "1" / "model"
    put(folder / "sub" / "model.pkl")
    environ = {"AZUREML_MODEL_DIR": str(tmp_path / "models" / "m" / "1")}
    error = IsADirectoryError(21, "Is a directory", str(folder))

    found = missing_model_path(error, environ)

    assert found is not None
    assert found.reason() == (
        f"{folder} is a folder: did you mean {folder / 'sub' / 'model.pkl'}? A model registered "
        "as a folder stays a folder, and get_model_path returns the folder, not the file in it. "
        f"(files under {folder}: sub/model.pkl)"
    )


def test_opening_a_folder_model_of_several_files_lists_them(tmp_path: Path) -> None:
    folder = tmp_path / "models" / "m" / "1" / "model"
    put(folder / "a.bin")
    put(folder / "b.bin")
    environ = {"AZUREML_MODEL_DIR": str(tmp_path / "models")}

    found = missing_model_path(IsADirectoryError(21, "Is a directory", str(folder)), environ)

    assert found is not None
    assert found.suggestion is None
    assert found.advice() == (
        "; a model registered as a folder stays a folder, and get_model_path returns the folder, "
        f"not the file in it. (files under {folder}: a.bin, b.bin)"
    )


def test_the_log_shows_the_models_root_tree_and_the_suggestion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = tmp_path / "app"
    model_dir = app / "azureml-models" / "m" / "1"
    put(model_dir / "model" / "model.pkl")
    monkeypatch.setenv("AML_APP_ROOT", str(app))
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(model_dir))
    logger = logging.getLogger("test.diagnose")

    advice = explain_init_failure(logger, missing(model_dir / "model.pkl"))

    messages = [record.getMessage() for record in caplog.records]
    start = messages.index(f"Models tree under {app / 'azureml-models'}:")
    assert messages[start + 1 : start + 6] == [
        "azureml-models/",
        "    m/",
        "        1/",
        "            model/",
        "                model.pkl",
    ]
    assert messages[-1] == f"modelstore: {model_dir / 'model.pkl'} does not exist{advice}"
    assert advice.startswith(f": did you mean {model_dir / 'model' / 'model.pkl'}?")


def test_other_init_failures_log_nothing_more(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)

    assert explain_init_failure(logging.getLogger("test.diagnose"), KeyError("x")) == ""
    assert caplog.records == []
