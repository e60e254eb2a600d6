"""modelstore.store.verify: a stored version folder against the manifest of its registration."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from modelstore.store import check_version


def manifest(files: dict[str, bytes]) -> dict[str, tuple[int, str]]:
    return {rel: (len(data), hashlib.sha256(data).hexdigest()) for rel, data in files.items()}


FILES = {"model_dir/a.txt": b"alpha", "model_dir/sub/b.txt": b"bravo!"}


@pytest.fixture
def version_dir(tmp_path: Path) -> Path:
    root = tmp_path / "m" / "1"
    for rel, data in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def check(version_dir: Path, *, deep: bool = True) -> tuple[list[str], ...]:
    result = check_version(os.fspath(version_dir), "model_dir", manifest(FILES), deep=deep)
    assert result.ok is not any(
        (result.missing, result.changed, result.extra, result.foreign_entries)
    )
    return result.missing, result.changed, result.extra, result.foreign_entries


def test_an_untouched_version_matches_its_manifest(version_dir: Path) -> None:
    assert check(version_dir) == ([], [], [], [])


def test_a_missing_file_is_reported_and_only_it(version_dir: Path) -> None:
    (version_dir / "model_dir" / "a.txt").unlink()
    assert check(version_dir) == (["model_dir/a.txt"], [], [], [])


def test_a_file_of_another_size_is_changed_even_without_hashing(version_dir: Path) -> None:
    (version_dir / "model_dir" / "a.txt").write_bytes(b"alphabet")
    assert check(version_dir, deep=False) == ([], ["model_dir/a.txt"], [], [])


def test_a_same_size_edit_is_found_only_by_the_deep_check(version_dir: Path) -> None:
    (version_dir / "model_dir" / "sub" / "b.txt").write_bytes(b"BRAVO!")

    assert check(version_dir) == ([], ["model_dir/sub/b.txt"], [], [])
    assert check(version_dir, deep=False) == ([], [], [], [])


def test_extra_files_links_and_foreign_entries_are_reported(
    tmp_path: Path, version_dir: Path
) -> None:
    (version_dir / "model_dir" / "new.txt").write_bytes(b"n")
    (version_dir / "model_dir" / "linked").symlink_to(tmp_path)  # a link to a folder: an item
    (version_dir / "second_entry").mkdir()

    assert check(version_dir) == (
        [],
        [],
        ["model_dir/linked", "model_dir/new.txt"],
        ["second_entry"],
    )


def test_a_missing_version_folder_misses_every_file(tmp_path: Path) -> None:
    assert check(tmp_path / "nowhere") == (sorted(FILES), [], [], [])


def test_an_entry_replaced_by_a_file_misses_its_files_and_is_extra(version_dir: Path) -> None:
    shutil.rmtree(version_dir / "model_dir")
    (version_dir / "model_dir").write_bytes(b"x")

    assert check(version_dir) == (sorted(FILES), [], ["model_dir"], [])
