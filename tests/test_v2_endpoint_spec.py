"""modelstore.v2.endpoint_spec: auth modes, traffic percentages, managed vs Kubernetes."""

from __future__ import annotations

from pathlib import Path

import pytest
from v2_helpers import copy_gallery

from modelstore.errors import SpecError
from modelstore.v2 import OnlineEndpointSpec, load_endpoint_spec


def load(tmp_path: Path, text: str) -> OnlineEndpointSpec:
    path = tmp_path / "endpoint.yml"
    path.write_text(text, encoding="utf-8")
    return load_endpoint_spec(path)


def test_the_gallery_endpoint_splits_traffic_between_blue_and_green(tmp_path: Path) -> None:
    spec = load_endpoint_spec(copy_gallery(tmp_path / "v2") / "endpoint.yml")
    assert (spec.name, spec.auth_mode, spec.traffic) == (
        "regression-endpoint",
        "key",
        {"blue": 90, "green": 10},
    )
    assert spec.tags == {"team": "fraud"}
    assert not spec.is_kubernetes and spec.ignored_keys == ()


def test_auth_mode_defaults_to_key_as_in_azure(tmp_path: Path) -> None:
    spec = load(tmp_path, "name: ep1\n")
    assert (spec.auth_mode, spec.traffic, spec.mirror_traffic) == ("key", {}, {})


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("name: ep1\ntraffic:\n  blue: 101\n", "traffic.blue", "expected at most 100, got 101"),
        (
            "name: ep1\nmirror_traffic:\n  blue: -1\n",
            "mirror_traffic.blue",
            "expected at least 0, got -1",
        ),
        (
            "name: ep1\nauth_mode: keys\n",
            "auth_mode",
            "expected 'key', 'aml_token' or 'aad_token', got 'keys'",
        ),
        (
            "name: 1ep\n",
            "name",
            "expected to match pattern '^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$', got '1ep'",
        ),
        (
            "name: ep1\ncompute: azureml:k8s\npublic_network_access: enabled\n",
            "public_network_access",
            "a Kubernetes endpoint (compute:) has no public_network_access",
        ),
        ("auth_mode: key\n", "name", "required key is missing"),
        (
            "name: ep1\ntraffic:\n  blue: 60\n  green: 50\n",
            "traffic",
            "expected percentages that sum to at most 100, got 110",
        ),
        (
            "name: ep1\nmirror_traffic:\n  green: 51\n",
            "mirror_traffic",
            "expected percentages that sum to at most 50, got 51",
        ),
    ],
)
def test_a_bad_endpoint_is_refused_in_one_line(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    with pytest.raises(SpecError) as refused:
        load(tmp_path, text)
    assert (refused.value.key, refused.value.problem) == (key, problem)


def test_a_kubernetes_endpoint_names_its_compute_which_is_cloud_only(tmp_path: Path) -> None:
    spec = load(tmp_path, "name: ep1\ncompute: azureml:k8s\nauth_mode: aml_token\n")
    assert spec.is_kubernetes and spec.ignored_keys == ("compute",)
    assert spec.auth_mode == "aml_token"


def test_enum_values_ignore_case_as_in_azure(tmp_path: Path) -> None:
    spec = load(tmp_path, "name: ep1\nauth_mode: AML_Token\npublic_network_access: Enabled\n")
    assert (spec.auth_mode, spec.public_network_access) == ("aml_token", "enabled")
