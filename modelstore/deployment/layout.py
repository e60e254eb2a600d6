"""Lay out an Azure ML deployment's model tree on the local disk.

``build_deployment`` writes ``<app_root>/azureml-models/<name>/<version>/<entry>`` exactly as an
Azure ML container sees it and computes the ``AML_APP_ROOT`` / ``AZUREML_MODEL_DIR`` pair Azure
sets, so an unmodified ``score.py`` finds its models. By default each entry is a symbolic link
into the store (no model bytes copied, store entries stay read-only); ``copy=True`` makes a
self-contained folder instead.

The tree is built in a hidden temporary folder inside the app root and renamed into place, so no
reader ever sees half a deployment, and every refusal happens before anything is written.

``temporary`` is the one "deploy, use, clean up" of the package: ``modelstore exec``, ``serve``,
``score`` and the ``azureml_deployment`` fixture all lay their models out through it.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import stat
import sys
import tempfile
import types
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from modelstore.errors import (
    DeploymentRefusedError,
    ModelNotFoundError,
    StorageError,
)
from modelstore.layout import (
    APP_ROOT_ENV,
    LOCAL_MODEL_NAME_MAX,
    MODEL_DIR_ENV,
    entry_name,
    models_root,
    version_dir,
)
from modelstore.store.fsops import remove_tree
from modelstore.store.locks import is_held

TEMPORARY_PREFIX = "modelstore-app-"
"""Default prefix of the folder ``temporary`` creates when it is given no app root."""
BUILD_PREFIX = ".modelstore-deploy-"
"""Prefix of the temporary folder a deployment is built in, inside the app root."""
BUILD_LOCK = ".building"
"""Lock file inside a build folder, held while it is built; the kernel releases it when the
builder dies however it dies, so a build folder whose lock is free is a killed build's."""

_RACE_ERRNOS = {errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR}
_SWAP_ATTEMPTS = 5


class ModelSource(BaseModel):
    """One model to deploy: a registered version's stored entry, or an unregistered local
    file or folder (``version`` 0, named after its basename cut to 30 characters)."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: int = Field(ge=0)
    entry_path: Path = Field(description="the file or folder to expose as the version's entry")
    registered: bool


class DeployedModel(BaseModel):
    """Where one model landed in a deployment."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: int
    entry: str = Field(description="basename of the entry in its version folder")
    path: Path = Field(description="absolute path of the entry inside the deployment")
    source: Path = Field(description="absolute path of the entry it links to or was copied from")
    registered: bool


class Deployment(BaseModel):
    """A laid-out deployment and the environment Azure ML would give its entry script."""

    model_config = ConfigDict(frozen=True)

    app_root: Path
    model_dir: Path = Field(
        description="AZUREML_MODEL_DIR: the version folder for one model, "
        "else the azureml-models folder"
    )
    models: list[DeployedModel]
    env: dict[str, str] = Field(description="AML_APP_ROOT and AZUREML_MODEL_DIR, absolute")


def build_deployment(
    sources: Sequence[ModelSource],
    app_root: str | os.PathLike[str],
    *,
    copy: bool = False,
    force: bool = False,
    store_dir: Path | None = None,
) -> Deployment:
    """Lay out ``sources`` under ``app_root`` and return the resulting Deployment.

    Refuses with DeploymentRefusedError, before writing anything, an ``app_root`` that is not an
    empty folder (with ``force``, only ``app_root/azureml-models`` is replaced), one inside
    ``store_dir``, and two sources landing in the same ``<name>/<version>`` folder.
    """
    root = Path(os.path.abspath(os.fspath(app_root)))
    planned = _plan(sources, root)
    _check_target(root, planned, copy=copy, force=force, store_dir=store_dir)
    _materialise(root, planned, copy=copy, force=force)
    models_dir = models_root(root)
    if len(planned) == 1:
        model_dir = version_dir(models_dir, planned[0].name, planned[0].version)
    else:
        model_dir = models_dir
    return Deployment(
        app_root=root,
        model_dir=model_dir,
        models=planned,
        env={APP_ROOT_ENV: os.fspath(root), MODEL_DIR_ENV: os.fspath(model_dir)},
    )


@contextlib.contextmanager
def temporary(
    sources: Sequence[ModelSource],
    app_root: str | os.PathLike[str] | None = None,
    *,
    copy: bool = False,
    keep: bool = False,
    store_dir: Path | None = None,
    prefix: str = TEMPORARY_PREFIX,
    parent: str | os.PathLike[str] | None = None,
    subfolder: str | None = None,
) -> Iterator[Deployment]:
    """Lay ``sources`` out, yield the Deployment, and remove on exit everything laid out.

    Without ``app_root`` the deployment goes into a new temporary folder (``prefix``, inside
    ``parent`` or the system's temporary folder; the app root is its ``subfolder`` if given),
    which is removed whole, with whatever the body wrote into it. A given ``app_root`` must be
    new or empty (the clean-up must never take what was there before, so there is no
    ``force``); on exit its ``azureml-models`` goes, then the app root and the parents made for
    it, each only if nothing else was put in it. Clean-up also runs when the body raises or is
    interrupted, is best effort (it never hides the body's error), and is left to the process
    that entered: a forked child leaving through ``SystemExit`` (a gunicorn worker) must not
    delete what its siblings still serve. ``keep=True`` leaves a laid-out deployment in place;
    a failed layout is removed either way.

    The environment is yielded (``Deployment.env``), not set: a child process, a test's
    monkeypatch and a server each apply it their own way, and a library must not change the
    process environment behind its caller's back.
    """
    owner = os.getpid()
    temporary_folder: Path | None = None
    created: Path | None = None
    if app_root is None:
        temporary_folder = Path(os.path.abspath(tempfile.mkdtemp(prefix=prefix, dir=parent)))
        root = temporary_folder / subfolder if subfolder else temporary_folder
    else:
        root = Path(os.path.abspath(os.fspath(app_root)))
        _refuse_occupied(root)
        created = _topmost_missing(root)
    try:
        deployment = build_deployment(sources, root, copy=copy, store_dir=store_dir)
    except BaseException:
        # a refused or failed build into a given app root has already removed what it made
        if temporary_folder is not None:
            remove_tree(temporary_folder, best_effort=True)
        raise
    try:
        yield deployment
    finally:
        if not keep and os.getpid() == owner:
            if temporary_folder is not None:
                remove_tree(temporary_folder, best_effort=True)
            else:
                _undeploy(root, created=created)


def _refuse_occupied(root: Path) -> None:
    """``build_deployment``'s refusal of a non-empty app root offers ``force``, which a
    temporary deployment cannot have: say what it offers instead."""
    occupants: list[str] = []
    with contextlib.suppress(OSError):  # not a readable folder: build_deployment says so
        if os.path.isdir(root):
            occupants = app_root_occupants(root)
    if occupants:
        raise DeploymentRefusedError(
            f"the app root {root} is not empty (it holds {occupants[0]!r})",
            hint="give app_root a new or empty folder, or app_root=None to use a temporary one "
            "(nothing was written)",
            remedy="empty_app_root",
            app_root=str(root),
        )


def _undeploy(root: Path, *, created: Path | None) -> None:
    """Remove the ``azureml-models`` tree laid out in ``root`` (links are removed, never
    followed), then ``root`` and the parents made for it up to ``created``, each only if
    nothing else was left in it: what the body wrote there belongs to the user."""
    models = models_root(root)
    if os.path.isdir(models) and not os.path.islink(models):
        remove_tree(models, best_effort=True)
    if created is not None:
        _remove_empty_folders(root, up_to=created)


def _plan(sources: Sequence[ModelSource], root: Path) -> list[DeployedModel]:
    """Decide every entry's place; refuse bad names, missing sources and folder collisions."""
    planned: list[DeployedModel] = []
    taken: dict[tuple[str, int], DeployedModel] = {}
    for source in sources:
        _check_name(source)
        entry_abs = Path(os.path.abspath(os.fspath(source.entry_path)))
        if not os.path.lexists(entry_abs):
            raise ModelNotFoundError(
                f"cannot deploy {source.name}:{source.version}: {entry_abs} does not exist"
            )
        model = DeployedModel(
            name=source.name,
            version=source.version,
            entry=entry_name(entry_abs),
            path=version_dir(models_root(root), source.name, source.version)
            / entry_name(entry_abs),
            source=entry_abs,
            registered=source.registered,
        )
        previous = taken.get((model.name, model.version))
        if previous is not None:
            raise DeploymentRefusedError(_collision_message(previous, model))
        taken[(model.name, model.version)] = model
        planned.append(model)
    return planned


def _check_name(source: ModelSource) -> None:
    name = source.name
    if not name or name in {".", ".."} or "/" in name or os.sep in name or "\0" in name:
        raise DeploymentRefusedError(
            f"cannot deploy {source.entry_path}: {name!r} cannot be a model folder name in "
            "azureml-models; register the model under a valid name first"
        )


def _collision_message(first: DeployedModel, second: DeployedModel) -> str:
    where = f"azureml-models/{first.name}/{first.version}"
    if first.registered or second.registered:
        return (
            f"model {first.name}:{first.version} is listed twice; name each version once "
            "(nothing was written)"
        )
    if first.entry == second.entry:
        reason = f"both are named {first.entry!r}"
    else:
        reason = (
            f"Azure ML cuts an unregistered model's folder name to {LOCAL_MODEL_NAME_MAX} "
            f"characters ({first.entry!r} and {second.entry!r} both become {first.name!r})"
        )
    return (
        f"the unregistered models {first.source} and {second.source} would share {where}: "
        f"{reason}; register one of them (or rename it) and deploy it by name "
        "(nothing was written)"
    )


def _check_target(
    root: Path, planned: list[DeployedModel], *, copy: bool, force: bool, store_dir: Path | None
) -> None:
    """Every refusal about the app root itself, checked before anything is written."""
    models_dir = models_root(root)
    real_root = Path(os.path.realpath(root))
    if store_dir is not None:
        real_store = Path(os.path.realpath(store_dir))
        if real_root == real_store or real_store in real_root.parents:
            raise DeploymentRefusedError(
                f"the app root {root} is inside the modelstore registry at {store_dir}; "
                "choose a folder outside it (nothing was written)"
            )
        real_models = Path(os.path.realpath(models_dir))
        if force and (real_store == real_models or real_models in real_store.parents):
            raise DeploymentRefusedError(
                f"the modelstore registry at {store_dir} lies inside {models_dir}, which a "
                "forced deployment replaces",
                hint="choose another app root (nothing was written)",
                app_root=os.fspath(root),
                models_dir=os.fspath(models_dir),
            )
    if os.path.lexists(root) and not os.path.isdir(root):
        raise DeploymentRefusedError(
            f"the app root {root} exists and is not a folder; choose a new or empty folder "
            "(nothing was written)"
        )
    occupants = app_root_occupants(root) if not force and os.path.isdir(root) else []
    if occupants:
        raise DeploymentRefusedError(
            f"the app root {root} is not empty (it holds {occupants[0]!r})",
            hint=f"choose a new or empty folder, or pass force=True to replace only {models_dir} "
            "(nothing was written)",
            remedy="force",
            app_root=os.fspath(root),
            models_dir=os.fspath(models_dir),
        )
    real_models = Path(os.path.realpath(models_dir))
    for model in planned:
        real_source = Path(os.path.realpath(model.source))
        if real_source == real_root or real_source in real_root.parents:
            raise DeploymentRefusedError(
                f"{model.source} contains the app root {root}; a model cannot hold its own "
                "deployment, choose an app root outside it (nothing was written)"
            )
        if (
            force
            and not copy
            and (real_source == real_models or real_models in real_source.parents)
        ):
            raise DeploymentRefusedError(
                f"{model.source} lies inside {models_dir}, which a forced deployment replaces, "
                "so a link to it would break",
                hint="deploy it with copy=True or from elsewhere (nothing was written)",
                remedy="copy",
                app_root=os.fspath(root),
                models_dir=os.fspath(models_dir),
            )


def _materialise(root: Path, planned: list[DeployedModel], *, copy: bool, force: bool) -> None:
    """Build the tree in a temporary folder inside ``root``, then rename it into place."""
    created = _make_dirs(root)
    for stale in _killed_builds(root):
        remove_tree(stale, best_effort=True)
    build: Path | None = None
    lock: int | None = None
    try:
        for attempt in range(_BUILD_ATTEMPTS):
            try:
                build = Path(tempfile.mkdtemp(prefix=BUILD_PREFIX, dir=root))
                break
            except FileNotFoundError:
                # A concurrent deployment into the same new folder was refused and removed the
                # (then empty) folder it had created: make it again and take our turn.
                if attempt == _BUILD_ATTEMPTS - 1:
                    raise
                made = _make_dirs(root)
                created = created or made
        assert build is not None
        lock = _lock_build(build)
        if not force:
            others = [name for name in app_root_occupants(root) if name != build.name]
            if others:  # another writer got here since the emptiness check
                raise DeploymentRefusedError(
                    f"the app root {root} is no longer empty (it now holds {others[0]!r}); "
                    "another deployment may be writing there (nothing was written)"
                )
        new_models = models_root(build)
        new_models.mkdir()
        for model in planned:
            _place(model, new_models, copy=copy)
        _swap_into_place(new_models, models_root(root), build, force=force)
    except BaseException as exc:
        if build is not None:
            remove_tree(build, best_effort=True)
            build = None
        if created is not None:
            _remove_empty_folders(root, up_to=created)
        if isinstance(exc, OSError):
            raise StorageError(
                f"could not build the deployment in {root}: {exc} (nothing was written)"
            ) from exc
        raise
    finally:
        if build is not None:
            remove_tree(build, best_effort=True)
        if lock is not None:
            os.close(lock)  # drops the lock


_BUILD_ATTEMPTS = 5
"""How often a deployment re-creates a new app root that a refused concurrent one removed."""


def _lock_build(build: Path) -> int | None:
    """Lock ``build`` for as long as this process builds it (the open descriptor is returned,
    closing it unlocks). The lock file gets its name only once locked, so no other deployment
    can take a starting build for a killed one. None where there is no ``flock`` (Windows) or
    under pyfakefs (one process: no killed builds to tell apart)."""
    if fcntl is None or not isinstance(os, types.ModuleType):
        return None
    staging = build / f"{BUILD_LOCK}.new"
    fd = os.open(staging, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(staging, build / BUILD_LOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _killed_builds(root: Path) -> list[Path]:
    """Build folders in ``root`` left by a deployment that was killed (their lock is free)."""
    try:
        names = os.listdir(root)
    except OSError:
        return []
    killed = []
    for name in names:
        if name.startswith(BUILD_PREFIX):
            lock = root / name / BUILD_LOCK
            try:
                if os.path.lexists(lock) and not is_held(os.fspath(lock)):
                    killed.append(root / name)
            except OSError:  # e.g. another user's build: not ours to judge
                continue
    return killed


def app_root_occupants(root: Path) -> list[str]:
    """What makes an app root non-empty, sorted, leaving out killed deployments' build folders
    (they are removed before building)."""
    try:
        names = set(os.listdir(root))
    except FileNotFoundError:
        return []
    return sorted(names - {path.name for path in _killed_builds(root)})


def _remove_empty_folders(root: Path, *, up_to: Path) -> None:
    """Undo ``_make_dirs`` without ever deleting what someone else put there meanwhile (a
    concurrent deployment into the same new folder): only empty folders are removed."""
    folder = root
    while True:
        try:
            os.rmdir(folder)
        except OSError:
            return
        if folder == up_to:
            return
        folder = folder.parent


def _topmost_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` (itself or a parent) that does not exist yet: what
    creating ``path`` creates. None if ``path`` exists."""
    missing: Path | None = None
    while not os.path.lexists(path):
        missing = path
        path = path.parent
    return missing


def _make_dirs(root: Path) -> Path | None:
    """Create ``root`` and missing parents; return the topmost folder created (to undo)."""
    missing = _topmost_missing(root)
    if missing is not None:
        try:
            os.makedirs(root)
        except FileExistsError:  # created concurrently: not ours to remove
            return None
        except OSError as exc:
            raise StorageError(f"could not create the app root {root}: {exc}") from exc
    return missing


def _place(model: DeployedModel, models_dir: Path, *, copy: bool) -> None:
    target_dir = version_dir(models_dir, model.name, model.version)
    target_dir.mkdir(parents=True)
    target = target_dir / model.entry
    if not copy:
        os.symlink(model.source, target, target_is_directory=os.path.isdir(model.source))
    elif os.path.isdir(model.source):
        shutil.copytree(model.source, target)
        _make_owner_writable(target)
    else:
        shutil.copy2(model.source, target)
        _make_owner_writable(target)


def _make_owner_writable(path: Path) -> None:
    """A copy of a read-only store entry must stay removable by its owner (``--force``,
    ``exec`` clean-up), so add the owner's write bit everywhere below ``path``."""
    paths = [path]
    if path.is_dir():
        paths.extend(path.rglob("*"))
    for item in paths:
        if item.is_symlink():
            continue
        mode = item.stat().st_mode
        os.chmod(item, stat.S_IMODE(mode) | stat.S_IWUSR)


def _swap_into_place(new_models: Path, target: Path, build: Path, *, force: bool) -> None:
    """Rename the finished tree to ``<app_root>/azureml-models``.

    Without ``force`` the target must not exist: a concurrent writer that got there first makes
    the rename fail and this deployment is refused. With ``force`` an existing tree is swapped
    with the new one in one atomic step where the system can (Linux), so readers see the old
    tree or the new one and never neither; elsewhere it is renamed away just before. The old
    tree ends up in the build folder and is deleted with it. Concurrent forced deployments
    retry, so the last one wins, whole.
    """
    trash = build / "previous"
    trash.mkdir()
    for attempt in range(_SWAP_ATTEMPTS):
        moved: Path | None = None
        if force and os.path.lexists(target):
            if _exchange(new_models, target):
                return
            moved = trash / str(attempt)
            try:
                os.rename(target, moved)
            except FileNotFoundError:
                moved = None
        try:
            os.rename(new_models, target)
            return
        except OSError as exc:
            if moved is not None:
                # if another writer's tree is in place instead, it is whole either way
                with contextlib.suppress(OSError):
                    os.rename(moved, target)
            if exc.errno not in _RACE_ERRNOS:
                raise
            if not force:
                raise DeploymentRefusedError(
                    f"{target} appeared while this deployment was being built; another "
                    "deployment may be writing there (nothing was written)"
                ) from None
    raise DeploymentRefusedError(
        f"{target} kept changing while this deployment was being installed; another "
        "deployment is writing there, try again (nothing was written)"
    )


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    """glibc's ``renameat2`` (Linux 3.15+, glibc 2.28+), or None where it does not exist."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        function: Callable[..., int] = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    return function


def _exchange(first: Path, second: Path) -> bool:
    """Swap two existing paths atomically; False (nothing done) where the system cannot.

    Under pyfakefs ``os`` is a fake module and the C call would hit the real disk, so the
    portable two-rename path is used there.
    """
    renameat2 = _renameat2()
    if renameat2 is None or not isinstance(os, types.ModuleType):
        return False
    import ctypes

    result = renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EXDEV):
        return False  # kernel or filesystem without exchange support
    if code == errno.ENOENT:
        return False  # the old tree vanished meanwhile: a plain rename will do
    raise OSError(code, os.strerror(code), os.fspath(second))
