"""The v2 online deployment YAML (``az ml online-deployment create -f blue-deployment.yml``).

``ManagedOnlineDeploymentSpec`` and ``KubernetesOnlineDeploymentSpec`` mirror azure-ai-ml's two
schemas, chosen by ``type:`` as its loader does. The keys that describe Azure's hardware,
network or monitoring are accepted and reported by :attr:`SpecModel.ignored_keys`; the ones a
local server honours (model, code, environment variables, request settings, probes) are
validated with the limits Azure documents.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
)

from modelstore.v2.common import (
    AssetReference,
    SchemaUrl,
    SpecModel,
    StrMap,
    check_environment_reference,
    is_remote,
    parse_model_reference,
    resolve_local_path,
)
from modelstore.v2.model_spec import InlineModelSpec

# Azure's documented limits for request_settings (reference-yaml-deployment-managed-online).
DEFAULT_REQUEST_TIMEOUT_MS = 5000
MAX_REQUEST_TIMEOUT_MS = 180_000
DEFAULT_MAX_CONCURRENT_REQUESTS = 1
DEFAULT_MAX_QUEUE_WAIT_MS = 500


def _lower(value: Any) -> Any:
    """Azure's enum fields ignore case (``Enabled`` and ``enabled`` are one value)."""
    return value.lower() if isinstance(value, str) else value


class CodeConfigurationSpec(SpecModel):
    """``code_configuration:``: the folder that becomes the app's code, and the script in it.

    ``code`` is resolved against the YAML file's folder; ``scoring_script`` is relative to
    ``code`` and may name a file in a subfolder.
    """

    schema_url: SchemaUrl = None
    code: Path
    scoring_script: str = Field(min_length=1)

    @field_validator("code", mode="before")
    @classmethod
    def _existing_folder(cls, value: Any, info: ValidationInfo) -> Path:
        if not isinstance(value, str):
            raise ValueError("expected the path of the folder holding the scoring script")
        path = resolve_local_path(value, info, "code folder")
        if not path.is_dir():
            raise ValueError(f"expected an existing folder, {path} is not one")
        return path

    @field_validator("scoring_script")
    @classmethod
    def _existing_script(cls, value: str, info: ValidationInfo) -> str:
        # Only the code folder is uploaded, so a script outside it does not exist in Azure.
        normal = os.path.normpath(value)
        if os.path.isabs(normal) or normal == ".." or normal.startswith(".." + os.sep):
            raise ValueError(
                f"expected a path relative to the code folder and inside it, got {value!r}"
            )
        code = info.data.get("code")
        if code is not None and not (code / value).is_file():
            raise ValueError(f"expected a file inside the code folder, {code / value} is not one")
        return value

    @property
    def script_path(self) -> Path:
        """The scoring script's absolute path on this machine."""
        return self.code / self.scoring_script


class RequestSettingsSpec(SpecModel):
    """``request_settings:`` with Azure's defaults; ``request_timeout_ms`` is capped at 180000
    as the service caps it. ``max_queue_wait_ms`` is deprecated in Azure but still accepted."""

    request_timeout_ms: int = Field(
        default=DEFAULT_REQUEST_TIMEOUT_MS, ge=1, le=MAX_REQUEST_TIMEOUT_MS
    )
    max_concurrent_requests_per_instance: int = Field(default=DEFAULT_MAX_CONCURRENT_REQUESTS, ge=1)
    max_queue_wait_ms: int = Field(default=DEFAULT_MAX_QUEUE_WAIT_MS, ge=0)


class ProbeSettingsSpec(SpecModel):
    """``liveness_probe:`` / ``readiness_probe:`` with Azure's defaults (seconds and counts)."""

    initial_delay: int = Field(default=10, ge=1)
    period: int = Field(default=10, ge=1)
    timeout: int = Field(default=2, ge=1)
    success_threshold: int = Field(default=1, ge=1)
    failure_threshold: int = Field(default=30, ge=1)


class ScaleSettingsSpec(SpecModel):
    """``scale_settings:``: Azure-side scaling; accepted and ignored."""

    type: Annotated[Literal["default", "target_utilization"], BeforeValidator(_lower)]
    min_instances: int | None = None
    max_instances: int | None = None
    polling_interval: int | None = None
    target_utilization_percentage: int | None = None


class DataCollectorSpec(SpecModel):
    """``data_collector:``: Azure Monitor data collection; accepted and ignored."""

    collections: dict[str, Any] | None = None
    rolling_rate: str | None = None
    sampling_rate: float | None = None
    request_logging: dict[str, Any] | None = None


class BuildContextSpec(SpecModel):
    """``environment.build:``: a Docker build context (a local folder or a URL)."""

    path: str
    dockerfile_path: str | None = None


class RouteSpec(SpecModel):
    """One route of an environment's ``inference_config`` (custom containers)."""

    path: str
    port: int


class InferenceConfigSpec(SpecModel):
    """``environment.inference_config:``: the routes of a custom container."""

    liveness_route: RouteSpec | None = None
    readiness_route: RouteSpec | None = None
    scoring_route: RouteSpec | None = None


class EnvironmentSpec(SpecModel):
    """An inline ``environment:``. It is not built: scoring runs in the current Python.

    ``conda_file`` is kept so a caller can compare the listed packages with the ones installed;
    a path is resolved against the YAML file's folder and must exist, as Azure's loader checks.
    """

    schema_url: SchemaUrl = None
    name: str | None = None
    version: int | str | None = None
    description: str | None = None
    tags: StrMap = Field(default_factory=dict)
    image: str | None = None
    conda_file: Path | dict[str, Any] | None = None
    build: BuildContextSpec | None = None
    inference_config: InferenceConfigSpec | None = None
    os_type: Annotated[Literal["linux", "windows"] | None, BeforeValidator(_lower)] = None
    datastore: str | None = None
    id: str | None = None
    creation_context: dict[str, Any] | None = None
    latest_version: str | None = None
    auto_delete_setting: dict[str, Any] | None = None
    intellectual_property: dict[str, Any] | None = None

    @field_validator("conda_file", mode="before")
    @classmethod
    def _existing_conda_file(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            path = resolve_local_path(value, info, "conda file")
            if not path.is_file():
                raise ValueError(f"expected an existing conda file, {path} is not one")
            return path
        return value

    @field_validator("build", mode="before")
    @classmethod
    def _existing_build_context(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, dict) and isinstance(value.get("path"), str):
            path = value["path"]
            if not is_remote(path) and not resolve_local_path(path, info, "build context").is_dir():
                raise ValueError(f"expected an existing build context folder, {path!r} is not one")
        return value


def _reference_or_inline(value: Any) -> str | None:
    if isinstance(value, str):
        return "reference"
    if isinstance(value, dict):
        return "inline"
    return None


def _model_reference(value: Any) -> AssetReference:
    if isinstance(value, AssetReference):
        return value
    return parse_model_reference(value)


ModelField = Annotated[
    Annotated[AssetReference, BeforeValidator(_model_reference), Tag("reference")]
    | Annotated[InlineModelSpec, Tag("inline")],
    Discriminator(
        _reference_or_inline,
        custom_error_type="model_kind",
        custom_error_message=(
            "expected azureml:NAME:VERSION, azureml:NAME@latest or an inline model (path: ...)"
        ),
    ),
]

EnvironmentField = Annotated[
    Annotated[str, BeforeValidator(check_environment_reference), Tag("reference")]
    | Annotated[EnvironmentSpec, Tag("inline")],
    Discriminator(
        _reference_or_inline,
        custom_error_type="environment_kind",
        custom_error_message=(
            "expected azureml:NAME:VERSION, azureml:NAME@latest or an inline environment "
            "(image:, conda_file:)"
        ),
    ),
]


class OnlineDeploymentSpec(SpecModel):
    """The keys both kinds of online deployment share.

    Defaults are Azure's: ``request_settings`` and both probes are always present, filled with
    the documented defaults when the file leaves them out (``model_fields_set`` tells which the
    file set). ``environment_variables`` are laid over the container's own variables.
    """

    CLOUD_ONLY: ClassVar[frozenset[str]] = frozenset(
        {
            "instance_type",
            "instance_count",
            "app_insights_enabled",
            "scale_settings",
            "data_collector",
            "model_mount_path",
            "properties",
            "id",
            "provisioning_state",
        }
    )

    schema_url: SchemaUrl = None
    name: str = Field(min_length=1)
    endpoint_name: str = Field(min_length=1)
    type: Annotated[Literal["managed", "kubernetes"], BeforeValidator(_lower)] = "managed"
    description: str | None = None
    tags: StrMap = Field(default_factory=dict)
    model: ModelField | None = None
    model_mount_path: str | None = None
    code_configuration: CodeConfigurationSpec | None = None
    environment: EnvironmentField | None = None
    environment_variables: StrMap = Field(default_factory=dict)
    instance_type: str | None = None
    instance_count: int | None = None
    app_insights_enabled: bool = False
    scale_settings: ScaleSettingsSpec | None = None
    request_settings: RequestSettingsSpec = Field(default_factory=RequestSettingsSpec)
    liveness_probe: ProbeSettingsSpec = Field(default_factory=ProbeSettingsSpec)
    readiness_probe: ProbeSettingsSpec = Field(default_factory=ProbeSettingsSpec)
    data_collector: DataCollectorSpec | None = None
    properties: dict[str, Any] | None = None
    id: str | None = None
    provisioning_state: str | None = None


class ManagedOnlineDeploymentSpec(OnlineDeploymentSpec):
    """A managed online deployment (the default ``type``); Azure requires ``instance_type``."""

    CLOUD_ONLY: ClassVar[frozenset[str]] = OnlineDeploymentSpec.CLOUD_ONLY | {
        "egress_public_network_access",
        "private_network_connection",
        "creation_context",
    }

    egress_public_network_access: (
        Annotated[Literal["enabled", "disabled"], BeforeValidator(_lower)] | None
    ) = None
    private_network_connection: Any = None
    creation_context: dict[str, Any] | None = None
    # Required, as Azure's loader requires it: a file modelstore accepts is one that
    # `az ml online-deployment create` accepts too.
    instance_type: str


class ResourceSettingsSpec(SpecModel):
    """``resources:`` of a Kubernetes deployment: CPU, memory and GPU requests and limits."""

    requests: dict[str, str | int | float] | None = None
    limits: dict[str, str | int | float] | None = None


class KubernetesOnlineDeploymentSpec(OnlineDeploymentSpec):
    """A Kubernetes online deployment (``type: kubernetes``)."""

    CLOUD_ONLY: ClassVar[frozenset[str]] = OnlineDeploymentSpec.CLOUD_ONLY | {"resources"}

    type: Annotated[Literal["kubernetes"], BeforeValidator(_lower)] = "kubernetes"
    resources: ResourceSettingsSpec | None = None
