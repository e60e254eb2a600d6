"""modelstore.store.sources: what a registration would copy, and every source refused up front."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from modelstore.errors import InvalidModelPathError
from modelstore.store import plan_source


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    root = tmp_path / "model_dir"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"alpha")
    (root / "sub" / "b.txt").write_bytes(b"bravo!")
    return root


def refusal(path: Path | str, child_paths: list[str] | None = None) -> str:
    with pytest.raises(InvalidModelPathError) as caught:
        plan_source(path, child_paths)
    return str(caught.value)


def test_a_file_is_its_own_entry(tmp_path: Path) -> None:
    model = tmp_path / "model.pkl"
    model.write_bytes(b"12345")

    plan = plan_source(model)

    assert (plan.entry, plan.kind, plan.total_size) == ("model.pkl", "file", 5)
    assert [(f.relpath, f.source, f.size) for f in plan.files] == [
        ("model.pkl", os.fspath(model), 5)
    ]


def test_a_relative_path_is_read_from_its_absolute_location(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(model_dir.parent)

    plan = plan_source("model_dir")

    assert [f.source for f in plan.files] == [
        os.fspath(model_dir / "a.txt"),
        os.fspath(model_dir / "sub" / "b.txt"),
    ]


def test_a_folder_lists_its_files_sorted_under_the_entry(model_dir: Path) -> None:
    plan = plan_source(model_dir)

    assert (plan.entry, plan.kind, plan.total_size) == ("model_dir", "folder", 11)
    assert [f.relpath for f in plan.files] == ["model_dir/a.txt", "model_dir/sub/b.txt"]


def test_child_paths_select_files_and_folders_inside_the_folder(model_dir: Path) -> None:
    (model_dir / "c.txt").write_bytes(b"c")

    plan = plan_source(model_dir, ["sub", "c.txt"])

    assert [f.relpath for f in plan.files] == ["model_dir/c.txt", "model_dir/sub/b.txt"]


def test_a_top_level_symlink_to_a_file_is_registered_under_the_links_name(
    tmp_path: Path, model_dir: Path
) -> None:
    link = tmp_path / "current.txt"
    link.symlink_to(model_dir / "a.txt")

    plan = plan_source(link)

    assert (plan.entry, plan.kind) == ("current.txt", "file")
    assert [(f.relpath, f.size) for f in plan.files] == [("current.txt", 5)]


def test_a_top_level_symlink_to_a_folder_is_registered_under_the_links_name(
    tmp_path: Path, model_dir: Path
) -> None:
    """A ``current -> model-2024-06`` link, as release folders are often laid out: the folder's
    files are stored under the link's name, and links inside it to its own files still count
    as inside."""
    (model_dir / "alias.txt").symlink_to(model_dir / "a.txt")
    link = tmp_path / "current"
    link.symlink_to(model_dir)

    plan = plan_source(link)

    assert (plan.entry, plan.kind) == ("current", "folder")
    assert [f.relpath for f in plan.files] == [
        "current/a.txt",
        "current/alias.txt",
        "current/sub/b.txt",
    ]
    assert all(f.source.startswith(str(link)) for f in plan.files)


def test_a_symlink_to_a_file_inside_the_folder_is_stored_as_a_copy(model_dir: Path) -> None:
    (model_dir / "alias.txt").symlink_to(model_dir / "sub" / "b.txt")

    plan = plan_source(model_dir)

    alias = next(f for f in plan.files if f.relpath == "model_dir/alias.txt")
    assert alias.size == 6
    assert plan.total_size == 17


@pytest.mark.parametrize(
    ("make", "complaint"),
    [
        (
            lambda root, out: (root / "x").symlink_to(out),
            "'model_dir/x' in {shown!r} is a symlink pointing outside the folder (to {out}); "
            "copy the target into the folder or remove the link",
        ),
        (
            lambda root, out: (root / "x").symlink_to(root / "missing"),
            "'model_dir/x' in {shown!r} is a dangling symlink; fix or remove it",
        ),
        (
            lambda root, out: (root / "x").symlink_to(root / "sub"),
            "'model_dir/x' in {shown!r} is a symlink to a folder, which modelstore does not "
            "store; replace it with a real folder or remove it",
        ),
    ],
    ids=["outside", "dangling", "folder"],
)
def test_symlinks_that_cannot_be_stored_are_refused_by_name(
    tmp_path: Path, model_dir: Path, make: Callable[[Path, Path], object], complaint: str
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"o")
    make(model_dir, outside)

    assert refusal(model_dir) == complaint.format(shown=os.fspath(model_dir), out=outside)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_a_named_pipe_in_the_folder_is_refused(model_dir: Path) -> None:
    os.mkfifo(model_dir / "pipe")

    assert refusal(model_dir) == (
        f"'model_dir/pipe' in {os.fspath(model_dir)!r} is a fifo (named pipe); "
        "a model folder may hold only regular files and folders, remove it"
    )


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_a_named_pipe_given_as_the_model_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")

    assert refusal(tmp_path / "pipe") == (
        f"{os.fspath(tmp_path / 'pipe')!r} is a fifo (named pipe), not a regular file or "
        "folder; register a model file or a folder of model files"
    )


def test_a_missing_path_and_a_dangling_top_level_link_are_told_apart(tmp_path: Path) -> None:
    missing = os.fspath(tmp_path / "missing")
    (tmp_path / "link").symlink_to(missing)

    assert refusal(missing) == (
        f"Path does not exist: {missing!r}; give the path of an existing model file or folder"
    )
    assert refusal(tmp_path / "link") == (
        f"{os.fspath(tmp_path / 'link')!r} is a symlink whose target does not exist; point it "
        "at the model or give the model's real path"
    )


def test_an_empty_path_and_the_root_are_refused() -> None:
    assert refusal("") == "the model path is empty; give a model file or folder"
    assert refusal("/") == ("cannot register the file-system root '/'; give a model file or folder")


def test_an_empty_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty" / "nested").mkdir(parents=True)

    assert refusal(tmp_path / "empty") == (
        f"the folder {os.fspath(tmp_path / 'empty')!r} holds no files; a model folder must "
        "contain at least one file"
    )


def test_child_paths_outside_missing_or_on_a_file_are_refused(
    tmp_path: Path, model_dir: Path
) -> None:
    root = os.fspath(model_dir)

    assert refusal(model_dir, ["../elsewhere"]) == (
        f'child path "../elsewhere" is outside the model folder {root}; child paths must '
        "name files or folders inside it"
    )
    assert refusal(model_dir, ["nope.txt"]) == (
        f'Error, provided child path "nope.txt" cannot be found; child paths are relative to '
        f"the model folder {root}"
    )
    assert refusal(model_dir / "a.txt", ["x"]).startswith(
        'Error, provided child path "x" cannot be found: child paths apply to folders'
    )


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="needs non-UTF-8 file names")
def test_a_file_name_that_is_not_utf8_is_refused_showing_its_bytes(model_dir: Path) -> None:
    (Path(os.fsdecode(os.fsencode(model_dir) + b"/caf\xe9.txt"))).write_bytes(b"x")

    message = refusal(model_dir)

    assert message.startswith("the file name 'model_dir/caf\\xe9.txt' in '")
    assert message.endswith("is not valid UTF-8; rename it (e.g. with convmv) and retry")
