"""Every bad registration input: one clear line, the right error class, nothing changed."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from registry_helpers import make_file, make_model_dir, snapshot

from modelstore import Registry
from modelstore.cli.errors import exit_code
from modelstore.errors import (
    BadArgumentTypeError,
    InvalidArgumentError,
    InvalidModelPathError,
    ModelNotFoundError,
    ModelstoreError,
    UsageError,
    VersionOutOfRangeError,
)
from modelstore.registry import DeletePlan


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MODELSTORE_DB_URL", raising=False)
    return tmp_path / "home"


@pytest.fixture
def registry(home: Path, tmp_path: Path) -> Iterator[Registry]:
    with Registry(home) as opened:
        opened.register(make_file(tmp_path / "seed.pkl"), "seed")  # a non-empty store
        yield opened


def refused(
    registry: Registry,
    home: Path,
    error: type[ModelstoreError],
    match: str,
    call: Callable[[], object],
) -> str:
    """Run ``call``, expect ``error`` with a one-line message, and prove nothing changed."""
    before_tree = snapshot(home)
    before_catalog = [m.id for m in registry.list()]
    with pytest.raises(error, match=match) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message and message
    assert snapshot(home) == before_tree
    assert [m.id for m in registry.list()] == before_catalog
    assert registry.register(home.parent / "seed.pkl", "seed").version >= 2  # still works
    return message


def test_a_missing_path_is_refused(registry: Registry, home: Path, tmp_path: Path) -> None:
    refused(
        registry,
        home,
        InvalidModelPathError,
        "Path does not exist.*existing model",
        lambda: registry.register(tmp_path / "nope.pkl", "m"),
    )


def test_an_empty_path_is_refused(registry: Registry, home: Path) -> None:
    refused(registry, home, InvalidModelPathError, "empty", lambda: registry.register("", "m"))


def test_a_fifo_is_refused(registry: Registry, home: Path, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    refused(
        registry,
        home,
        InvalidModelPathError,
        "is a fifo",
        lambda: registry.register(tmp_path / "pipe", "m"),
    )


def test_a_fifo_inside_a_folder_is_refused(registry: Registry, home: Path, tmp_path: Path) -> None:
    folder = make_model_dir(tmp_path / "model_dir")
    os.mkfifo(folder / "sub" / "pipe")
    refused(
        registry,
        home,
        InvalidModelPathError,
        r"'model_dir/sub/pipe'.*fifo",
        lambda: registry.register(folder, "m"),
    )


def test_a_socket_is_refused(registry: Registry, home: Path) -> None:
    short = tempfile.mkdtemp(prefix="ms")  # AF_UNIX paths must be short
    path = os.path.join(short, "sock")
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(path)
        refused(
            registry,
            home,
            InvalidModelPathError,
            "is a socket",
            lambda: registry.register(path, "m"),
        )
    finally:
        server.close()
        os.unlink(path)
        os.rmdir(short)


def test_a_device_is_refused(registry: Registry, home: Path) -> None:
    refused(
        registry,
        home,
        InvalidModelPathError,
        "is a device",
        lambda: registry.register("/dev/null", "m"),
    )


def test_an_empty_folder_is_refused(registry: Registry, home: Path, tmp_path: Path) -> None:
    (tmp_path / "empty" / "only_dirs").mkdir(parents=True)
    refused(
        registry,
        home,
        InvalidModelPathError,
        "holds no files",
        lambda: registry.register(tmp_path / "empty", "m"),
    )


def test_a_symlink_pointing_outside_the_folder_is_refused(
    registry: Registry, home: Path, tmp_path: Path
) -> None:
    folder = make_model_dir(tmp_path / "model_dir")
    secret = make_file(tmp_path / "secret.txt")
    (folder / "link").symlink_to(secret)
    refused(
        registry,
        home,
        InvalidModelPathError,
        "symlink pointing outside",
        lambda: registry.register(folder, "m"),
    )


def test_a_relative_symlink_escaping_the_folder_is_refused(
    registry: Registry, home: Path, tmp_path: Path
) -> None:
    folder = make_model_dir(tmp_path / "model_dir")
    make_file(tmp_path / "other.txt")
    (folder / "sub" / "link").symlink_to("../../other.txt")
    refused(
        registry,
        home,
        InvalidModelPathError,
        "outside",
        lambda: registry.register(folder, "m"),
    )


def test_a_symlink_to_a_folder_is_refused(registry: Registry, home: Path, tmp_path: Path) -> None:
    folder = make_model_dir(tmp_path / "model_dir")
    (folder / "loop").symlink_to(folder)
    refused(
        registry,
        home,
        InvalidModelPathError,
        "symlink to a folder",
        lambda: registry.register(folder, "m"),
    )


def test_a_dangling_symlink_is_refused(registry: Registry, home: Path, tmp_path: Path) -> None:
    folder = make_model_dir(tmp_path / "model_dir")
    (folder / "dangling").symlink_to(folder / "gone")
    refused(
        registry, home, InvalidModelPathError, "dangling", lambda: registry.register(folder, "m")
    )
    (tmp_path / "top").symlink_to(tmp_path / "gone")
    refused(
        registry,
        home,
        InvalidModelPathError,
        "target does not exist",
        lambda: registry.register(tmp_path / "top", "m"),
    )


def test_a_symlink_to_a_file_inside_the_folder_is_stored_as_a_copy(
    registry: Registry, tmp_path: Path
) -> None:
    folder = make_model_dir(tmp_path / "model_dir")
    (folder / "alias.txt").symlink_to("sub/b.txt")
    mv = registry.register(folder, "m")
    stored = mv.path / "alias.txt"
    assert not stored.is_symlink() and stored.read_bytes() == b"b"
    assert registry.verify("m").ok


def test_a_top_level_symlink_registers_its_target_under_the_links_name(
    registry: Registry, tmp_path: Path
) -> None:
    target = make_file(tmp_path / "real.pkl", b"real")
    (tmp_path / "alias.pkl").symlink_to(target)
    mv = registry.register(tmp_path / "alias.pkl", "m")
    assert mv.entry == "alias.pkl" and mv.path.read_bytes() == b"real"


def test_a_missing_child_path_is_refused_with_the_sdk_text(
    registry: Registry, home: Path, tmp_path: Path
) -> None:
    folder = make_model_dir(tmp_path / "model_dir")
    refused(
        registry,
        home,
        InvalidModelPathError,
        'Error, provided child path "nope.txt" cannot be found',
        lambda: registry.register(folder, "m", child_paths=["a.txt", "nope.txt"]),
    )


def test_a_child_path_given_with_a_file_keeps_the_sdk_text_and_says_why(
    registry: Registry, home: Path, tmp_path: Path
) -> None:
    model = make_file(tmp_path / "model.pkl")
    refused(
        registry,
        home,
        InvalidModelPathError,
        'Error, provided child path "x" cannot be found: child paths apply to folders, ',
        lambda: registry.register(model, "m", child_paths=["x"]),
    )


def test_a_child_path_outside_the_folder_is_refused(
    registry: Registry, home: Path, tmp_path: Path
) -> None:
    folder = make_model_dir(tmp_path / "model_dir")
    make_file(tmp_path / "x.txt")
    refused(
        registry,
        home,
        InvalidModelPathError,
        "outside the model folder",
        lambda: registry.register(folder, "m", child_paths=["../x.txt"]),
    )


def test_child_paths_of_a_file_model_cannot_be_found(
    registry: Registry, home: Path, tmp_path: Path
) -> None:
    model = make_file(tmp_path / "model.pkl")
    refused(
        registry,
        home,
        InvalidModelPathError,
        'child path "a" cannot be found',
        lambda: registry.register(model, "m", child_paths=["a"]),
    )


def test_a_framework_version_without_a_framework_is_refused_with_the_sdk_text(
    registry: Registry, home: Path, tmp_path: Path
) -> None:
    model = make_file(tmp_path / "model.pkl")
    refused(
        registry,
        home,
        InvalidArgumentError,
        "Model framework version cannot be provided without a valid framework",
        lambda: registry.register(model, "m", framework_version="1.0"),
    )


def test_the_name_is_checked_before_the_path(
    registry: Registry, home: Path, tmp_path: Path
) -> None:
    message = refused(
        registry,
        home,
        UsageError,
        "model name is invalid",
        lambda: registry.register(tmp_path / "nope", "bad name"),
    )
    assert "Path does not exist" not in message


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tags": ["a"]}, "Tags must be a dict"),
        ({"tags": {"a": 1}}, "Tags must be a dict of str to str"),
        ({"properties": {"a": None}}, "Properties must be a dict of str to str"),
        ({"description": 3}, "description must be a str"),
        ({"child_paths": "a.txt"}, "child_paths must be a list"),
    ],
)
def test_badly_typed_arguments_are_refused(
    registry: Registry, home: Path, tmp_path: Path, kwargs: dict[str, object], match: str
) -> None:
    model = make_file(tmp_path / "model.pkl")
    refused(
        registry,
        home,
        BadArgumentTypeError,
        match,
        lambda: registry.register(model, "m", **kwargs),  # type: ignore[arg-type]
    )


def test_a_folder_containing_the_registry_home_is_refused(
    registry: Registry, home: Path, tmp_path: Path
) -> None:
    refused(
        registry,
        home,
        InvalidModelPathError,
        "contains the registry home",
        lambda: registry.register(tmp_path, "m"),
    )


def test_a_path_in_the_working_space_is_refused(registry: Registry, home: Path) -> None:
    refused(
        registry,
        home,
        InvalidModelPathError,
        "working space",
        lambda: registry.register(home / ".modelstore" / "locks", "m"),
    )


def test_a_stored_version_can_be_registered_again_under_another_name(
    registry: Registry, tmp_path: Path
) -> None:
    again = registry.register(registry.path("seed"), "copy")
    assert again.sha256 == registry.get("seed").sha256


@pytest.mark.parametrize("where", ["inside the folder", "the entry itself"])
def test_a_file_name_that_is_not_utf8_is_refused_before_anything_is_copied(
    registry: Registry, home: Path, tmp_path: Path, where: str
) -> None:
    """Such a name cannot be recorded in the catalog (nor on most other systems): it must be a
    clear refusal, not a UnicodeEncodeError that leaves a copy behind in staging."""
    folder = make_model_dir(tmp_path / "model_dir")
    bad_name = os.fsdecode(b"weights\xff.bin")
    if where == "inside the folder":
        make_file(folder / "sub" / bad_name)
        model = folder
    else:
        model = make_file(tmp_path / bad_name)
    message = refused(
        registry,
        home,
        InvalidModelPathError,
        r"not valid UTF-8.*rename",
        lambda: registry.register(model, "m"),
    )
    assert "weights\\xff.bin" in message


def test_a_folder_holding_the_home_can_be_registered_through_child_paths_that_avoid_it(
    tmp_path: Path,
) -> None:
    """The refusal's advice: a project folder that also holds the registry home is registered by
    naming the model's children, as Azure ML's ``register('.', child_paths=[...])``."""
    project = make_model_dir(tmp_path / "proj")
    with Registry(project / "home") as registry:
        registry.register(make_file(project / "seed.pkl"), "seed")  # what refused() expects
        stored = registry.register(project, "m", child_paths=["a.txt", "sub"])
        assert (stored.entry, stored.file_count) == ("proj", 2)
        for children, match in (
            (["."], "contains the registry home"),
            (["a.txt", "home"], "contains the registry home"),
            (["home/.modelstore"], "working space"),
        ):
            refused(
                registry,
                project / "home",
                InvalidModelPathError,
                match,
                lambda children=children: registry.register(project, "m", child_paths=children),  # type: ignore[misc]
            )


BEYOND_SQLITE: dict[str, Callable[[Registry, int], object]] = {
    "get": lambda r, v: r.get("seed", v),
    "path": lambda r, v: r.path("seed", v),
    "update_tags": lambda r, v: r.update_tags("seed", v, add={"k": "v"}),
    "add_properties": lambda r, v: r.add_properties("seed", v, {"k": "v"}),
    "set_description": lambda r, v: r.set_description("seed", v, "text"),
    "plan_delete": lambda r, v: r.plan_delete("seed", v),
    "delete": lambda r, v: r.delete("seed", v),
    "verify": lambda r, v: r.verify("seed", v),
    "delete_planned": lambda r, v: r.delete_planned(
        DeletePlan(
            versions=[r.get("seed").model_copy(update={"version": v})], bytes=0, dry_run=True
        )
    ),
    "deploy": lambda r, v: r.deploy([f"seed:{_digits(v)}"], r.home.parent / "app"),
}


def _digits(version: int) -> str:
    """str() refuses ints of more than 4300 digits; the huge case here is 10**5000."""
    return str(version) if version < 10**100 else "1" + "0" * 5000


@pytest.mark.parametrize("version", [2**63, 10**5000], ids=["2**63", "10**5000"])
@pytest.mark.parametrize("method", sorted(BEYOND_SQLITE))
def test_a_version_beyond_sqlite_integer_is_a_usage_error_not_an_overflow(
    registry: Registry, home: Path, method: str, version: int
) -> None:
    """SQLite raised a bare OverflowError for these; now the version is checked first."""
    message = refused(
        registry,
        home,
        VersionOutOfRangeError,
        "out of range",
        lambda: BEYOND_SQLITE[method](registry, version),
    )
    assert "9223372036854775807" in message and len(message) < 300
    with pytest.raises(VersionOutOfRangeError) as caught:
        BEYOND_SQLITE[method](registry, version)
    assert (caught.value.name, caught.value.version, exit_code(caught.value)) == (
        "seed",
        version,
        2,
    )
    assert not (home.parent / "app").exists()


def test_the_highest_sqlite_integer_is_a_valid_version_that_is_not_registered(
    registry: Registry,
) -> None:
    with pytest.raises(ModelNotFoundError, match="has no version 9223372036854775807"):
        registry.get("seed", 2**63 - 1)
