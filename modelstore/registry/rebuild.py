"""``doctor --rebuild-catalog``: recreate a lost or damaged catalog from the ``azureml-models``
tree, and read one version folder as a catalog entry (also how ``doctor --adopt-foreign``
records a folder no row accounts for).

The tree holds the names, the version numbers and every byte, so the rows and manifests can be
rebuilt exactly (sizes and sha256 recomputed from the files). What only the catalog held (tags,
properties, description, framework, registration time, numbers of deleted versions above the
highest folder) is taken from the old catalog where its rows can still be read (a damaged file
often is readable but for a few pages) and the recorded sha256 still matches the files; the rest
cannot come back, and the plan says so before anything is done. The old catalog files are moved
aside, never deleted: what the rebuild could not read may still be salvaged by hand.
"""

from __future__ import annotations

import json
import os
import sqlite3
import urllib.parse
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from modelstore.catalog import Catalog, FileRecord, NewVersion
from modelstore.catalog.engine import is_memory, parse_catalog_url, sqlite_file
from modelstore.errors import (
    CatalogError,
    InvalidModelPathError,
    ModelLayoutError,
    ModelstoreError,
)
from modelstore.layout import StoreLayout, validate_name
from modelstore.registry.files import file_fields
from modelstore.registry.reports import RebuildPlan, RebuiltVersion
from modelstore.store import Store, plan_source
from modelstore.store.hashing import hash_file, new_buffer

LOST_METADATA = [
    "tags, properties, description and framework of every version (only the catalog held them)",
    "registration times (each version gets its folder's modification time)",
    "numbers of deleted versions above a name's highest folder (they may be handed out again)",
]


@dataclass(frozen=True)
class Salvage:
    """What could still be read from the old catalog: per (name, version) its sha256 and
    metadata, and each name's high-water mark."""

    rows: dict[tuple[str, int], dict[str, Any]]
    marks: dict[str, int]


def salvage(catalog: str) -> Salvage:
    """The old catalog's ready rows and high-water marks, read-only, or nothing where it cannot
    be read (missing, empty, no schema, a damaged page on the way)."""
    if not os.path.isfile(catalog) or os.path.getsize(catalog) == 0:
        return Salvage({}, {})
    try:
        connection = sqlite3.connect(f"file:{urllib.parse.quote(catalog)}?mode=ro", uri=True)
        try:
            connection.row_factory = sqlite3.Row
            rows = connection.execute(
                "SELECT name, version, sha256, tags, properties, description, framework, "
                "framework_version, created_at FROM model_versions WHERE state = 'ready'"
            ).fetchall()
            marks = connection.execute("SELECT name, last_version FROM model_names").fetchall()
        finally:
            connection.close()
        return Salvage(
            {(str(r["name"]), int(r["version"])): dict(r) for r in rows},
            {str(name): int(last) for name, last in marks},
        )
    except (sqlite3.Error, ValueError, TypeError):
        return Salvage({}, {})


def _with_salvaged(new: NewVersion, old: dict[str, Any] | None) -> NewVersion:
    """``new`` with the old row's metadata, if that row describes exactly these files."""
    if old is None or old.get("sha256") != new.sha256:
        return new
    try:
        tags, properties = json.loads(old["tags"] or "{}"), json.loads(old["properties"] or "{}")
        created = datetime.strptime(str(old["created_at"]), "%Y-%m-%d %H:%M:%S.%f")
    except (ValueError, TypeError):
        return new
    if not (_str_map(tags) and _str_map(properties)):
        return new
    return replace(
        new,
        tags=tags,
        properties=properties,
        description=old["description"],
        framework=old["framework"],
        framework_version=old["framework_version"],
        created_at=created.replace(tzinfo=timezone.utc),
    )


def _str_map(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def version_from_tree(layout: StoreLayout, name: str, folder: str) -> NewVersion:
    """The catalog entry of ``azureml-models/<name>/<folder>`` as it is on disk, files hashed.
    ModelLayoutError (why) if it is not a valid version folder."""
    path = layout.models_dir / name / folder
    try:
        validate_name(name)
    except ModelstoreError:
        raise ModelLayoutError(f"{path}: {name!r} is not a valid model name") from None
    if not (folder.isascii() and folder.isdigit() and int(folder) >= 1):
        raise ModelLayoutError(f"{path}: {folder!r} is not a version number")
    try:
        entries = os.listdir(path)
    except OSError as exc:
        raise ModelLayoutError(f"{path}: not a readable folder ({exc.strerror})") from None
    if len(entries) != 1:
        raise ModelLayoutError(
            f"{path}: holds {len(entries)} items, a version folder holds exactly one entry"
        )
    try:
        plan = plan_source(path / entries[0])
    except InvalidModelPathError as exc:
        raise ModelLayoutError(f"{path}: {exc}") from None
    buffer = new_buffer()
    files = []
    for source in plan.files:
        size, sha256 = hash_file(source.source, buffer)
        files.append(FileRecord(source.relpath, size, sha256))
    return NewVersion(
        name=name,
        entry=plan.entry,
        kind=plan.kind,
        created_at=datetime.fromtimestamp(os.stat(path).st_mtime, timezone.utc),
        token="",
        **file_fields(files),
    )


def plan_rebuild(home: Path, db_url: str, problem: str) -> RebuildPlan:
    """The versions the tree holds (sizes from a walk, no hashing yet) and what is skipped."""
    layout = StoreLayout(home)
    catalog = catalog_file(db_url)
    versions: list[RebuiltVersion] = []
    skipped: list[str] = []
    for name, children in Store(layout).tree().items():
        path = layout.models_dir / name
        if not path.is_dir() or path.is_symlink():
            skipped.append(f"{path}: not a model name folder")
            continue
        for child in children:
            try:
                validate_name(name)
                if not (child.isascii() and child.isdigit() and int(child) >= 1):
                    raise ModelLayoutError(f"{path / child}: {child!r} is not a version number")
                entries = os.listdir(path / child)
                if len(entries) != 1:
                    raise ModelLayoutError(
                        f"{path / child}: holds {len(entries)} items, a version folder holds "
                        "exactly one entry"
                    )
                plan = plan_source(path / child / entries[0])
            except (ModelstoreError, OSError) as exc:
                skipped.append(str(exc) if isinstance(exc, ModelLayoutError) else f"{path}: {exc}")
                continue
            versions.append(
                RebuiltVersion(
                    id=f"{name}:{int(child)}",
                    name=name,
                    version=int(child),
                    entry=plan.entry,
                    size=plan.total_size,
                    file_count=len(plan.files),
                )
            )
    versions.sort(key=lambda v: (v.name, v.version))
    readable = salvage(catalog).rows
    known = sum((v.name, v.version) in readable for v in versions)
    lost = LOST_METADATA
    if known:
        lost = [
            f"tags, properties, description, framework and registration time of "
            f"{len(versions) - known} of {len(versions)} versions (the other {known} are taken "
            "from the old catalog's readable rows, where the files still match them)",
            *LOST_METADATA[2:],
        ]
    return RebuildPlan(
        home=str(home),
        catalog=catalog,
        problem=problem,
        versions=versions,
        skipped=skipped,
        lost=lost,
        dry_run=True,
    )


def rebuild(plan: RebuildPlan, db_url: str) -> RebuildPlan:
    """Move the old catalog files aside, create a new catalog and record every planned version
    from the tree (hashed now). Run it while no other process uses the registry."""
    layout = StoreLayout(Path(plan.home))
    store = Store(layout)
    catalog_path = Path(plan.catalog)
    with store.catalog_lock():
        old = salvage(plan.catalog)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        aside = layout.lost_catalogs_dir / stamp
        moved = False
        for path in layout.catalog_side_files(catalog_path):
            if os.path.lexists(path):
                aside.mkdir(parents=True, exist_ok=True)
                os.rename(path, aside / path.name)
                moved = True
        catalog = Catalog(db_url)
        try:
            for version in plan.versions:
                if not (layout.models_dir / version.name / str(version.version)).is_dir():
                    continue  # removed since the plan was shown
                new = version_from_tree(layout, version.name, str(version.version))
                new = _with_salvaged(new, old.rows.get((version.name, version.version)))
                catalog.adopt(new, version.version)
            for name, last in old.marks.items():
                catalog.raise_high_water(name, last)
        finally:
            catalog.close()
    return plan.model_copy(update={"dry_run": False, "moved_to": str(aside) if moved else None})


def catalog_file(db_url: str) -> str:
    url = parse_catalog_url(db_url)
    database = sqlite_file(url)
    if database is None or is_memory(url):
        raise CatalogError(
            f"rebuilding recreates a SQLite catalog file; the catalog {url!r} is not one",
            hint="restore that database from its backup instead",
            catalog=repr(url),
        )
    return os.path.abspath(database)


def catalog_url(home: Path, db_url: str | None) -> str:
    from modelstore.layout import DB_URL_ENV

    return db_url or os.environ.get(DB_URL_ENV) or StoreLayout(home).default_db_url()
