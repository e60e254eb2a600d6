"""The on-disk tree ``<home>/azureml-models/<name>/<version>/<entry>`` and its working space.

Publishing: a version is copied into ``.modelstore/staging/<token>/<entry>``, and once its number
is known it is arranged as ``staging/<token>/<name>/<version>/<entry>`` and moved into the tree
with ONE rename: of the whole ``<name>`` folder when the name has no folder yet (so an empty
``azureml-models/<name>/``, which makes the Azure SDK fail with "versions is empty", never
exists), else of the ``<version>`` folder. Removal is the mirror image: rename out to
``.modelstore/trash/<token>`` (the whole name folder when its last version goes), then delete.
So readers of the tree only ever see complete versions.

Locks (``.modelstore/locks``): a per-name lock serialises the renames that create or remove a
name folder, and each staging/trash token has a lock held by the process working on it, which is
how ``doctor`` tells a live operation from the leftover of a killed one. Version numbers do not
depend on these locks: the catalog's transactions allocate them.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from modelstore.errors import InvalidModelPathError, StorageError
from modelstore.layout import StoreLayout
from modelstore.store import locks
from modelstore.store.fsops import READ_ONLY_FILE, fsync_dir, make_dirs_read_only, remove_tree
from modelstore.store.hashing import copy_and_hash, new_buffer
from modelstore.store.links import stamp
from modelstore.store.sources import SourceFile, SourcePlan

_WRAPPER_SUFFIX = ".name"
_LOCK_SUFFIX = ".lock"
_TOKEN_LOCK_PREFIX = "token-"
_LOCK_CREATION_GRACE = 60.0  # seconds; see token_lock_abandoned
_IMPORT_MARK = "import-"

LinkStep = Callable[
    [SourceFile, str, Callable[[int], None] | None, bytearray], tuple[int, str] | None
]
"""Stage a source file without copying it: (size, sha256) if it did (see ``links``), else
None. It may report bytes it read to the progress callback it is given, and read through the
buffer it is lent."""


def is_import_token(token: str | None) -> bool:
    """True for the token of a version written by ``import`` (see ``Store.new_token``)."""
    return token is not None and token.partition("-")[2].startswith(_IMPORT_MARK)


@dataclass(frozen=True)
class StagedFile:
    relpath: str
    size: int
    sha256: str


class Store:
    def __init__(self, layout: StoreLayout) -> None:
        self.layout = layout
        self._buffer: bytearray | None = None
        self._made: set[Path] = set()
        self._name_lock_paths: dict[str, str] = {}
        self._locks_prefix = f"{layout.locks_dir}{os.sep}"
        self._staging_prefix = f"{layout.staging_dir}{os.sep}"

    def _ensure_dir(self, path: Path) -> None:
        """mkdir -p, once per Store (these folders are never removed while in use)."""
        if path not in self._made:
            path.mkdir(parents=True, exist_ok=True)
            self._made.add(path)

    # --- locks -------------------------------------------------------------------------------

    def _lock_path(self, key: str) -> str:
        self._ensure_dir(self.layout.locks_dir)
        return f"{self._locks_prefix}{key}{_LOCK_SUFFIX}"

    def name_lock(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Serialises the renames that create, fill or remove ``azureml-models/<name>``."""
        path = self._name_lock_paths.get(name)
        if path is None:
            digest = hashlib.sha256(name.encode()).hexdigest()[:24]
            path = self._name_lock_paths[name] = self._lock_path(f"name-{digest}")
        else:
            self._ensure_dir(self.layout.locks_dir)
        return locks.hold(path)

    def version_lock(self, name: str, version: int) -> contextlib.AbstractContextManager[None]:
        """Serialises materialising ``<name>/<version>`` into this home's cache."""
        digest = hashlib.sha256(f"{name}/{version}".encode()).hexdigest()[:24]
        return locks.hold(self._lock_path(f"version-{digest}"))

    @contextlib.contextmanager
    def catalog_lock(self) -> Iterator[None]:
        """Serialises the first creation / migration of the catalog. Lazy: the locks folder is
        created only when a migration actually runs, so opening an existing registry writes
        nothing."""
        with locks.hold(self._lock_path("catalog-migration")):
            yield

    @contextlib.contextmanager
    def token_lock(self, token: str) -> Iterator[None]:
        """Held for the lifetime of a staging or trash token by the process using it (the
        kernel drops it when that process dies, however it dies)."""
        path = self._token_lock_path(token)
        with locks.hold(path, removable=True):  # doctor removes token locks nobody holds
            try:
                yield
            finally:  # failed work too (a full disk...): tokens are used once, locks/ must
                _unlink_quietly(path)  # not grow; unlinked while still held, so never stolen

    def token_in_use(self, token: str) -> bool:
        """True while a live process holds ``token``'s lock."""
        path = self._token_lock_path(token)
        if locks.is_held(path):
            return True
        locks.remove_if_free(path)
        return False

    def _token_lock_path(self, token: str) -> str:
        return self._lock_path(f"{_TOKEN_LOCK_PREFIX}{token}")

    def token_lock_files(self) -> dict[str, str]:
        """Token -> lock file, for every token lock file in ``locks/`` (held or not)."""
        try:
            names = os.listdir(self.layout.locks_dir)
        except FileNotFoundError:
            return {}
        return {
            name[len(_TOKEN_LOCK_PREFIX) : -len(_LOCK_SUFFIX)]: f"{self._locks_prefix}{name}"
            for name in sorted(names)
            if name.startswith(_TOKEN_LOCK_PREFIX) and name.endswith(_LOCK_SUFFIX)
        }

    def token_lock_abandoned(self, token: str) -> bool:
        """True if ``token``'s lock file is a leftover: no process holds it, and none is about
        to. Its creator opens the file and only then locks it, so a free lock of a process
        that is still alive may be a moment from being taken; the token starts with the pid
        of its process, and a file older than a minute is past that moment in any case."""
        path = self._token_lock_path(token)
        if locks.is_held(path):
            return False
        try:
            age = time.time() - os.stat(path).st_mtime
        except FileNotFoundError:
            return False  # removed by its owner meanwhile
        return age > _LOCK_CREATION_GRACE or not _process_alive(token.partition("-")[0])

    def remove_token_lock(self, token: str) -> None:
        locks.remove_if_free(self._token_lock_path(token))

    @staticmethod
    def new_token(*, importing: bool = False) -> str:
        """``importing``: the token of one version of an import, which ``doctor`` rolls back
        even when its folder reached the tree (an import is visible whole or not at all)."""
        return f"{os.getpid()}-{_IMPORT_MARK if importing else ''}{uuid.uuid4().hex}"

    # --- staging -----------------------------------------------------------------------------

    def staging_path(self, token: str) -> Path:
        return Path(f"{self._staging_prefix}{token}")

    def stage(
        self,
        plan: SourcePlan,
        token: str,
        progress: Callable[[int, int], None] | None = None,
        *,
        link: LinkStep | None = None,
        vouch: bool = False,
    ) -> list[StagedFile]:
        """Copy the plan's files into ``staging/<token>/<entry>``, hashing the bytes written,
        fsync'd and read-only. On any failure the staging folder is removed before raising.
        ``staging/<token>`` is the future version folder: it will hold only the entry.
        ``link`` is tried first for each file (a shared store's home links bytes it already
        holds); ``vouch`` stamps each copy with its sha256 so it may be linked to later."""
        root = self.staging_path(token)
        total = plan.total_size
        done = 0

        def advance(count: int) -> None:
            nonlocal done
            done += count
            if progress is not None:
                progress(done, total)

        if self._buffer is None:
            self._buffer = new_buffer()
        staged: list[StagedFile] = []
        try:
            root.mkdir(parents=True)
            made_dirs: set[str] = {os.fspath(root)}
            for source in plan.files:
                target = os.path.join(root, *source.relpath.split("/"))
                parent = os.path.dirname(target)
                if parent not in made_dirs:
                    os.makedirs(parent, exist_ok=True)
                    made_dirs.add(parent)
                try:
                    reported = done
                    linked = None
                    if link is not None:
                        linked = link(source, target, advance, self._buffer)
                    if linked is not None:
                        staged.append(StagedFile(source.relpath, *linked))
                        continue  # a link to a read-only file whose data are already durable
                    size, sha256 = copy_and_hash(  # bytes already hashed count once
                        source.source, target, self._buffer, advance if done == reported else None
                    )
                except OSError as exc:
                    if exc.filename == source.source:  # the user's model, not the store, failed
                        raise InvalidModelPathError(_unreadable(source.source, exc)) from None
                    raise
                if vouch:
                    stamp(target, size, sha256)
                os.chmod(target, READ_ONLY_FILE)
                staged.append(StagedFile(source.relpath, size, sha256))
            if progress is not None and total == 0:
                progress(0, 0)
            # The entry's own folders must be durable (they move into the tree with it); the
            # staging folders around it never reach the tree and need no fsync.
            for folder in made_dirs - {os.fspath(root)}:
                fsync_dir(folder)
        except BaseException as exc:
            self.discard(token)
            if isinstance(exc, OSError) and not isinstance(exc, InvalidModelPathError):
                raise _storage_error(exc, "copying the model into the store") from exc
            raise
        return staged

    def discard(self, token: str) -> None:
        """Remove whatever staging holds for ``token`` (a no-op once it was published)."""
        for path in (self.staging_path(token), self._wrapper_path(token)):
            if os.path.lexists(path):
                with contextlib.suppress(OSError):
                    remove_tree(path)

    def is_staged(self, token: str) -> bool:
        """True while staging holds something of ``token`` (a copy or a name wrapper)."""
        return os.path.lexists(self.staging_path(token)) or os.path.lexists(
            self._wrapper_path(token)
        )

    def _wrapper_path(self, token: str) -> Path:
        return self.layout.staging_dir / f"{token}{_WRAPPER_SUFFIX}"

    # --- publish / unpublish -----------------------------------------------------------------

    def publish(self, token: str, name: str, version: int, entry: str) -> Path:
        """Move the staged version into the tree as ``<name>/<version>/<entry>`` with ONE rename.

        ``staging/<token>`` already is the version folder (it holds just the entry). When the
        name has no folder yet, it is first put in a wrapper ``staging/<token>.name/<version>``
        and the wrapper becomes ``azureml-models/<name>``: an empty name folder never appears.
        Nothing is left in staging afterwards, so there is nothing to clean up.

        Durability: the files' data were fsync'd when staged (so a rename that survives a power
        cut never exposes unwritten data); the rename itself, like the catalog's commit in WAL
        mode with ``synchronous=NORMAL``, becomes durable at the file system's next journal
        commit (seconds). A power cut can thus lose the last registrations, never corrupt one;
        ``doctor`` reconciles catalog and tree afterwards.
        """
        staged = self.staging_path(token)
        try:
            make_dirs_read_only(staged / entry)
            self._ensure_dir(self.layout.models_dir)
            with self.name_lock(name):
                name_dir = self.layout.name_dir(name)
                target = name_dir / str(version)
                if not os.path.lexists(name_dir):
                    wrapper = self._wrapper_path(token)
                    wrapper.mkdir()
                    os.rename(staged, wrapper / str(version))
                    if _try_rename(wrapper, name_dir):
                        return self.layout.entry_path(name, version, entry)
                    staged = wrapper / str(version)  # the name folder filled up meanwhile
                if os.path.lexists(target):
                    raise StorageError(
                        f"cannot publish {name}:{version}: {target} already exists (left by an "
                        "earlier crash)",
                        hint="clean up with Registry.doctor(repair=True) and retry",
                        remedy="repair",
                        path=os.fspath(target),
                    )
                os.rename(staged, target)
        except OSError as exc:
            self.discard(token)
            raise _storage_error(exc, f"publishing {name}:{version}") from exc
        except BaseException:
            self.discard(token)
            raise
        self.discard(token)  # only an emptied wrapper can be left
        return self.layout.entry_path(name, version, entry)

    def unpublish(self, name: str, versions: Iterable[int | str], token: str) -> Path:
        """Rename the versions' folders out of the tree into ``trash/<token>``; the whole name
        folder goes when nothing else would be left in it. Returns the trash folder."""
        trash = self.layout.trash_dir / token
        try:
            trash.mkdir(parents=True, exist_ok=True)  # doctor reuses its token
            with self.name_lock(name):
                name_dir = self.layout.name_dir(name)
                if not name_dir.is_dir():
                    return trash
                wanted = {str(v) for v in versions}
                present = set(os.listdir(name_dir))
                if present <= wanted:
                    os.rename(name_dir, trash / name)
                    fsync_dir(self.layout.models_dir)
                else:
                    _move_all(name_dir, trash, sorted(present & wanted))
                    fsync_dir(name_dir)
        except OSError as exc:
            raise _storage_error(
                exc, f"removing {name} from the tree", "nothing was removed"
            ) from exc
        return trash

    def empty_trash(self, trash: Path) -> None:
        remove_tree(trash)

    # --- scanning ----------------------------------------------------------------------------

    def tokens(self, area: Path) -> list[str]:
        try:
            return sorted(os.listdir(area))
        except FileNotFoundError:
            return []

    def staging_tokens(self) -> list[str]:
        """Tokens with something in staging (a version folder and/or a name wrapper)."""
        return sorted({item.split(".")[0] for item in self.tokens(self.layout.staging_dir)})

    def trash_tokens(self) -> list[str]:
        return self.tokens(self.layout.trash_dir)

    def remember_shared(self, record: dict[str, str]) -> None:
        """Record (atomically, only when it changed) which shared registry this home caches."""
        marker = self.layout.shared_marker
        if self.shared_record() == record:
            return
        self._ensure_dir(marker.parent)
        temporary = marker.with_name(f"{marker.name}.tmp-{self.new_token()}")
        try:
            temporary.write_text(json.dumps(record, sort_keys=True), encoding="utf-8")
            os.replace(temporary, marker)
        except OSError:
            with contextlib.suppress(OSError):
                temporary.unlink()
            # Only advice for a later mistake is lost: never fail the operation for it.

    def shared_record(self) -> dict[str, str] | None:
        """What ``remember_shared`` wrote, or None (a home of its own, or never written)."""
        try:
            loaded = json.loads(self.layout.shared_marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(loaded, dict):
            return None
        return {str(k): str(v) for k, v in loaded.items()}

    def version_folders(self) -> list[tuple[str, str]]:
        """(name, version) of every whole-number folder in the tree: what a catalog must account
        for. Reads only."""
        return [
            (name, child)
            for name, children in self.tree().items()
            for child in children
            if child.isascii() and child.isdigit()
        ]

    def tree(self) -> dict[str, list[str]]:
        """Name folder (or stray item) -> its children, for everything under azureml-models."""
        models = self.layout.models_dir
        try:
            names = sorted(os.listdir(models))
        except (FileNotFoundError, NotADirectoryError):
            return {}
        result: dict[str, list[str]] = {}
        for name in names:
            path = models / name
            try:  # a name folder removed by another process since the listing above is skipped
                is_folder = stat.S_ISDIR(os.lstat(path).st_mode)  # a symlink is a stray item
                result[name] = sorted(os.listdir(path)) if is_folder else []
            except (FileNotFoundError, NotADirectoryError):
                continue
        return result


def _move_all(source_dir: Path, target_dir: Path, names: list[str]) -> None:
    """Rename each ``names`` item from ``source_dir`` to ``target_dir``, all or none: when one
    rename fails, those already moved go back before the error is raised (the caller still
    lists them, so they must not stay where they would be emptied with the trash)."""
    moved: list[str] = []
    try:
        for item in names:
            os.rename(source_dir / item, target_dir / item)
            moved.append(item)
    except BaseException:
        for item in reversed(moved):
            with contextlib.suppress(OSError):  # if even this fails, doctor finds it in trash
                os.rename(target_dir / item, source_dir / item)
        raise


def _unreadable(source: str, exc: OSError) -> str:
    """What to tell the user when reading their model failed during the copy."""
    if isinstance(exc, PermissionError):
        return f"cannot read {source!r} (permission denied); make it readable and retry"
    if isinstance(exc, FileNotFoundError):
        return (
            f"{source!r} disappeared while it was being copied; register again once the model "
            "is complete"
        )
    return (
        f"cannot read {source!r} ({exc.strerror or exc}); check the source file and the disk "
        "it is on, then retry"
    )


def _process_alive(pid_text: str) -> bool:
    """False only when no process has that pid on this machine (tokens start with a pid)."""
    if os.name == "nt" or not pid_text.isdigit():  # os.kill(pid, 0) would kill it on Windows
        return True
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, another user's
        return True
    return True


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _try_rename(source: Path, target: Path) -> bool:
    """rename(2) replaces a missing or empty folder atomically; False if ``target`` filled up."""
    try:
        os.rename(source, target)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
            return False
        raise
    return True


def _storage_error(
    exc: OSError, doing: str, outcome: str = "nothing was published"
) -> StorageError:
    if exc.errno == errno.ENOSPC:
        hint = "the disk is full; free some space and retry"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "the store is not writable; check the permissions of the registry home"
    else:
        detail = exc.strerror or exc.__class__.__name__
        return StorageError(
            f"{detail} while {doing}: check the registry home and retry ({outcome})",
            hint="Registry.doctor() reports leftovers",
            remedy="run_doctor",
            path=exc.filename if isinstance(exc.filename, str) else None,
        )
    detail = exc.strerror or exc.__class__.__name__
    return StorageError(
        f"{detail} while {doing}: {hint} ({outcome})",
        path=exc.filename if isinstance(exc.filename, str) else None,
    )
