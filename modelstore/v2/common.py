"""What every v2 spec shares: strict models, paths resolved against the YAML file's folder,
string maps, and ``azureml:`` references.

Resolution follows ``az ml``: a relative ``path``, ``code`` or ``conda_file`` is taken relative
to the folder of the YAML file that names it, never to the current directory. The folder comes
from pydantic's validation context (``{"base_dir": Path}``), which the loaders provide.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo

from modelstore.errors import InvalidAliasError
from modelstore.layout import validate_alias

# A cloud location (azureml://datastores/..., https://..., wasbs://...) or an asset id: readable
# only in Azure. Two or more scheme letters, so a Windows drive (C:\\...) is still local.
_REMOTE = re.compile(r"^(azureml:|[A-Za-z][A-Za-z0-9+.-]+://|runs:/)")
_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
_SHORT_REF = re.compile(rf"^azureml:(?P<name>{_NAME})(?::(?P<version>[^:@]*)|@(?P<label>[^:@]*))?$")
# ARM ids (azureml:/subscriptions/.../models/NAME/versions/N) and registry URIs
# (azureml://registries/R/models/NAME/versions/N or .../labels/latest) end the same way.
_LONG_REF = re.compile(
    rf"^azureml:(?://registries/[^/]+|/subscriptions/.+/workspaces/[^/]+)"
    rf"/(?P<kind>models|environments)/(?P<name>{_NAME})"
    rf"/(?:versions/(?P<version>[^/]+)|labels/(?P<label>[^/]+))$"
)


class SpecModel(BaseModel):
    """Base of every v2 spec model: a misspelled key is an error, values are immutable.

    ``CLOUD_ONLY`` names the keys Azure accepts that change nothing on a laptop (VM sizes,
    networking, monitoring, server-side read-only fields); :attr:`ignored_keys` lists the ones a
    file actually set, so the caller can say once that they are ignored.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    CLOUD_ONLY: ClassVar[frozenset[str]] = frozenset()

    @property
    def ignored_keys(self) -> tuple[str, ...]:
        fields = type(self).model_fields
        return tuple(
            (fields[name].alias or name)
            for name in fields
            if name in self.model_fields_set and name in self.CLOUD_ONLY
        )


def is_remote(value: str) -> bool:
    """Whether a path names a cloud location rather than a local file."""
    return bool(_REMOTE.match(value))


def resolve_local_path(value: str, info: ValidationInfo, what: str) -> Path:
    """``value`` made absolute against the YAML file's folder, as ``az ml`` does.

    Raises ``ValueError`` (which becomes a one-line spec error) for a cloud location, which
    cannot be read here.
    """
    if is_remote(value):
        raise ValueError(
            f"{value!r} is a cloud location, which modelstore cannot read; "
            f"download the {what} and give its local path"
        )
    if not value.strip():
        raise ValueError(f"expected the local path of the {what}, got an empty string")
    base = Path(info.context["base_dir"]) if info.context else Path.cwd()
    path = Path(os.path.expanduser(value))
    # abspath normalises ".." without resolving links, so a linked model keeps its own name.
    return Path(os.path.abspath(path if path.is_absolute() else base / path))


def _scalar_to_str(value: Any) -> Any:
    """YAML turns ``WORKER_COUNT: 2`` into an int; a container environment only holds strings."""
    if isinstance(value, dict):
        return {k: (str(v) if isinstance(v, (bool, int, float)) else v) for k, v in value.items()}
    return value


StrMap = Annotated[dict[str, str], BeforeValidator(_scalar_to_str)]
"""A mapping of names to strings (tags, properties, environment variables); numbers and booleans
written without quotes are accepted and kept as their text."""


class AssetReference(BaseModel):
    """A parsed ``azureml:`` reference to a registered asset.

    ``version`` is set for ``azureml:NAME:VERSION`` (and for ARM ids / registry URIs ending in
    ``/versions/N``), ``label`` for ``azureml:NAME@LABEL``: ``"latest"`` or a registry alias.
    """

    model_config = ConfigDict(frozen=True)

    text: str
    name: str
    version: int | None = None
    label: str | None = None


def parse_model_reference(value: str) -> AssetReference:
    """Parse an ``azureml:`` model reference, refusing what the local registry cannot resolve.

    Azure's client accepts any text after ``azureml:`` and lets the service refuse it later;
    modelstore resolves references itself, so it wants an integer version, ``@latest`` or a label
    that can be a registry alias here (an Azure label is what an alias is locally).
    """
    expected = (
        "expected azureml:NAME:VERSION (an integer), azureml:NAME@latest or azureml:NAME@ALIAS"
    )
    short = _SHORT_REF.match(value)
    long = _LONG_REF.match(value)
    if long is not None and long.group("kind") != "models":
        raise ValueError(f"{value!r} names an environment, not a model; {expected}")
    match = short or long
    if match is None:
        if not value.startswith("azureml:"):
            raise ValueError(f"{value!r} is not a model reference; {expected}, or an inline path:")
        raise ValueError(f"{value!r} is not a valid model reference; {expected}")
    name, version, label = match.group("name"), match.group("version"), match.group("label")
    if version is None and label is None:
        raise ValueError(f"{value!r} has no version; {expected}")
    if label is not None:
        if label != "latest":
            try:
                validate_alias(label)
            except InvalidAliasError as exc:
                raise ValueError(f"{value!r}: {exc}") from None
        return AssetReference(text=value, name=name, label=label)
    if not version or not version.isdigit() or int(version) < 1:
        raise ValueError(f"{value!r} has the version {version!r}; {expected}")
    return AssetReference(text=value, name=name, version=int(version))


def check_environment_reference(value: str) -> str:
    """An environment reference must carry the ``azureml:`` prefix, as Azure's client demands."""
    if not value.startswith("azureml:") or len(value) <= len("azureml:"):
        raise ValueError(
            f"{value!r} is not an environment reference; expected azureml:NAME:VERSION, "
            "azureml:NAME@latest or an inline environment (image:, conda_file:)"
        )
    return value


SchemaUrl = Annotated[str | None, Field(alias="$schema")]
"""The ``$schema`` key: accepted and not used, as by Azure's loaders."""
