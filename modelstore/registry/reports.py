"""What ``Registry.delete``, ``verify`` and ``doctor`` report (pydantic, so the CLI's ``--json``
is their serialisation)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from modelstore.modelversion import ModelVersion


class Alias(BaseModel):
    """``name@alias`` points at ``name:version``."""

    model_config = ConfigDict(frozen=True)

    name: str
    alias: str
    version: int


class AliasMove(BaseModel):
    """One entry of an alias's history: set (from_version None), moved, or removed (to_version
    None), when (UTC) and by whom (user@host)."""

    model_config = ConfigDict(frozen=True)

    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    at: datetime
    by: str


class DeletePlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    versions: list[ModelVersion]
    bytes: int = Field(ge=0, description="bytes freed (or that would be freed)")
    dry_run: bool
    aliases: list[Alias] = Field(
        default_factory=list,
        description="aliases pointing at these versions, removed with them (delete --force)",
    )
    kept: list[Alias] = Field(
        default_factory=list,
        description="aliases whose versions a prune keeps although they are not among the newest",
    )


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
    cached: bool = Field(
        default=True,
        description="False: a version of the shared store this home has not cached yet (nothing "
        "of it to check in the home; verify(store=True) checks its blobs)",
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


class RebuiltVersion(BaseModel):
    """A version folder ``doctor --rebuild-catalog`` records (sizes from the tree; sha256 are
    computed when the rebuild runs)."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    version: int
    entry: str
    size: int = Field(ge=0)
    file_count: int = Field(ge=0)


class RebuildPlan(BaseModel):
    """What ``Registry.rebuild_catalog`` does (dry_run=True) or did: the catalog it replaces,
    why, the versions it records and what it cannot bring back."""

    model_config = ConfigDict(frozen=True)

    home: str
    catalog: str
    problem: str = Field(description="why the catalog must be rebuilt (missing, empty, damaged)")
    versions: list[RebuiltVersion]
    skipped: list[str] = Field(
        default_factory=list, description="tree items that are not a valid version (left alone)"
    )
    lost: list[str] = Field(description="what only the old catalog knew and is not recovered")
    moved_to: str | None = Field(
        default=None, description="where the old catalog files were moved (never deleted)"
    )
    dry_run: bool


ForeignAction = Literal["report", "adopt", "move-aside"]
"""What ``doctor --repair`` does with a tree item no catalog row accounts for."""

FindingKind = Literal[
    "unfinished_registration",
    "unfinished_deletion",
    "missing_folder",
    "orphan_folder",
    "deleted_version_cache",
    "stray_item",
    "empty_name_folder",
    "staging_leftover",
    "trash_leftover",
    "stale_lock",
    "other_home_work",
    "work_in_progress",
    "abandoned_lease",
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
