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
from typing import Literal

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


# --- the operation failed --------------------------------------------------------------------


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
