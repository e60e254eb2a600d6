"""What a registration would copy: validate a file or folder and list its files, before any write.

Everything that can make a registration fail for a reason in the *source* is found here, so that
a bad input is refused before a byte is staged.

Symlinks: the top-level path may be a symlink (its target is registered under the link's name).
Inside a folder, a symlink to a file *inside* the folder is stored as a regular copy of its
target; a symlink pointing outside the folder, a dangling one, and a symlink to a directory are
refused (the stored model must be self-contained and loops impossible).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Literal

from modelstore.errors import InvalidModelPathError
from modelstore.layout import entry_name


@dataclass(frozen=True)
class SourceFile:
    relpath: str
    """'/'-separated, relative to the version folder: it starts with the entry name."""
    source: str
    """Absolute path to read."""
    size: int


@dataclass(frozen=True)
class SourcePlan:
    entry: str
    kind: Literal["file", "folder"]
    files: tuple[SourceFile, ...]

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)


def plan_source(path: str | os.PathLike[str], child_paths: list[str] | None = None) -> SourcePlan:
    text = os.fspath(path)
    if not text:
        raise InvalidModelPathError("the model path is empty; give a model file or folder")
    absolute = os.path.abspath(text)
    try:
        info = os.stat(absolute)
    except FileNotFoundError:
        if os.path.islink(absolute):
            raise InvalidModelPathError(
                f"{text!r} is a symlink whose target does not exist; point it at the model "
                "or give the model's real path"
            ) from None
        raise InvalidModelPathError(
            f"Path does not exist: {text!r}; give the path of an existing model file or folder"
        ) from None
    except OSError as exc:
        raise InvalidModelPathError(
            f"cannot read {text!r} ({exc.strerror}); check its permissions"
        ) from None
    entry = entry_name(absolute)
    if not entry:
        raise InvalidModelPathError(
            f"cannot register the file-system root {text!r}; give a model file or folder"
        )
    if stat.S_ISREG(info.st_mode):
        for child in child_paths or []:
            raise InvalidModelPathError(
                f'Error, provided child path "{child}" cannot be found: child paths apply to '
                f"folders, and {text!r} is a file; register it without child paths"
            )
        _check_readable(absolute, text)
        _check_utf8(entry, text)
        return SourcePlan(entry, "file", (SourceFile(entry, absolute, info.st_size),))
    if not stat.S_ISDIR(info.st_mode):
        raise InvalidModelPathError(
            f"{text!r} is a {_kind(info.st_mode)}, not a regular file or folder; "
            "register a model file or a folder of model files"
        )
    walker = _FolderWalker(absolute, entry, text)
    if child_paths:
        for child in child_paths:
            walker.add(_resolve_child(child, absolute))
    else:
        walker.add_root()
    if not walker.files:
        raise InvalidModelPathError(
            f"the folder {text!r} holds no files"
            + (" under the given child paths" if child_paths else "")
            + "; a model folder must contain at least one file"
        )
    files = tuple(sorted(walker.files.values(), key=lambda f: f.relpath))
    for file in files:
        _check_utf8(file.relpath, text)
    return SourcePlan(entry, "folder", files)


def _check_utf8(relpath: str, shown: str) -> None:
    """The catalog records names as UTF-8 text; a name with other bytes (Python holds them as
    lone surrogates) would fail there, after the copy, so it is refused up front."""
    try:
        relpath.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidModelPathError(
            f"the file name '{_readable(relpath)}' in '{_readable(shown)}' is not valid UTF-8; "
            "rename it (e.g. with convmv) and retry"
        ) from None


def _readable(text: str) -> str:
    """A file name as its bytes, with those that are not UTF-8 shown as ``\\xNN``."""
    return os.fsencode(text).decode("utf-8", "backslashreplace")


def _child_not_found(child: str, root: str) -> None:
    raise InvalidModelPathError(
        f'Error, provided child path "{child}" cannot be found; child paths are relative to '
        f"the model folder {root}"
    )


def _resolve_child(child: str, root: str) -> str:
    if not isinstance(child, str) or not child:
        _child_not_found(str(child), root)
    target = os.path.normpath(os.path.join(root, child))
    if target != root and not target.startswith(root + os.sep):
        raise InvalidModelPathError(
            f'child path "{child}" is outside the model folder {root}; child paths must name '
            "files or folders inside it"
        )
    if not os.path.lexists(target):
        _child_not_found(child, root)
    return target


def _check_readable(path: str, shown: str) -> None:
    if not os.access(path, os.R_OK):
        raise InvalidModelPathError(
            f"cannot read {shown!r} (permission denied); make it readable (chmod u+r) and retry"
        )


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "fifo (named pipe)"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


class _FolderWalker:
    """Collects the regular files under a folder, refusing whatever cannot be stored."""

    def __init__(self, root: str, entry: str, shown: str) -> None:
        self.root = root
        self.real_root = os.path.realpath(root)
        self.entry = entry
        self.shown = shown
        self.files: dict[str, SourceFile] = {}

    def _rel(self, path: str) -> str:
        rel = os.path.relpath(path, self.root)
        rel = "" if rel == "." else rel.replace(os.sep, "/")
        return f"{self.entry}/{rel}" if rel else self.entry

    def add_root(self) -> None:
        """Every file under the folder itself. The root may be a symlink to a folder (the
        module's rule: a top-level link is registered under its own name), so it is walked,
        not checked as a link inside the model."""
        self._walk(self.root)

    def add(self, path: str) -> None:
        if os.path.islink(path):
            self._add_link(path)
            return
        info = os.lstat(path)
        if stat.S_ISDIR(info.st_mode):
            self._walk(path)
        elif stat.S_ISREG(info.st_mode):
            self._add_file(path, info.st_size)
        else:
            raise InvalidModelPathError(
                f"{self._rel(path)!r} in {self.shown!r} is a {_kind(info.st_mode)}; "
                "a model folder may hold only regular files and folders, remove it"
            )

    def _walk(self, folder: str) -> None:
        try:
            with os.scandir(folder) as entries:
                children = sorted(entry.path for entry in entries)
        except PermissionError:
            raise InvalidModelPathError(
                f"cannot read the folder {self._rel(folder)!r} in {self.shown!r} (permission "
                "denied); make it readable (chmod u+rx) and retry"
            ) from None
        for child in children:
            self.add(child)

    def _add_file(self, path: str, size: int) -> None:
        if not os.access(path, os.R_OK):
            raise InvalidModelPathError(
                f"cannot read {self._rel(path)!r} in {self.shown!r} (permission denied); "
                "make it readable (chmod u+r) and retry"
            )
        relpath = self._rel(path)
        self.files[relpath] = SourceFile(relpath, path, size)

    def _add_link(self, path: str) -> None:
        target = os.path.realpath(path)
        rel = self._rel(path)
        if target != self.real_root and not target.startswith(self.real_root + os.sep):
            raise InvalidModelPathError(
                f"{rel!r} in {self.shown!r} is a symlink pointing outside the folder "
                f"(to {target}); copy the target into the folder or remove the link"
            )
        try:
            info = os.stat(path)
        except OSError:
            raise InvalidModelPathError(
                f"{rel!r} in {self.shown!r} is a dangling symlink; fix or remove it"
            ) from None
        if stat.S_ISDIR(info.st_mode):
            raise InvalidModelPathError(
                f"{rel!r} in {self.shown!r} is a symlink to a folder, which modelstore does not "
                "store; replace it with a real folder or remove it"
            )
        if not stat.S_ISREG(info.st_mode):
            raise InvalidModelPathError(
                f"{rel!r} in {self.shown!r} is a symlink to a {_kind(info.st_mode)}; remove it"
            )
        self._add_file(path, info.st_size)
