"""Azure ML v2 (CLI v2 / SDK v2) YAML files: models, online endpoints, online deployments.

The spec models mirror the keys azure-ai-ml's own schemas accept, with Azure's defaults and
documented limits; relative paths are resolved against the YAML file's folder. Which container
layout and environment a v2 deployment gets in Azure is written down in docs/azureml-v2.md.
This package imports PyYAML and pydantic, so the CLI imports it only inside the commands that
read v2 files.
"""

from __future__ import annotations

from modelstore.v2.common import AssetReference
from modelstore.v2.deployment_spec import (
    CodeConfigurationSpec,
    EnvironmentSpec,
    KubernetesOnlineDeploymentSpec,
    ManagedOnlineDeploymentSpec,
    OnlineDeploymentSpec,
    ProbeSettingsSpec,
    RequestSettingsSpec,
)
from modelstore.v2.endpoint_spec import OnlineEndpointSpec
from modelstore.v2.load import load_deployment_spec, load_endpoint_spec, load_model_spec
from modelstore.v2.model_spec import InlineModelSpec, ModelSpec

__all__ = [
    "AssetReference",
    "CodeConfigurationSpec",
    "EnvironmentSpec",
    "InlineModelSpec",
    "KubernetesOnlineDeploymentSpec",
    "ManagedOnlineDeploymentSpec",
    "ModelSpec",
    "OnlineDeploymentSpec",
    "OnlineEndpointSpec",
    "ProbeSettingsSpec",
    "RequestSettingsSpec",
    "load_deployment_spec",
    "load_endpoint_spec",
    "load_model_spec",
]
