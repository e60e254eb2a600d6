"""modelstore.v2.load: one-line errors naming the file, key path, line and what is expected;
relative paths resolved against the YAML file's folder; loading writes nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from v2_helpers import copy_gallery

from modelstore.cli.errors import exit_code
from modelstore.errors import SpecError, UsageError
from modelstore.v2 import (
    KubernetesOnlineDeploymentSpec,
    ManagedOnlineDeploymentSpec,
    load_deployment_spec,
    load_endpoint_spec,
    load_model_spec,
)


@pytest.fixture
def gallery(tmp_path: Path) -> Path:
    return copy_gallery(tmp_path / "v2")


def variant(gallery: Path, source: str, old: str, new: str, name: str = "variant.yml") -> Path:
    text = (gallery / source).read_text(encoding="utf-8")
    assert old in text
    path = gallery / name
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def refusal(path: Path) -> SpecError:
    with pytest.raises(SpecError) as refused:
        load_deployment_spec(path)
    return refused.value


def test_a_misspelled_key_is_named_with_its_line_and_the_likely_intended_key(
    gallery: Path,
) -> None:
    path = variant(gallery, "blue-deployment.yml", "request_timeout_ms", "request_timeout")
    error = refusal(path)
    assert str(error) == (
        f"{path}:17: request_settings.request_timeout: unknown key; did you mean "
        "request_timeout_ms?"
    )
    assert (error.path, error.key, error.line) == (
        str(path),
        "request_settings.request_timeout",
        17,
    )
    assert isinstance(error, UsageError) and exit_code(error) == 2


def test_a_misspelt_required_key_is_named_as_the_typo_not_as_a_missing_key(
    gallery: Path,
) -> None:
    """``scoring_scrip:`` for ``scoring_script:`` is two problems to pydantic (an unknown key,
    a missing one); the missing one comes first in the file but hides the typo."""
    path = variant(gallery, "blue-deployment.yml", "scoring_script:", "scoring_scrip:")
    error = refusal(path)
    assert error.key == "code_configuration.scoring_scrip"
    assert error.problem == (
        "unknown key; did you mean scoring_script? (scoring_script is required)"
    )
    model = variant(gallery, "model.yml", "path:", "pth:", name="model-variant.yml")
    with pytest.raises(SpecError) as refused:
        load_model_spec(model)
    assert refused.value.problem == "unknown key; did you mean path? (path is required)"


def test_a_missing_required_key_with_an_unrelated_unknown_key_reports_both(
    gallery: Path,
) -> None:
    path = variant(gallery, "model.yml", "path:", "zzz: 1\nqqq:", name="model-variant.yml")
    with pytest.raises(SpecError) as refused:
        load_model_spec(path)
    assert refused.value.problem.startswith("unknown key; expected one of: ")
    assert refused.value.problem.endswith("(and 2 more problems in this file)")


def test_an_unknown_key_without_a_close_match_lists_the_accepted_keys(gallery: Path) -> None:
    path = variant(gallery, "blue-deployment.yml", "  max_concurrent", "  zzz: 1\n  max_concurrent")
    assert refusal(path).problem == (
        "unknown key; expected one of: max_concurrent_requests_per_instance, max_queue_wait_ms, "
        "request_timeout_ms"
    )


@pytest.mark.parametrize(
    ("old", "new", "key", "problem"),
    [
        (
            "request_timeout_ms: 3000",
            "request_timeout_ms: fast",
            "request_settings.request_timeout_ms",
            "expected an integer, got 'fast'",
        ),
        (
            "request_timeout_ms: 3000",
            "request_timeout_ms: 180001",
            "request_settings.request_timeout_ms",
            "expected at most 180000, got 180001",
        ),
        (
            "max_concurrent_requests_per_instance: 1",
            "max_concurrent_requests_per_instance: 0",
            "request_settings.max_concurrent_requests_per_instance",
            "expected at least 1, got 0",
        ),
        (
            "  MODEL_COLOR: blue",
            "  MODEL_COLOR: [blue]",
            "environment_variables.MODEL_COLOR",
            "expected a string, got a list",
        ),
        (
            "instance_count: 1",
            "instance_count: many",
            "instance_count",
            "expected an integer, got 'many'",
        ),
        (
            "scoring_script: score.py",
            "scoring_script: scor.py",
            "code_configuration.scoring_script",
            "expected a file inside the code folder, {root}/onlinescoring/scor.py is not one",
        ),
        (
            "code: onlinescoring",
            "code: no-such-code",
            "code_configuration.code",
            "expected an existing folder, {root}/no-such-code is not one",
        ),
        (
            "  path: model",
            "  path: no-such-model",
            "model.path",
            "expected an existing model file or folder, {root}/no-such-model does not exist",
        ),
        (
            "  path: model",
            "  path: azureml://datastores/workspaceblobstore/paths/model",
            "model.path",
            "'azureml://datastores/workspaceblobstore/paths/model' is a cloud location, which "
            "modelstore cannot read; download the model and give its local path",
        ),
        (
            "model:\n  path: model",
            "model: 7",
            "model",
            "expected azureml:NAME:VERSION, azureml:NAME@latest or an inline model (path: ...), "
            "got 7",
        ),
        (
            "environment_variables:\n  WORKER_COUNT: 1\n  MODEL_COLOR: blue\n",
            "environment_variables: WORKER_COUNT=2\n",
            "environment_variables",
            "expected a mapping of keys, got 'WORKER_COUNT=2'",
        ),
        ("instance_type: Standard_DS3_v2\n", "", "instance_type", "required key is missing"),
    ],
)
def test_a_bad_value_is_refused_in_one_line_naming_the_key_and_what_is_expected(
    gallery: Path, old: str, new: str, key: str, problem: str
) -> None:
    error = refusal(variant(gallery, "blue-deployment.yml", old, new))
    assert (error.key, error.problem) == (key, problem.format(root=gallery))
    assert "\n" not in str(error)


def test_the_first_problem_in_the_file_is_reported_and_the_others_counted(gallery: Path) -> None:
    path = variant(gallery, "blue-deployment.yml", "instance_count: 1", "instance_count: x")
    path.write_text(
        path.read_text().replace("request_timeout_ms: 3000", "request_timeout_ms: y"),
        encoding="utf-8",
    )
    error = refusal(path)
    assert error.key == "request_settings.request_timeout_ms"  # line 17 comes before line 25
    assert error.problem == "expected an integer, got 'y' (and 1 more problem in this file)"


def test_relative_paths_resolve_against_the_yaml_folder_not_the_current_directory(
    gallery: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    relative = Path(os.path.relpath(gallery / "blue-deployment.yml"))
    spec = load_deployment_spec(relative)
    assert spec.code_configuration is not None
    assert spec.code_configuration.code == gallery / "onlinescoring"
    assert spec.code_configuration.script_path == gallery / "onlinescoring" / "score.py"
    assert load_model_spec(gallery / "model.yml").path == gallery / "model"


def test_loading_starts_and_writes_nothing(gallery: Path) -> None:
    before = sorted(p.relative_to(gallery) for p in gallery.rglob("*"))
    load_deployment_spec(gallery / "blue-deployment.yml")
    load_deployment_spec(gallery / "green-deployment.yml")
    load_endpoint_spec(gallery / "endpoint.yml")
    load_model_spec(gallery / "model.yml")
    with pytest.raises(SpecError):
        load_deployment_spec(variant(gallery, "blue-deployment.yml", "path: model", "path: nope"))
    after = sorted(p.relative_to(gallery) for p in gallery.rglob("*"))
    assert after == sorted([*before, Path("variant.yml")])  # only the file this test wrote


def test_the_type_key_chooses_the_kind_of_deployment(gallery: Path) -> None:
    assert isinstance(
        load_deployment_spec(gallery / "blue-deployment.yml"), ManagedOnlineDeploymentSpec
    )
    path = variant(
        gallery, "blue-deployment.yml", "instance_type: Standard_DS3_v2", "type: Kubernetes"
    )
    spec = load_deployment_spec(path)
    assert isinstance(spec, KubernetesOnlineDeploymentSpec)
    assert spec.type == "kubernetes"


def test_a_missing_deployment_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"no-such\.yml: file not found$"):
        load_deployment_spec(tmp_path / "no-such.yml")
