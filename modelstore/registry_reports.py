"""What ``Registry.delete``, ``verify`` and ``doctor`` report (pydantic, so the CLI's ``--json``
is their serialisation)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from modelstore.modelversion import ModelVersion


class DeletePlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    versions: list[ModelVersion]
    bytes: int = Field(ge=0, description="bytes freed (or that would be freed)")
    dry_run: bool


class VersionCheck(BaseModel):
    """One version compared with its manifest; paths are relative to the version folder."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: int
    id: str
    missing: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)
    extra: list[str] = Field(default_factory=list)
    foreign_entries: list[str] = Field(
        default_factory=list,
        description="items beside the entry in the version folder (Azure ML allows only one)",
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return not (self.missing or self.changed or self.extra or self.foreign_entries)


class VerifyReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    versions: list[VersionCheck]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.versions)


FindingKind = Literal[
    "unfinished_registration",
    "unfinished_deletion",
    "missing_folder",
    "orphan_folder",
    "stray_item",
    "empty_name_folder",
    "staging_leftover",
    "trash_leftover",
    "stale_lock",
]


class Finding(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: FindingKind
    subject: str = Field(description="'name:version' or a path")
    detail: str
    action: str = Field(description="what repair does (repair=False) or did (repair=True)")
    repaired: bool = False


class DoctorReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    findings: list[Finding]
    repair: bool

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        """Nothing left to repair (nothing found, or everything found was repaired)."""
        return all(finding.repaired for finding in self.findings)
