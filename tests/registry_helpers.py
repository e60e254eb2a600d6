"""Shared helpers for the registry tests: sample models and tree inspection."""

from __future__ import annotations

import os
from pathlib import Path


def make_file(path: Path, content: bytes = b"model-bytes") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def make_model_dir(root: Path) -> Path:
    """``model_dir/{a.txt, c.txt, sub/b.txt}``, as the spec's example."""
    make_file(root / "a.txt", b"a")
    make_file(root / "c.txt", b"c")
    make_file(root / "sub" / "b.txt", b"b")
    return root


def tree_files(root: Path) -> list[str]:
    """Every file under ``root``, relative, '/'-separated, sorted."""
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            found.append(os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/"))
    return sorted(found)


def snapshot(home: Path) -> dict[str, bytes | None]:
    """Everything under a registry home except the catalog's own files and lock files: used to
    prove that a refused operation changed nothing."""
    result: dict[str, bytes | None] = {}
    for dirpath, dirs, files in os.walk(home):
        rel_dir = os.path.relpath(dirpath, home)
        if rel_dir.startswith(os.path.join(".modelstore", "locks")):
            continue
        for name in dirs:
            result[os.path.join(rel_dir, name)] = None
        for name in files:
            if name.startswith("registry.db"):
                continue
            result[os.path.join(rel_dir, name)] = Path(dirpath, name).read_bytes()
    return result
