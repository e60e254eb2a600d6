"""Help for the most common Azure ML start-up failure: ``init()`` opens a model path that is not
there.

Typical cause: a model registered as a folder keeps the folder's name under
``AZUREML_MODEL_DIR``, so ``join(AZUREML_MODEL_DIR, "model.pkl")`` misses
``AZUREML_MODEL_DIR/model/model.pkl``. azmlinfsrv only dumps the ``AZUREML_MODEL_DIR`` tree and
leaves the comparison to the reader; when the missing path lies under the models tree, modelstore
also names the nearest real file with the same name and lists the tree in the one-line summary.
The search is bounded, so a huge models tree costs a few milliseconds, not minutes. The sibling
mistake, opening a folder model (what ``get_model_path`` returns for it) as a file, is explained
too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from modelstore.layout import APP_ROOT_ENV, MODEL_DIR_ENV, MODELS_DIRNAME
from modelstore.serving.logs import MODEL_TREE_LINE_LIMIT, walk_tree

MAX_ENTRIES = 5000
"""Directory entries looked at, at most, while searching the models tree."""
MAX_DEPTH = 12
SUMMARY_FILES = 8
"""Files of the models tree named in the one-line summary; the log shows the whole tree."""


@dataclass(frozen=True)
class MissingModelPath:
    """A path under the models tree that ``init()`` could not open, and what exists instead."""

    missing: str
    """The path as the script spelled it (``exc.filename``)."""
    root: str
    """The models folder searched, spelled like ``missing`` (relative or absolute)."""
    suggestion: str | None
    """The nearest existing file or folder with the same name, spelled like ``missing``."""
    files: tuple[str, ...]
    """Files under ``root`` (relative to it), at most :data:`SUMMARY_FILES`."""
    more_files: bool
    """More files exist under ``root`` than ``files`` names."""
    is_folder: bool = False
    """The path exists but is a folder (IsADirectoryError): ``root`` is that folder."""

    def reason(self) -> str:
        """What is wrong and the likely fix, in one line (for the log)."""
        what = "is a folder" if self.is_folder else "does not exist"
        return f"{self.missing} {what}{self.advice()}"

    def advice(self) -> str:
        """The likely fix and what the models folder holds; the exception already names the
        missing path, so the summary line appends only this."""
        if self.is_folder:
            rule = (
                "model registered as a folder stays a folder, and get_model_path returns the "
                "folder, not the file in it."
            )
            if self.suggestion:
                text = f": did you mean {self.suggestion}? A {rule}"
            else:
                text = f"; a {rule}"
        elif self.suggestion is None:
            name = os.path.basename(self.missing)
            text = f"; nothing named {name} is under {self.root}"
        else:
            text = f": did you mean {self.suggestion}?"
            why = _why(self.missing, self.suggestion)
            if why:
                text += f" {why}"
        listed = ", ".join(self.files) if self.files else "none"
        more = ", ..." if self.more_files else ""
        return f"{text} (files under {self.root}: {listed}{more})"


def _why(missing: str, suggestion: str) -> str:
    """The layout rule the script broke, when the suggestion shows which one."""
    wanted = _parts(os.path.dirname(missing))
    found = _parts(os.path.dirname(suggestion))
    if len(found) > len(wanted) and found[: len(wanted)] == wanted:
        return f"A registered folder keeps its own name under {MODEL_DIR_ENV}."
    if len(found) < len(wanted) and wanted[: len(found)] == found:
        return f"A registered file sits directly in its version folder under {MODEL_DIR_ENV}."
    return ""


def _parts(path: str) -> list[str]:
    return [part for part in os.path.normpath(path).split(os.sep) if part not in ("", ".")]


def missing_model_path(
    exc: BaseException, environ: Mapping[str, str] | None = None
) -> MissingModelPath | None:
    """The missing path behind ``exc`` if it lies under ``AZUREML_MODEL_DIR`` or the models root
    (``$AML_APP_ROOT/azureml-models``, else ``./azureml-models``); None otherwise.

    ``exc`` or an exception it was raised from must be a FileNotFoundError or
    NotADirectoryError carrying the file name (``open``, ``joblib.load``, ``torch.load``...),
    or an IsADirectoryError: the script opened a folder model as if it were its file.
    """
    environ = os.environ if environ is None else environ
    failed = _failed_filename(exc)
    if failed is None:
        return None
    missing, is_folder = failed
    target = os.path.abspath(missing)
    roots = [os.path.join(environ.get(APP_ROOT_ENV, ""), MODELS_DIRNAME)]
    model_dir = environ.get(MODEL_DIR_ENV, "").rstrip("/")
    if model_dir:
        roots.append(model_dir)
    # The broadest folder holding the missing path: a wrong model name is found too.
    holding = [root for root in roots if _is_within(target, os.path.abspath(root))]
    if not holding:
        return None
    root = min(holding, key=lambda r: len(_parts(os.path.abspath(r))))
    absolute_root = os.path.abspath(root)
    if not os.path.isdir(absolute_root):
        return None
    spell = _speller(missing)
    if is_folder:
        if not os.path.isdir(target):
            return None
        files, more = _some_files(target, SUMMARY_FILES)
        only = os.path.join(target, files[0]) if len(files) == 1 and not more else None
        return MissingModelPath(
            missing=missing,
            root=spell(target),
            suggestion=None if only is None else spell(only),
            files=tuple(files),
            more_files=more,
            is_folder=True,
        )
    found = nearest_real_path(target, absolute_root)
    files, more = _some_files(absolute_root, SUMMARY_FILES)
    return MissingModelPath(
        missing=missing,
        root=spell(absolute_root),
        suggestion=None if found is None else spell(found),
        files=tuple(files),
        more_files=more,
    )


def nearest_real_path(
    missing: str, root: str, *, max_entries: int = MAX_ENTRIES, max_depth: int = MAX_DEPTH
) -> str | None:
    """The existing path under ``root`` with ``missing``'s name that is closest to it, or None.

    Both are absolute. "Closest" counts the folders between them (up from ``missing`` to a
    common folder, then down); ties go to the path that sorts first. A same-named path wins
    over one whose name only matches ignoring case. At most ``max_entries`` directory entries
    are looked at, ``max_depth`` levels deep; symlinked folders are followed once each.
    """
    name = os.path.basename(missing)
    if not name:
        return None
    wanted = _parts(os.path.relpath(missing, root))
    best: tuple[int, int, str] | None = None
    for path in _bounded_walk(root, max_entries, max_depth):
        base = os.path.basename(path)
        if base == name:
            rank = 0
        elif base.casefold() == name.casefold():
            rank = 1
        else:
            continue
        if path == missing:
            continue
        parts = _parts(os.path.relpath(path, root))
        common = 0
        for mine, theirs in zip(parts, wanted, strict=False):
            if mine != theirs:
                break
            common += 1
        key = (rank, len(parts) + len(wanted) - 2 * common, path)
        if best is None or key < best:
            best = key
    return None if best is None else best[2]


def _bounded_walk(root: str, max_entries: int, max_depth: int) -> Iterator[str]:
    """Every path under ``root``, breadth first in sorted order, within the bounds."""
    seen_folders = {os.path.realpath(root)}
    level = [root]
    budget = max_entries
    for _depth in range(max_depth):
        next_level: list[str] = []
        for folder in level:
            try:
                with os.scandir(folder) as listing:
                    entries = sorted(listing, key=lambda entry: entry.name)
            except OSError:
                continue
            for entry in entries:
                if budget <= 0:
                    return
                budget -= 1
                yield entry.path
                try:
                    is_folder = entry.is_dir()
                except OSError:
                    continue
                if is_folder:
                    real = os.path.realpath(entry.path)
                    if real not in seen_folders:
                        seen_folders.add(real)
                        next_level.append(entry.path)
        if not next_level:
            return
        level = next_level


def _some_files(root: str, limit: int) -> tuple[list[str], bool]:
    files: list[str] = []
    for path in _bounded_walk(root, MAX_ENTRIES, MAX_DEPTH):
        if os.path.isdir(path):
            continue
        if len(files) == limit:
            return files, True
        files.append(os.path.relpath(path, root))
    return files, False


def _failed_filename(exc: BaseException) -> tuple[str, bool] | None:
    """The file name of the first not-found (or is-a-folder, then True) OS error in ``exc``'s
    cause/context chain."""
    current: BaseException | None = exc
    for _hop in range(8):
        if current is None:
            return None
        if isinstance(current, (FileNotFoundError, NotADirectoryError, IsADirectoryError)):
            name = current.filename
            if isinstance(name, bytes):
                name = os.fsdecode(name)
            elif isinstance(name, os.PathLike):
                name = os.fspath(name)
            if isinstance(name, str) and name:
                return name, isinstance(current, IsADirectoryError)
        current = current.__cause__ or current.__context__
    return None


def _is_within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _speller(missing: str) -> Callable[[str], str]:
    """Spell found paths the way the script spelled its own: relative to the current folder when
    it used a relative path (a relative ``AZUREML_MODEL_DIR``), else absolute."""
    if os.path.isabs(missing):
        return str
    return os.path.relpath


def explain_init_failure(logger: logging.Logger, exc: BaseException) -> str:
    """After a failed ``init()``: log the models tree and the nearest real path when ``init()``
    missed a model file, and return the text for the one-line summary ("" otherwise)."""
    try:
        found = missing_model_path(exc)
    except Exception:  # a hint must never hide the script's own error
        return ""
    if found is None:
        return ""
    model_dir = os.environ.get(MODEL_DIR_ENV, "").rstrip("/")
    if not model_dir or os.path.abspath(model_dir) != os.path.abspath(found.root):
        # azmlinfsrv's dump shows AZUREML_MODEL_DIR only; show the folder searched as well.
        logger.info("Models tree under %s:", found.root)
        for count, line in enumerate(walk_tree(found.root)):
            if count == MODEL_TREE_LINE_LIMIT:
                logger.info("Output Truncated. First %d lines shown.", MODEL_TREE_LINE_LIMIT)
                break
            logger.info(line)
    logger.error("modelstore: %s", found.reason())
    return found.advice()
