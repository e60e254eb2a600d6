"""The v2 model YAML (``az ml model create -f model.yml``) and the inline ``model:`` of a
deployment.

Both accept every key of azure-ai-ml's ``ModelSchema``. The server-side read-only keys
(``id``, ``creation_context``, ``latest_version``...) and the catalog-only ones (``flavors``,
``stage``, deployment templates) are accepted and listed in :attr:`SpecModel.ignored_keys`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from modelstore.v2.common import SchemaUrl, SpecModel, StrMap, resolve_local_path

ModelType = Literal["custom_model", "mlflow_model", "triton_model"]

_MODEL_CLOUD_ONLY = frozenset(
    {
        "flavors",
        "stage",
        "datastore",
        "job_name",
        "id",
        "creation_context",
        "latest_version",
        "utc_time_created",
        "system_metadata",
        "intellectual_property",
        "allowed_deployment_templates",
        "default_deployment_template",
    }
)


class _ModelFields(SpecModel):
    """The keys shared by ``model.yml`` and an inline deployment model."""

    CLOUD_ONLY: ClassVar[frozenset[str]] = _MODEL_CLOUD_ONLY

    schema_url: SchemaUrl = None
    path: Path
    type: ModelType = "custom_model"
    description: str | None = None
    tags: StrMap = Field(default_factory=dict)
    properties: StrMap = Field(default_factory=dict)
    flavors: dict[str, Any] | None = None
    stage: str | None = None
    datastore: str | None = None
    job_name: str | None = None
    id: str | None = None
    creation_context: dict[str, Any] | None = None
    latest_version: str | None = None
    utc_time_created: str | None = None
    system_metadata: dict[str, Any] | None = None
    intellectual_property: dict[str, Any] | None = None
    allowed_deployment_templates: list[Any] | None = None
    default_deployment_template: dict[str, Any] | None = None

    @field_validator("path", mode="before")
    @classmethod
    def _local_existing_path(cls, value: Any, info: ValidationInfo) -> Path:
        if not isinstance(value, str):
            raise ValueError("expected the path of a model file or folder")
        path = resolve_local_path(value, info, "model")
        if not path.exists():
            raise ValueError(f"expected an existing model file or folder, {path} does not exist")
        return path


class ModelSpec(_ModelFields):
    """``model.yml``: a model to register under ``name`` and, if given, ``version``.

    Azure's client takes any text as a version; the local registry numbers versions with
    positive integers, so ``version`` must be one here (``"3"`` in quotes is accepted).
    """

    name: str = Field(min_length=1)
    version: int | None = Field(default=None, ge=1)

    @field_validator("version", mode="before")
    @classmethod
    def _integer_version(cls, value: Any) -> Any:
        if isinstance(value, (bool, float)):
            raise ValueError(f"expected a positive integer version, got {value!r}")
        if isinstance(value, str) and not value.strip().isdigit():
            raise ValueError(f"expected a positive integer version, got {value!r}")
        return value


class InlineModelSpec(_ModelFields):
    """The ``model: {path: ...}`` of a deployment: an anonymous model unless it is named.

    In Azure an unnamed inline model is registered under a generated name (a sha256 of its
    content hash) with version 1; see docs/azureml-v2.md for where it is mounted.
    """

    name: str | None = None
    version: int | str | None = None
