"""The one exception hierarchy of modelstore.

Every error a user can cause or meet derives from :class:`ModelstoreError`, so callers catch
one class. Errors speak Python: ``str(exc)`` says what is wrong (``exc.message``) and what to do
in Python terms (``exc.hint``: ``force=True``, ``home=``, ``Registry.rebuild_catalog``), and
each class carries the structured fields a caller needs (``name``, ``version``, ``versions``,
``path``, ``catalog``, ``home``...). ``exc.remedy`` names the advised action as a stable key
(see :class:`Remedy`), so a front end can word the same advice its own way: the ``modelstore``
command turns it into flag advice ("pass --force") and chooses the exit code from the class
(``modelstore.cli.errors``); the library itself knows nothing of flags or exit codes. Where
Azure ML raises a builtin (``TypeError``, ``LookupError``) our class also derives from that
builtin, so code written against the SDK's behaviour keeps catching it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

Remedy = Literal[
    "rebuild_catalog",  # recreate the catalog from the tree (Registry.rebuild_catalog)
    "run_doctor",  # look at what interrupted work left (Registry.doctor)
    "repair",  # clean up leftovers (Registry.doctor(repair=True))
    "check_home",  # the registry home is probably mistyped (home= / MODELSTORE_HOME)
    "check_catalog_url",  # the catalog URL or file is probably wrong (db_url= / home=)
    "choose_home",  # the home cannot be a registry home (not a folder, not writable)
    "read_only_home",  # a read-only home can only be read
    "upgrade_catalog",  # an older catalog schema needs one writing open
    "compare_tree",  # compare a healthy catalog with the tree (Registry.doctor)
    "choose_writable_home",  # the home cannot be created there
    "register",  # the registry is empty
    "force",  # the deployment target is not empty: replace it on purpose
    "copy",  # a link would break: copy instead
    "alias_in_use",  # aliases point at versions to delete: move them, or force
    "set_alias",  # the alias does not exist yet
    "empty_app_root",  # a temporary deployment's given app root is not empty
    "check_list",  # numbers were taken meanwhile: look at the registry and retry
    "verify",  # stored files no longer match: verify the version
    "verify_store",  # the shared model store's copy does not match: check the store
    "export",  # not a modelstore archive: make one with export
    "check_env",  # --check-env refused a mismatched environment
]

REBUILD_CATALOG_HINT = (
    "recreate the catalog from the azureml-models tree with "
    "Registry.rebuild_catalog(Registry.plan_rebuild_catalog(home)), or restore it from a backup"
)


class ModelstoreError(Exception):
    """Base class of every error raised on purpose by modelstore.

    ``message`` says what is wrong, ``hint`` (or None) what to do, in Python terms; ``remedy``
    (or None) is that advice as a key a front end can reword. ``str(exc)`` is
    ``"<message>; <hint>"``."""

    def __init__(
        self, message: str = "", *, hint: str | None = None, remedy: Remedy | None = None
    ) -> None:
        super().__init__(message if hint is None else f"{message}; {hint}")
        self.message = message
        self.hint = hint
        self.remedy: Remedy | None = remedy


# --- bad input: nothing was changed ----------------------------------------------------------


class UsageError(ModelstoreError):
    """The caller asked for something malformed; nothing was changed."""


class InvalidNameError(UsageError, ValueError):
    """A model name breaks the Azure ML naming rule."""


class InvalidRefError(UsageError, ValueError):
    """A model reference (``name``, ``name:VERSION``, ``name:latest``) is malformed."""


class InvalidAliasError(UsageError, ValueError):
    """An alias breaks the alias rule (``modelstore.layout.validate_alias``) or is reserved."""

    def __init__(self, message: str, *, alias: str) -> None:
        super().__init__(message)
        self.alias = alias


class VersionOutOfRangeError(UsageError, ValueError):
    """A version number the catalog cannot hold: versions are 1 to 2**63-1 (an SQLite INTEGER),
    so a larger one can name no version; refused before any query instead of overflowing."""

    def __init__(self, message: str, *, name: str | None, version: int) -> None:
        super().__init__(message)
        self.name = name
        self.version = version


class InvalidModelPathError(UsageError):
    """The file or folder offered for registration cannot be stored as a model."""


class InvalidArgumentError(UsageError, ValueError):
    """An option or argument value is malformed (a tag without ``=``, a bad port...)."""


class BadArgumentTypeError(UsageError, TypeError):
    """An argument has the wrong type (``version="1"``, ``model_name=None``), as the SDK's
    ``WebserviceException`` for those cases; a ``TypeError`` so plain Python code catches it."""


class DeploymentRefusedError(UsageError):
    """A deployment was refused before anything was written (target not empty, inside the
    store, duplicate models...). ``app_root`` and ``models_dir`` (its ``azureml-models``
    folder) when the refusal is about them; ``remedy`` ``"force"`` or ``"copy"`` when deploying
    with that option would go through."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        remedy: Remedy | None = None,
        app_root: str | None = None,
        models_dir: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint, remedy=remedy)
        self.app_root = app_root
        self.models_dir = models_dir


class SpecError(UsageError):
    """An Azure ML v2 YAML file (model, online endpoint or online deployment) is malformed.

    Loading only reads, so nothing was started or written. The fields let a caller point at the
    place without parsing the message: ``path`` is the file as the user named it, ``key`` the
    dotted key path inside it (``""`` for the whole file), ``line`` the 1-based line of that key
    when the YAML parser knew it, and ``problem`` what is wrong and what is expected.
    """

    def __init__(self, path: str, key: str, line: int | None, problem: str) -> None:
        self.path = path
        self.key = key
        self.line = line
        self.problem = problem
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {key}: {problem}" if key else f"{where}: {problem}")


# --- the operation failed -----------------------------------------------------------------


class ModelNotFoundError(ModelstoreError, LookupError):
    """No such model or version: in the registry, or for ``get_model_path``. ``name`` and
    ``version`` (None: the latest) say what was asked for; ``versions`` lists the versions that
    exist (empty when the name has none)."""

    def __init__(
        self,
        message: str,
        *,
        name: str | None = None,
        version: int | None = None,
        versions: Sequence[int] = (),
        hint: str | None = None,
        remedy: Remedy | None = None,
    ) -> None:
        super().__init__(message, hint=hint, remedy=remedy)
        self.name = name
        self.version = version
        self.versions = list(versions)


class AliasNotFoundError(ModelNotFoundError):
    """``NAME@ALIAS`` names an alias that does not exist (never set, or removed)."""

    def __init__(self, message: str, *, name: str, alias: str, **advice: Any) -> None:
        super().__init__(message, **advice)
        self.name = name
        self.alias = alias


class AliasInUseError(ModelstoreError):
    """A delete would remove versions that aliases point at; nothing was deleted. Move or
    remove the aliases first, or delete with ``force`` (which removes them too)."""

    def __init__(self, message: str, *, name: str, aliases: dict[str, int], **advice: Any) -> None:
        super().__init__(message, **advice)
        self.name = name
        self.aliases = aliases


class ModelLayoutError(ModelstoreError):
    """A models folder breaks the Azure ML layout (a version folder without exactly one entry,
    a non-integer version folder, an empty name folder, a name that is a file)."""


class PropertyImmutableError(ModelstoreError):
    """Properties are add-only, as in Azure ML: an existing key cannot be changed. ``keys``:
    the existing keys the call tried to change."""

    def __init__(
        self,
        message: str,
        *,
        name: str | None = None,
        version: int | None = None,
        keys: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.name = name
        self.version = version
        self.keys = list(keys)


class VersionTakenError(ModelstoreError):
    """A registration asked for an exact version number that is not free: the version exists,
    or the number was handed out before (numbers are never reused, even after a delete).
    ``last`` is the highest number the name has used."""

    def __init__(self, message: str, *, name: str, version: int, last: int) -> None:
        super().__init__(message)
        self.name = name
        self.version = version
        self.last = last


class IntegrityError(ModelstoreError):
    """Stored model files no longer match the checksums recorded at registration."""


class StorageError(ModelstoreError):
    """The store could not be written (disk full, permissions); nothing was published.
    ``path``: the file or folder concerned, when one is known."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        hint: str | None = None,
        remedy: Remedy | None = None,
    ) -> None:
        super().__init__(message, hint=hint, remedy=remedy)
        self.path = path


class CatalogError(ModelstoreError):
    """The catalog database cannot be opened or migrated. ``catalog``: its file (or URL) when
    known."""

    def __init__(
        self,
        message: str,
        *,
        catalog: str | None = None,
        hint: str | None = None,
        remedy: Remedy | None = None,
    ) -> None:
        super().__init__(message, hint=hint, remedy=remedy)
        self.catalog = catalog


class RegistryNotFoundError(CatalogError):
    """A read found no registry where it looked: reads never create one (a mistyped home must
    not leave a new empty registry behind). ``home``: where it looked."""

    def __init__(
        self, message: str, *, home: str, catalog: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, catalog=catalog, hint=hint, remedy="check_home")
        self.home = home


class CatalogLostError(CatalogError):
    """The tree holds versions but the catalog is missing, empty or has no schema. Creating a new
    catalog there would turn every stored version into an unknown folder, so nothing opens it
    until ``Registry.rebuild_catalog`` recreates the catalog from the tree. ``versions``: how
    many version folders the tree holds; ``home``: the registry home."""

    def __init__(
        self,
        message: str,
        *,
        catalog: str,
        versions: int,
        home: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, catalog=catalog, hint=hint, remedy="rebuild_catalog")
        self.versions = versions
        self.home = home


class SharedHomeError(CatalogError):
    """The home is the cache of a shared registry (it was used with ``MODELSTORE_STORE_URL``)
    but is opened without that registry's catalog: its version folders are copies of the
    shared store's, not versions of a lost local catalog, so no rebuild is offered.
    ``home``; ``catalog`` (password masked) and ``store``: the registry it caches."""

    def __init__(self, message: str, *, home: str, catalog: str, store: str) -> None:
        super().__init__(message, catalog=catalog)
        self.home = home
        self.store = store


class OwnRegistryHomeError(CatalogError):
    """The home holds a registry of its own (its ``registry.db``) but was opened with another
    catalog (``MODELSTORE_DB_URL``): its version folders are that own catalog's versions, and
    would be taken for the other catalog's versions of the same numbers. ``home``; ``catalog``
    (password masked): the one it was opened with; ``own_catalog``: its own file."""

    def __init__(self, message: str, *, home: str, catalog: str, own_catalog: str) -> None:
        super().__init__(message, catalog=catalog)
        self.home = home
        self.own_catalog = own_catalog


class CatalogDamagedError(CatalogError):
    """The catalog file is corrupt (SQLite reports a malformed image or no database).
    ``problems``: what SQLite reported."""

    def __init__(
        self, message: str, *, catalog: str, problems: list[str], hint: str | None = None
    ) -> None:
        super().__init__(message, catalog=catalog, hint=hint, remedy="rebuild_catalog")
        self.problems = problems


# --- serving ---------------------------------------------------------------------------------


class EntryScriptError(ModelstoreError):
    """The entry script cannot be loaded or started (missing, syntax error, no init/run,
    a bad run() signature, init() raised)."""


# --- archives and adopting a tree (export / import) -------------------------------------------


class ArchiveError(UsageError):
    """An archive or a folder offered to ``import`` cannot be imported as it is (not an archive,
    a hostile member, a manifest that does not match the files); nothing was changed."""

    def __init__(
        self, message: str, *, path: str, member: str | None = None, **advice: Any
    ) -> None:
        super().__init__(message, **advice)
        self.path = path
        self.member = member


class ImportConflictError(ModelstoreError):
    """Versions of an import are already taken in the registry (the same number holds other
    files, was used by a deleted version, or holds the same files without ``--skip-existing``);
    the whole import was refused and nothing was changed."""

    def __init__(
        self, message: str, *, conflicts: list[tuple[str, int, str]], **advice: Any
    ) -> None:
        super().__init__(message, **advice)
        self.conflicts = conflicts


# --- server databases (issue 12) ---------------------------------------------------------------


class CatalogConnectionError(CatalogError):
    """A server catalog (``MODELSTORE_DB_URL``) cannot be reached or logged into: server down,
    unknown host or database, wrong user or password. ``catalog`` is the URL with its password
    masked; the password itself is never part of the error."""

    def __init__(
        self,
        message: str,
        *,
        catalog: str,
        host: str | None,
        port: int | None,
        database: str | None,
        reason: str,
    ) -> None:
        super().__init__(message)
        self.catalog = catalog
        self.host = host
        self.port = port
        self.database = database
        self.reason = reason


class LeaseLostError(CatalogError):
    """A registration or deletion found its lease gone from the catalog: a doctor judged its
    process gone (its heartbeat had expired) and settled its work. ``name``: the model;
    ``token``: the operation's."""

    def __init__(self, message: str, *, name: str, token: str) -> None:
        super().__init__(message)
        self.name = name
        self.token = token


class StoreMismatchError(CatalogError):
    """The catalog belongs to another model store than the one this home is configured with
    (``MODELSTORE_STORE_URL``): writing would record versions whose bytes the others cannot
    find. ``store``: this home's store URL (``"local"`` for its own tree); ``catalog_store``:
    the one the catalog records. For a store of the right URL that is another store (another
    account's container, another mount): ``store_id`` (None: it has no identity marker) and
    ``catalog_store_id``, the id the catalog records."""

    def __init__(
        self,
        message: str,
        *,
        catalog: str,
        store: str,
        catalog_store: str,
        store_id: str | None = None,
        catalog_store_id: str | None = None,
    ) -> None:
        super().__init__(message, catalog=catalog)
        self.store = store
        self.catalog_store = catalog_store
        self.store_id = store_id
        self.catalog_store_id = catalog_store_id
