"""``get_model_path``: Azure ML SDK v1's ``Model.get_model_path``, answer for answer.

Inside a deployment this module follows ``azureml.core.model.Model._get_model_path_local``
step by step (``docs/get_model_path.md``): the same ``os.path.join`` strings (a
relative models root gives a relative answer), the numeric maximum version, the one-entry rule
and the ``./<name>`` fallback. Only where the SDK would fail does modelstore add answers: D1
reads ``AML_APP_ROOT`` at call time, D2 tries ``AZUREML_MODEL_DIR``, and D3, outside any
deployment, asks the local registry. Every error keeps the SDK's text first and then says
where modelstore looked.

It is imported by users' ``score.py`` files, so at import it loads only the standard library
and modelstore's light error and layout modules: no pydantic, no SQLAlchemy. The registry is
imported only when D3 runs, which is the one path that answers from a database, and while a
not-found error is built inside a deployment, to say whether the model is registered but not
deployed there (read-only; it never changes the error raised).
"""

from __future__ import annotations

import os
from typing import Any

from modelstore.errors import BadArgumentTypeError, ModelLayoutError, ModelNotFoundError
from modelstore.layout import APP_ROOT_ENV, MODEL_DIR_ENV, MODELS_DIRNAME

__all__ = ["Model", "get_model_path"]

_LAYOUT_HINT = (
    "A version folder must hold exactly one file or folder (the model's entry, named as "
    "registered) and a model's folder only whole-number version folders."
)


def get_model_path(model_name: str, version: int | None = None) -> str:
    """Return the path of a model's entry as ``Model.get_model_path`` of azureml-core 1.61 does.

    ``version=None`` picks the highest version. Raises ModelNotFoundError (a LookupError) when
    no location has the model, ModelLayoutError when a models folder breaks the Azure ML layout
    and BadArgumentTypeError (a TypeError) for a non-int or bool version or a missing name.
    """
    _check_arguments(model_name, version)
    try:
        return _resolve(model_name, version)
    except ModelLayoutError:
        # A forced redeploy swaps the tree under a reader, and a folder of the old tree can be
        # emptied between being found and being listed: a real layout fault shows twice.
        return _resolve(model_name, version)


def _resolve(model_name: str, version: int | None) -> str:
    """The SDK's local algorithm, then D2 (inside a deployment) or D3 (outside any)."""
    environ = os.environ
    app_root = environ.get(APP_ROOT_ENV, "")
    raw_model_dir = environ.get(MODEL_DIR_ENV, "")
    models_dir = os.path.join(app_root, MODELS_DIRNAME)  # D1: read at every call

    found = _probe_models_dir(models_dir, model_name, version)
    if found is not None:
        return found
    if os.path.exists(model_name):  # the SDK's cwd fallback: verbatim, version ignored
        return model_name

    model_dir = raw_model_dir.rstrip("/")
    in_deployment = bool(app_root or raw_model_dir) or os.path.exists(MODELS_DIRNAME)
    tried = [os.path.join(models_dir, model_name), f"./{model_name}"]
    if in_deployment:
        if model_dir:  # D2
            unreadable: list[str] = []
            found = _probe_azureml_model_dir(model_dir, model_name, version, unreadable)
            if found is not None:
                return found
            tried.append(f"{MODEL_DIR_ENV}={raw_model_dir}{''.join(unreadable)}")
        deployed = _folder_versions(models_dir, model_dir, model_name)
        extra = _versions_note(model_name, deployed) + _registered_elsewhere_note(
            model_name, version, deployed
        )
    else:  # D3
        found, extra = _from_registry(model_name, version)
        if found is not None:
            return found
        tried.append("the modelstore registry")
    raise ModelNotFoundError(
        f"Model {model_name} not found in cache at {models_dir} or in current working directory "
        f"{os.getcwd()}. For more info, set logging level to DEBUG. "
        f"modelstore looked for {_describe(model_name, version)} in: {', '.join(tried)}.{extra}",
        name=model_name,
        version=version,
    )


class Model:
    """Stands in for ``azureml.core.model.Model`` in a ``score.py``: only the static
    ``get_model_path`` exists, so ``from modelstore import Model`` is a one-line swap."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise BadArgumentTypeError(
            "modelstore.Model cannot be instantiated: it only offers the static method "
            "Model.get_model_path(model_name, version=None); use modelstore.Registry to look up "
            "registered models"
        )

    @staticmethod
    def get_model_path(model_name: str, version: int | None = None, _workspace: Any = None) -> str:
        """Same as :func:`get_model_path`. ``_workspace`` is accepted so SDK calls keep working
        and is ignored: modelstore never downloads from a workspace, it always resolves
        locally."""
        return get_model_path(model_name, version)


def _check_arguments(model_name: object, version: object) -> None:
    """The SDK's argument checks, in its order; ``bool`` versions are refused too (a departure)."""
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise BadArgumentTypeError(
            f"version should be an int (got {version!r} of type {type(version).__name__}); "
            "pass a whole number such as 1, or None for the latest version"
        )
    if model_name is None:
        raise BadArgumentTypeError(
            "model_name is None; pass the model's name, e.g. get_model_path('my_model')"
        )
    if not isinstance(model_name, str):
        raise BadArgumentTypeError(
            f"model_name should be a str (got {model_name!r} of type "
            f"{type(model_name).__name__}); pass the model's name, e.g. get_model_path('my_model')"
        )


def _probe_models_dir(
    models_dir: str, model_name: str, version: int | None, *, lenient: bool = False
) -> str | None:
    """The SDK's probe of ``<models_dir>/<name>``: the entry's path, or None where the SDK falls
    back to ``./<name>``. Layout faults raise ModelLayoutError with the SDK's text first.

    ``lenient`` (D2) treats a file where a folder is expected as absent, as the SDK's answer
    there is "not found": ``AZUREML_MODEL_DIR/<name>`` may well be a model's entry file.
    """
    name_dir = os.path.join(models_dir, model_name)
    if not os.path.exists(name_dir):
        return None
    if version is None:
        try:
            versions = os.listdir(name_dir)
        except FileNotFoundError:  # removed since the check (a redeploy): as if never there
            return None
        except NotADirectoryError as exc:
            if lenient:
                return None
            raise ModelLayoutError(
                f"{exc}. {name_dir} should be a folder of version folders. {_LAYOUT_HINT}"
            ) from None
        if not versions:
            raise ModelLayoutError(
                f"versions is empty: {name_dir} holds no version folder. {_LAYOUT_HINT}"
            )
        try:
            chosen: int = max([int(entry) for entry in versions])
        except ValueError as exc:
            raise ModelLayoutError(
                f"{exc} (a non-version entry in {name_dir}). {_LAYOUT_HINT}"
            ) from None
    else:
        chosen = version
    version_dir = os.path.join(name_dir, str(chosen))
    if not os.path.exists(version_dir):
        return None
    return _single_entry(version_dir, lenient=lenient)


def _single_entry(version_dir: str, *, lenient: bool = False) -> str | None:
    """The one-entry rule of a version folder (hidden files count, as in the SDK); None if the
    folder vanished since it was seen (a redeploy swapped the tree), as if never there, or
    (``lenient``, D2) if it is a file."""
    try:
        entries = os.listdir(version_dir)
    except FileNotFoundError:
        return None
    except NotADirectoryError as exc:
        if lenient:
            return None
        raise ModelLayoutError(
            f"{exc}. {version_dir} should be a version folder. {_LAYOUT_HINT}"
        ) from None
    if len(entries) != 1:
        raise ModelLayoutError(
            f"Dir {version_dir} can contain only 1 file or folder. Found {entries}. {_LAYOUT_HINT}"
        )
    return os.path.join(version_dir, entries[0])


def _probe_azureml_model_dir(
    model_dir: str, model_name: str, version: int | None, unreadable: list[str]
) -> str | None:
    """D2: ``AZUREML_MODEL_DIR`` in its single form (``.../<name>/<digits>``) or its multi form
    (a models root). ``model_dir`` has its trailing ``/`` removed already.

    Where the SDK answers "not found" (it never reads the variable), D2 may only add an answer
    or a layout error about the model's own folders, never an OS error: a file where a folder
    is expected is absent, and a folder that cannot be read is absent and noted in
    ``unreadable`` for the not-found message. A single-form value is a version folder, so its
    children are the entry, not name folders: probing it as a models root (the multi form, for
    another name) finds a model or nothing, and never reports the entry as a layout fault.
    """
    leaf = os.path.basename(model_dir)
    single_form = leaf.isdigit()
    try:
        if (
            single_form
            and os.path.basename(os.path.dirname(model_dir)) == model_name
            and (version is None or (leaf.isascii() and int(leaf) == version))
        ):
            if not os.path.exists(model_dir):
                return None
            return _single_entry(model_dir, lenient=True)
        if not os.path.isdir(os.path.join(model_dir, model_name)):
            return None
        try:
            return _probe_models_dir(model_dir, model_name, version, lenient=True)
        except ModelLayoutError:
            if single_form:
                return None
            raise
    except OSError as exc:  # e.g. PermissionError: the SDK never looked there
        unreadable.append(f" ({exc.filename or model_dir} could not be read: {exc.strerror})")
        return None


def _from_registry(model_name: str, version: int | None) -> tuple[str | None, str]:
    """D3: the stored entry's absolute path, or None and a note on what the registry knows.

    Never creates a registry: ``Registry.open_existing`` returns None where there is none.
    """
    from modelstore.errors import ModelstoreError
    from modelstore.layout import default_home
    from modelstore.registry import Registry

    registry = Registry.open_existing()
    if registry is None:
        return None, (
            f" There is no modelstore registry at {default_home()} (register the model with "
            "`modelstore register` or Registry.register, or set MODELSTORE_HOME to the registry "
            "to use)."
        )
    with registry:
        try:
            versions = registry.versions(model_name)
        except ModelstoreError:  # e.g. a name the registry could never hold
            versions = []
        chosen = max(versions) if version is None and versions else version
        if chosen is not None and chosen in versions:
            return os.fspath(registry.path(model_name, chosen)), ""
        where = f" The registry at {registry.home} "
        if versions:
            return None, f"{where}has versions {', '.join(map(str, versions))} of {model_name}."
        return None, f"{where}has no model named {model_name}."


def _registered_elsewhere_note(model_name: str, version: int | None, deployed: list[int]) -> str:
    """Inside a deployment, whether the registry holds the missing model: then the fix is to
    deploy it (``--model NAME:V``), not to change the script.

    Runs only while a not-found error is being built, reads the registry without creating
    anything, and answers "" on any failure: the error raised stays ModelNotFoundError.
    """
    try:
        from modelstore.registry import Registry

        registry = Registry.open_existing()
        if registry is None:
            return ""
        with registry:
            registered = registry.versions(model_name)
            home = registry.home
    except Exception:  # a hint must never replace the not-found error
        return ""
    if not registered:
        return ""
    wanted = max(registered) if version is None else version
    if wanted not in registered:
        listed = ", ".join(map(str, registered))
        return (
            f" The modelstore registry at {home} has versions {listed} of {model_name}, "
            f"not version {wanted}."
        )
    if wanted in deployed:
        return ""
    return (
        f" {model_name}:{wanted} is registered in the modelstore registry at {home} but is not "
        f"deployed here; add it to the deployment with `--model {model_name}:{wanted}` "
        f"(modelstore serve, score, exec or deploy), or '{model_name}:{wanted}' among the models "
        "given to Registry.deploy or azureml_deployment in Python."
    )


def _folder_versions(models_dir: str, model_dir: str, model_name: str) -> list[int]:
    """Whole-number version folders found for the name, to list them in a not-found error."""
    found: set[int] = set()
    for root in (models_dir, model_dir):
        if not root:
            continue
        try:
            entries = os.listdir(os.path.join(root, model_name))
        except (OSError, ValueError):  # ValueError: a NUL byte, a name no file can have
            continue
        found.update(int(entry) for entry in entries if entry.isascii() and entry.isdigit())
    return sorted(found)


def _versions_note(model_name: str, versions: list[int]) -> str:
    if not versions:
        return ""
    return f" Versions of {model_name} that exist there: {', '.join(map(str, versions))}."


def _describe(model_name: str, version: int | None) -> str:
    return model_name if version is None else f"{model_name} version {version}"
