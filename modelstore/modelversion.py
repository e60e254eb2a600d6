"""``ModelVersion``: what the registry returns for one registered version.

The CLI's ``--json`` output is exactly this model's JSON serialisation, so scripts and the
Python API see the same fields.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ModelVersion(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    version: int = Field(ge=1)
    id: str = Field(description="'<name>:<version>', as Azure ML model ids")
    entry: str = Field(description="basename of the registered file or folder")
    kind: Literal["file", "folder"]
    path: Path = Field(description="absolute path of the entry in the store")
    size: int = Field(ge=0, description="total bytes of the entry's files")
    file_count: int = Field(ge=1)
    sha256: str = Field(description="digest over the manifest of (relative path, size, sha256)")
    created_at: datetime
    tags: dict[str, str] = Field(default_factory=dict)
    properties: dict[str, str] = Field(default_factory=dict)
    description: str | None = None
    framework: str | None = None
    framework_version: str | None = None


class ModelFile(BaseModel):
    """One file of a version as its manifest recorded it at registration (not re-hashed)."""

    model_config = ConfigDict(frozen=True)

    path: str = Field(description="relative to the version folder, '/'-separated, from the entry")
    size: int = Field(ge=0)
    sha256: str


RECORDED_FIELDS = tuple(name for name in ModelVersion.model_fields if name not in ("id", "path"))
"""The fields copied by name from the catalog's record of the version; ``id`` and ``path`` are
the registry's to compute. The record has each of these (a test checks it)."""
