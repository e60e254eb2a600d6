"""The one exception hierarchy of modelstore.

Every error a user can cause or meet derives from :class:`ModelstoreError`, so callers catch
one class; the CLI turns any of them into a single ``Error: ...`` line and the class's
``exit_code`` (1: the operation failed; 2: bad usage or bad input; 3: an entry script could not
be started). Where Azure ML raises a builtin (``TypeError``, ``LookupError``) our class also
derives from that builtin, so code written against the SDK's behaviour keeps catching it.
"""

from __future__ import annotations


class ModelstoreError(Exception):
    """Base class of every error raised on purpose by modelstore."""

    exit_code: int = 1


# --- bad input (exit 2): nothing was changed -------------------------------------------------


class UsageError(ModelstoreError):
    """The caller asked for something malformed; nothing was changed."""

    exit_code = 2


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
    """An option or argument value is malformed (``--tag`` without ``=``, a bad port...)."""


class BadArgumentTypeError(UsageError, TypeError):
    """An argument has the wrong type (``version="1"``, ``model_name=None``), as the SDK's
    ``WebserviceException`` for those cases; a ``TypeError`` so plain Python code catches it."""


class DeploymentRefusedError(UsageError):
    """A deployment was refused before anything was written (target not empty, inside the
    store, duplicate models...)."""


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


# --- the operation failed (exit 1) -----------------------------------------------------------


class ModelNotFoundError(ModelstoreError, LookupError):
    """No such model or version: in the registry, or for ``get_model_path``."""


class AliasNotFoundError(ModelNotFoundError):
    """``NAME@ALIAS`` names an alias that does not exist (never set, or removed)."""

    def __init__(self, message: str, *, name: str, alias: str) -> None:
        super().__init__(message)
        self.name = name
        self.alias = alias


class AliasInUseError(ModelstoreError):
    """A delete would remove versions that aliases point at; nothing was deleted. Move or
    remove the aliases first, or delete with ``force`` (which removes them too)."""

    def __init__(self, message: str, *, name: str, aliases: dict[str, int]) -> None:
        super().__init__(message)
        self.name = name
        self.aliases = aliases


class ModelLayoutError(ModelstoreError):
    """A models folder breaks the Azure ML layout (a version folder without exactly one entry,
    a non-integer version folder, an empty name folder, a name that is a file)."""


class PropertyImmutableError(ModelstoreError):
    """Properties are add-only, as in Azure ML: an existing key cannot be changed."""


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
    """The store could not be written (disk full, permissions); nothing was published."""


class CatalogError(ModelstoreError):
    """The catalog database cannot be opened or migrated."""


class RegistryNotFoundError(CatalogError):
    """A read found no registry where it looked: reads never create one (a mistyped ``--home``
    must not leave a new empty registry behind)."""

    def __init__(self, message: str, *, home: str) -> None:
        super().__init__(message)
        self.home = home


class CatalogLostError(CatalogError):
    """The tree holds versions but the catalog is missing, empty or has no schema. Creating a new
    catalog there would turn every stored version into an unknown folder, so nothing opens it
    until ``doctor --rebuild-catalog`` recreates the catalog from the tree."""

    def __init__(self, message: str, *, catalog: str, versions: int) -> None:
        super().__init__(message)
        self.catalog = catalog
        self.versions = versions


class CatalogDamagedError(CatalogError):
    """The catalog file is corrupt (SQLite reports a malformed image or no database)."""

    def __init__(self, message: str, *, catalog: str, problems: list[str]) -> None:
        super().__init__(message)
        self.catalog = catalog
        self.problems = problems


# --- serving (exit 3 at start-up, as azmlinfsrv) ----------------------------------------------


class EntryScriptError(ModelstoreError):
    """The entry script cannot be loaded or started (missing, syntax error, no init/run,
    a bad run() signature, init() raised)."""

    exit_code = 3


# --- archives and adopting a tree (export / import) -------------------------------------------


class ArchiveError(UsageError):
    """An archive or a folder offered to ``import`` cannot be imported as it is (not an archive,
    a hostile member, a manifest that does not match the files); nothing was changed."""

    def __init__(self, message: str, *, path: str, member: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.member = member


class ImportConflictError(ModelstoreError):
    """Versions of an import are already taken in the registry (the same number holds other
    files, was used by a deleted version, or holds the same files without ``--skip-existing``);
    the whole import was refused and nothing was changed."""

    def __init__(self, message: str, *, conflicts: list[tuple[str, int, str]]) -> None:
        super().__init__(message)
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
