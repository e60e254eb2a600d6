"""``Registry``: the Python API of the model registry, one method per user operation.

It joins the catalog (which versions exist, their manifests and metadata) and the store (the
``azureml-models`` tree); those two never import each other. The order of their steps is what
makes a crash harmless:

register  copy+hash into staging -> catalog: take the number, row *pending* -> one rename into
          the tree -> catalog: row *ready*. Readers see only ready rows; a folder appears in the
          tree only complete, and only after its number is taken (so never reused).
delete    catalog: rows *deleting* (invisible) -> rename out to trash -> catalog: rows gone ->
          trash emptied.
doctor    finishes or rolls back whatever a killed process left at any of those steps.

With a shared model store (``MODELSTORE_STORE_URL``, see ``modelstore.store.shared``), register
also uploads the staged files' blobs the store lacks before the number is taken, and the tree is
this home's cache: ``path`` and ``deploy`` materialise a version that is not cached yet
(``modelstore.store.cache``). The catalog records which store it belongs to; a home configured
with another one is refused (StoreMismatchError) before anything is written.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from modelstore.catalog import DELETING, PENDING, READY, Catalog, FileRecord, NewVersion
from modelstore.catalog.catalog import alias_in_use
from modelstore.catalog.engine import is_memory, parse_catalog_url, sqlite_file
from modelstore.catalog.leases import DELETE, REGISTER, lease_lost, this_process
from modelstore.catalog.records import AliasMoveRecord, VersionRecord
from modelstore.deployment import (
    TEMPORARY_PREFIX,
    Deployment,
    ModelSource,
    build_deployment,
    temporary,
)
from modelstore.errors import (
    REBUILD_CATALOG_HINT,
    AliasNotFoundError,
    BadArgumentTypeError,
    CatalogDamagedError,
    CatalogError,
    CatalogLostError,
    DeploymentRefusedError,
    InvalidArgumentError,
    InvalidModelPathError,
    ModelNotFoundError,
    ModelstoreError,
    OwnRegistryHomeError,
    RegistryNotFoundError,
    SharedHomeError,
    StorageError,
    StoreMismatchError,
    VersionOutOfRangeError,
)
from modelstore.layout import (
    DB_URL_ENV,
    LOCAL_MODEL_VERSION,
    MAX_VERSION,
    StoreLayout,
    check_version_range,
    default_home,
    local_model_name,
    shown_number,
    validate_alias,
    validate_name,
)
from modelstore.modelversion import RECORDED_FIELDS, ModelFile, ModelVersion
from modelstore.refs import parse_alias_ref, parse_ref
from modelstore.registry.files import file_fields
from modelstore.registry.reports import (
    Alias,
    AliasMove,
    DeletePlan,
    DoctorReport,
    Finding,
    ForeignAction,
    RebuildPlan,
    VerifyReport,
    VersionCheck,
)
from modelstore.store import SourcePlan, Store, check_version, plan_source
from modelstore.store.hashing import hash_file, new_buffer
from modelstore.store.identity import IDENTITY_NAME
from modelstore.store.links import CachedFiles, SourceLinker
from modelstore.store.shared import (
    LOCAL_TREE,
    STORE_URL_ENV,
    BlobStore,
    open_store,
    upload_missing,
)
from modelstore.store.shared import store_url as shared_store_url

if TYPE_CHECKING:
    from modelstore.registry import archive as registry_archive
    from modelstore.v2.model_spec import ModelSpec

# deployment and refs are imported eagerly, not inside deploy(): a pydantic model first built
# while pyfakefs is active captures its fake Path class, and later validation fails with
# "Unable to generate pydantic-core schema for FakePath".

__all__ = [
    "Alias",
    "AliasMove",
    "DeletePlan",
    "DoctorReport",
    "Finding",
    "RebuildPlan",
    "Registry",
    "TagChange",
    "VerifyReport",
    "VersionCheck",
]

FilterItem = str | Sequence[str]
_SORTS = ("name", "created", "size")
MODEL_TYPE_PROPERTY = "modelstore.v2.type"
"""The property holding a v2 model's ``type:`` (custom_model, mlflow_model, triton_model)."""


@dataclass(frozen=True)
class TagChange:
    """What ``Registry.change_tags`` did: the version as updated, and its tags just before."""

    version: ModelVersion
    previous: dict[str, str]


_SHOWN = 20  # how many names / versions an error message lists
_LINKABLE_VERSIONS = 8
"""How many of a name's newest versions a new version may hard-link cached files from (with a
shared store; see ``modelstore.store.links``): re-registered bytes are usually a recent
version's, and looking further would cost a larger manifest query on every registration."""
_STORE_ID_KEY = "model_store_id"
"""The ``catalog_info`` key recording the id of the shared store the catalog was first opened
with (see ``modelstore.store.identity.IDENTITY_NAME``): the URL alone names one store only as seen
with one set of credentials or mounts."""
_STORE_KEY = "model_store"
"""The ``catalog_info`` key recording the store a catalog belongs to (``LOCAL_TREE``: one home's
own tree)."""


class Registry:
    """A model registry rooted at ``home`` (see ``modelstore.layout``)."""

    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        db_url: str | None = None,
        *,
        read_only: bool = False,
        create: bool = True,
        store_url: str | None = None,
    ) -> None:
        """``create=False``: a registry that does not exist yet is RegistryNotFoundError instead
        of being created (for commands that act on existing versions). ``read_only``: for
        lookups (implies ``create=False``). Nothing is created or changed: no home, no catalog, no
        schema; a SQLite catalog is opened read-only (so a read-only home can be read), and a
        missing catalog is RegistryNotFoundError. Either way, a catalog that is missing, empty
        or without schema while the tree holds versions is CatalogLostError: it is never
        silently replaced by a new empty one. ``store_url`` (default ``MODELSTORE_STORE_URL``):
        the shared model store; this home's tree is then its cache."""
        self.home = (Path(home).expanduser() if home is not None else default_home()).absolute()
        self.layout = StoreLayout(self.home)
        self._store = Store(self.layout)
        self.read_only = read_only
        self.create = create and not read_only
        url = db_url or os.environ.get(DB_URL_ENV) or None
        default = url is None
        if url is None:
            url = self.layout.default_db_url()
        self.db_url = url
        parsed = parse_catalog_url(url)
        memory = is_memory(parsed)
        database = sqlite_file(parsed)
        if not default:
            self._refuse_own_registry_home(database)
        if database is not None and _blank_file(database):
            self._refuse_new()  # before SQLite opens it: opening would create and write it
        if not read_only:
            _refuse_read_only_home(self.home)
        if default and self.create:
            _make_home(self.home)
        self._catalog = Catalog(
            url,
            None if memory else self._store.catalog_lock(),
            read_only=read_only and not memory,
            refuse_new=self._refuse_new,
        )
        self._models_prefix = f"{self.layout.models_dir}{os.sep}"
        self._opened_blobs: BlobStore | None = None
        try:
            self._store_url = self._bind_store(store_url or os.environ.get(STORE_URL_ENV) or None)
        except BaseException:
            self._catalog.close()
            raise

    @property
    def _blobs(self) -> BlobStore:
        """The shared store, reached on first use: a read-only open (``list``, ``show``, a
        cached ``path``) does not need it, and must not wait on or fail for a store it does not
        touch. Only for a registry with a store (``self._store_url``)."""
        if self._opened_blobs is None:
            assert self._store_url is not None
            blobs = open_store(self._store_url)
            self._check_store_identity(blobs, claim=False)
            self._opened_blobs = blobs
        return self._opened_blobs

    def _bind_store(self, url: str | None) -> str | None:
        """The shared store's URL (None: this home's own tree), after checking that the
        catalog belongs to it. A catalog records its store on its first writing open; a
        read-only open of a catalog that records none yet checks nothing. A writing open reaches
        the store now, so a store that cannot be reached is refused before any work."""
        canonical = shared_store_url(url) if url is not None else None
        if canonical is not None and not self.read_only:
            self._opened_blobs = open_store(canonical)
        mine = LOCAL_TREE if canonical is None else canonical
        recorded = self._catalog.info().get(_STORE_KEY)
        if recorded is None and not self.read_only:
            self._catalog.set_info_default(_STORE_KEY, mine)
            recorded = self._catalog.info().get(_STORE_KEY)
        if recorded is not None and recorded != mine:
            shown = "its own home's tree" if recorded == LOCAL_TREE else f"the store {recorded}"
            here = "no MODELSTORE_STORE_URL" if canonical is None else f"the store {mine}"
            raise StoreMismatchError(
                f"the catalog {_shown_url(self.db_url)} belongs to {shown}, but this home is "
                f"configured with {here}; nothing was changed (set MODELSTORE_STORE_URL to "
                "the catalog's store, or use another catalog)",
                catalog=_shown_url(self.db_url),
                store=mine,
                catalog_store=recorded,
            )
        if canonical is not None and not self.read_only:  # only once the catalog agreed
            assert self._opened_blobs is not None
            self._check_store_identity(self._opened_blobs, claim=True)
            self._store.remember_shared({"catalog": _shown_url(self.db_url), "store": canonical})
        return canonical

    def _check_store_identity(self, blobs: BlobStore, *, claim: bool) -> None:
        """The store this home reaches is the one the catalog belongs to, not another account's
        container or another mount of the same name: its identity marker holds the id the
        catalog records. The first writing open of either records it (``claim``: the store's
        marker first, then the catalog; each write keeps what another process wrote first). A
        store reached later, for reading (materialising, verify of the store), is checked
        too, so that another store is never reported as the team's store having lost blobs."""
        recorded = self._catalog.info().get(_STORE_ID_KEY)
        found = blobs.read_identity()
        if recorded is None:
            if not claim:
                return  # a catalog no writing open has bound yet: nothing to compare
            if found is None:
                try:
                    found = blobs.claim_identity(uuid.uuid4().hex)
                except StorageError:  # read-only credentials or mount: it cannot register
                    return  # nothing recorded on either side yet: the first writer claims it
            self._catalog.set_info_default(_STORE_ID_KEY, found)
            recorded = self._catalog.info().get(_STORE_ID_KEY)
        if found == recorded:
            return
        catalog = _shown_url(self.db_url)
        reached = (
            f"has no identity marker ({IDENTITY_NAME})"
            if found is None
            else f"is the store with id {found}"
        )
        raise StoreMismatchError(
            f"the catalog {catalog} belongs to the store {blobs.url} with id {recorded}, but "
            f"the store this home reaches as {blobs.url} {reached}: another storage account "
            "or folder of the same name; nothing was changed (check the credentials "
            "(AZURE_STORAGE_*) or the mount; if the marker was removed, write "
            f'{{"store_id": "{recorded}"}} back to {IDENTITY_NAME} at the store\'s root)',
            catalog=catalog,
            store=blobs.url,
            catalog_store=blobs.url,
            store_id=found,
            catalog_store_id=recorded,
        )

    @property
    def store_url(self) -> str | None:
        """The shared model store's URL, or None when versions live in this home's own tree."""
        return self._store_url

    def _refuse_new(self) -> None:
        """Called where a new catalog would be created: raises unless that is harmless."""
        found = self._store.version_folders()
        database = sqlite_file(parse_catalog_url(self.db_url))
        catalog = database or repr(parse_catalog_url(self.db_url))
        if found:
            self._refuse_shared_home()
            state = "has no modelstore schema"
            if database is not None and not os.path.exists(database):
                state = "is missing"
            elif database is not None and _blank_file(database):
                state = "is empty"
            raise CatalogLostError(
                f"the catalog {catalog} {state} but {self.layout.models_dir} holds "
                f"{len(found)} version folder{'' if len(found) == 1 else 's'}; nothing was "
                "changed",
                hint=REBUILD_CATALOG_HINT,
                catalog=catalog,
                versions=len(found),
                home=str(self.home),
            )
        if not self.create:
            missing = (
                "does not exist"
                if database is None or not os.path.exists(database)
                else ("is empty")
            )
            raise RegistryNotFoundError(
                f"there is no modelstore registry at {self.home} (its catalog {catalog} {missing})",
                hint="check home= / MODELSTORE_HOME, or register a model to create one",
                home=str(self.home),
                catalog=catalog,
            )

    def _refuse_own_registry_home(self, database: str | None) -> None:
        """OwnRegistryHomeError when this home has its own catalog file but was opened with
        another catalog (typically: the team's MODELSTORE_DB_URL set in a shell profile while
        the default home holds one's own models): its ``m/1`` would be answered as the other
        catalog's ``m:1``, and verify would call it changed and advise deleting it there."""
        own = self.layout.catalog_path
        try:
            if os.path.getsize(own) == 0:
                return
        except OSError:
            return  # no catalog of its own
        if database is not None and os.path.realpath(database) == os.path.realpath(own):
            return  # the URL names the home's own file
        shown = _shown_url(self.db_url)
        raise OwnRegistryHomeError(
            f"{self.home} holds a registry of its own ({own}) but was opened with the catalog "
            f"{shown}; nothing was changed (use another home for that catalog, e.g. "
            "MODELSTORE_HOME=~/team-models; or unset MODELSTORE_DB_URL and MODELSTORE_STORE_URL "
            "to use this home's own registry)",
            home=str(self.home),
            catalog=shown,
            own_catalog=str(own),
        )

    def _refuse_shared_home(self) -> None:
        """SharedHomeError when this home caches a shared registry other than the catalog it
        was opened with (typically: MODELSTORE_DB_URL forgotten)."""
        _refuse_shared_home(self._store, self.home, self.db_url)

    @classmethod
    def open_existing(
        cls, home: str | os.PathLike[str] | None = None, db_url: str | None = None
    ) -> Registry | None:
        """The registry at ``home`` opened for reading, or None if there is none (no catalog and
        no stored version). Never creates or changes anything."""
        try:
            return cls(home, db_url, read_only=True)
        except RegistryNotFoundError:
            return None

    def close(self) -> None:
        self._catalog.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Registry(home={str(self.home)!r})"

    # --- register ----------------------------------------------------------------------------

    def register(
        self,
        path: str | os.PathLike[str],
        name: str,
        *,
        tags: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
        description: str | None = None,
        framework: str | None = None,
        framework_version: str | None = None,
        child_paths: Sequence[str] | None = None,
        progress: Callable[[int, int], None] | None = None,
        version: int | None = None,
    ) -> ModelVersion:
        """Copy a file or folder into the store as the next version of ``name``.

        Checks run in Azure ML's order (name, framework version, path, child paths, tags and
        properties) and all of them before anything is written. ``version`` asks for that exact
        number (as a v2 ``model.yml`` may): it is taken if free, else VersionTakenError and the
        store is unchanged (see ``Catalog.reserve_exact``).
        """
        _check_arguments(path, name, description, framework, framework_version, version)
        children = _str_list(child_paths, "child_paths")
        self._refuse_store_internals(path, children)
        plan = plan_source(path, children)
        tag_map = _str_map(tags, "Tags")
        property_map = _str_map(properties, "Properties")

        token = self._store.new_token()
        with self._store.token_lock(token), self._lease(token, REGISTER, name):
            linker = None
            if self._store_url is not None:  # bytes this home caches already are linked, not copied
                linker = SourceLinker(self._blobs, self._cached_files(name))
            staged = self._store.stage(plan, token, progress, link=linker, vouch=linker is not None)
            try:  # until the number is taken, a failure or Ctrl-C just drops the staged copy
                if self._store_url is not None and linker is not None:
                    root = self._store.staging_path(token)  # every byte is in the store
                    upload_missing(  # before the row exists
                        self._blobs,
                        [
                            (os.path.join(root, *f.relpath.split("/")), f.sha256)
                            for f in staged
                            if f.relpath not in linker.linked  # linked: its blob is there
                        ],
                    )
                new = NewVersion(
                    name=name,
                    entry=plan.entry,
                    kind=plan.kind,
                    created_at=datetime.now(timezone.utc),
                    token=token,
                    **file_fields([FileRecord(f.relpath, f.size, f.sha256) for f in staged]),
                    tags=tag_map,
                    properties=property_map,
                    description=description,
                    framework=framework,
                    framework_version=framework_version,
                )
                record = (
                    self._catalog.reserve(new, leased=True)
                    if version is None
                    else self._catalog.reserve_exact(new, version, leased=True)
                )
            except BaseException:
                self._store.discard(token)
                raise
            try:
                self._store.publish(token, name, record.version, plan.entry)
            except BaseException:
                self._catalog.forget([record.id], release=token)  # the number stays spent
                raise
            if not self._catalog.set_state(record.id, READY, expected=PENDING, release=token):
                self._settled_elsewhere(record)
        return self._model(record)

    @staticmethod
    def check_registration(
        path: str | os.PathLike[str],
        name: str,
        *,
        tags: Mapping[str, str] | None = None,
        properties: Mapping[str, str] | None = None,
        description: str | None = None,
        framework: str | None = None,
        framework_version: str | None = None,
        child_paths: Sequence[str] | None = None,
        version: int | None = None,
    ) -> SourcePlan:
        """Every check of ``register`` that needs no registry, in Azure ML's order, raising
        what ``register`` would; the source's plan when all pass. Run before a registry is
        opened (as the CLI does), a bad argument never creates a home that did not exist."""
        _check_arguments(path, name, description, framework, framework_version, version)
        plan = plan_source(path, _str_list(child_paths, "child_paths"))
        _str_map(tags, "Tags")
        _str_map(properties, "Properties")
        return plan

    def _lease(
        self, token: str, operation: str, name: str
    ) -> contextlib.AbstractContextManager[None]:
        """The catalog's lease on an operation, so every home sees it as live work."""
        return self._catalog.lease(token, operation, name, this_process(str(self.home)))

    def _settled_elsewhere(self, record: VersionRecord) -> None:
        """A doctor took this registration's lease (its heartbeat had expired: the process
        was stopped that long) and settled it: finished it (fine: the version is ready, and the
        folder just published is its cache), or rolled it back, and then the folder just
        published has no row: it goes again, and the registration fails."""
        if self._catalog.get(record.name, record.version) is not None:
            return
        with contextlib.suppress(OSError):
            self._store.empty_trash(
                self._store.unpublish(record.name, [record.version], record.token or "")
            )
        raise lease_lost(record.name, record.token or "")

    def register_spec(
        self,
        spec: str | os.PathLike[str] | ModelSpec,
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> ModelVersion:
        """Register the model a v2 ``model.yml`` describes, as ``az ml model create -f`` does.

        ``spec`` is the file or its loaded ``ModelSpec`` (``modelstore.v2.load_model_spec``;
        load it first to refuse a bad file before a registry is even opened). ``path`` in the
        file is relative to the file's folder; ``version``, if given, is taken exactly (refused
        if not free); ``type`` is kept as the property ``MODEL_TYPE_PROPERTY`` beside the file's
        own properties. A malformed file is SpecError before anything is written.
        """
        from modelstore.v2.load import load_model_spec
        from modelstore.v2.model_spec import ModelSpec

        if not isinstance(spec, ModelSpec):
            spec = load_model_spec(spec)
        properties = dict(spec.properties)
        if MODEL_TYPE_PROPERTY in properties:
            raise InvalidArgumentError(
                f"the property {MODEL_TYPE_PROPERTY!r} is where modelstore keeps the model's "
                "type; remove it and write type: instead"
            )
        properties[MODEL_TYPE_PROPERTY] = spec.type
        return self.register(
            spec.path,
            spec.name,
            tags=spec.tags,
            properties=properties,
            description=spec.description,
            progress=progress,
            version=spec.version,
        )

    def _refuse_store_internals(
        self, path: str | os.PathLike[str], child_paths: builtins.list[str] | None
    ) -> None:
        """A folder holding the registry home would copy the store into itself, and the
        working space (staging, trash, locks) changes under the copy. With child paths, only
        what they select is copied, so they are what is checked."""
        if not os.fspath(path):
            return  # plan_source explains what is wrong with an empty path
        shown = [repr(os.fspath(path))]
        sources = [os.path.realpath(path)]
        if child_paths:
            shown = [f"child path {child!r}" for child in child_paths]
            sources = [os.path.realpath(os.path.join(sources[0], c)) for c in child_paths]
        home = os.path.realpath(self.home)
        workspace = os.path.realpath(self.layout.workspace_dir)
        for what, source in zip(shown, sources, strict=True):
            if home == source or home.startswith(source.rstrip(os.sep) + os.sep):
                raise InvalidModelPathError(
                    f"{what} contains the registry home {self.home}; register the model's own "
                    "file or folder, or list only its files with child paths"
                )
            if source == workspace or source.startswith(workspace + os.sep):
                raise InvalidModelPathError(
                    f"{what} is inside modelstore's working space {workspace}; register a "
                    "model file or folder, or a stored version's path"
                )

    # --- reads -------------------------------------------------------------------------------

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """One version (the highest when ``version`` is None); ``name`` may be ``NAME@ALIAS``."""
        name, version = self._pin(name, version)
        _check_version(version, name, allow_none=True)
        validate_name(name)
        for _attempt in range(3):  # a concurrent delete can remove "latest" between the queries
            found = self._catalog.locate(name, version)
            if found is None:
                break
            record = self._catalog.get(name, found[0])
            if record is not None:
                return self._model(record)
        raise self._not_found(name, version)

    def list(
        self,
        name: str | None = None,
        tags: Sequence[FilterItem] | None = None,
        properties: Sequence[FilterItem] | None = None,
        latest: bool = False,
        sort: Literal["name", "created", "size"] = "name",
    ) -> builtins.list[ModelVersion]:
        """Versions passing every filter (Azure ML semantics: an item is ``"key"`` (present) or
        ``["key", "value"]`` (equal); all items must match), ordered by name, then version
        descending; ``latest`` keeps per name the highest version among those that pass.
        ``sort="created"`` puts the newest first and ``"size"`` the largest first (where the
        space goes); ties keep the name order."""
        if sort not in _SORTS:
            raise InvalidArgumentError(
                f"cannot sort by {sort!r}: sort by one of {', '.join(_SORTS)}"
            )
        if name is not None:
            validate_name(name)
        tag_items = _filter_items(tags, "tags")
        property_items = _filter_items(properties, "properties")
        result: builtins.list[ModelVersion] = []
        seen: set[str] = set()
        for record in self._catalog.ready_versions(name):
            if not (
                _matches(record.tags, tag_items) and _matches(record.properties, property_items)
            ):
                continue
            if latest:
                if record.name in seen:
                    continue
                seen.add(record.name)
            result.append(self._model(record))
        if sort == "created":
            result.sort(key=lambda model: model.created_at, reverse=True)
        elif sort == "size":
            result.sort(key=lambda model: model.size, reverse=True)
        return result

    def files(self, name: str, version: int | None = None) -> builtins.list[ModelFile]:
        """The files of a version (the highest when ``version`` is None) as its manifest lists
        them, by path: read from the catalog, so listing never re-reads model bytes."""
        model = self.get(name, version)
        record = self._catalog.get(model.name, model.version)
        manifest = None if record is None else self._catalog.manifests([record.id]).get(record.id)
        if manifest:  # None: deleted since get() found it
            return [ModelFile(path=f.relpath, size=f.size, sha256=f.sha256) for f in manifest]
        raise self._not_found(model.name, model.version)

    def versions(self, name: str) -> builtins.list[int]:
        """The registered versions of ``name``, ascending ([] for an unknown name)."""
        validate_name(name)
        return self._catalog.versions(name)

    def path(self, name: str, version: int | None = None) -> Path:
        """The entry of a version in the tree (the highest version when ``version`` is None);
        ``name`` may be ``NAME@ALIAS`` (one more indexed query, only then)."""
        if type(name) is str and "@" in name:
            return self._alias_path(name, version)
        if version is not None and (
            type(version) is not int or version < 1 or version > MAX_VERSION
        ):
            _check_version(version, name, allow_none=True)
        found = self._catalog.locate(name, version)
        if found is None:
            validate_name(name)
            raise self._not_found(name, version)
        path = Path(f"{self._models_prefix}{name}{os.sep}{found[0]}{os.sep}{found[1]}")
        return path if self._store_url is None else self._cached(name, found[0], path)

    def _cached(self, name: str, version: int, path: Path) -> Path:
        """With a shared store: ``path`` (the entry in this home's tree), materialised from the
        store first if this home has not cached the version yet."""
        if self._store_url is None or os.path.lexists(path):
            return path
        if os.path.isdir(self.home) and not os.access(self.home, os.W_OK):  # a read-only mount
            raise StorageError(
                f"{name}:{version} is not cached in {self.home}, which cannot be written (a "
                "read-only mount); nothing was changed (cache it there from a writable copy "
                "of the home first, or use a writable home)",
                path=str(path),
            )
        from modelstore.store.cache import materialise

        record = self._catalog.get(name, version)
        if record is None:  # deleted since it was located
            raise self._not_found(name, version)
        files = [(f.relpath, f.size, f.sha256) for f in self._catalog.files(record.id)]
        cached = self._cached_files(name, but=version)
        return materialise(
            self._store, self._blobs, name, version, record.entry, record.kind, files, cached
        )

    def _cached_files(self, name: str, but: int | None = None) -> CachedFiles:
        """The files of ``name``'s newest versions, where this home caches them: what a new
        version of the name (re-registered, or materialised) may link to rather than copy. A
        version not cached here is listed too; its files just are not found."""
        return CachedFiles(
            (
                os.path.join(self.layout.version_dir(name, f.version), *f.relpath.split("/")),
                f.size,
                f.sha256,
            )
            for f in self._catalog.linkable_files(name, _LINKABLE_VERSIONS, but=but)
        )

    # --- metadata ----------------------------------------------------------------------------

    def update_tags(
        self,
        name: str,
        version: int | None,
        add: Mapping[str, str] | None = None,
        remove: Iterable[str] | str | None = None,
    ) -> ModelVersion:
        """Merge ``add`` (overwriting), then drop the ``remove`` keys (absent keys are fine).
        ``version`` None: the latest version (as for every metadata update, chosen in the same
        catalog transaction as the change). ``name`` may be ``NAME@ALIAS``, as for every
        metadata update."""
        return self.change_tags(name, version, add, remove).version

    def change_tags(
        self,
        name: str,
        version: int | None,
        add: Mapping[str, str] | None = None,
        remove: Iterable[str] | str | None = None,
    ) -> TagChange:
        """``update_tags``, also returning the tags the version had just before the change (read
        in the same transaction), to report what was replaced or was not there."""
        name, version = self._pin(name, version)
        validate_name(name)
        _check_version(version, name, allow_none=True)
        additions = _str_map(add, "Tags")
        removals = [remove] if isinstance(remove, str) else _str_list(remove, "remove") or []
        records = self._catalog.update_tags(name, version, additions, removals)
        if records is None:
            raise self._not_found(name, version)
        before, after = records
        return TagChange(version=self._model(after), previous=before.tags)

    def add_properties(
        self, name: str, version: int | None, properties: Mapping[str, str]
    ) -> ModelVersion:
        """Add new properties; an existing key given another value refuses the whole call
        (Azure ML refuses any existing key; its current value again is accepted here).
        ``version`` None: the latest version."""
        name, version = self._pin(name, version)
        validate_name(name)
        _check_version(version, name, allow_none=True)
        record = self._catalog.add_properties(name, version, _str_map(properties, "Properties"))
        if record is None:
            raise self._not_found(name, version)
        return self._model(record)

    def set_description(
        self, name: str, version: int | None, description: str | None
    ) -> ModelVersion:
        """``version`` None: the latest version."""
        name, version = self._pin(name, version)
        validate_name(name)
        _check_version(version, name, allow_none=True)
        _optional_str(description, "description")
        record = self._catalog.set_description(name, version, description)
        if record is None:
            raise self._not_found(name, version)
        return self._model(record)

    # --- delete ------------------------------------------------------------------------------

    def plan_delete(
        self, name: str, version: int | None = None, *, force: bool = False
    ) -> DeletePlan:
        """What ``delete`` would remove: one version, or every version when ``version`` is None
        (``name`` may be ``NAME@ALIAS``: that one version). A version an alias points at is
        AliasInUseError unless ``force``: then the plan lists the aliases removed with it."""
        name, version = self._pin(name, version)
        validate_name(name)
        if version is None:
            versions = self.list(name)
            if not versions:
                raise self._not_found(name, None)
        else:
            versions = [self.get(name, version)]
        planned = {v.version for v in versions}
        aliases = [a for a in self.aliases(name) if a.version in planned]
        if aliases and not force:
            raise alias_in_use(name, {a.alias: a.version for a in aliases})
        return DeletePlan(
            versions=versions, bytes=sum(v.size for v in versions), dry_run=True, aliases=aliases
        )

    def delete(
        self,
        name: str,
        version: int | None = None,
        *,
        dry_run: bool = False,
        force: bool = False,
    ) -> DeletePlan:
        """Remove one version (or all of them). Numbers are never handed out again. A version an
        alias points at is refused (AliasInUseError) unless ``force``, which removes the alias
        too, in the same transaction, and records that in the alias history."""
        if dry_run:
            return self.plan_delete(name, version, force=force)
        name, version = self._pin(name, version)
        validate_name(name)
        _check_version(version, name, allow_none=True)
        done = self._delete(name, None if version is None else [version], aliases=force)
        if done is None:
            raise self._not_found(name, version)
        return done

    def delete_planned(self, plan: DeletePlan) -> DeletePlan:
        """Remove exactly the versions of a ``plan_delete`` plan, once it was confirmed.

        A version registered after the plan was made was never shown, so it is kept; one deleted
        meanwhile is skipped. ModelNotFoundError if none of the planned versions is left.
        """
        names = {v.name for v in plan.versions}
        if len(names) != 1:
            raise InvalidArgumentError(
                "a delete plan must hold versions of exactly one name; make it with plan_delete"
            )
        name = names.pop()
        for planned in plan.versions:  # a plan can be built or copied by hand
            _check_version(planned.version, name)
        done = self._delete(
            name, [v.version for v in plan.versions], aliases={a.alias for a in plan.aliases}
        )
        if done is None:
            raise ModelNotFoundError(
                f"{', '.join(v.id for v in plan.versions)} are no longer registered (deleted "
                "meanwhile); nothing was deleted"
            )
        return done

    def _delete(
        self,
        name: str,
        versions: builtins.list[int] | None,
        *,
        aliases: bool | set[str] = False,
    ) -> DeletePlan | None:
        """Remove the given ready versions of ``name`` (all when None); None if none exists.
        A damaged catalog is refused first: rows it cannot read right could point at the wrong
        folders. ``aliases``: which aliases may be removed with them (see
        ``Catalog.start_delete``)."""
        self._catalog.check_integrity()
        token = self._store.new_token()
        removed: dict[str, int] = {}
        by = _who()
        with self._store.token_lock(token), self._lease(token, DELETE, name):
            records = self._catalog.start_delete(
                name, versions, token, aliases=aliases, by=by, removed=removed
            )
            if not records:
                return None
            try:
                trash = self._store.unpublish(name, [r.version for r in records], token)
            except BaseException:
                for record in records:  # nothing moved: the versions are visible again
                    self._catalog.set_state(record.id, READY, expected=DELETING)
                if removed:  # and so are the aliases --force removed with them
                    self._catalog.restore_aliases(name, removed, by)
                with contextlib.suppress(OSError):  # only if empty: a folder that could not be
                    os.rmdir(self.layout.trash_dir / token)  # put back is left for doctor
                raise
            self._catalog.forget((r.id for r in records), release=token)
            with contextlib.suppress(OSError):  # a leftover in trash is doctor's; delete is done
                self._store.empty_trash(trash)
        models = [self._model(r) for r in sorted(records, key=lambda r: -r.version)]
        return DeletePlan(
            versions=models,
            bytes=sum(m.size for m in models),
            dry_run=False,
            aliases=[Alias(name=name, alias=a, version=v) for a, v in sorted(removed.items())],
        )

    # --- aliases and prune -------------------------------------------------------------------
    #
    # An alias is a movable name for one version (``NAME@ALIAS``, accepted wherever a name or
    # REF is); every move is kept in the catalog's alias history, written in the same
    # transaction as the move. Prune plans like delete and runs through the same machinery.

    def set_alias(self, ref: str, alias: str, version: int | None = None) -> AliasMove:
        """Point ``alias`` at the version ``ref`` names (``NAME`` with ``version``, or a REF:
        ``NAME``, ``NAME:VERSION``, ``NAME:latest``, ``NAME@OTHER``). Concurrent moves are
        serialised: the last one wins and every one is in the history."""
        if not isinstance(ref, str):
            raise BadArgumentTypeError(f"ref must be a str, not {type(ref).__name__}")
        validate_alias(alias)
        parsed = parse_ref(ref)
        if version is not None and (parsed.version is not None or parsed.alias is not None):
            raise InvalidArgumentError(
                f"{ref!r} already names a version: give a REF or a name and a version, not both"
            )
        model = self.get(parsed.target, parsed.version if version is None else version)
        move = self._catalog.set_alias(model.name, alias, model.version, _who())
        if move is None:  # deleted between the look-up and the move
            raise self._not_found(model.name, model.version)
        return _alias_move(move)

    def remove_alias(self, name: str, alias: str) -> AliasMove:
        """Remove ``name@alias`` (recorded in the history); AliasNotFoundError if not set."""
        validate_name(name)
        validate_alias(alias)
        move = self._catalog.remove_alias(name, alias, _who())
        if move is None:
            raise self._alias_not_found(name, alias)
        return _alias_move(move)

    def aliases(self, name: str | None = None) -> builtins.list[Alias]:
        """Every alias (of ``name`` when given), by name then alias."""
        if name is not None:
            validate_name(name)
        return [
            Alias(name=a.name, alias=a.alias, version=a.version)
            for a in self._catalog.aliases(name)
        ]

    def alias_history(self, name: str) -> builtins.list[AliasMove]:
        """Every move of the aliases of ``name``, oldest first (kept after versions and aliases
        are gone: it is the record of which version held which role)."""
        validate_name(name)
        return [_alias_move(m) for m in self._catalog.alias_history(name)]

    def plan_prune(self, name: str, keep: int) -> DeletePlan:
        """What ``prune`` would delete: every version of ``name`` but the ``keep`` highest,
        except those an alias points at (listed in ``kept``). The plan may hold no version."""
        validate_name(name)
        if type(keep) is not int or keep < 0:
            raise InvalidArgumentError(
                f"keep must be a whole number of versions (0 or more), not {keep!r}"
            )
        models = self.list(name)  # highest version first
        if not models:
            raise self._not_found(name, None)
        older = models[keep:]
        aliased = {a.version: a for a in self.aliases(name)}
        kept = [a for a in self.aliases(name) if a.version in {m.version for m in older}]
        doomed = [m for m in older if m.version not in aliased]
        return DeletePlan(
            versions=doomed, bytes=sum(m.size for m in doomed), dry_run=True, kept=kept
        )

    def prune(self, name: str, keep: int, *, dry_run: bool = False) -> DeletePlan:
        """Delete every version of ``name`` but the ``keep`` highest and those aliases point at.
        A version registered meanwhile is kept; an alias set meanwhile on a planned version
        refuses the prune (AliasInUseError, nothing deleted)."""
        plan = self.plan_prune(name, keep)
        if dry_run or not plan.versions:
            return plan
        done = self.delete_planned(plan)
        return done.model_copy(update={"kept": plan.kept})

    def _pin(self, name: str, version: int | None) -> tuple[str, int | None]:
        """``(name, version)`` for a call that accepts ``NAME@ALIAS``: the version the alias
        points at when the call begins (a metadata update then runs in one transaction on that
        version, so an alias moved meanwhile never splits one change across two versions)."""
        if type(name) is str and "@" in name:
            return self._resolve_alias(name, version)
        return name, version

    def _resolve_alias(self, target: str, version: int | None) -> tuple[str, int]:
        """``NAME@ALIAS`` -> (name, the version the alias points at)."""
        ref = parse_alias_ref(target)
        if version is not None:
            raise InvalidArgumentError(
                f"{target!r} already names a version: give an alias or a version, not both"
            )
        if ref.alias is None:  # NAME@latest
            return ref.name, self.get(ref.name).version
        found = self._catalog.locate_alias(ref.name, ref.alias)
        if found is None:
            raise self._alias_not_found(ref.name, ref.alias)
        return ref.name, found[0]

    def _alias_path(self, target: str, version: int | None) -> Path:
        ref = parse_alias_ref(target)
        if version is not None:
            raise InvalidArgumentError(
                f"{target!r} already names a version: give an alias or a version, not both"
            )
        if ref.alias is None:  # NAME@latest
            return self.path(ref.name)
        found = self._catalog.locate_alias(ref.name, ref.alias)
        if found is None:
            raise self._alias_not_found(ref.name, ref.alias)
        path = Path(f"{self._models_prefix}{ref.name}{os.sep}{found[0]}{os.sep}{found[1]}")
        return self._cached(ref.name, found[0], path)

    def _alias_not_found(self, name: str, alias: str) -> ModelNotFoundError:
        if not self._catalog.versions(name):
            return self._not_found(name, None)
        known = [a.alias for a in self._catalog.aliases(name)]
        has = f"its aliases are {_listing(known)}" if known else "it has no alias"
        removed = [m for m in self._catalog.alias_history(name) if m.alias == alias]
        if removed and removed[-1].to_version is None:  # it existed: say when it went
            last = removed[-1]
            when = last.at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
            has = (
                f"it pointed at {name}:{last.from_version} until {last.by} removed it on {when}"
                f"; {has}"
            )
        return AliasNotFoundError(
            f"model {name!r} has no alias {alias!r}; {has}",
            hint=f"set one with Registry.set_alias('{name}:VERSION', {alias!r})",
            remedy="set_alias",
            name=name,
            alias=alias,
        )

    # --- integrity ---------------------------------------------------------------------------

    def verify(
        self, name: str | None = None, version: int | None = None, *, store: bool = False
    ) -> VerifyReport:
        """Re-hash stored files against their manifest: missing, changed and extra files, and any
        second item in a version folder (which breaks Azure ML's ``get_model_path``). With a
        shared store, this home's tree is a cache: a version not cached here is reported with
        ``cached=False`` and nothing to check. ``store=True``: check the shared store's blobs
        instead (missing and changed files), whether this home cached the version or not."""
        if store and self._store_url is None:
            raise InvalidArgumentError(
                "verify: this home has no shared model store to check (MODELSTORE_STORE_URL "
                "is not set); verify without store=True checks the home's tree"
            )
        if version is not None and name is None:
            raise InvalidArgumentError(
                "verify: a version needs a model name (name=..., version=...)"
            )
        if name is not None:  # NAME@ALIAS: the one version it points at
            name, version = self._pin(name, version)
        self._catalog.check_integrity()  # verify vouches for the whole store, catalog included
        if name is None:
            records = self._catalog.ready_versions()
        elif version is None:
            validate_name(name)
            records = self._catalog.ready_versions(name)
            if not records:
                raise self._not_found(name, None)
        else:
            validate_name(name)
            _check_version(version, name)
            record = self._catalog.get(name, version)
            if record is None:
                raise self._not_found(name, version)
            records = [record]
        manifests = self._catalog.manifests(r.id for r in records)
        buffer = new_buffer()
        checks: builtins.list[VersionCheck] = []
        # A blob shared by several versions (re-registered bytes) is read and hashed once.
        checker = functools.partial(self._check_blobs, checked={}) if store else self._check
        for record in records:
            check = checker(record, manifests.get(record.id, []), buffer)
            confirmed = check if check.ok else self._confirm_damage(record, check, buffer, checker)
            if confirmed is not None:
                checks.append(confirmed)
        if name is not None and not checks:  # every version asked for was deleted meanwhile
            raise self._not_found(name, version)
        return VerifyReport(versions=checks)

    def _confirm_damage(
        self,
        record: VersionRecord,
        check: VersionCheck,
        buffer: bytearray,
        checker: Callable[
            [VersionRecord, builtins.list[FileRecord] | None, bytearray], VersionCheck
        ],
    ) -> VersionCheck | None:
        """A version found damaged may just have been deleted by another process while it was
        checked (its folder renamed out of the tree): that is not damage. The catalog marks a
        version deleting before its folder moves, so once it no longer lists the version ready,
        the version is dropped from the report; if a failed delete put it back meanwhile (its
        row carries that delete's token), its folder is checked once more."""
        current = self._catalog.get(record.name, record.version)
        if current is None or current.id != record.id:
            return None
        if current.token != record.token:
            return checker(current, None, buffer)
        return check

    def _check_blobs(
        self,
        record: VersionRecord,
        files: builtins.list[FileRecord] | None,
        buffer: bytearray,
        checked: dict[tuple[str, int], str | None],
    ) -> VersionCheck:
        """``_check`` of the shared store's copy: each file's blob present and matching.
        ``checked``: (sha256, size) -> problem of the blobs checked so far in this verify."""
        assert self._store_url is not None  # verify(store=True) refuses a home without a store
        if files is None:
            files = self._catalog.files(record.id)
        problems: dict[str, str | None] = {}
        for f in files:
            key = (f.sha256, f.size)
            if key not in checked:
                checked[key] = self._blobs.check(f.sha256, f.size, buffer)
            problems[f.relpath] = checked[key]
        return VersionCheck(
            name=record.name,
            version=record.version,
            id=f"{record.name}:{record.version}",
            missing=sorted(r for r, problem in problems.items() if problem == "missing"),
            changed=sorted(r for r, problem in problems.items() if problem == "changed"),
        )

    def _check(
        self,
        record: VersionRecord,
        files: builtins.list[FileRecord] | None = None,
        buffer: bytearray | None = None,
    ) -> VersionCheck:
        if files is None:
            files = self._catalog.files(record.id)
        folder = os.fspath(self.layout.version_dir(record.name, record.version))
        subject = f"{record.name}:{record.version}"
        if self._store_url is not None and not os.path.lexists(folder):
            return VersionCheck(name=record.name, version=record.version, id=subject, cached=False)
        tree = check_version(
            folder,
            record.entry,
            {f.relpath: (f.size, f.sha256) for f in files},
            buffer=buffer,
        )
        return VersionCheck(
            name=record.name,
            version=record.version,
            id=subject,
            missing=tree.missing,
            changed=tree.changed,
            extra=tree.extra,
            foreign_entries=tree.foreign_entries,
        )

    def doctor(self, repair: bool = False, *, foreign: ForeignAction = "report") -> DoctorReport:
        """Find (and with ``repair`` clean) what interrupted work left behind.

        Repair removes only modelstore's own leftovers. An item in the tree that no catalog row
        accounts for (a *foreign* item: bytes modelstore cannot vouch for) is only reported,
        unless ``foreign`` says to ``"adopt"`` it (record a valid version folder as it is) or
        to ``"move-aside"`` it into ``.modelstore/foreign/``; it is never deleted. A damaged
        catalog is CatalogDamagedError before anything is looked at.
        """
        from modelstore.registry.doctor import Doctor

        self._catalog.check_integrity()
        doctor = Doctor(
            self._catalog,
            self._store,
            self._check,
            self._adopt,
            owner=this_process(str(self.home)),
            shared=self._store_url is not None,
            in_store=self._in_store,
            folder_in_store=self._folder_in_store,
        )
        return doctor.run(repair, foreign)

    def _folder_in_store(self, folder: Path) -> bool:
        """Whether the bytes of every file under ``folder`` are in the shared store, each file
        hashed (its name says nothing). False at the first that is not, at anything but a
        plain file or folder, and when the store cannot be asked."""
        if self._store_url is None:
            return False
        buffer = new_buffer()
        try:
            for root, folders, files in os.walk(folder):
                for entry in [*folders, *files]:
                    if os.path.islink(os.path.join(root, entry)):
                        return False
                for file in files:
                    path = os.path.join(root, file)
                    if not os.path.isfile(path):
                        return False
                    if not self._blobs.has(hash_file(path, buffer)[1]):
                        return False
        except (OSError, StorageError):
            return False
        return True

    def _in_store(self, record: VersionRecord) -> bool:
        """Whether every file of the version is in the shared store (a blob that exists is
        complete: it is written whole or not at all)."""
        if self._store_url is None:
            return False
        blobs = self._blobs
        return all(blobs.has(f.sha256) for f in self._catalog.files(record.id))

    def _adopt(self, name: str, folder: str) -> None:
        """Record a folder of the tree as it is; with a shared store its bytes are uploaded
        first, so every home can materialise the adopted version."""
        from modelstore.registry.rebuild import version_from_tree

        new = version_from_tree(self.layout, name, folder)
        if self._store_url is not None:
            root = self.layout.version_dir(name, int(folder))
            upload_missing(
                self._blobs,
                [(os.path.join(root, *f.relpath.split("/")), f.sha256) for f in new.files],
            )
        self._catalog.adopt(new, int(folder))

    @classmethod
    def plan_rebuild_catalog(
        cls, home: str | os.PathLike[str] | None = None, db_url: str | None = None
    ) -> RebuildPlan:
        """What ``rebuild_catalog`` would do for a missing, empty or damaged catalog: the
        versions the tree holds and the metadata that cannot come back. CatalogError when the
        catalog is healthy (rebuilding it would only lose metadata) or there is no tree."""
        from modelstore.registry.rebuild import plan_rebuild

        root = (Path(home).expanduser() if home is not None else default_home()).absolute()
        url, problem = cls._diagnose_catalog(root, db_url)
        _refuse_shared_home(Store(StoreLayout(root)), root, url)  # a cache is not a registry
        return plan_rebuild(root, url, problem)

    @classmethod
    def rebuild_catalog(cls, plan: RebuildPlan, db_url: str | None = None) -> RebuildPlan:
        """Carry out a ``plan_rebuild_catalog`` plan once it was confirmed: the old catalog files
        are moved to ``.modelstore/lost-catalogs/<time>/`` and a new catalog records every
        planned version from the tree. Run it while no other process uses the registry."""
        from modelstore.registry.rebuild import rebuild

        url, _problem = cls._diagnose_catalog(
            Path(plan.home), db_url
        )  # still broken: nobody fixed it since
        return rebuild(plan, url)

    @classmethod
    def _diagnose_catalog(cls, home: Path, db_url: str | None) -> tuple[str, str]:
        """(catalog URL, what is wrong with it), or CatalogError when there is nothing to
        rebuild: the catalog opens read-only and passes ``quick_check``."""
        from modelstore.registry.rebuild import catalog_file, catalog_url

        try:
            registry = cls(home, db_url, read_only=True)
        except (CatalogLostError, CatalogDamagedError) as exc:
            return catalog_url(home, db_url), exc.message.partition("; nothing was changed")[0]
        try:
            registry._catalog.check_integrity()
        except CatalogDamagedError as exc:
            return registry.db_url, exc.message.partition("; nothing was changed")[0]
        finally:
            registry.close()
        raise CatalogError(
            f"the catalog {catalog_file(registry.db_url)} is readable and undamaged, so there is "
            "nothing to rebuild (its metadata would be lost)",
            hint="Registry.doctor() compares it with the tree",
            remedy="compare_tree",
            catalog=catalog_file(registry.db_url),
        )

    # --- archives: export / import (see registry_archive) ------------------------------------

    def export(
        self, refs: Sequence[str], path: str | os.PathLike[str]
    ) -> registry_archive.ExportReport:
        """Write the versions named by ``refs`` (with their metadata and a sha256 manifest) to
        one tar archive, compressed when the name ends in .tar.gz/.tgz, .tar.bz2 or .tar.xz."""
        from modelstore.registry.archive import compression_for, export

        if isinstance(refs, str | os.PathLike) or not refs:
            raise InvalidArgumentError(
                "give a list of model references to export (e.g. ['m:1', 'm:2'])"
            )
        compression_for(os.fspath(path))  # a bad file name is refused before any look-up
        versions = []
        for ref in refs:
            parsed = parse_ref(ref)
            model = self.get(parsed.name, parsed.version)
            versions.append((model.name, model.version))
        return export(self._catalog, self._store, versions, path)

    @staticmethod
    def check_import_source(source: str | os.PathLike[str]) -> None:
        """``plan_import``'s checks that need no registry: run before a registry is opened (as
        the CLI does), a missing archive never creates a home that did not exist."""
        from modelstore.registry.archive import check_import_source

        check_import_source(source)

    def plan_import(
        self,
        source: str | os.PathLike[str],
        *,
        skip_existing: bool = False,
        with_aliases: bool = False,
    ) -> registry_archive.ImportPlan:
        """What importing an archive or an ``azureml-models`` folder would add, skip and refuse;
        nothing is written. ``with_aliases``: also set the aliases the archive records for its
        versions where this registry has none of that name; one pointing at another version
        here refuses the import (an import never moves an alias). With a shared store, the
        imported bytes are uploaded before any number is taken (see ``import_planned``)."""
        from modelstore.registry.archive import plan_import

        return plan_import(
            self._catalog,
            self._store,
            source,
            skip_existing=skip_existing,
            with_aliases=with_aliases,
        )

    def import_planned(
        self,
        plan: registry_archive.ImportPlan,
        progress: Callable[[int, int], None] | None = None,
    ) -> registry_archive.ImportPlan:
        """Carry out an import plan, all or nothing: ImportConflictError if it has conflicts,
        ArchiveError if any file does not match the manifest (nothing is then visible). With a
        shared store, every blob the store lacks is uploaded from the staged copies before
        the numbers are taken, as for ``register``; this home caches the imported versions
        at once, the others on first use."""
        from modelstore.registry.archive import import_planned

        upload = None
        if self._store_url is not None:
            blobs = self._blobs
            upload = lambda files: upload_missing(blobs, files)  # noqa: E731
        return import_planned(self._catalog, self._store, plan, progress, _who(), upload)

    def import_(
        self,
        source: str | os.PathLike[str],
        *,
        skip_existing: bool = False,
        with_aliases: bool = False,
    ) -> registry_archive.ImportPlan:
        """``plan_import`` then ``import_planned``."""
        return self.import_planned(
            self.plan_import(source, skip_existing=skip_existing, with_aliases=with_aliases)
        )

    # --- deploy ------------------------------------------------------------------------------

    def deploy(
        self,
        refs: Sequence[str | os.PathLike[str]],
        app_root: str | os.PathLike[str],
        *,
        copy: bool = False,
        force: bool = False,
    ) -> Deployment:
        """Lay out registered versions (REFs) and/or local files as an Azure ML app root."""
        sources = self._sources(refs)
        return build_deployment(sources, app_root, copy=copy, force=force, store_dir=self.home)

    def temporary_deployment(
        self,
        refs: Sequence[str | os.PathLike[str]],
        app_root: str | os.PathLike[str] | None = None,
        *,
        copy: bool = False,
        keep: bool = False,
        prefix: str = TEMPORARY_PREFIX,
        parent: str | os.PathLike[str] | None = None,
        subfolder: str | None = None,
    ) -> contextlib.AbstractContextManager[Deployment]:
        """``deploy`` for the length of a ``with`` block: a new temporary app root (or a given
        new or empty one), removed with everything laid out when the block ends, also on an
        error or Ctrl-C (``keep=True`` leaves it). The models are resolved now, so an unknown
        REF fails before any folder is made. The block gets the Deployment; applying its
        ``env`` is the caller's choice (see ``deployment.temporary``)::

            with registry.temporary_deployment(["my_model:1"]) as deployment:
                subprocess.run(["python", "check.py"], env={**os.environ, **deployment.env})
        """
        return temporary(
            self._sources(refs),
            app_root,
            copy=copy,
            keep=keep,
            store_dir=self.home,
            prefix=prefix,
            parent=parent,
            subfolder=subfolder,
        )

    def _sources(self, refs: Sequence[str | os.PathLike[str]]) -> builtins.list[ModelSource]:
        """Resolve each REF or path once, refusing a model given twice."""
        if isinstance(refs, str | os.PathLike):
            raise BadArgumentTypeError("refs must be a list of model references or paths")
        sources: builtins.list[ModelSource] = []
        seen: dict[tuple[str, int], str] = {}
        for ref in refs:
            source = self._resolve_source(ref, ModelSource)
            key = (source.name, source.version)
            if key in seen:
                raise DeploymentRefusedError(
                    f"{os.fspath(ref)!r} and {seen[key]!r} both deploy {source.name}:"
                    f"{source.version}; give each model once"
                )
            seen[key] = os.fspath(ref)
            sources.append(source)
        return sources

    def _resolve_source(self, ref: str | os.PathLike[str], source_class: Any) -> Any:
        malformed: ModelstoreError | None = None
        if isinstance(ref, str):
            try:
                parsed = parse_ref(ref)
            except ModelstoreError as exc:
                parsed, malformed = None, exc
            if parsed is not None and self._catalog.versions(parsed.name):
                model = self.get(parsed.target, parsed.version)
                entry_path = self._cached(model.name, model.version, model.path)
                return source_class(
                    name=model.name, version=model.version, entry_path=entry_path, registered=True
                )
        if not isinstance(ref, str | os.PathLike):
            raise BadArgumentTypeError(
                f"a model to deploy must be a REF or a path, not {type(ref).__name__}"
            )
        local = Path(ref)
        if os.fspath(ref) and os.path.exists(local):  # False (no OSError) for a too long name
            absolute = local.absolute()
            return source_class(
                name=local_model_name(absolute),
                version=LOCAL_MODEL_VERSION,
                entry_path=absolute,
                registered=False,
            )
        if isinstance(malformed, VersionOutOfRangeError):
            raise malformed  # can name no version, registered or not: bad input
        if malformed is not None and isinstance(ref, str):  # e.g. m:0 for a registered m
            name = ref.partition(":")[0]
            versions = [str(version) for version in self._catalog.versions(name)]
            if versions:
                raise ModelNotFoundError(f"{malformed}; {name} has versions {_listing(versions)}")
        names = self._catalog.names()
        known = _listing(names) if names else "none (the registry is empty)"
        raise ModelNotFoundError(
            f"{os.fspath(ref)!r} is neither a registered model nor an existing file or folder; "
            f"registered models: {known}"
        )

    # --- helpers -----------------------------------------------------------------------------

    def _model(self, record: VersionRecord) -> ModelVersion:
        return ModelVersion(
            id=f"{record.name}:{record.version}",
            path=self.layout.entry_path(record.name, record.version, record.entry),
            **{name: getattr(record, name) for name in RECORDED_FIELDS},
        )

    def _not_found(self, name: str, version: int | None) -> ModelNotFoundError:
        versions = self._catalog.versions(name)
        if not versions:
            names = self._catalog.names()
            if names:
                return ModelNotFoundError(
                    f"model {name!r} is not registered; registered models: {_listing(names)}",
                    name=name,
                    version=version,
                )
            return ModelNotFoundError(
                f"model {name!r} is not registered; the registry is empty",
                hint="register one with Registry.register(path, name)",
                remedy="register",
                name=name,
                version=version,
            )
        return ModelNotFoundError(
            f"model {name!r} has no version {version}; its versions are "
            f"{_listing([str(v) for v in versions])} (use one of them or {name}:latest)",
            name=name,
            version=version,
            versions=versions,
        )


def _who() -> str:
    """user@host, for the alias history: who moved an alias, from where."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name (a container without a passwd entry)
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


def _alias_move(move: AliasMoveRecord) -> AliasMove:
    return AliasMove(
        name=move.name,
        alias=move.alias,
        from_version=move.from_version,
        to_version=move.to_version,
        at=move.at,
        by=move.by,
    )


# --- argument checks ---------------------------------------------------------------------------


def _blank_file(path: str) -> bool:
    """No catalog there yet: the file is missing or has no byte (SQLite's own new database)."""
    try:
        return os.stat(path).st_size == 0
    except (FileNotFoundError, NotADirectoryError):
        return True


def _refuse_read_only_home(home: Path) -> None:
    """A write needs the home writable (locks, staging, the tree): say so before any of it is
    tried, rather than fail on the first lock file."""
    from modelstore.errors import StorageError

    if os.path.isdir(home) and not os.access(home, os.W_OK):
        raise StorageError(
            f"the registry home {home} is read-only (a read-only mount or folder)",
            hint="writing needs a writable home; Registry(home, read_only=True) reads it",
            remedy="read_only_home",
            path=str(home),
        )


def _make_home(home: Path) -> None:
    from modelstore.errors import StorageError

    try:
        home.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StorageError(
            f"the registry home {home} exists and is not a folder",
            hint="choose another home",
            remedy="choose_home",
            path=str(home),
        ) from None
    except OSError as exc:
        raise StorageError(
            f"cannot create the registry home {home} ({exc.strerror})",
            hint="choose a writable home",
            remedy="choose_writable_home",
            path=str(home),
        ) from None


def _refuse_shared_home(store: Store, home: Path, db_url: str) -> None:
    record = store.shared_record()
    if record is None or record.get("catalog") == _shown_url(db_url):
        return
    catalog, shared = record.get("catalog", "?"), record.get("store", "?")
    raise SharedHomeError(
        f"{home} caches the shared registry whose catalog is {catalog} and whose store is "
        f"{shared}, but it was opened with the catalog {_shown_url(db_url)}; set "
        f"MODELSTORE_DB_URL to that catalog (with its password) and MODELSTORE_STORE_URL={shared}"
        ", as on the team's other machines (nothing was changed; if that registry is gone for "
        "good and this home is to become a registry of its own, delete "
        f"{store.layout.shared_marker} first)",
        home=str(home),
        catalog=catalog,
        store=shared,
    )


def _check_arguments(
    path: object,
    name: str,
    description: str | None,
    framework: str | None,
    framework_version: str | None,
    version: int | None,
) -> None:
    """``register``'s checks before the source is looked at, in Azure ML's order."""
    validate_name(name)
    if version is not None:
        _check_version(version, name)
    if framework_version is not None and not framework:
        raise InvalidArgumentError(
            "Model framework version cannot be provided without a valid framework; "
            "give the framework too (e.g. framework='ScikitLearn')"
        )
    _optional_str(framework, "framework")
    _optional_str(framework_version, "framework_version")
    _optional_str(description, "description")
    if isinstance(path, bytes) or not isinstance(path, str | os.PathLike):
        raise BadArgumentTypeError(f"path must be a str or os.PathLike, not {type(path).__name__}")


def _check_version(version: object, name: object, *, allow_none: bool = False) -> None:
    if version is None and allow_none:
        return
    if type(version) is not int:
        raise BadArgumentTypeError(
            f"version must be an int (e.g. 1), not {type(version).__name__} {version!r}"
        )
    if version < 1:
        raise InvalidArgumentError(f"version must be 1 or more, not {shown_number(version)}")
    check_version_range(name if isinstance(name, str) else None, version)


def _optional_str(value: object, what: str) -> None:
    if value is not None and not isinstance(value, str):
        raise BadArgumentTypeError(f"{what} must be a str, not {type(value).__name__}")


def _str_map(value: object, what: str) -> dict[str, str]:
    """Tags / properties: a mapping of str to str (Azure ML: '<What> must be a dict')."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadArgumentTypeError(
            f"{what} must be a dict of str to str, not {type(value).__name__}"
        )
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise BadArgumentTypeError(
                f"{what} must be a dict of str to str; {key!r}: {item!r} is not "
                "(convert the value with str())"
            )
        if not key:
            raise InvalidArgumentError(f"{what}: a key cannot be empty")
        result[key] = item
    return result


def _str_list(value: object, what: str) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise BadArgumentTypeError(f"{what} must be a list of str, not {type(value).__name__}")
    items = list(value)
    for item in items:
        if not isinstance(item, str):
            raise BadArgumentTypeError(f"{what} must be a list of str; {item!r} is not")
    return items


def _filter_items(value: object, what: str) -> list[tuple[str, str | None]]:
    """Azure ML filter items: ``"key"`` or a pair ``["key", "value"]`` (a tuple is accepted)."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise BadArgumentTypeError(
            f'Expected {what} must be list type. Ex. ["key", ["key2", "key2 value"]]: '
            f"provided {type(value)}"
        )
    items: list[tuple[str, str | None]] = []
    for item in value:
        if isinstance(item, str):
            items.append((item, None))
        elif (
            isinstance(item, list | tuple)
            and len(item) == 2
            and all(isinstance(part, str) for part in item)
        ):
            items.append((item[0], item[1]))
        else:
            raise InvalidArgumentError(
                f'{what} filter item {item!r} is malformed: use "key" or ["key", "value"]'
            )
    return items


def _matches(values: Mapping[str, str], items: list[tuple[str, str | None]]) -> bool:
    for key, wanted in items:
        if key not in values:
            return False
        if wanted is not None and values[key] != wanted:
            return False
    return True


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    more = len(items) - _SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


def _shown_url(url: str) -> str:
    """A catalog URL as an error may show it: without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: shown as given
        return url
