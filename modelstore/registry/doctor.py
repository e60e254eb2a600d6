"""``Registry.doctor``: find, and on request clean, what interrupted work left behind.

It reasons from the order ``Registry`` does things in (see ``modelstore.registry``):

- a *pending* row of a dead process: if its folder reached the tree complete, the registration
  is finished (row -> ready); otherwise it is rolled back (folder, staging and row removed);
  a row of an ``import`` is always rolled back, since an import is visible whole or not at all;
- a *deleting* row of a dead process: the deletion is finished;
- a *ready* row whose version folder vanished: the row is dropped;
- an empty name folder: removed;
- anything else in ``azureml-models`` no row accounts for (a *foreign* folder or file): never
  removed. Those may be a user's only copy of a model (a catalog lost and recreated empty turns
  every version into one), so they are reported, and adopted into the catalog or moved aside
  into ``.modelstore/foreign/`` only when the caller asks;
- staging and trash folders no live process holds: removed (modelstore's own working copies);
- token lock files no live process holds: removed.

Work in progress belongs to the catalog: every registration and deletion holds a lease there
(``modelstore.catalog.leases``: home, host, pid, process start time, heartbeat). Work whose owner
is alive is reported as ``work_in_progress`` and left alone; work whose owner is provably gone
(same host: its process ended; another host: its heartbeat expired) is settled from any home
sharing the catalog: a registration of another home is completed when every file is in the
shared model store, else rolled back; a deletion is finished; a lease that never got a row is
dropped. Only catalog rows are written for another home's work: its staging, trash and cache
are in that home, left to its own doctor.

Work of live processes of this home is recognised by its token lock and left alone. The tree is
listed before the catalog is read, so a version published meanwhile always has its row in the
snapshot. Other processes keep working while doctor looks, so each finding is confirmed against
the current state (once no live process holds it) before it is reported: work finished meanwhile
is not a leftover.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

from modelstore.catalog import DELETING, PENDING, READY, Catalog
from modelstore.catalog.leases import REGISTER, LeaseRecord, Owner, owner_gone, this_process
from modelstore.catalog.records import VersionRecord
from modelstore.errors import CatalogError, ModelLayoutError
from modelstore.registry.reports import (
    DoctorReport,
    Finding,
    FindingKind,
    ForeignAction,
    VersionCheck,
)
from modelstore.store import Store, remove_tree
from modelstore.store.tree import is_import_token

LEAVE_FOREIGN = (
    "leave it (never deleted): doctor(repair=True, foreign='adopt') records a version folder as "
    "it is, foreign='move-aside' moves it into .modelstore/foreign/"
)
"""The action of a foreign item when ``foreign="report"``; the CLI words it in its flags."""


class Doctor:
    def __init__(
        self,
        catalog: Catalog,
        store: Store,
        check: Callable[[VersionRecord], VersionCheck],
        adopt: Callable[[str, str], None],
        *,
        owner: Owner | None = None,
        shared: bool = False,
        in_store: Callable[[VersionRecord], bool] | None = None,
        folder_in_store: Callable[[Path], bool] | None = None,
    ) -> None:
        """``owner``: this process, as a lease names it. ``shared``: the catalog and the model
        store are shared by several homes, and this home's tree is only a cache (see
        ``_elsewhere``); ``in_store``: whether every file of a version is in the shared store;
        ``folder_in_store``: whether the bytes of every file under a folder are (see
        ``_deleted_version_cache``)."""
        self.catalog = catalog
        self.store = store
        self.check = check
        self.adopt = adopt
        self.shared = shared
        self.owner = owner or this_process(str(store.layout.home))
        self.in_store = in_store
        self.folder_in_store = folder_in_store
        self.now = 0
        self.leases: dict[str, LeaseRecord] = {}
        self.findings: list[Finding] = []
        self.notes: list[str] = []
        self.repair = False
        self.foreign: ForeignAction = "report"
        self.token = store.new_token()

    def run(self, repair: bool, foreign: ForeignAction = "report") -> DoctorReport:
        self.repair = repair
        self.foreign = foreign
        with self.store.token_lock(self.token):
            staging = self.store.staging_tokens()
            trash = self.store.trash_tokens()
            tree = self.store.tree()
            rows = self.catalog.rows()
            # after the rows: a row's lease was written before it, so it is here unless the
            # row's operation ended meanwhile (which ``unchanged`` then tells)
            self.now, self.leases = self.catalog.leases()
            handled_tokens: set[str] = set()
            for row in rows:
                if row.state == PENDING:
                    self._pending(row, handled_tokens)
                elif row.state == DELETING:
                    self._deleting(row, handled_tokens)
                else:
                    self._ready(row)
            self._rowless_leases({r.token for r in rows})
            self._tree(tree, {(r.name, str(r.version)) for r in rows})
            for token in staging:
                if token in handled_tokens or self.store.token_in_use(token):
                    continue
                if self.store.is_staged(token):  # else published or discarded meanwhile
                    self._found(
                        "staging_leftover",
                        str(self.store.staging_path(token)),
                        "a copy into the store that never finished",
                        "remove it",
                        lambda token=token: self.store.discard(token),  # type: ignore[misc]
                    )
            for token in trash:
                if token in handled_tokens or token == self.token:
                    continue
                if self.store.token_in_use(token):
                    continue
                path = self.store.layout.trash_dir / token
                if not os.path.lexists(path):
                    continue  # emptied by its deletion meanwhile
                self._found(
                    "trash_leftover",
                    str(path),
                    "a deleted version whose files were not removed",
                    "remove it",
                    lambda path=path: remove_tree(path),  # type: ignore[misc]
                )
            self._stale_token_locks()
            with contextlib.suppress(OSError):
                remove_tree(self.store.layout.trash_dir / self.token)
        return DoctorReport(findings=self.findings, repair=repair)

    def _stale_token_locks(self) -> None:
        """Lock files of tokens whose process died (killed after its work was done, so nothing
        else of it is left for the checks above to clean up with its lock)."""
        for token, path in self.store.token_lock_files().items():
            if token == self.token or not self.store.token_lock_abandoned(token):
                continue
            self._found(
                "stale_lock",
                path,
                "the lock file of an operation whose process is gone",
                "remove it",
                lambda token=token: self.store.remove_token_lock(token),  # type: ignore[misc]
            )

    # --- rows --------------------------------------------------------------------------------

    def _elsewhere(self, row: VersionRecord) -> bool:
        """With a shared catalog, a pending or deleting row may be the work of another home,
        whose token lock this home cannot see: it is this home's only if this home holds a
        trace of its token (its lock file, staging or trash). Work of other homes is reported
        and never repaired here: doctor cannot tell whether its owner is alive."""
        if not self.shared or row.token is None:
            return False
        token = row.token
        return not (
            token in self.store.token_lock_files()
            or self.store.is_staged(token)
            or os.path.lexists(self.store.layout.trash_dir / token)
        )

    def _other_home(self, row: VersionRecord, doing: str) -> None:
        self._found(
            "other_home_work",
            f"{row.name}:{row.version}",
            f"a {doing} under way (or interrupted) in another home of the shared catalog",
            "leave it: only the doctor of the home that started it may finish or roll it back",
            None,
        )

    def _owned_elsewhere(self, row: VersionRecord, doing: str) -> bool:
        """Whether the row is work this home must not settle with its own files: work under
        way (any home), or another home's. Reports it, or settles another home's work whose
        owner is gone through the catalog alone."""
        lease = None if row.token is None else self.leases.get(row.token)
        if lease is not None:
            gone = owner_gone(lease, self.now, self.owner)
            if gone is None:
                if self.catalog.unchanged(row):  # else it ended since the snapshot
                    self._live(f"{row.name}:{row.version}", f"a {doing}", lease)
                return True
            if self._elsewhere(row):
                self._settle(row, lease, gone)
                return True
            return False  # this home's, its process gone: settled here with its files
        if not self.catalog.unchanged(row):
            return True  # its operation finished (or was undone) since the snapshot
        if self._elsewhere(row):  # no lease: written by a release without them
            self._other_home(row, doing)
            return True
        return False

    def _live(self, subject: str, doing: str, lease: LeaseRecord) -> None:
        self._found(
            "work_in_progress",
            subject,
            f"{doing} under way in {lease.describe()}",
            "leave it: its process is alive",
            None,
        )

    def _settle(self, row: VersionRecord, lease: LeaseRecord, gone: str) -> None:
        """Another home's pending or deleting row whose owner is gone: only the catalog is
        written (that home's staging, trash and cache are its own doctor's)."""
        subject = f"{row.name}:{row.version}"
        if not self.catalog.unchanged(row):
            return
        whose = f"in {lease.describe()}, whose {gone}"
        state: str | None
        if row.state == DELETING:
            detail = f"deletion {whose}, was interrupted"
            action = "finish deleting it (a copy cached in that home is its doctor's)"
            state = None
        elif self.in_store is not None and self.in_store(row):
            detail = f"registration {whose}, was interrupted once every file was in the store"
            action = "complete it (the version becomes visible)"
            state = READY
        else:
            detail = f"registration {whose}, was interrupted before its files were stored"
            action = "roll it back (its version number stays unused)"
            state = None

        def settle() -> bool:
            if self.catalog.settle(row, lease, state):
                return True
            self.notes.append("it changed meanwhile (its process is alive, or it was settled)")
            return False

        kind: FindingKind = (
            "unfinished_deletion" if row.state == DELETING else "unfinished_registration"
        )
        self._found(kind, subject, detail, action, settle)

    def _rowless_leases(self, tokens: set[str | None]) -> None:
        """Leases no row of the snapshot carries: operations that have not taken a number (or
        flipped a row) yet, or whose process died before. Live ones are reported; a gone one's
        lease is dropped (nothing of it is in the catalog; a blob it uploaded stays in the store
        for any version to use; its staging copy is its home's doctor's)."""
        for token, lease in sorted(self.leases.items()):
            if token in tokens or self.store.token_in_use(token):
                continue
            if not self.catalog.has_lease(token):
                continue  # its operation ended since the snapshot
            doing = "registration" if lease.operation == REGISTER else "deletion"
            gone = owner_gone(lease, self.now, self.owner)
            if gone is None:
                self._live(lease.name, f"a {doing} of {lease.name}", lease)
                continue

            def drop(lease: LeaseRecord = lease) -> bool:
                if self.catalog.drop_lease(lease):
                    return True
                self.notes.append("it changed meanwhile (its process is alive, or it went on)")
                return False

            self._found(
                "abandoned_lease",
                lease.name,
                f"the lease of a {doing} of {lease.name} in {lease.describe()}, whose "
                f"{gone}, before it wrote anything else to the catalog",
                "drop the lease",
                drop,
            )

    def _settled_here(self, row: VersionRecord, handled: set[str], doing: str) -> bool:
        """Whether this home is to settle the pending or deleting ``row`` now: not while its
        operation runs in this home (its token is in use) or is owned elsewhere, and not if it
        finished (or was undone) since the snapshot. Its token is then ``handled``."""
        if row.token is not None and self.store.token_in_use(row.token):
            return False  # in progress here
        if self._owned_elsewhere(row, doing):
            return False
        if not self.catalog.unchanged(row):
            return False
        if row.token is not None:
            handled.add(row.token)
        return True

    def _pending(self, row: VersionRecord, handled: set[str]) -> None:
        if not self._settled_here(row, handled, "registration"):
            return
        subject = f"{row.name}:{row.version}"
        folder = self.store.layout.version_dir(row.name, row.version)
        if os.path.lexists(folder) and not is_import_token(row.token) and self.check(row).ok:

            def finish() -> None:
                self.catalog.set_row_state(row, READY)
                if row.token is not None:
                    self.store.discard(row.token)

            self._found(
                "unfinished_registration",
                subject,
                "registration was interrupted after its files were published complete",
                "complete it (the version becomes visible)",
                finish,
            )
            return
        in_store = self.in_store
        if self.shared and not is_import_token(row.token) and in_store and in_store(row):
            # complete, as another home's doctor would (see _settle)

            def finish_from_store() -> None:
                if os.path.lexists(folder):  # not a complete copy: cached again on use
                    self._unpublish(row.name, [str(row.version)])
                self.catalog.set_row_state(row, READY)
                if row.token is not None:
                    self.store.discard(row.token)

            self._found(
                "unfinished_registration",
                subject,
                "registration was interrupted once every file was in the store",
                "complete it (the version becomes visible)",
                finish_from_store,
            )
            return

        def roll_back() -> None:
            if os.path.lexists(folder):
                self._unpublish(row.name, [str(row.version)])
            if row.token is not None:
                self.store.discard(row.token)
            self.catalog.forget_row(row)

        self._found(
            "unfinished_registration",
            subject,
            "registration was interrupted before its files were published",
            "roll it back (its version number stays unused)",
            roll_back,
        )

    def _deleting(self, row: VersionRecord, handled: set[str]) -> None:
        if not self._settled_here(row, handled, "deletion"):
            return

        def finish() -> None:
            self._unpublish(row.name, [str(row.version)])
            self.catalog.forget_row(row)
            if row.token is not None:
                remove_tree(self.store.layout.trash_dir / row.token)

        self._found(
            "unfinished_deletion",
            f"{row.name}:{row.version}",
            "deletion was interrupted",
            "finish deleting it",
            finish,
        )

    def _ready(self, row: VersionRecord) -> None:
        entry = self.store.layout.entry_path(row.name, row.version, row.entry)
        if os.path.lexists(entry):
            return
        if self.shared:  # this home's tree is a cache: the row is every home's, never dropped
            return  # here (a version not cached, or a damaged cache that verify reports)
        if not self.catalog.unchanged(row) or os.path.lexists(entry):
            return  # being deleted (or deleted) by a live process, or put back by a failed delete

        def drop() -> None:
            if os.path.lexists(entry.parent):  # whatever else is left there goes too
                self._unpublish(row.name, [str(row.version)])
            self.catalog.forget_row(row)

        self._found(
            "missing_folder",
            f"{row.name}:{row.version}",
            f"its entry {row.entry!r} is gone from {entry.parent}",
            "drop it from the catalog",
            drop,
        )

    # --- tree --------------------------------------------------------------------------------

    def _tree(self, tree: dict[str, list[str]], known: set[tuple[str, str]]) -> None:
        models = self.store.layout.models_dir
        for name, children in tree.items():
            path = models / name
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue  # removed by a repair above (or by another process) meanwhile
            if not stat.S_ISDIR(info.st_mode):  # a file, a symlink...
                self._foreign("stray_item", name, None, "not a model name folder")
                continue
            if not children:
                if _listing(path):
                    continue  # filled by a live registration since the snapshot
                self._found(
                    "empty_name_folder",
                    str(path),
                    "an empty name folder (Azure ML's get_model_path fails on it)",
                    "remove it",
                    lambda name=name: self._remove_empty(name),  # type: ignore[misc]
                )
                continue
            orphans = [child for child in children if (name, child) not in known]
            for child in orphans:
                if not os.path.lexists(path / child):
                    continue  # deleted by a live process between the listing and the catalog
                if self._deleted_version_cache(name, child):
                    continue
                self._foreign("orphan_folder", name, child, "in the tree but not in the catalog")

    def _deleted_version_cache(self, name: str, child: str) -> bool:
        """In a home caching a shared store, a version deleted (or rolled back) from another
        home stays in this home's cache: that home can only remove its own copy. Such a folder
        is a number the catalog handed out (at or below the name's high-water mark; numbers are
        never reused) with no row any more, and every byte of it is in the store, hashed file
        by file: removing this copy loses nothing. Anything else stays a foreign folder, never
        deleted."""
        if not (self.shared and self.folder_in_store is not None and child.isdigit()):
            return False
        version = int(child)
        mark = self.catalog.last_version(name)
        folder = self.store.layout.models_dir / name / child
        if mark is None or not 1 <= version <= mark or not self.folder_in_store(folder):
            return False

        def evict() -> bool:
            if self.catalog.has_row(name, version):  # cannot happen (never reused): be sure
                self.notes.append(f"{name}:{version} is in the catalog again")
                return False
            self._unpublish(name, [child])
            return True

        self._found(
            "deleted_version_cache",
            f"{name}:{child}",
            "this home's cached copy of a version the catalog no longer has (deleted, or "
            "rolled back, from another home); every byte of it is in the shared store",
            "remove this home's copy (the store keeps every byte)",
            evict,
        )
        return True

    def _foreign(self, kind: FindingKind, name: str, child: str | None, detail: str) -> None:
        """An item no row accounts for: reported; adopted or moved aside only on request."""
        models = self.store.layout.models_dir
        path = models / name if child is None else models / name / child
        target = self.store.layout.foreign_dir / self.token / name
        if child is not None:
            target = target / child
        fix: Callable[[], bool | None] | None = None
        if self.foreign == "adopt" and child is not None:
            action = "adopt it (record it in the catalog as it is in the tree)"
            fix = lambda: self._adopt(name, child)  # noqa: E731
        elif self.foreign == "move-aside":
            action = f"move it aside to {target} (nothing is deleted)"
            fix = lambda: self._move_aside(name, path, target)  # noqa: E731
        else:
            action = LEAVE_FOREIGN
        self._found(kind, str(path), detail, action, fix)

    def _adopt(self, name: str, child: str) -> bool:
        try:
            self.adopt(name, child)
        except (ModelLayoutError, CatalogError) as exc:
            self.notes.append(str(exc))
            return False
        return True

    def _move_aside(self, name: str, path: Path, target: Path) -> None:
        with self.store.name_lock(name):
            if not os.path.lexists(path):
                return
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(path, target)
            if path.parent != self.store.layout.models_dir:
                with contextlib.suppress(OSError):  # not empty: other versions stay
                    os.rmdir(path.parent)

    def _unpublish(self, name: str, folders: list[str]) -> None:
        trash = self.store.unpublish(name, folders, self.token)
        remove_tree(trash)

    def _remove_empty(self, name: str) -> None:
        # OSError: refilled meanwhile, so not empty any more
        with self.store.name_lock(name), contextlib.suppress(OSError):
            os.rmdir(self.store.layout.name_dir(name))

    # --- bookkeeping -------------------------------------------------------------------------

    def _found(
        self,
        kind: FindingKind,
        subject: str,
        detail: str,
        action: str,
        fix: Callable[[], bool | None] | None,
    ) -> None:
        """``fix`` None: nothing repair may do; a fix returning False could not be done (its
        reason is the last note)."""
        repaired = False
        if self.repair and fix is not None:
            repaired = fix() is not False
            if not repaired:
                undone = "adopted" if kind in ("orphan_folder", "stray_item") else "repaired"
                detail = f"{detail}; not {undone}: {self.notes[-1]}"
        self.findings.append(
            Finding(kind=kind, subject=subject, detail=detail, action=action, repaired=repaired)
        )


def _listing(path: os.PathLike[str]) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []
