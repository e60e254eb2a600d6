"""How a library error becomes the command line's one ``Error:`` line and exit code.

The library's errors speak Python (``force=True``, ``home=``, ``Registry.rebuild_catalog``) and
carry the advice as a key (``exc.remedy``) plus fields; here that advice is worded in flags and
commands, and the exit code is chosen from the error's class. Imports only
``modelstore.errors``, so turning an error into a line never loads SQLAlchemy or pydantic.
"""

from __future__ import annotations

from collections.abc import Callable

from modelstore.errors import (
    CatalogDamagedError,
    EntryScriptError,
    ModelstoreError,
    UsageError,
)

EXIT_CODES: tuple[tuple[type[ModelstoreError], int], ...] = (
    (EntryScriptError, 3),  # the entry script could not be started, as azmlinfsrv
    (UsageError, 2),  # bad usage or bad input: nothing was changed
    (ModelstoreError, 1),  # the operation failed
)
"""Exit code by error class, the first class the error is an instance of wins."""

SDK_ERROR_PREFIX = "Error, "
"""How Azure ML SDK messages begin; modelstore keeps their wording in its exceptions (code
written against the SDK may match it), and the CLI drops it after its own ``Error:``."""


def exit_code(exc: ModelstoreError) -> int:
    for cls, code in EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return 1


def _rebuild_catalog(exc: ModelstoreError) -> str:
    if isinstance(exc, CatalogDamagedError):
        return (
            ". Restore it from a backup, or run `modelstore doctor --rebuild-catalog` to "
            "recreate it from the azureml-models tree"
        )
    return (
        ". Run `modelstore doctor --rebuild-catalog` to recreate the catalog from the tree, "
        "or restore it from a backup"
    )


def _alias_in_use(exc: ModelstoreError) -> str:
    name = getattr(exc, "name", "NAME")
    aliases: dict[str, int] = getattr(exc, "aliases", {})
    items = sorted(aliases.items(), key=lambda item: (-item[1], item[0]))
    first = items[0][0] if items else "ALIAS"
    if len(items) == 1:
        return (
            f"; move or remove the alias first (modelstore alias rm {name} {first}), or pass "
            "--force to delete it and remove the alias"
        )
    return (
        f"; move or remove the aliases first (modelstore alias rm {name} {first}), or pass "
        "--force to delete and remove them"
    )


def _register(exc: ModelstoreError) -> str:
    return " (register one with `modelstore register`)"


ADVICE: dict[str, Callable[[ModelstoreError], str]] = {
    "rebuild_catalog": _rebuild_catalog,
    "run_doctor": lambda exc: "; `modelstore doctor` reports leftovers",
    "repair": lambda exc: "; run `modelstore doctor --repair` and retry",
    "check_home": lambda exc: "; check --home / MODELSTORE_HOME, or register a model to create one",
    "check_catalog_url": lambda exc: (
        "; check MODELSTORE_DB_URL / --home and that the database file is a modelstore catalog"
    ),
    "compare_tree": lambda exc: "; run `modelstore doctor` to compare it with the tree",
    "choose_home": lambda exc: "; choose another --home",
    "choose_writable_home": lambda exc: "; choose a writable --home",
    "read_only_home": lambda exc: (
        "; writing commands need a writable home. Reading works there: list, show, path, verify"
    ),
    "upgrade_catalog": lambda exc: (
        "; run a writing command once (e.g. `modelstore doctor`) to upgrade it"
    ),
    "register": _register,
    "force": lambda exc: (
        "; choose a new or empty folder, or pass --force to replace only "
        f"{getattr(exc, 'models_dir', None) or 'its azureml-models folder'} (nothing was written)"
    ),
    "copy": lambda exc: "; deploy it with --copy or from elsewhere (nothing was written)",
    "alias_in_use": lambda exc: _alias_in_use(exc),
    "set_alias": lambda exc: (
        f" (set one with `modelstore alias set {getattr(exc, 'name', 'NAME')}:VERSION "
        f"{getattr(exc, 'alias', 'ALIAS')}`)"
    ),
    "empty_app_root": lambda exc: (
        "; give --app-root a new or empty folder, or leave --app-root out to use a temporary "
        "one (nothing was written)"
    ),
    "check_list": lambda exc: "; check `modelstore list` and retry",
    "verify": lambda exc: (
        f"; run `modelstore verify {getattr(exc, 'ref', 'REF')}` (nothing was written)"
    ),
    "verify_store": lambda exc: "; check the store with `modelstore verify --store`",
    "export": lambda exc: " (make archives with `modelstore export`)",
    "check_env": lambda exc: (
        "; install them in this Python, or serve without --check-env (nothing was started)"
    ),
}
"""The command line's wording of each ``remedy``, as the tail of the ``Error:`` line (with its
separator); a remedy missing here keeps the error's own ``hint``."""


def error_line(exc: ModelstoreError) -> str:
    """The one line a user sees: what is wrong, then what to do in flags and commands; one
    ``Error:`` even when the message keeps the SDK's ``Error, ...`` wording."""
    return f"Error: {error_text(exc)}"


def error_text(exc: ModelstoreError) -> str:
    """``error_line`` without its ``Error:`` (to build another error's message from it)."""
    message: str = getattr(exc, "message", None) or str(exc)
    hint: str | None = getattr(exc, "hint", None)
    remedy = getattr(exc, "remedy", None)
    advice = ADVICE.get(remedy) if remedy is not None else None
    if advice is not None:
        tail = advice(exc)
    elif hint:
        tail = f"; {hint}"
    else:
        tail = ""
    return f"{message.removeprefix(SDK_ERROR_PREFIX)}{tail}"
