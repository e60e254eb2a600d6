"""``doctor --rebuild-catalog``: recreate a lost or damaged catalog from the ``azureml-models``
tree, and read one version folder as a catalog entry (also how ``doctor --adopt-foreign``
records a folder no row accounts for).

The tree holds the names, the version numbers and every byte, so the rows and manifests can be
rebuilt exactly (sizes and sha256 recomputed from the files). What only the catalog held (tags,
properties, description, framework, registration time, numbers of deleted versions above the
highest folder) cannot come back, and the plan says so before anything is done. The old catalog
files are moved aside, never deleted: a damaged file may still be salvaged by hand.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from modelstore.catalog import Catalog, FileRecord, NewVersion
from modelstore.catalog.engine import is_memory, parse_catalog_url, sqlite_file
from modelstore.errors import (
    CatalogDamagedError,
    CatalogError,
    CatalogLostError,
    InvalidModelPathError,
    ModelLayoutError,
    ModelstoreError,
)
from modelstore.layout import StoreLayout, validate_name
from modelstore.registry_reports import RebuildPlan, RebuiltVersion
from modelstore.store import Store, manifest_digest, plan_source
from modelstore.store.hashing import hash_file, new_buffer

LOST_METADATA = [
    "tags, properties, description and framework of every version (only the catalog held them)",
    "registration times (each version gets its folder's modification time)",
    "numbers of deleted versions above a name's highest folder (they may be handed out again)",
]


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
        size=sum(f.size for f in files),
        file_count=len(files),
        sha256=manifest_digest((f.relpath, f.size, f.sha256) for f in files),
        created_at=datetime.fromtimestamp(os.stat(path).st_mtime, timezone.utc),
        token="",
        files=files,
    )


def plan_rebuild(home: Path, db_url: str, problem: str) -> RebuildPlan:
    """The versions the tree holds (sizes from a walk, no hashing yet) and what is skipped."""
    layout = StoreLayout(home)
    catalog = _catalog_file(db_url)
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
    return RebuildPlan(
        home=str(home),
        catalog=catalog,
        problem=problem,
        versions=versions,
        skipped=skipped,
        lost=LOST_METADATA,
        dry_run=True,
    )


def rebuild(plan: RebuildPlan, db_url: str) -> RebuildPlan:
    """Move the old catalog files aside, create a new catalog and record every planned version
    from the tree (hashed now). Run it while no other process uses the registry."""
    layout = StoreLayout(Path(plan.home))
    store = Store(layout)
    catalog_path = Path(plan.catalog)
    with store.catalog_lock():
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
                catalog.adopt(new, version.version)
        finally:
            catalog.close()
    return plan.model_copy(update={"dry_run": False, "moved_to": str(aside) if moved else None})


def _catalog_file(db_url: str) -> str:
    url = parse_catalog_url(db_url)
    database = sqlite_file(url)
    if database is None or is_memory(url):
        raise CatalogError(
            f"--rebuild-catalog recreates a SQLite catalog file; the catalog {url!r} is not one "
            "(restore that database from its backup instead)"
        )
    return os.path.abspath(database)


def diagnose(home: Path, db_url: str | None) -> tuple[str, str]:
    """(catalog URL, what is wrong with it), or CatalogError when there is nothing to rebuild."""
    from modelstore.registry import Registry

    try:
        registry = Registry(home, db_url, read_only=True)
    except (CatalogLostError, CatalogDamagedError) as exc:
        return _url(home, db_url), str(exc).partition("; nothing was changed")[0]
    try:
        registry._catalog.check_integrity()
    except CatalogDamagedError as exc:
        return registry.db_url, str(exc).partition("; nothing was changed")[0]
    finally:
        registry.close()
    raise CatalogError(
        f"the catalog {_catalog_file(registry.db_url)} is readable and undamaged, so there is "
        "nothing to rebuild (its metadata would be lost); run `modelstore doctor` to compare it "
        "with the tree"
    )


def _url(home: Path, db_url: str | None) -> str:
    from modelstore.layout import DB_URL_ENV

    return db_url or os.environ.get(DB_URL_ENV) or StoreLayout(home).default_db_url()
