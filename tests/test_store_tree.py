"""modelstore.store.tree and fsops on the real file system: staging, publishing, trash, tokens."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelstore.errors import InvalidModelPathError
from modelstore.layout import StoreLayout
from modelstore.store import Store, plan_source, remove_tree, tree_size
from modelstore.store.fsops import make_dirs_read_only


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(StoreLayout(tmp_path / "home"))


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    root = tmp_path / "src" / "model_dir"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"alpha")
    (root / "sub" / "b.txt").write_bytes(b"bravo!")
    return root


def publish(store: Store, source: Path, name: str, version: int) -> Path:
    token = store.new_token()
    plan = plan_source(source)
    store.stage(plan, token)
    return store.publish(token, name, version, plan.entry)


# --- staging ------------------------------------------------------------------------------------


def test_staging_copies_each_file_read_only_with_its_size_and_sha256(
    store: Store, model_dir: Path
) -> None:
    token = store.new_token()

    staged = store.stage(plan_source(model_dir), token)

    assert [(f.relpath, f.size, f.sha256) for f in staged] == [
        ("model_dir/a.txt", 5, hashlib.sha256(b"alpha").hexdigest()),
        ("model_dir/sub/b.txt", 6, hashlib.sha256(b"bravo!").hexdigest()),
    ]
    copy = store.staging_path(token) / "model_dir"
    assert (copy / "a.txt").read_bytes() == b"alpha"
    assert (copy / "sub" / "b.txt").read_bytes() == b"bravo!"
    assert mode(copy / "a.txt") == mode(copy / "sub" / "b.txt") == 0o444
    assert os.listdir(store.staging_path(token)) == ["model_dir"]
    assert store.is_staged(token)
    assert store.staging_tokens() == [token]


def test_staging_reports_progress_in_bytes_up_to_the_total(store: Store, model_dir: Path) -> None:
    seen: list[tuple[int, int]] = []

    store.stage(
        plan_source(model_dir), store.new_token(), lambda done, total: seen.append((done, total))
    )

    assert seen[-1] == (11, 11)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert {total for _, total in seen} == {11}


def test_staging_an_empty_file_reports_zero_of_zero_once(store: Store, tmp_path: Path) -> None:
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    seen: list[tuple[int, int]] = []

    staged = store.stage(plan_source(empty), store.new_token(), lambda *p: seen.append(p))

    assert seen == [(0, 0)]
    assert [(f.size, f.sha256) for f in staged] == [(0, hashlib.sha256(b"").hexdigest())]


def test_a_source_file_vanishing_before_its_copy_is_the_users_error_and_staging_is_emptied(
    store: Store, model_dir: Path
) -> None:
    plan = plan_source(model_dir)
    (model_dir / "sub" / "b.txt").unlink()
    token = store.new_token()

    with pytest.raises(InvalidModelPathError) as caught:
        store.stage(plan, token)

    assert str(caught.value) == (
        f"{os.fspath(model_dir / 'sub' / 'b.txt')!r} disappeared while it was being copied; "
        "register again once the model is complete"
    )
    assert not store.is_staged(token)
    assert store.staging_tokens() == []


def test_discarding_a_staged_copy_removes_its_read_only_files(
    store: Store, model_dir: Path
) -> None:
    token = store.new_token()
    store.stage(plan_source(model_dir), token)

    store.discard(token)

    assert not store.is_staged(token)
    assert os.listdir(store.layout.staging_dir) == []


# --- publishing ---------------------------------------------------------------------------------


def test_a_published_folder_is_read_only_in_the_tree_and_staging_is_left_empty(
    store: Store, model_dir: Path
) -> None:
    entry = publish(store, model_dir, "m", 1)

    assert entry == store.layout.entry_path("m", 1, "model_dir")
    assert (entry / "sub" / "b.txt").read_bytes() == b"bravo!"
    assert mode(entry) == mode(entry / "sub") == 0o555
    assert mode(entry / "a.txt") == 0o444
    assert os.listdir(store.layout.staging_dir) == []
    assert store.tree() == {"m": ["1"]}


def test_versions_published_to_one_name_sit_side_by_side(store: Store, model_dir: Path) -> None:
    publish(store, model_dir, "m", 1)
    publish(store, model_dir, "m", 2)
    publish(store, model_dir / "a.txt", "other", 7)

    assert store.tree() == {"m": ["1", "2"], "other": ["7"]}
    assert sorted(store.version_folders()) == [("m", "1"), ("m", "2"), ("other", "7")]
    assert (store.layout.entry_path("other", 7, "a.txt")).read_bytes() == b"alpha"


def test_version_folders_skip_stray_items_that_are_not_version_numbers(
    store: Store, model_dir: Path
) -> None:
    publish(store, model_dir, "m", 1)
    models = store.layout.models_dir
    (models / "m" / "notes").mkdir()
    (models / "stray.txt").write_text("x")
    (models / "link").symlink_to(models / "m")

    assert store.tree() == {"link": [], "m": ["1", "notes"], "stray.txt": []}
    assert store.version_folders() == [("m", "1")]


def test_an_empty_home_has_no_tree() -> None:
    store = Store(StoreLayout(Path("/nonexistent-modelstore-home")))
    assert store.tree() == {}
    assert store.version_folders() == []
    assert store.staging_tokens() == store.trash_tokens() == []


# --- unpublishing and trash ---------------------------------------------------------------------


def test_unpublishing_the_last_version_moves_the_whole_name_folder_to_the_trash(
    store: Store, model_dir: Path
) -> None:
    publish(store, model_dir, "m", 1)
    token = store.new_token()

    trash = store.unpublish("m", [1], token)

    assert not store.layout.name_dir("m").exists()  # no empty name folder is left behind
    assert store.tree() == {}
    assert (trash / "m" / "1" / "model_dir" / "a.txt").read_bytes() == b"alpha"
    assert store.trash_tokens() == [token]


def test_unpublishing_some_versions_keeps_the_others_in_place(
    store: Store, model_dir: Path
) -> None:
    for version in (1, 2, 3):
        publish(store, model_dir, "m", version)

    trash = store.unpublish("m", ["1", 3], store.new_token())

    assert store.tree() == {"m": ["2"]}
    assert sorted(os.listdir(trash)) == ["1", "3"]


def test_unpublishing_a_missing_name_moves_nothing(store: Store) -> None:
    trash = store.unpublish("ghost", [1], store.new_token())
    assert os.listdir(trash) == []


def test_emptying_the_trash_removes_read_only_versions(store: Store, model_dir: Path) -> None:
    publish(store, model_dir, "m", 1)
    trash = store.unpublish("m", [1], store.new_token())

    store.empty_trash(trash)

    assert not trash.exists()


# --- tokens -------------------------------------------------------------------------------------


def test_a_token_is_in_use_only_while_its_lock_is_held_and_leaves_no_lock_file(
    store: Store,
) -> None:
    token = store.new_token()
    assert token.startswith(f"{os.getpid()}-")

    with store.token_lock(token):
        assert store.token_in_use(token)
        assert list(store.token_lock_files()) == [token]
        assert not store.token_lock_abandoned(token)

    assert not store.token_in_use(token)
    assert store.token_lock_files() == {}


def test_a_free_lock_of_a_live_process_counts_as_abandoned_only_after_a_minute(
    store: Store,
) -> None:
    token = store.new_token()  # this process's pid: alive
    with store.token_lock(token):
        path = store.token_lock_files()[token]
    Path(path).touch()  # left free, as between its creation and its locking

    assert not store.token_lock_abandoned(token)
    an_hour_ago = time.time() - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))
    assert store.token_lock_abandoned(token)

    store.remove_token_lock(token)
    assert store.token_lock_files() == {}


HOLD_TOKEN = """
import sys
from pathlib import Path
from modelstore.layout import StoreLayout
from modelstore.store import Store

store = Store(StoreLayout(Path(sys.argv[1])))
with store.token_lock(store.new_token()):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_the_lock_of_a_killed_process_is_abandoned_and_no_longer_in_use(store: Store) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_TOKEN, os.fspath(store.layout.home)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        [token] = store.token_lock_files()
        assert token.startswith(f"{holder.pid}-")
        assert store.token_in_use(token)
        assert not store.token_lock_abandoned(token)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()

    assert store.token_lock_abandoned(token)  # the kernel dropped the lock with the process
    assert not store.token_in_use(token)
    assert store.token_lock_files() == {}  # token_in_use removed the leftover


# --- fsops --------------------------------------------------------------------------------------


def test_make_dirs_read_only_reaches_every_folder_and_leaves_files_alone(model_dir: Path) -> None:
    make_dirs_read_only(model_dir)
    try:
        assert mode(model_dir) == mode(model_dir / "sub") == 0o555
        assert mode(model_dir / "a.txt") & 0o200  # still writable: files are made 0o444 on copy
    finally:
        remove_tree(model_dir)


def test_remove_tree_removes_read_only_trees_and_tolerates_missing_paths(
    tmp_path: Path, model_dir: Path
) -> None:
    for file in (model_dir / "a.txt", model_dir / "sub" / "b.txt"):
        file.chmod(0o444)
    make_dirs_read_only(model_dir)

    remove_tree(model_dir)
    remove_tree(tmp_path / "never-there")

    assert not model_dir.exists()


def test_remove_tree_removes_a_link_never_its_target(tmp_path: Path, model_dir: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(model_dir)

    remove_tree(link)

    assert not os.path.lexists(link)
    assert (model_dir / "a.txt").read_bytes() == b"alpha"


def test_tree_size_adds_up_files_and_counts_links_as_themselves(
    tmp_path: Path, model_dir: Path
) -> None:
    (model_dir / "link").symlink_to(tmp_path / "elsewhere-not-counted")

    assert tree_size(model_dir) == 5 + 6 + len(os.fspath(tmp_path / "elsewhere-not-counted"))
    assert tree_size(model_dir / "a.txt") == 5
    assert tree_size(tmp_path / "missing") == 0
