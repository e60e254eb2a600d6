"""modelstore.v2.deployment_spec: Azure's defaults and limits, model and environment
references, cloud-only keys accepted and reported."""

from __future__ import annotations

from pathlib import Path

import pytest
from v2_helpers import copy_gallery

from modelstore.errors import SpecError
from modelstore.layout import ALIAS_RULE_TEXT
from modelstore.v2 import (
    AssetReference,
    EnvironmentSpec,
    InlineModelSpec,
    ManagedOnlineDeploymentSpec,
    OnlineDeploymentSpec,
    ProbeSettingsSpec,
    RequestSettingsSpec,
    load_deployment_spec,
)

MINIMAL = """\
name: blue
endpoint_name: ep
model: {model}
code_configuration:
  code: onlinescoring
  scoring_script: score.py
environment: azureml:env:1
instance_type: Standard_DS3_v2
"""


@pytest.fixture
def gallery(tmp_path: Path) -> Path:
    return copy_gallery(tmp_path / "v2")


def load(gallery: Path, text: str) -> OnlineDeploymentSpec:
    path = gallery / "d.yml"
    path.write_text(text, encoding="utf-8")
    return load_deployment_spec(path)


def test_request_settings_and_probes_default_to_azures_values(gallery: Path) -> None:
    spec = load_deployment_spec(gallery / "green-deployment.yml")
    assert spec.request_settings == RequestSettingsSpec(
        request_timeout_ms=5000, max_concurrent_requests_per_instance=1, max_queue_wait_ms=500
    )
    expected_probe = ProbeSettingsSpec(
        initial_delay=10, period=10, timeout=2, success_threshold=1, failure_threshold=30
    )
    assert spec.liveness_probe == expected_probe == spec.readiness_probe
    assert "request_settings" not in spec.model_fields_set


def test_settings_the_file_gives_override_only_their_own_defaults(gallery: Path) -> None:
    spec = load_deployment_spec(gallery / "blue-deployment.yml")
    assert spec.request_settings.request_timeout_ms == 3000
    assert spec.request_settings.max_queue_wait_ms == 500
    assert (spec.readiness_probe.initial_delay, spec.readiness_probe.period) == (5, 5)
    assert spec.readiness_probe.failure_threshold == 30


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "azureml:sklearn-regression:3",
            AssetReference(text="", name="sklearn-regression", version=3),
        ),
        ("azureml:m@latest", AssetReference(text="", name="m", label="latest")),
        ("azureml:m@champion", AssetReference(text="", name="m", label="champion")),
        ("azureml:m@Prod_2-b", AssetReference(text="", name="m", label="Prod_2-b")),
        (
            "azureml:/subscriptions/s/resourceGroups/g/providers/Microsoft.MachineLearningServices"
            "/workspaces/w/models/m/versions/2",
            AssetReference(text="", name="m", version=2),
        ),
        (
            "azureml://registries/azureml/models/m/versions/4",
            AssetReference(text="", name="m", version=4),
        ),
        (
            "azureml://registries/r/models/m/labels/latest",
            AssetReference(text="", name="m", label="latest"),
        ),
        (
            "azureml://registries/r/models/m/labels/champion",
            AssetReference(text="", name="m", label="champion"),
        ),
    ],
)
def test_a_model_reference_is_parsed_into_name_and_version_or_label(
    gallery: Path, text: str, expected: AssetReference
) -> None:
    spec = load(gallery, MINIMAL.format(model=text))
    assert isinstance(spec.model, AssetReference)
    assert spec.model == expected.model_copy(update={"text": text})


EXPECTED = "expected azureml:NAME:VERSION (an integer), azureml:NAME@latest or azureml:NAME@ALIAS"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "m:1",
            f"'m:1' is not a model reference; {EXPECTED}, or an inline path:",
        ),
        (
            "azureml:m",
            f"'azureml:m' has no version; {EXPECTED}",
        ),
        (
            "azureml:m:0",
            f"'azureml:m:0' has the version '0'; {EXPECTED}",
        ),
        (
            "azureml:m:1.5",
            f"'azureml:m:1.5' has the version '1.5'; {EXPECTED}",
        ),
        (
            "azureml:m@1st",
            "'azureml:m@1st': invalid alias '1st': " + ALIAS_RULE_TEXT + "; choose one such as "
            "'champion'",
        ),
        (
            "azureml:m@bad.label",
            "'azureml:m@bad.label': invalid alias 'bad.label': " + ALIAS_RULE_TEXT + "; choose "
            "one such as 'champion'",
        ),
        (
            "azureml:m@",
            "'azureml:m@': invalid alias '': " + ALIAS_RULE_TEXT + "; choose one such as "
            "'champion'",
        ),
        (
            "azureml:m@Latest",
            "'azureml:m@Latest': the alias 'Latest' is reserved: NAME:latest always means the "
            "highest version; choose another alias such as 'champion'",
        ),
        (
            "azureml:m:1:2",
            f"'azureml:m:1:2' is not a valid model reference; {EXPECTED}",
        ),
        (
            "azureml://registries/r/environments/e/versions/1",
            "'azureml://registries/r/"
            f"environments/e/versions/1' names an environment, not a model; {EXPECTED}",
        ),
    ],
)
def test_a_model_reference_the_local_registry_cannot_resolve_is_refused(
    gallery: Path, text: str, problem: str
) -> None:
    with pytest.raises(SpecError) as refused:
        load(gallery, MINIMAL.format(model=text))
    assert (refused.value.key, refused.value.problem, refused.value.line) == ("model", problem, 3)


def test_an_inline_model_keeps_its_absolute_path_and_is_anonymous(gallery: Path) -> None:
    spec = load_deployment_spec(gallery / "blue-deployment.yml")
    assert isinstance(spec.model, InlineModelSpec)
    assert (spec.model.path, spec.model.name, spec.model.version) == (gallery / "model", None, None)


def test_a_scoring_script_in_a_subfolder_of_the_code_is_found(gallery: Path) -> None:
    (gallery / "onlinescoring" / "sub").mkdir()
    (gallery / "onlinescoring" / "sub" / "main.py").write_text("")
    spec = load(
        gallery,
        MINIMAL.format(model="azureml:m:1").replace("score.py", "sub/main.py"),
    )
    assert spec.code_configuration is not None
    assert spec.code_configuration.script_path == gallery / "onlinescoring" / "sub" / "main.py"


def test_environment_variables_keep_the_text_of_numbers_and_booleans(gallery: Path) -> None:
    spec = load(
        gallery,
        MINIMAL.format(model="azureml:m:1")
        + "environment_variables:\n  WORKER_COUNT: 2\n  RATIO: 0.5\n  DEBUG: true\n  NAME: x\n",
    )
    assert spec.environment_variables == {
        "WORKER_COUNT": "2",
        "RATIO": "0.5",
        "DEBUG": "True",
        "NAME": "x",
    }


def test_an_inline_environment_keeps_its_conda_file_path(gallery: Path) -> None:
    spec = load_deployment_spec(gallery / "blue-deployment.yml")
    assert isinstance(spec.environment, EnvironmentSpec)
    assert spec.environment.conda_file == gallery / "environment" / "conda.yaml"
    assert load_deployment_spec(gallery / "green-deployment.yml").environment == (
        "azureml:sklearn-inference-env:1"
    )


def test_cloud_only_keys_are_accepted_and_reported_as_ignored(gallery: Path) -> None:
    spec = load(
        gallery,
        MINIMAL.format(model="azureml:m:1")
        + "instance_count: 3\napp_insights_enabled: true\nscale_settings:\n  type: Default\n"
        + "egress_public_network_access: Disabled\ndata_collector:\n  collections: {}\n"
        + "model_mount_path: /var/azureml-model\n",
    )
    assert set(spec.ignored_keys) == {
        "instance_type",
        "instance_count",
        "app_insights_enabled",
        "scale_settings",
        "egress_public_network_access",
        "data_collector",
        "model_mount_path",
    }
    assert isinstance(spec, ManagedOnlineDeploymentSpec)
    assert spec.egress_public_network_access == "disabled"


def test_a_kubernetes_deployment_accepts_resources_but_not_managed_only_keys(gallery: Path) -> None:
    base = MINIMAL.format(model="azureml:m:1").replace("instance_type: Standard_DS3_v2\n", "")
    spec = load(gallery, base + "type: kubernetes\nresources:\n  limits:\n    cpu: 1\n")
    assert spec.ignored_keys == ("resources",)
    with pytest.raises(SpecError) as refused:
        load(gallery, base + "type: kubernetes\negress_public_network_access: enabled\n")
    assert refused.value.key == "egress_public_network_access"
    assert refused.value.problem.startswith("unknown key")


@pytest.mark.parametrize("script", ["../score.py", "/etc/passwd", "sub/../../score.py"])
def test_a_scoring_script_outside_the_code_folder_is_refused(gallery: Path, script: str) -> None:
    (gallery / "score.py").write_text("")  # exists, but would not be uploaded with the code
    with pytest.raises(SpecError) as refused:
        load(gallery, MINIMAL.format(model="azureml:m:1").replace("score.py", script))
    assert refused.value.key == "code_configuration.scoring_script"
    assert refused.value.problem == (
        f"expected a path relative to the code folder and inside it, got {script!r}"
    )


def test_an_unknown_deployment_type_names_both_kinds(gallery: Path) -> None:
    with pytest.raises(SpecError) as refused:
        load(gallery, MINIMAL.format(model="azureml:m:1") + "type: serverless\n")
    assert refused.value.problem == "expected 'managed' or 'kubernetes', got 'serverless'"
