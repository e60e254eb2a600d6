"""``export`` and ``import``: move versions between registries as one tar archive, and adopt an
existing ``azureml-models`` tree.

An archive is a tar file (plain, gzip, bzip2 or xz) whose FIRST member is
``modelstore-manifest.json``: the format, and per version its name, number, entry, kind, the
aliases pointing at it, metadata and files (relative path, size, sha256). Then come the files, as
``<name>/<version>/<relpath>``, regular files only.

An import is all or nothing, in four steps:

plan      read the manifest (or list the folder), compare every version with the catalog:
          new, equal (skipped with ``skip_existing``) or a conflict. Any conflict refuses the
          whole import before anything is written.
stage     extract every file into ``.modelstore/staging/<token>`` (one token per version),
          hashing the bytes written; a size or sha256 that differs from the manifest, a member
          the manifest does not list, a link, a device, an absolute or ``..`` name refuse the
          import and the staging is removed. The archive is never extracted by ``tarfile``
          itself: paths are built from the (checked) manifest, so nothing can land elsewhere;
          at most the manifest's total size is ever read out of a member, and that total must
          fit on the disk (a decompression bomb is refused before a byte is written).
reserve   one catalog transaction records every version *pending* under its own number (a
          number the name already used, even by a deleted version, is refused: numbers are
          never reused).
publish   each version is renamed into the tree as ``register`` does, then ONE transaction
          flips every row to ready. A failure rolls back the versions already published; a
          killed import leaves pending rows whose tokens mark them as an import's, which
          ``doctor`` rolls back even when their folders are complete.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import hashlib
import json
import lzma
import os
import shutil
import tarfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from io import BufferedIOBase, FileIO
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, Literal, cast

from modelstore.catalog import FileRecord, NewVersion
from modelstore.errors import (
    ArchiveError,
    ImportConflictError,
    IntegrityError,
    InvalidArgumentError,
    ModelstoreError,
    StorageError,
)
from modelstore.layout import MAX_VERSION, validate_alias, validate_name
from modelstore.registry.files import file_fields
from modelstore.store import manifest_digest, plan_source
from modelstore.store.fsops import READ_ONLY_FILE, fsync_dir
from modelstore.store.hashing import (
    BUFFER_SIZE,
    WRITEBACK_STEP,
    copy_stream_and_hash,
    fsync_file,
    hash_file,
    new_buffer,
    start_writeback,
)

if TYPE_CHECKING:
    from modelstore.catalog import Catalog
    from modelstore.store import Store

MANIFEST_NAME = "modelstore-manifest.json"
FORMAT = "modelstore-archive"
FORMAT_VERSION = 1
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
_HEADER_ALLOWANCE = 64 * 1024  # bytes of tar headers allowed per file on top of its data

_COMPRESSIONS: dict[str, str] = {
    ".tar": "",
    ".tar.gz": "gz",
    ".tgz": "gz",
    ".tar.bz2": "bz2",
    ".tbz2": "bz2",
    ".tar.xz": "xz",
    ".txz": "xz",
}

Compression = Literal["", "gz", "bz2", "xz"]


@dataclass(frozen=True)
class ArchivedVersion:
    """One version of an archive or a folder to import."""

    name: str
    version: int
    entry: str
    kind: str
    files: tuple[FileRecord, ...]
    """Empty for a folder's version until it is staged (its files are hashed then)."""
    sha256: str | None
    size: int
    created_at: datetime
    tags: dict[str, str] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    description: str | None = None
    framework: str | None = None
    framework_version: str | None = None
    source: str | None = None
    """A folder import: the entry's path."""
    aliases: tuple[str, ...] = ()
    """The aliases that pointed at this version where it was exported."""

    @property
    def id(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class ImportConflict:
    name: str
    version: int
    reason: str

    @property
    def id(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class ImportPlan:
    """What an import would do; nothing is written until ``Registry.import_planned``."""

    source: str
    kind: Literal["archive", "folder"]
    add: list[ArchivedVersion]
    skip: list[ArchivedVersion]
    conflicts: list[ImportConflict]
    compression: Compression = ""
    manifest_size: int = 0
    aliases: list[tuple[str, str, int]] = field(default_factory=list)
    """(name, alias, version) to set (``with_aliases``): those the registry does not have yet."""

    @property
    def bytes(self) -> int:
        return sum(v.size for v in self.add)


@dataclass(frozen=True)
class ExportReport:
    path: str
    versions: list[str]
    files: int
    bytes: int


# --- export ----------------------------------------------------------------------------------


def compression_for(path: str) -> Compression:
    lowered = path.lower()
    for suffix, kind in sorted(_COMPRESSIONS.items(), key=lambda item: -len(item[0])):
        if lowered.endswith(suffix):
            return kind  # type: ignore[return-value]
    raise InvalidArgumentError(
        f"cannot tell the archive format of {path!r}: name it .tar, .tar.gz (.tgz), .tar.bz2 "
        "(.tbz2) or .tar.xz (.txz)"
    )


def export(
    catalog: Catalog,
    store: Store,
    versions: Sequence[tuple[str, int]],
    path: str | os.PathLike[str],
) -> ExportReport:
    """Write ``versions`` (name, number; resolved from REFs by ``Registry.export``) to one
    archive at ``path``. It is written to an unnamed file in the target's folder (Linux
    ``O_TMPFILE``) and linked under its name once complete and fsync'd, so an export killed
    midway leaves nothing at all, and one that finishes never replaces a file created meanwhile.
    Where unnamed files are not available it is written as ``<path>.tmp-<token>`` and renamed,
    which a SIGKILL can leave behind (never under the target name). Every
    file is hashed as it is written and compared with its recorded sha256: a damaged version is
    refused, not exported."""
    target = os.fspath(path)
    compression = compression_for(target)
    if os.path.lexists(target):
        raise InvalidArgumentError(
            f"{target} already exists; choose another file name or remove it first"
        )
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise InvalidArgumentError(f"the folder {folder} does not exist; create it first")
    records = [catalog.get(name, number) for name, number in dict.fromkeys(versions)]
    present = [r for r in records if r is not None]
    manifests = catalog.manifests(r.id for r in present)
    pointing: dict[tuple[str, int], list[str]] = {}
    for name in dict.fromkeys(r.name for r in present):
        for alias in catalog.aliases(name):
            pointing.setdefault((alias.name, alias.version), []).append(alias.alias)
    entries: list[dict[str, Any]] = []
    for record in present:
        entries.append(
            {
                "name": record.name,
                "version": record.version,
                "entry": record.entry,
                "kind": record.kind,
                "sha256": record.sha256,
                "size": record.size,
                "created_at": record.created_at.astimezone(timezone.utc).isoformat(),
                "tags": record.tags,
                "properties": record.properties,
                "description": record.description,
                "framework": record.framework,
                "framework_version": record.framework_version,
                "aliases": sorted(pointing.get((record.name, record.version), [])),
                "files": [
                    {"relpath": f.relpath, "size": f.size, "sha256": f.sha256}
                    for f in manifests.get(record.id, [])
                ],
            }
        )
    manifest = json.dumps(
        {"format": FORMAT, "format_version": FORMAT_VERSION, "versions": entries}, indent=1
    ).encode()
    temporary = f"{target}.tmp-{store.new_token()}"
    unnamed = _open_unnamed(folder)
    files = 0
    buffers = [bytearray(BUFFER_SIZE) for _ in range(_HashingReader._SLOTS)]
    try:
        with (
            open(temporary, "xb") if unnamed is None else open(unnamed, "wb") as raw,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelstore-hash") as pool,
        ):
            with (
                _compressor(cast(BinaryIO, _WritebackPacer(raw)), compression) as stream,
                tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as tar,
            ):
                tar.copybufsize = BUFFER_SIZE  # type: ignore[attr-defined] # tarfile's 16 KiB default costs 2x on big files
                _add_bytes(tar, MANIFEST_NAME, manifest)
                for record, entry in zip(present, entries, strict=True):
                    version_dir = store.layout.version_dir(record.name, record.version)
                    for item in entry["files"]:
                        _add_file(
                            tar, record.name, record.version, version_dir, item, pool, buffers
                        )
                        files += 1
            raw.flush()
            os.fsync(raw.fileno())
            if unnamed is not None:
                _link_unnamed(raw.fileno(), target)
        if unnamed is None:
            os.rename(temporary, target)
        fsync_dir(folder)
    except BaseException as exc:
        if unnamed is None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
        if isinstance(exc, FileExistsError) and exc.filename == target:
            raise InvalidArgumentError(
                f"{target} was created by someone else while the archive was written; choose "
                "another file name or remove it first (nothing was written)"
            ) from exc
        if isinstance(exc, OSError):
            raise StorageError(
                f"cannot write {target} ({exc.strerror or exc}); check the disk and the "
                "folder's permissions (nothing was written)"
            ) from exc
        raise
    return ExportReport(
        path=target,
        versions=[f"{r.name}:{r.version}" for r in present],
        files=files,
        bytes=sum(r.size for r in present),
    )


def _open_unnamed(folder: str) -> int | None:
    """A file descriptor for a new file in ``folder`` that has no name yet, so a process killed
    while writing it leaves nothing behind; None where the system or file system has none."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(folder, flag | os.O_WRONLY, 0o666)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            return None  # a file system without unnamed files (e.g. some network mounts)
        raise


def _link_unnamed(fd: int, target: str) -> None:
    """Give the unnamed file ``fd`` its name; FileExistsError (filename ``target``) if a file
    appeared there meanwhile, which ``rename`` would have silently replaced."""
    # linkat(AT_SYMLINK_FOLLOW) through /proc: Python calls plain link() (which would link the
    # /proc symlink itself) unless a dir_fd is given, hence the descriptor of /proc/self/fd.
    proc = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.link(str(fd), target, src_dir_fd=proc, follow_symlinks=True)
    except FileExistsError as exc:
        raise FileExistsError(exc.errno, exc.strerror, target) from None
    finally:
        os.close(proc)


@contextlib.contextmanager
def _compressor(raw: BinaryIO, compression: Compression) -> Iterator[IO[bytes]]:
    if compression == "gz":
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as stream:
            yield cast(IO[bytes], stream)
    elif compression == "bz2":
        with bz2.BZ2File(raw, mode="wb") as bz_stream:
            yield cast(IO[bytes], bz_stream)
    elif compression == "xz":
        with lzma.LZMAFile(raw, mode="wb") as xz_stream:
            yield cast(IO[bytes], xz_stream)
    else:
        yield raw


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    import io

    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o444
    tar.addfile(info, io.BytesIO(data))


class _HashingReader:
    """Hands a stored file to ``tarfile`` and hashes every byte it reads, on a second thread
    (hashlib releases the GIL) so hashing overlaps the archive's writes. Each chunk is read
    into one of three reused buffers and handed out as a view: ``tarfile`` has written it
    before it asks for the next one, and a buffer is refilled only once its hash is done, so
    no chunk is copied or allocated on the way (a 4 MB ``bytes`` per read costs page faults)."""

    _SLOTS = 3

    def __init__(self, handle: FileIO, pool: ThreadPoolExecutor, buffers: list[bytearray]) -> None:
        self._handle = handle
        self._pool = pool
        self._views = [memoryview(b) for b in buffers]
        self._pending: list[Future[None] | None] = [None] * len(buffers)
        self._slot = 0
        self._digest = hashlib.sha256()

    def read(self, size: int | None = -1) -> memoryview:
        slot = self._slot
        self._slot = (slot + 1) % len(self._views)
        previous = self._pending[slot]
        if previous is not None:
            previous.result()
        view = self._views[slot]
        wanted = len(view) if size is None or size < 0 else min(size, len(view))
        count = 0
        while count < wanted:
            got = self._handle.readinto(view[count:wanted])
            if not got:
                break
            count += got
        chunk = view[:count]
        self._pending[slot] = self._pool.submit(self._digest.update, chunk)
        return chunk

    def hexdigest(self) -> str:
        for pending in self._pending:
            if pending is not None:
                pending.result()
        self._pending = [None] * len(self._views)
        return self._digest.hexdigest()


class _WritebackPacer:
    """The archive file as ``tarfile`` (or a compressor) writes it: every ``WRITEBACK_STEP``
    bytes the kernel is asked to start writing them to disk, so the fsync before the rename
    waits for the last few MB rather than for the whole archive."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._written = raw.tell()
        self._flushed = self._written

    def write(self, data: Any) -> int:
        self._raw.write(data)
        self._written += len(data)
        if self._written - self._flushed >= WRITEBACK_STEP:
            self._raw.flush()
            start_writeback(self._raw.fileno(), self._flushed, self._written - self._flushed)
            self._flushed = self._written
        return len(data)

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        self._raw.flush()


def _add_file(
    tar: tarfile.TarFile,
    name: str,
    version: int,
    version_dir: Path,
    item: dict[str, Any],
    pool: ThreadPoolExecutor,
    buffers: list[bytearray],
) -> None:
    relpath = str(item["relpath"])
    source = os.path.join(version_dir, *relpath.split("/"))
    info = tarfile.TarInfo(f"{name}/{version}/{relpath}")
    info.size = int(item["size"])
    info.mode = 0o444
    try:
        with open(source, "rb", buffering=0) as handle:
            if os.fstat(handle.fileno()).st_size != info.size:
                raise _damaged(name, version, relpath)
            reader = _HashingReader(handle, pool, buffers)
            tar.addfile(info, cast(IO[bytes], reader))
            digest = reader.hexdigest()
    except FileNotFoundError:
        raise _damaged(name, version, relpath) from None
    if digest != item["sha256"]:
        raise _damaged(name, version, relpath)


def _damaged(name: str, version: int, relpath: str) -> IntegrityError:
    error = IntegrityError(
        f"{name}:{version} file {relpath!r} no longer matches its recorded size or sha256, so "
        "it was not exported",
        hint=f"check it with Registry.verify({name!r}, {version}) (nothing was written)",
        remedy="verify",
    )
    error.ref = f"{name}:{version}"  # type: ignore[attr-defined]
    return error


# --- plan ------------------------------------------------------------------------------------


def check_import_source(source: str | os.PathLike[str]) -> str:
    """``plan_import``'s checks that need no registry (the source exists and is a file or a
    folder), so a command can refuse a bad source before it opens, or creates, a registry."""
    shown = os.fspath(source)
    if not shown:
        raise InvalidArgumentError("the archive path is empty; give an archive file or folder")
    if os.path.isdir(shown) or os.path.isfile(shown):
        return shown
    if os.path.lexists(shown):
        raise ArchiveError(
            f"{shown!r} is neither a regular file nor a folder; give a modelstore archive or "
            "an azureml-models folder",
            path=shown,
        )
    raise ArchiveError(
        f"{shown!r} does not exist; give a modelstore archive or an azureml-models folder",
        path=shown,
    )


def plan_import(
    catalog: Catalog,
    store: Store,
    source: str | os.PathLike[str],
    *,
    skip_existing: bool = False,
    with_aliases: bool = False,
) -> ImportPlan:
    """Read an archive's manifest or list an ``azureml-models`` folder, and sort its versions
    into new, skipped and conflicting ones. Writes nothing. ``with_aliases``: the archive's
    aliases are to be set too; one the registry has pointing at another version is a
    conflict (aliases are never moved by an import)."""
    shown = check_import_source(source)
    try:
        if os.path.isdir(shown):
            versions = _folder_versions(shown)
            kind: Literal["archive", "folder"] = "folder"
            compression: Compression = ""
            manifest_size = 0
        elif os.path.isfile(shown):
            compression = _sniff(shown)
            versions, manifest_size = _archive_versions(shown, compression)
            kind = "archive"
        else:
            check_import_source(shown)  # gone or replaced since it was checked
            raise AssertionError("unreachable")
    except OSError as exc:
        raise ArchiveError(
            f"cannot read {exc.filename or shown} ({exc.strerror or exc}); check its "
            "permissions (nothing was imported)",
            path=shown,
        ) from None
    if not versions:
        raise ArchiveError(f"{shown} holds no model versions; nothing to import", path=shown)
    add: list[ArchivedVersion] = []
    skip: list[ArchivedVersion] = []
    conflicts: list[ImportConflict] = []
    for version in versions:
        existing = catalog.get(version.name, version.version)
        if existing is not None:
            digest = version.sha256 or _folder_digest(version)
            if digest != existing.sha256:
                conflicts.append(
                    ImportConflict(version.name, version.version, "exists with other files")
                )
            elif skip_existing:
                skip.append(version)
            else:
                conflicts.append(
                    ImportConflict(
                        version.name,
                        version.version,
                        "exists with the same files (--skip-existing skips it)",
                    )
                )
            continue
        last = catalog.last_version(version.name)
        if last is not None and version.version <= last:
            conflicts.append(
                ImportConflict(
                    version.name,
                    version.version,
                    f"number used by a deleted or unfinished version (numbers are never "
                    f"reused; {version.name} used up to {last})",
                )
            )
            continue
        add.append(version)
    aliases: list[tuple[str, str, int]] = []
    if with_aliases:
        for version in [*add, *skip]:
            for alias in version.aliases:
                current = catalog.alias_target(version.name, alias)
                if current is None:
                    aliases.append((version.name, alias, version.version))
                elif current != version.version:
                    conflicts.append(
                        ImportConflict(
                            version.name,
                            version.version,
                            f"has alias {alias!r} in the archive, which points at "
                            f"{version.name}:{current} here (move or remove it first, or "
                            "import without --with-aliases)",
                        )
                    )
    return ImportPlan(shown, kind, add, skip, conflicts, compression, manifest_size, aliases)


def refuse_conflicts(plan: ImportPlan) -> None:
    if not plan.conflicts:
        return
    shown = "; ".join(f"{c.id} {c.reason}" for c in plan.conflicts[:5])
    more = len(plan.conflicts) - 5
    if more > 0:
        shown += f"; and {more} more"
    raise ImportConflictError(
        f"nothing was imported from {plan.source}: {shown}",
        conflicts=[(c.name, c.version, c.reason) for c in plan.conflicts],
    )


def _folder_versions(root: str) -> list[ArchivedVersion]:
    """``<root>/<name>/<version>/<entry>``: every folder must follow that layout, or the whole
    folder is refused (an import never takes only part of it)."""
    found: list[ArchivedVersion] = []
    now = datetime.now(timezone.utc)
    for name in sorted(os.listdir(root)):
        name_dir = os.path.join(root, name)
        if not os.path.isdir(name_dir) or os.path.islink(name_dir):
            raise _layout(root, f"{name!r} is not a model name folder")
        try:
            validate_name(name)
        except ModelstoreError as exc:
            raise _layout(root, f"{name!r} is not a valid model name ({exc})") from None
        for number in sorted(os.listdir(name_dir)):
            version_dir = os.path.join(name_dir, number)
            if not (number.isascii() and number.isdigit()) or not 1 <= int(number) <= MAX_VERSION:
                raise _layout(root, f"{name}/{number} is not a version folder (a number from 1)")
            if not os.path.isdir(version_dir) or os.path.islink(version_dir):
                raise _layout(root, f"{name}/{number} is not a folder")
            entries = os.listdir(version_dir)
            if len(entries) != 1:
                raise _layout(
                    root,
                    f"{name}/{number} holds {len(entries)} items; a version folder holds "
                    "exactly one model file or folder",
                )
            entry_path = os.path.join(version_dir, entries[0])
            try:
                plan = plan_source(entry_path)
            except ModelstoreError as exc:
                raise ArchiveError(f"{exc}", path=root, member=f"{name}/{number}") from None
            found.append(
                ArchivedVersion(
                    name=name,
                    version=int(number),
                    entry=plan.entry,
                    kind=plan.kind,
                    files=(),
                    sha256=None,
                    size=plan.total_size,
                    created_at=now,
                    source=entry_path,
                )
            )
    return found


def _folder_digest(version: ArchivedVersion) -> str:
    assert version.source is not None
    plan = plan_source(version.source)
    buffer = new_buffer()
    return manifest_digest((f.relpath, *hash_file(f.source, buffer)) for f in plan.files)


def _layout(root: str, what: str) -> ArchiveError:
    return ArchiveError(
        f"{root} is not an azureml-models folder: {what}; give a folder laid out as "
        "<name>/<version>/<entry> (nothing was imported)",
        path=root,
    )


def _sniff(path: str) -> Compression:
    with open(path, "rb") as handle:
        magic = handle.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return "gz"
    if magic.startswith(b"BZh"):
        return "bz2"
    if magic.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    return ""


class _BoundedReader(BufferedIOBase):
    """The decompressed archive, refusing to hand out more than ``limit`` bytes: however the
    archive was built (a decompression bomb, a huge hidden header), reading it costs at most
    what the manifest announced, and that was checked against the free disk space."""

    def __init__(self, stream: IO[bytes], limit: int, path: str) -> None:
        self._stream = stream
        self._limit = limit
        self._path = path
        self.count = 0

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or self.count + size > self._limit:
            size = self._limit - self.count + 1
        data = self._stream.read(size)
        self.count += len(data)
        if self.count > self._limit:
            raise ArchiveError(
                f"{self._path} holds more data than its manifest announces (a decompression "
                "bomb or a corrupt archive); nothing was imported",
                path=self._path,
            )
        return data

    def readinto(self, view: Any) -> int:
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def seekable(self) -> bool:
        return self._stream.seekable()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """A plain tar is read in place (tarfile seeks over what it skips); only bytes read
        count against the limit."""
        return self._stream.seek(offset, whence)

    def tell(self) -> int:
        return self._stream.tell()


@contextlib.contextmanager
def _open_tar(path: str, compression: Compression, limit: int) -> Iterator[tarfile.TarFile]:
    with open(path, "rb") as raw:
        stream: IO[bytes]
        if compression == "gz":
            stream = cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
        elif compression == "bz2":
            stream = cast(IO[bytes], bz2.BZ2File(raw, mode="rb"))
        elif compression == "xz":
            stream = cast(IO[bytes], lzma.LZMAFile(raw, mode="rb"))  # noqa: SIM115
        else:
            stream = raw
        with (
            stream,
            # A plain tar is read in place ("r:", no copy through a stream buffer); a compressed
            # one as a stream ("r|"), each byte decompressed once.
            tarfile.open(
                fileobj=_BoundedReader(stream, limit, path),
                mode="r|" if compression else "r:",
                bufsize=BUFFER_SIZE,
            ) as tar,
        ):
            yield tar


_READ_ERRORS = (tarfile.TarError, EOFError, OSError, lzma.LZMAError, ValueError, UnicodeError)


def _corrupt(path: str, exc: BaseException) -> ArchiveError:
    return ArchiveError(
        f"{path} is not a readable modelstore archive ({type(exc).__name__}: "
        f"{str(exc).splitlines()[0] if str(exc) else 'truncated'}); nothing was imported",
        path=path,
    )


def _archive_versions(path: str, compression: Compression) -> tuple[list[ArchivedVersion], int]:
    try:
        with _open_tar(path, compression, MAX_MANIFEST_BYTES + 64 * 1024) as tar:
            member = tar.next()
            if member is None or member.name != MANIFEST_NAME or not member.isreg():
                raise ArchiveError(
                    f"{path} is not a modelstore archive: its first member is not {MANIFEST_NAME}",
                    hint="make archives with Registry.export",
                    remedy="export",
                    path=path,
                )
            if member.size > MAX_MANIFEST_BYTES:
                raise ArchiveError(
                    f"{path}: its manifest is {member.size} bytes, more than any real one; "
                    "nothing was imported",
                    path=path,
                    member=MANIFEST_NAME,
                )
            handle = tar.extractfile(member)
            assert handle is not None
            data = handle.read()
    except ArchiveError:
        raise
    except _READ_ERRORS as exc:
        raise _corrupt(path, exc) from exc
    try:
        manifest = json.loads(data)
        return _parse_manifest(manifest, path), len(data)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ArchiveError(
            f"{path}: its manifest is malformed ({exc}); nothing was imported",
            path=path,
            member=MANIFEST_NAME,
        ) from None


def _parse_manifest(manifest: Any, path: str) -> list[ArchivedVersion]:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"its format is not {FORMAT!r}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"format_version {manifest.get('format_version')!r} is not supported (this "
            f"modelstore reads {FORMAT_VERSION}); upgrade modelstore"
        )
    versions: list[ArchivedVersion] = []
    seen: set[tuple[str, int]] = set()
    seen_aliases: set[tuple[str, str]] = set()
    for item in manifest["versions"]:
        name = validate_name(item["name"])
        number = item["version"]
        if type(number) is not int or not 1 <= number <= MAX_VERSION:
            raise ValueError(f"{name}: version {number!r} is not a number from 1")
        if (name, number) in seen:
            raise ValueError(f"{name}:{number} is listed twice")
        seen.add((name, number))
        entry = item["entry"]
        kind = item["kind"]
        if kind not in ("file", "folder"):
            raise ValueError(f"{name}:{number} has kind {kind!r}")
        _check_relpath(entry, single=True)
        files = []
        for file in item["files"]:
            relpath, size, sha256 = file["relpath"], file["size"], file["sha256"]
            _check_relpath(relpath)
            if relpath != entry and not relpath.startswith(f"{entry}/"):
                raise ValueError(f"{name}:{number} file {relpath!r} is outside its entry")
            if type(size) is not int or size < 0:
                raise ValueError(f"{name}:{number} file {relpath!r} has size {size!r}")
            if not isinstance(sha256, str) or len(sha256) != 64 or not _is_hex(sha256):
                raise ValueError(f"{name}:{number} file {relpath!r} has no valid sha256")
            files.append(FileRecord(relpath, size, sha256))
        if not files or (kind == "file" and [f.relpath for f in files] != [entry]):
            raise ValueError(f"{name}:{number} lists no files for its entry {entry!r}")
        if len({f.relpath for f in files}) != len(files):
            raise ValueError(f"{name}:{number} lists a file twice")
        digest = manifest_digest((f.relpath, f.size, f.sha256) for f in files)
        total = sum(f.size for f in files)
        if item.get("sha256", digest) != digest or item.get("size", total) != total:
            raise ValueError(f"{name}:{number}: its sha256 or size does not match its files")
        aliases = item.get("aliases", [])
        if not isinstance(aliases, list) or len(set(map(str, aliases))) != len(aliases):
            raise ValueError(f"{name}:{number}: its aliases are not a list of distinct names")
        for alias in aliases:
            try:
                validate_alias(alias)
            except ModelstoreError:
                raise ValueError(f"{name}:{number} has an invalid alias {alias!r}") from None
            if (name, alias) in seen_aliases:
                raise ValueError(f"alias {name}@{alias} is given to two versions")
            seen_aliases.add((name, alias))
        created = datetime.fromisoformat(item["created_at"])
        if created.tzinfo is None:
            created = created.replace(tzinfo=timezone.utc)
        versions.append(
            ArchivedVersion(
                name=name,
                version=number,
                entry=entry,
                kind=kind,
                files=tuple(files),
                sha256=digest,
                size=total,
                created_at=created,
                tags=_str_dict(item.get("tags"), "tags"),
                properties=_str_dict(item.get("properties"), "properties"),
                description=_opt_str(item.get("description"), "description"),
                framework=_opt_str(item.get("framework"), "framework"),
                framework_version=_opt_str(item.get("framework_version"), "framework_version"),
                aliases=tuple(aliases),
            )
        )
    return versions


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _check_relpath(relpath: object, *, single: bool = False) -> None:
    """A path inside a version folder: relative, '/'-separated, no '.', '..' or empty part."""
    if not isinstance(relpath, str) or not relpath:
        raise ValueError(f"file path {relpath!r} is not a relative path")
    parts = relpath.split("/")
    if (
        relpath.startswith("/")
        or "\\" in relpath
        or "\0" in relpath
        or any(part in ("", ".", "..") for part in parts)
        or (single and len(parts) != 1)
    ):
        raise ValueError(f"file path {relpath!r} is absolute or leaves its folder")


def _str_dict(value: object, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"{what} must map str to str")
    return dict(value)


def _opt_str(value: object, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    return value


# --- execute ---------------------------------------------------------------------------------


def import_planned(
    catalog: Catalog,
    store: Store,
    plan: ImportPlan,
    progress: Callable[[int, int], None] | None = None,
    by: str = "",
    upload: Callable[[list[tuple[str, str]]], object] | None = None,
) -> ImportPlan:
    """Carry out a plan: stage and check every version, then publish them all or none. The
    plan's aliases are set in the transaction that makes the versions visible (``by``: who,
    for the alias history). ``upload`` (a registry with a shared store) gets every staged
    file's (path, sha256) once all are checked, and must have stored them before any number
    is taken: a failure there imports nothing."""
    refuse_conflicts(plan)
    if not plan.add:
        if plan.aliases:
            catalog.make_ready([], plan.aliases, by)
        return plan
    tokens = [store.new_token(importing=True) for _ in plan.add]
    with contextlib.ExitStack() as locks:
        for token in tokens:
            locks.enter_context(store.token_lock(token))
        try:
            if plan.kind == "archive":
                staged = _stage_archive(store, plan, tokens, progress)
            else:
                staged = [
                    tuple(
                        FileRecord(f.relpath, f.size, f.sha256)
                        for f in store.stage(plan_source(v.source or ""), token, progress)
                    )
                    for v, token in zip(plan.add, tokens, strict=True)
                ]
            if upload is not None:
                upload(
                    [
                        (_staged_path(store.staging_path(token), file), file.sha256)
                        for files, token in zip(staged, tokens, strict=True)
                        for file in files
                    ]
                )
            news = [
                (_new_version(version, files, token), version.version)
                for version, files, token in zip(plan.add, staged, tokens, strict=True)
            ]
            records, previous = catalog.reserve_numbered(news)
        except BaseException:
            for token in tokens:
                store.discard(token)
            raise
        by_token = {r.token: r for r in records}
        published = []
        try:
            for version, token in zip(plan.add, tokens, strict=True):
                store.publish(token, version.name, version.version, version.entry)
                published.append(version)
            if not catalog.make_ready([r.id for r in records], plan.aliases, by):
                raise StorageError(
                    f"the import of {plan.source} was rolled back by a doctor run while it "
                    "ran; nothing was imported, retry"
                )
        except BaseException:
            row_ids = [by_token[t].id for t in tokens]
            _roll_back(catalog, store, plan, published, tokens, row_ids, previous)
            raise
    return plan


def _roll_back(
    catalog: Catalog,
    store: Store,
    plan: ImportPlan,
    published: list[ArchivedVersion],
    tokens: list[str],
    row_ids: list[int],
    previous: dict[str, int | None],
) -> None:
    """Take the versions already published out of the tree again, then drop the rows. If a
    folder cannot be taken out, the rows stay pending: ``doctor`` rolls them back later (their
    tokens mark them as an import's), rather than the folder being left without a row."""
    trash_token = store.new_token()
    removed = True
    with store.token_lock(trash_token):
        for version in published:
            try:
                trash = store.unpublish(version.name, [version.version], trash_token)
                store.empty_trash(trash)
            except (OSError, ModelstoreError):
                removed = False
        with contextlib.suppress(OSError):
            store.empty_trash(store.layout.trash_dir / trash_token)
    for token in tokens:
        store.discard(token)
    if not removed:
        return
    marks: dict[str, int] = {}
    for version in plan.add:
        marks[version.name] = max(marks.get(version.name, 0), version.version)
    with contextlib.suppress(ModelstoreError):
        catalog.release_numbered(row_ids, marks, previous)


def _new_version(version: ArchivedVersion, files: tuple[FileRecord, ...], token: str) -> NewVersion:
    return NewVersion(
        name=version.name,
        entry=version.entry,
        kind=version.kind,
        created_at=version.created_at,
        token=token,
        **file_fields(files),
        tags=dict(version.tags),
        properties=dict(version.properties),
        description=version.description,
        framework=version.framework,
        framework_version=version.framework_version,
    )


def _stage_archive(
    store: Store,
    plan: ImportPlan,
    tokens: list[str],
    progress: Callable[[int, int], None] | None,
) -> list[tuple[FileRecord, ...]]:
    """Extract the files of the versions to add into their staging folders, checking each
    member before a byte of it is written and each file's sha256 once written."""
    path = plan.source
    # Everything the import may write must fit: refused before the first byte.
    total = plan.bytes
    staging_root = store.layout.staging_dir
    staging_root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(staging_root).free
    if total > free:
        raise ArchiveError(
            f"{path} announces {total} bytes of model files but only {free} bytes are free "
            "for the store; free some space (nothing was imported)",
            path=path,
        )
    wanted: dict[str, tuple[int, FileRecord, str]] = {}
    every: dict[str, FileRecord] = {}
    ancestors: set[str] = set()
    all_versions = [*plan.add, *plan.skip]
    for version in all_versions:
        for file in version.files:
            listed = f"{version.name}/{version.version}/{file.relpath}"
            every[listed] = file
            parts = listed.split("/")
            ancestors.update("/".join(parts[:i]) for i in range(1, len(parts)))
    for index, (version, token) in enumerate(zip(plan.add, tokens, strict=True)):
        for file in version.files:
            wanted[f"{version.name}/{version.version}/{file.relpath}"] = (index, file, token)
    limit = (
        sum(f.size for f in every.values())
        + plan.manifest_size
        + _HEADER_ALLOWANCE * (len(every) + len(ancestors) + 4)
    )
    staged: list[dict[str, FileRecord]] = [{} for _ in plan.add]
    written_paths: list[str] = []
    seen: set[str] = set()
    done = 0
    buffers = [new_buffer(), new_buffer()]
    try:
        with (
            _open_tar(path, plan.compression, limit) as tar,
            _direct_reader(path, plan.compression) as direct,
        ):
            for position, member in enumerate(tar):
                name = member.name
                if position == 0:
                    if name != MANIFEST_NAME:
                        raise _hostile(path, name, "comes before the manifest")
                    continue
                _check_member(path, member)
                if name in seen:
                    raise _hostile(path, name, "appears twice")
                seen.add(name)
                if member.isdir():
                    if name.rstrip("/") not in ancestors:
                        raise _hostile(path, name, "is a folder the manifest does not list")
                    continue
                expected = every.get(name)
                if expected is None:
                    raise _hostile(path, name, "is not listed in the manifest")
                if member.size != expected.size:
                    raise _hostile(
                        path,
                        name,
                        f"is {member.size} bytes but the manifest says {expected.size}",
                    )
                target = wanted.get(name)
                if target is None:
                    continue  # a skipped version: its bytes are not needed
                index, file, token = target
                handle: Any
                if direct is not None:  # a plain tar: the data are read where they lie
                    handle = _MemberReader(direct, member.offset_data, member.size)
                else:
                    handle = tar.extractfile(member)
                    assert handle is not None
                staged_path = _staged_path(store.staging_path(token), file)
                written_paths.append(staged_path)
                written, digest = _write_staged(staged_path, file, handle, buffers)
                if written != file.size or digest != file.sha256:
                    raise _hostile(path, name, "does not match its sha256 in the manifest")
                staged[index][file.relpath] = file
                done += written
                if progress is not None:
                    progress(done, total)
    except ModelstoreError:
        raise
    except _READ_ERRORS as exc:
        store_side = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)
        if isinstance(exc, OSError) and (exc.errno in store_side or exc.filename is not None):
            raise StorageError(
                f"cannot write to the store ({exc.strerror}) while importing {path}; "
                "nothing was imported"
            ) from exc
        raise _corrupt(path, exc) from exc
    for version, files in zip(plan.add, staged, strict=True):
        missing = [f.relpath for f in version.files if f.relpath not in files]
        if missing:
            raise _hostile(
                path, f"{version.id}/{missing[0]}", "is listed in the manifest but missing"
            )
    # Every file is checked before any is made durable: one fsync per file, all at the end,
    # where the large ones' writeback was started while they were written, and a version of
    # many small files shares its journal commits. The publish (a rename) comes after this,
    # so no version reaches the tree before its data are on disk, as for ``register``.
    try:
        for staged_path in written_paths:
            fsync_file(staged_path)
        for token in tokens:
            root = store.staging_path(token)
            for dirpath, _dirs, _files in os.walk(root):
                if dirpath != os.fspath(root):
                    fsync_dir(dirpath)
    except OSError as exc:
        raise StorageError(
            f"cannot write to the store ({exc.strerror}) while importing {path}; "
            "nothing was imported"
        ) from exc
    return [tuple(v.files) for v in plan.add]


def _check_member(path: str, member: tarfile.TarInfo) -> None:
    name = member.name
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise _hostile(path, name, "has an absolute path")
    if ".." in name.replace("\\", "/").split("/"):
        raise _hostile(path, name, "leaves the archive's folder ('..')")
    if member.issym() or member.islnk():
        raise _hostile(path, name, f"is a link (to {member.linkname!r})")
    if member.ischr() or member.isblk() or member.isfifo():
        raise _hostile(path, name, "is a device or fifo")
    if not (member.isreg() or member.isdir()):
        raise _hostile(path, name, "is not a regular file")


def _hostile(path: str, member: str, what: str) -> ArchiveError:
    return ArchiveError(
        f"{path} is refused: member {member!r} {what}; nothing was imported",
        path=path,
        member=member,
    )


def _staged_path(root: Path, file: FileRecord) -> str:
    return os.path.join(root, *file.relpath.split("/"))


def _write_staged(
    target: str, file: FileRecord, handle: IO[bytes], buffers: list[bytearray]
) -> tuple[int, str]:
    """Copy one member (``handle`` ends where its data ends) into staging, hashing the bytes
    written (on a second thread for a large file); (bytes written, sha256). Not fsync'd yet:
    ``_stage_archive`` does that once every file is in."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    written, digest = copy_stream_and_hash(
        handle, target, size=file.size, buffers=buffers, fsync=False
    )
    os.chmod(target, READ_ONLY_FILE)
    return written, digest


@contextlib.contextmanager
def _direct_reader(path: str, compression: Compression) -> Iterator[int | None]:
    """A descriptor of a plain tar for ``_MemberReader`` (None for a compressed one, or where
    ``os.preadv`` is missing: those are read through ``tarfile``)."""
    if compression or not hasattr(os, "preadv"):
        yield None
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        yield fd
    finally:
        os.close(fd)


class _MemberReader:
    """The data of one member of a plain tar, read with ``preadv`` straight into the copy's
    buffers: ``tarfile``'s reader would allocate a new ``bytes`` per chunk and copy it once
    more. It stops at the member's size (checked against the manifest), so it never reads
    past what the manifest announced; an archive that ends sooner is corrupt."""

    name = None  # read errors name no file: the archive, not the store, failed

    def __init__(self, fd: int, offset: int, size: int) -> None:
        self._fd = fd
        self._offset = offset
        self._left = size

    def readinto(self, view: Any) -> int:
        wanted = min(len(view), self._left)
        if wanted <= 0:
            return 0
        got = os.preadv(self._fd, [memoryview(view)[:wanted]], self._offset)
        if got == 0:
            raise tarfile.ReadError("unexpected end of data")
        self._offset += got
        self._left -= got
        return got
