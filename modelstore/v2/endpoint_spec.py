"""The v2 online endpoint YAML (``az ml online-endpoint create -f endpoint.yml``).

One model covers both kinds, as azure-ai-ml's two schemas differ only in ``compute`` (a
Kubernetes endpoint) and ``public_network_access`` (a managed one).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator

from modelstore.v2.common import SchemaUrl, SpecModel, StrMap

# Azure's endpoint name rule (azure-ai-ml EndpointConfigurations.NAME_REGEX_PATTERN).
ENDPOINT_NAME_PATTERN = r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$"


def _lower(value: Any) -> Any:
    """Azure's enum fields ignore case (``Key`` and ``key`` are one value)."""
    return value.lower() if isinstance(value, str) else value


AuthMode = Annotated[Literal["key", "aml_token", "aad_token"], BeforeValidator(_lower)]
Percent = Annotated[int, Field(ge=0, le=100)]


class IdentitySpec(SpecModel):
    """``identity:``: the endpoint's managed identity, meaningful only in Azure."""

    type: str | None = None
    principal_id: str | None = None
    tenant_id: str | None = None
    user_assigned_identities: list[dict[str, Any]] | None = None


class OnlineEndpointSpec(SpecModel):
    """An online endpoint: its name, how callers authenticate, and how traffic is split.

    ``traffic`` maps deployment names to percentages (0-100); ``mirror_traffic`` copies a
    percentage of live traffic to a deployment whose answers are discarded.
    """

    CLOUD_ONLY: ClassVar[frozenset[str]] = frozenset(
        {
            "identity",
            "public_network_access",
            "compute",
            "location",
            "kind",
            "id",
            "provisioning_state",
            "scoring_uri",
            "openapi_uri",
            "properties",
        }
    )

    schema_url: SchemaUrl = None
    name: str = Field(pattern=ENDPOINT_NAME_PATTERN)
    auth_mode: AuthMode = "key"
    traffic: dict[str, Percent] = Field(default_factory=dict)
    mirror_traffic: dict[str, Percent] = Field(default_factory=dict)
    description: str | None = None
    tags: StrMap = Field(default_factory=dict)
    identity: IdentitySpec | None = None
    compute: str | None = None
    public_network_access: (
        Annotated[Literal["enabled", "disabled"], BeforeValidator(_lower)] | None
    ) = None
    location: str | None = None
    kind: str | None = None
    id: str | None = None
    provisioning_state: str | None = None
    scoring_uri: str | None = None
    openapi_uri: str | None = None
    properties: dict[str, Any] | None = None

    @property
    def is_kubernetes(self) -> bool:
        """A Kubernetes online endpoint names its cluster in ``compute``."""
        return self.compute is not None

    @field_validator("traffic")
    @classmethod
    def _traffic_at_most_100(cls, value: dict[str, int]) -> dict[str, int]:
        # azure-ai-ml's loader refuses more; the service wants exactly 100 once deployments
        # take traffic, which the endpoint's user can only check with its deployments.
        if sum(value.values()) > 100:
            raise ValueError(
                f"expected percentages that sum to at most 100, got {sum(value.values())}"
            )
        return value

    @field_validator("mirror_traffic")
    @classmethod
    def _mirror_at_most_50(cls, value: dict[str, int]) -> dict[str, int]:
        # The REST API's documented limit: mirror traffic sums to at most 50.
        if sum(value.values()) > 50:
            raise ValueError(
                f"expected percentages that sum to at most 50, got {sum(value.values())}"
            )
        return value

    @field_validator("public_network_access")
    @classmethod
    def _managed_only(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Azure picks the Kubernetes schema when compute is given, and it has no such key.
        if value is not None and info.data.get("compute") is not None:
            raise ValueError("a Kubernetes endpoint (compute:) has no public_network_access")
        return value
