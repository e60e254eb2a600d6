"""Every rule about where things live on disk, in one place.

A registry home is itself a valid Azure ML app root::

    <home>/
      registry.db                      # the catalog (SQLite), unless MODELSTORE_DB_URL is set
      azureml-models/                  # == MODELS_DIR of azureml.core.model for AML_APP_ROOT=<home>
        <name>/<version>/<entry>       # exactly one entry per version folder, original basename
      .modelstore/                     # modelstore's own working space, never inside azureml-models
        staging/<token>/<entry>        # a version being copied in; renamed into place when complete
        trash/<token>/                 # a version being deleted; renamed out of place first
        locks/                         # filelock files
        foreign/<stamp>/<name>/<item>  # what `doctor --repair --move-aside-foreign` moved out
        lost-catalogs/<stamp>/         # a catalog `doctor --rebuild-catalog` replaced
        shared-registry.json           # with a shared store: the catalog and store it caches

A deployment (``modelstore deploy``) lays out ``<app_root>/azureml-models/<name>/<version>/<entry>``
with the same rules. Nothing else in modelstore spells these names.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from modelstore.errors import InvalidAliasError, InvalidNameError, VersionOutOfRangeError

MODELS_DIRNAME = "azureml-models"
"""The folder under an app root holding ``<name>/<version>/<entry>`` (Azure ML's ``MODELS_DIR``)."""

CATALOG_FILENAME = "registry.db"
WORKSPACE_DIRNAME = ".modelstore"
STAGING_DIRNAME = "staging"
TRASH_DIRNAME = "trash"
LOCKS_DIRNAME = "locks"
FOREIGN_DIRNAME = "foreign"
LOST_CATALOGS_DIRNAME = "lost-catalogs"
SHARED_MARKER_FILENAME = "shared-registry.json"

HOME_ENV = "MODELSTORE_HOME"
DB_URL_ENV = "MODELSTORE_DB_URL"
STORE_URL_ENV = "MODELSTORE_STORE_URL"
APP_ROOT_ENV = "AML_APP_ROOT"
MODEL_DIR_ENV = "AZUREML_MODEL_DIR"

LOCAL_MODEL_VERSION = 0
"""Version Azure ML's local deployment gives a model that was not registered."""
MAX_VERSION = 2**63 - 1
"""The highest version number: the catalog stores versions as SQLite INTEGERs (signed 64 bits)."""
LOCAL_MODEL_NAME_MAX = 30
"""Azure ML truncates the name folder of an unregistered local model to this many characters."""

NAME_RULE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9\-\._]{0,254}")
NAME_RULE_TEXT = (
    "Error, provided model name is invalid. It must only consist of letters, numbers, dashes, "
    "periods, or underscores, start with a letter or number, and be between 1 and 255 "
    "characters long."
)


def validate_name(name: object) -> str:
    """Return ``name`` if it obeys Azure ML's model-name rule, else raise InvalidNameError.

    ``fullmatch`` (not ``match`` with ``$``) so a trailing newline is rejected, as the SDK's
    ``re.fullmatch`` does.
    """
    if not isinstance(name, str) or NAME_RULE.fullmatch(name) is None:
        raise InvalidNameError(
            f"{NAME_RULE_TEXT} Got {name!r}; choose a name such as 'my_model' or "
            "'fraud-detector.v2'."
        )
    return name


ALIAS_RULE = re.compile(r"[a-zA-Z][a-zA-Z0-9_\-]{0,63}")
RESERVED_ALIASES = frozenset({"latest"})
ALIAS_RULE_TEXT = (
    "an alias starts with a letter, has only letters, digits, '-' and '_', is at most 64 "
    "characters long and is case-sensitive; 'latest' is reserved (it always means the highest "
    "version)"
)


def validate_alias(alias: object) -> str:
    """Return ``alias`` if it obeys the alias rule, else raise InvalidAliasError.

    Starting with a letter keeps an alias from ever looking like a version number, and the
    character set keeps ``NAME@ALIAS`` unambiguous next to ``NAME:VERSION``."""
    if not isinstance(alias, str) or ALIAS_RULE.fullmatch(alias) is None:
        raise InvalidAliasError(
            f"invalid alias {alias!r}: {ALIAS_RULE_TEXT}; choose one such as 'champion'",
            alias=alias if isinstance(alias, str) else repr(alias),
        )
    if alias.lower() in RESERVED_ALIASES:
        raise InvalidAliasError(
            f"the alias {alias!r} is reserved: NAME:latest always means the highest version; "
            "choose another alias such as 'champion'",
            alias=alias,
        )
    return alias


def check_version_range(name: str | None, version: int) -> int:
    """Return ``version`` if the catalog can hold it, else raise VersionOutOfRangeError.

    A larger number can name no version, and handing it to SQLite raises a bare OverflowError,
    so every entry point taking a version checks it here first (the lower bound is the caller's:
    its message differs for a REF and for the API)."""
    if version > MAX_VERSION:
        of = "" if name is None else f" of model {name!r}"
        raise VersionOutOfRangeError(
            f"version {shown_number(version)}{of} is out of range: versions are whole numbers "
            f"from 1 to {MAX_VERSION}; give an existing version (or the latest)",
            name=name,
            version=version,
        )
    return version


def shown_number(number: int) -> str:
    """An int as text for a message; a huge one (which ``str`` may even refuse) by its size."""
    return str(number) if number.bit_length() <= 256 else f"<a {number.bit_length()}-bit number>"


def local_model_name(path: str | os.PathLike[str]) -> str:
    """The name folder Azure ML's local deployment uses for an unregistered file or folder."""
    return os.path.basename(os.fspath(path).rstrip(os.sep))[:LOCAL_MODEL_NAME_MAX]


def entry_name(path: str | os.PathLike[str]) -> str:
    """The entry name a registered path keeps: its basename, a trailing separator ignored."""
    return os.path.basename(os.path.abspath(os.fspath(path)).rstrip(os.sep))


def models_root(app_root: str | os.PathLike[str]) -> Path:
    return Path(app_root) / MODELS_DIRNAME


def version_dir(models_dir: str | os.PathLike[str], name: str, version: int) -> Path:
    return Path(models_dir) / name / str(version)


def is_single_model_dir(model_dir: str) -> bool:
    """How consumers tell ``AZUREML_MODEL_DIR`` forms apart: a digit basename is one model."""
    return os.path.basename(model_dir.rstrip("/")).isdigit()


def default_home() -> Path:
    """``MODELSTORE_HOME`` if set, else the per-user data directory. Never creates anything."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs  # lazy: keeps `modelstore --help` and get_model_path imports light

    return Path(platformdirs.user_data_dir("modelstore", appauthor=False))


@dataclass(frozen=True)
class StoreLayout:
    """The paths of one registry home."""

    home: Path

    @property
    def models_dir(self) -> Path:
        return models_root(self.home)

    @property
    def catalog_path(self) -> Path:
        return self.home / CATALOG_FILENAME

    @property
    def workspace_dir(self) -> Path:
        return self.home / WORKSPACE_DIRNAME

    @property
    def staging_dir(self) -> Path:
        return self.workspace_dir / STAGING_DIRNAME

    @property
    def trash_dir(self) -> Path:
        return self.workspace_dir / TRASH_DIRNAME

    @property
    def locks_dir(self) -> Path:
        return self.workspace_dir / LOCKS_DIRNAME

    @property
    def foreign_dir(self) -> Path:
        return self.workspace_dir / FOREIGN_DIRNAME

    @property
    def lost_catalogs_dir(self) -> Path:
        return self.workspace_dir / LOST_CATALOGS_DIRNAME

    @property
    def shared_marker(self) -> Path:
        """Written by a home used with a shared store: the catalog (password masked) and store
        whose cache it is, so the home opened without them is told so, not offered a rebuild."""
        return self.workspace_dir / SHARED_MARKER_FILENAME

    def catalog_side_files(self, catalog: Path) -> list[Path]:
        """The catalog file and the side files SQLite keeps beside it (WAL and its index)."""
        suffixes = ("-wal", "-shm", "-journal")
        return [catalog, *(catalog.with_name(catalog.name + suffix) for suffix in suffixes)]

    def name_dir(self, name: str) -> Path:
        return self.models_dir / name

    def version_dir(self, name: str, version: int) -> Path:
        return version_dir(self.models_dir, name, version)

    def entry_path(self, name: str, version: int, entry: str) -> Path:
        return self.version_dir(name, version) / entry

    def default_db_url(self) -> str:
        return f"sqlite:///{self.catalog_path}"
