"""The registry commands as a user runs them, through click's CliRunner on a real store."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from modelstore import Registry
from modelstore.cli import main, registry_commands
from modelstore.modelversion import ModelVersion


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "sklearn_regression_model.pkl"
    path.parent.mkdir()
    path.write_bytes(b"pickled model bytes")
    return path


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    root = tmp_path / "outputs" / "model_dir"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "c.txt").write_text("c")
    (root / "sub" / "b.txt").write_text("b")
    return root


def run(home: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, ["--home", str(home), *args], input=input)


def ok(home: Path, *args: str) -> Result:
    result = run(home, *args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def listed(home: Path, *args: str) -> list[ModelVersion]:
    return [
        ModelVersion.model_validate(v) for v in json.loads(ok(home, "list", "--json", *args).stdout)
    ]


def register(home: Path, path: Path, name: str, *extra: str) -> ModelVersion:
    result = ok(home, "register", str(path), "--name", name, "--json", *extra)
    return ModelVersion.model_validate_json(result.stdout)


# --- register ---------------------------------------------------------------------------------


def test_register_prints_the_id_and_the_absolute_entry_path(home: Path, model_file: Path) -> None:
    result = ok(
        home, "register", str(model_file), "--name", "my_first_model", "--tag", "team=fraud"
    )
    entry = home.resolve() / "azureml-models" / "my_first_model" / "1" / model_file.name
    assert result.stdout == f"Registered my_first_model:1  ->  {entry}\n"
    assert entry.read_bytes() == model_file.read_bytes()


def test_registering_the_same_name_again_gives_the_next_version(
    home: Path, model_file: Path
) -> None:
    assert register(home, model_file, "m").version == 1
    assert register(home, model_file, "m").version == 2
    assert register(home, model_file, "other").version == 1


def test_register_json_records_tags_properties_description_and_framework(
    home: Path, model_file: Path
) -> None:
    version = register(
        home,
        model_file,
        "m",
        "--tag", "team=fraud", "--tag", "stage=",
        "--property", "auc=0.91",
        "--description", "first try",
        "--framework", "ScikitLearn",
        "--framework-version", "1.5",
    )  # fmt: skip
    assert version.id == "m:1"
    assert version.tags == {"team": "fraud", "stage": ""}
    assert version.properties == {"auc": "0.91"}
    assert version.description == "first try"
    assert (version.framework, version.framework_version) == ("ScikitLearn", "1.5")
    assert version.kind == "file"
    assert version.size == model_file.stat().st_size


def test_register_child_paths_keep_only_those_children_of_a_folder(
    home: Path, model_dir: Path
) -> None:
    version = register(home, model_dir, "m", "--child-path", "a.txt", "--child-path", "sub")
    stored = sorted(
        str(p.relative_to(version.path)) for p in version.path.rglob("*") if p.is_file()
    )
    assert version.entry == "model_dir"
    assert stored == ["a.txt", os.path.join("sub", "b.txt")]


def test_a_large_registration_prints_no_progress_bar_when_stderr_is_not_a_terminal(
    home: Path, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as out:
        out.truncate(registry_commands.LARGE_MODEL_BYTES + 1)
    result = ok(home, "register", str(big), "--name", "big")
    assert result.stderr == ""


def register_on_a_terminal(home: Path, path: Path) -> tuple[int, str, bytes]:
    """Run ``modelstore register`` in a real process whose stderr is a pseudo-terminal; return
    its exit code, its stdout and everything it drew on the terminal."""
    leader, follower = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "modelstore", "--home", str(home),
         "register", str(path), "--name", "m"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=follower,
    ) as process:  # fmt: skip
        os.close(follower)
        drawn = b""
        while True:  # read while it runs, so a full terminal buffer never blocks it
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the process closed the terminal
                break
            if not chunk:
                break
            drawn += chunk
        os.close(leader)
        assert process.stdout is not None
        stdout = process.stdout.read().decode()
        code = process.wait(timeout=120)
    return code, stdout, drawn


def test_a_large_registration_draws_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as out:
        out.truncate(registry_commands.LARGE_MODEL_BYTES + 1)
    code, stdout, drawn = register_on_a_terminal(tmp_path / "home", big)
    assert code == 0
    assert b"Copying big.bin" in drawn
    assert b"100%" in drawn
    assert b"32.0 MiB of 32.0 MiB, " in drawn  # bytes copied of the total, then the speed
    assert re.search(rb" of 32\.0 MiB, [0-9.]+ (B|KiB|MiB|GiB)/s", drawn)
    assert stdout.startswith("Registered m:1  ->  ")


@pytest.mark.parametrize(
    ("done", "total", "seconds", "shown"),
    [
        (0, 64 << 20, 0.0, "0 B of 64.0 MiB"),
        (16 << 20, 64 << 20, 2.0, "16.0 MiB of 64.0 MiB, 8.0 MiB/s, 6s left"),
        (1 << 30, 11 << 30, 10.0, "1.0 GiB of 11.0 GiB, 102.4 MiB/s, 1:40 left"),
        (1 << 20, 4 << 30, 1.0, "1.0 MiB of 4.0 GiB, 1.0 MiB/s, 1:08:15 left"),
        (64 << 20, 64 << 20, 4.0, "64.0 MiB of 64.0 MiB, 16.0 MiB/s"),
    ],
)
def test_the_progress_text_shows_bytes_speed_and_time_left(
    done: int, total: int, seconds: float, shown: str
) -> None:
    assert registry_commands.transfer_text(done, total, seconds) == shown


def test_a_small_registration_draws_no_progress_bar_even_on_a_terminal(
    tmp_path: Path, model_file: Path
) -> None:
    code, stdout, drawn = register_on_a_terminal(tmp_path / "home", model_file)
    assert code == 0
    assert drawn == b""
    assert stdout.startswith("Registered m:1  ->  ")


# --- list -------------------------------------------------------------------------------------


def test_list_prints_an_aligned_table_of_every_version(home: Path, model_file: Path) -> None:
    register(home, model_file, "m", "--tag", "team=fraud")
    register(home, model_file, "m")
    register(home, model_file, "a_longer_name")
    *lines, total = ok(home, "list").stdout.splitlines()
    assert lines[0].split() == ["ID", "ENTRY", "SIZE", "CREATED", "TAGS"]
    assert [line.split()[0] for line in lines[1:]] == ["a_longer_name:1", "m:2", "m:1"]
    starts = [lines[0].index(column) for column in ("ENTRY", "SIZE", "CREATED", "TAGS")]
    for line in lines[1:]:
        assert [line[start - 2 : start] for start in starts[:3]] == ["  "] * 3
        assert line[starts[0] :].startswith(model_file.name)
    assert lines[-1].endswith("team=fraud")
    assert "19 B" in lines[1]
    assert total == "3 versions, 57 B in total"


def test_list_json_is_an_array_ordered_by_name_then_newest_version(
    home: Path, model_file: Path
) -> None:
    register(home, model_file, "b")
    register(home, model_file, "a")
    register(home, model_file, "b")
    assert [v.id for v in listed(home)] == ["a:1", "b:2", "b:1"]
    assert [v.id for v in listed(home, "b")] == ["b:2", "b:1"]


def test_list_filters_by_tag_and_property_key_or_key_value(home: Path, model_file: Path) -> None:
    register(home, model_file, "m", "--tag", "team=fraud", "--property", "auc=0.91")
    register(home, model_file, "m", "--tag", "team=risk")
    register(home, model_file, "m")
    assert [v.id for v in listed(home, "--tag", "team")] == ["m:2", "m:1"]
    assert [v.id for v in listed(home, "--tag", "team=fraud")] == ["m:1"]
    assert [v.id for v in listed(home, "--property", "auc")] == ["m:1"]
    assert [v.id for v in listed(home, "--tag", "team", "--property", "auc=0.5")] == []


def test_list_latest_keeps_the_highest_matching_version_of_each_name(
    home: Path, model_file: Path
) -> None:
    register(home, model_file, "m", "--tag", "good=yes")
    register(home, model_file, "m")
    register(home, model_file, "n")
    assert [v.id for v in listed(home, "--latest")] == ["m:2", "n:1"]
    assert [v.id for v in listed(home, "--latest", "--tag", "good")] == ["m:1"]


def test_listing_an_empty_store_says_nothing_matches(home: Path, model_file: Path) -> None:
    register(home, model_file, "m")
    ok(home, "delete", "m:1", "--yes")
    assert ok(home, "list").stdout == "No model versions match.\n"
    assert json.loads(ok(home, "list", "--json").stdout) == []


@pytest.mark.parametrize(
    "args",
    [
        ("list",),
        ("list", "--json"),
        ("show", "m"),
        ("path", "m:1"),
        ("verify",),
        ("doctor",),
        ("tag", "m:1", "k=v"),
        ("delete", "m:1", "--yes"),
    ],
)
def test_reading_a_home_that_does_not_exist_says_so_and_creates_nothing(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    home = tmp_path / "nonexistent" / "path"
    result = run(home, *args)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: there is no modelstore registry at {home} (its catalog {home}/registry.db "
        "does not exist); check --home / MODELSTORE_HOME, or register a model to create one\n"
    )
    assert os.listdir(tmp_path) == []


# --- show and path ----------------------------------------------------------------------------


def test_show_describes_the_latest_version_or_the_one_asked(home: Path, model_file: Path) -> None:
    register(home, model_file, "m", "--tag", "team=fraud", "--description", "v1")
    register(home, model_file, "m")
    latest = ok(home, "show", "m").stdout
    assert "id:" in latest and "m:2" in latest
    first = ok(home, "show", "m:1").stdout
    assert "team=fraud" in first
    assert "v1" in first
    assert ok(home, "show", "m:latest").stdout == latest


def test_show_json_is_the_model_version_serialisation(home: Path, model_file: Path) -> None:
    registered = register(home, model_file, "m", "--property", "auc=0.9")
    shown = json.loads(ok(home, "show", "m:1", "--json").stdout)
    assert shown == registered.model_dump(mode="json")
    assert set(shown) == set(ModelVersion.model_fields)


def test_path_prints_only_the_entry_path(home: Path, model_file: Path) -> None:
    first = register(home, model_file, "m")
    second = register(home, model_file, "m")
    assert ok(home, "path", "m").stdout == f"{second.path}\n"
    assert ok(home, "path", "m:latest").stdout == f"{second.path}\n"
    assert ok(home, "path", "m:1").stdout == f"{first.path}\n"
    assert Path(ok(home, "path", "m:1").stdout.strip()).read_bytes() == model_file.read_bytes()


# --- tags, properties, description ------------------------------------------------------------


def test_tag_adds_and_replaces_tags_of_the_version(home: Path, model_file: Path) -> None:
    register(home, model_file, "m", "--tag", "team=fraud")
    result = ok(home, "tag", "m:1", "team=risk", "stage=prod")
    assert "Replacing tag team -> fraud with team -> risk" in result.stdout
    assert listed(home)[0].tags == {"team": "risk", "stage": "prod"}


def test_tag_without_a_version_tags_the_latest(home: Path, model_file: Path) -> None:
    register(home, model_file, "m")
    register(home, model_file, "m")
    ok(home, "tag", "m", "stage=prod")
    assert [v.tags for v in listed(home)] == [{"stage": "prod"}, {}]


def test_untag_removes_keys_and_reports_the_ones_it_did_not_have(
    home: Path, model_file: Path
) -> None:
    register(home, model_file, "m", "--tag", "team=fraud", "--tag", "stage=prod")
    result = ok(home, "untag", "m:1", "team", "nope")
    assert "Tag with key nope not found." in result.stderr
    assert listed(home)[0].tags == {"stage": "prod"}


def test_property_adds_new_properties(home: Path, model_file: Path) -> None:
    register(home, model_file, "m", "--property", "auc=0.91")
    ok(home, "property", "m:1", "f1=0.8")
    assert listed(home)[0].properties == {"auc": "0.91", "f1": "0.8"}


def test_describe_sets_the_description(home: Path, model_file: Path) -> None:
    register(home, model_file, "m", "--description", "old")
    ok(home, "describe", "m:1", "trained on 2024 data")
    assert listed(home)[0].description == "trained on 2024 data"


@pytest.mark.parametrize(
    ("args", "field", "expected"),
    [
        (["tag", "m:1", "stage=prod"], "tags", {"team": "fraud", "stage": "prod"}),
        (["untag", "m:1", "team"], "tags", {}),
        (["property", "m:1", "f1=0.8"], "properties", {"auc": "0.91", "f1": "0.8"}),
        (["describe", "m:1", "new text"], "description", "new text"),
    ],
    ids=lambda value: value[0] if isinstance(value, list) else "",
)
def test_metadata_commands_print_the_updated_version_as_json(
    home: Path, model_file: Path, args: list[str], field: str, expected: object
) -> None:
    register(home, model_file, "m", "--tag", "team=fraud", "--property", "auc=0.91")
    updated = ModelVersion.model_validate_json(ok(home, *args, "--json").stdout)
    assert getattr(updated, field) == expected
    assert updated == listed(home)[0]


def test_tag_json_keeps_stdout_pure_json_when_replacing_a_tag(home: Path, model_file: Path) -> None:
    register(home, model_file, "m", "--tag", "team=fraud")
    result = ok(home, "tag", "m:1", "team=risk", "--json")
    assert json.loads(result.stdout)["tags"] == {"team": "risk"}
    assert "Replacing tag team -> fraud with team -> risk" in result.stderr


@contextlib.contextmanager
def just_before_the_next_write(
    monkeypatch: pytest.MonkeyPatch, home: Path, action: Callable[[Registry], object]
) -> Iterator[None]:
    """Let another writer commit ``action`` right before the command's first catalog write
    transaction (after whatever the command read before it)."""
    from modelstore.catalog.catalog import Catalog

    real_write = Catalog._write
    done: list[bool] = []

    def write(catalog: Catalog) -> contextlib.AbstractContextManager[Any]:
        if not done:
            done.append(True)
            with Registry(home) as other:
                action(other)
        return real_write(catalog)

    monkeypatch.setattr(Catalog, "_write", write)
    yield
    assert done, "the command never wrote"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["tag", "m", "stage=prod"], "Tagged m:1: stage=prod, team=fraud"),
        (["untag", "m", "team"], "Untagged m:1: no tags left"),
        (["property", "m", "f1=0.8"], "Added properties to m:1: f1=0.8"),
        (["describe", "m", "new text"], "Described m:1: new text"),
    ],
    ids=["tag", "untag", "property", "describe"],
)
def test_a_metadata_command_on_name_changes_the_version_latest_when_it_writes(
    home: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], line: str
) -> None:
    """NAME is resolved in the update's own transaction: m:2 deleted just before it means the
    command changes m:1, the latest at that moment, instead of failing on a stale m:2."""
    register(home, model_file, "m", "--tag", "team=fraud")
    register(home, model_file, "m", "--tag", "team=fraud")
    with just_before_the_next_write(monkeypatch, home, lambda other: other.delete("m", 2)):
        result = run(home, *args)
    assert (result.exit_code, result.stdout, result.stderr) == (0, f"{line}\n", "")


@pytest.mark.parametrize("command", ["tag", "untag", "property", "describe"])
def test_a_metadata_command_on_a_version_deleted_meanwhile_is_not_found_and_changes_nothing(
    home: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    register(home, model_file, "m", "--tag", "team=fraud")
    register(home, model_file, "m", "--tag", "team=fraud")
    args = {"tag": ["k=v"], "untag": ["team"], "property": ["k=v"], "describe": ["text"]}
    with just_before_the_next_write(monkeypatch, home, lambda other: other.delete("m", 2)):
        result = run(home, command, "m:2", *args[command])
    assert (result.exit_code, result.stdout, result.stderr) == (
        1,
        "",
        "Error: model 'm' has no version 2; its versions are 1 (use one of them or m:latest)\n",
    )
    [left] = listed(home)
    assert (left.tags, left.properties, left.description) == ({"team": "fraud"}, {}, None)


def test_tag_reports_the_value_it_replaced_even_if_it_changed_since_the_command_started(
    home: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(home, model_file, "m", "--tag", "team=fraud")
    with just_before_the_next_write(
        monkeypatch, home, lambda other: other.update_tags("m", 1, add={"team": "ops"})
    ):
        result = ok(home, "tag", "m:1", "team=risk")
    assert result.stdout == ("Replacing tag team -> ops with team -> risk\nTagged m:1: team=risk\n")


def test_untag_reports_a_key_removed_since_the_command_started_as_not_found(
    home: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(home, model_file, "m", "--tag", "team=fraud", "--tag", "stage=prod")
    with just_before_the_next_write(
        monkeypatch, home, lambda other: other.update_tags("m", 1, remove=["team"])
    ):
        result = ok(home, "untag", "m:1", "team")
    assert (result.stdout, result.stderr) == (
        "Untagged m:1: stage=prod\n",
        "Tag with key team not found.\n",
    )


# --- delete -----------------------------------------------------------------------------------


def test_delete_dry_run_prints_the_plan_and_deletes_nothing(home: Path, model_file: Path) -> None:
    version = register(home, model_file, "m")
    result = ok(home, "delete", "m:1", "--dry-run")
    assert "m:1 (1 version, 19 B)" in result.stdout
    assert "nothing was deleted" in result.stdout
    assert version.path.exists()
    assert [v.id for v in listed(home)] == ["m:1"]


def test_delete_with_yes_removes_the_version_and_never_reuses_its_number(
    home: Path, model_file: Path
) -> None:
    register(home, model_file, "m")
    second = register(home, model_file, "m")
    result = ok(home, "delete", "m:2", "--yes")
    assert result.stdout.splitlines() == [
        "Will delete m:2 (1 version, 19 B)",
        "Deleted m:2 (1 version, 19 B)",
    ]
    assert not second.path.exists()
    assert register(home, model_file, "m").version == 3
    assert [v.id for v in listed(home)] == ["m:3", "m:1"]


def test_delete_all_versions_removes_every_version_of_the_name(
    home: Path, model_file: Path
) -> None:
    register(home, model_file, "m")
    register(home, model_file, "m")
    register(home, model_file, "keep")
    result = ok(home, "delete", "m", "--all-versions", "--yes")
    assert "2 versions, 38 B" in result.stdout
    assert [v.id for v in listed(home)] == ["keep:1"]


def test_delete_latest_deletes_only_the_highest_version(home: Path, model_file: Path) -> None:
    register(home, model_file, "m")
    register(home, model_file, "m")
    ok(home, "delete", "m:latest", "--yes")
    assert [v.id for v in listed(home)] == ["m:1"]


def test_delete_json_prints_the_plan_of_a_dry_run_and_what_was_deleted(
    home: Path, model_file: Path
) -> None:
    register(home, model_file, "m")
    register(home, model_file, "m")
    plan = json.loads(ok(home, "delete", "m", "--all-versions", "--dry-run", "--json").stdout)
    assert (plan["dry_run"], plan["bytes"]) == (True, 38)
    assert [v["id"] for v in plan["versions"]] == ["m:2", "m:1"]
    done = json.loads(ok(home, "delete", "m:1", "--yes", "--json").stdout)
    assert (done["dry_run"], [v["id"] for v in done["versions"]]) == (False, ["m:1"])
    assert [v.id for v in listed(home)] == ["m:2"]


def test_delete_asks_for_confirmation_on_a_terminal(
    home: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(home, model_file, "m")
    monkeypatch.setattr(registry_commands, "_stdin_is_terminal", lambda: True)
    declined = run(home, "delete", "m:1", input="n\n")
    assert declined.exit_code == 1
    assert "Nothing was deleted." in declined.stderr
    assert [v.id for v in listed(home)] == ["m:1"]
    accepted = run(home, "delete", "m:1", input="y\n")
    assert accepted.exit_code == 0, accepted.stderr
    assert listed(home) == []


def test_delete_all_versions_removes_only_the_versions_of_the_confirmed_plan(
    home: Path, model_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version registered while the user reads the plan was never shown: it must survive."""
    from modelstore import Registry

    register(home, model_file, "m")
    register(home, model_file, "m")
    monkeypatch.setattr(registry_commands, "_stdin_is_terminal", lambda: True)

    def confirm_while_another_process_registers(*args: object, **kwargs: object) -> bool:
        with Registry(home) as other:
            other.register(model_file, "m")
        return True

    monkeypatch.setattr("click.confirm", confirm_while_another_process_registers)
    result = run(home, "delete", "m", "--all-versions")
    assert result.exit_code == 0, result.stderr
    assert "Will delete m:2, m:1 (2 versions" in result.stdout
    assert "Deleted m:2, m:1 (2 versions" in result.stdout
    assert [v.id for v in listed(home)] == ["m:3"]


# --- verify and doctor ------------------------------------------------------------------------


def test_verify_of_an_intact_store_exits_0(home: Path, model_file: Path, model_dir: Path) -> None:
    register(home, model_file, "m")
    register(home, model_dir, "d")
    assert run(home, "verify").exit_code == 0
    assert run(home, "verify", "d:1").exit_code == 0


def _writable(path: Path) -> None:
    for folder in [path, *[p for p in path.rglob("*") if p.is_dir()]]:
        folder.chmod(0o755)
    for file in path.rglob("*"):
        if file.is_file():
            file.chmod(0o644)


def test_verify_lists_every_changed_missing_and_extra_file_and_exits_1(
    home: Path, model_dir: Path
) -> None:
    version = register(home, model_dir, "d")
    _writable(version.path)
    (version.path / "a.txt").write_text("tampered")
    (version.path / "sub" / "b.txt").unlink()
    (version.path / "new.txt").write_text("extra")
    result = run(home, "verify")
    assert result.exit_code == 1
    out = result.stdout
    for status, file in [("changed", "a.txt"), ("missing", "sub/b.txt"), ("extra", "new.txt")]:
        assert any(status in line and file in line and "d:1" in line for line in out.splitlines())
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("Error: ")


def test_verify_json_reports_the_damage_and_still_exits_1(home: Path, model_file: Path) -> None:
    version = register(home, model_file, "m")
    version.path.chmod(0o644)
    version.path.write_bytes(b"other")
    result = run(home, "verify", "m", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["ok"] is False


def test_verify_reports_a_second_item_in_a_version_folder(home: Path, model_file: Path) -> None:
    version = register(home, model_file, "m")
    register(home, model_file, "m")
    folder = version.path.parent
    folder.chmod(0o755)
    (folder / ".DS_Store").write_bytes(b"finder")
    result = run(home, "verify", "m")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == ["m:1  foreign  .DS_Store"]
    assert "1 of 2 versions" in result.stderr and "(m:1)" in result.stderr
    assert run(home, "verify", "m:latest").exit_code == 0


def test_doctor_on_a_healthy_store_finds_nothing(home: Path, model_file: Path) -> None:
    register(home, model_file, "m")
    result = ok(home, "doctor")
    assert "nothing to repair" in result.stdout.lower()


def _leave_crash_leftovers(home: Path) -> tuple[Path, Path]:
    """What a killed registration can leave: a half-copied staging folder and a version folder
    the catalog never heard of."""
    staging = home / ".modelstore" / "staging" / "deadbeef"
    staging.mkdir(parents=True)
    (staging / "half.bin").write_bytes(b"half")
    orphan = home / "azureml-models" / "m" / "7"
    orphan.mkdir(parents=True)
    (orphan / "model.pkl").write_bytes(b"orphan")
    return staging, orphan


def test_doctor_lists_leftovers_without_touching_them_and_exits_1(
    home: Path, model_file: Path
) -> None:
    register(home, model_file, "m")
    staging, orphan = _leave_crash_leftovers(home)
    result = run(home, "doctor")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith("[found]") and str(staging) in line for line in lines)
    assert any(line.startswith("[found]") and str(orphan) in line for line in lines)
    assert result.stderr.splitlines() == [
        "Error: 1 problem found (listed above): run 'modelstore doctor --repair' to fix them"
    ]
    assert staging.exists() and orphan.exists()


def test_doctor_repair_removes_its_own_leftovers_but_never_a_folder_the_catalog_does_not_know(
    home: Path, model_file: Path
) -> None:
    registered = register(home, model_file, "m")
    staging, orphan = _leave_crash_leftovers(home)
    result = run(home, "doctor", "--repair")
    assert result.exit_code == 1
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == [
        f"[found] {orphan}",
        f"[repaired] {staging}",
    ]
    assert result.stdout.splitlines()[0].endswith(
        " -> leave it (never deleted): --adopt-foreign records a version folder as it is, "
        "--move-aside-foreign moves it into .modelstore/foreign/"
    )
    assert result.stderr == (
        "Error: 1 item in the tree the catalog does not know (listed above) left in place, never "
        "deleted: run 'modelstore doctor --repair --adopt-foreign' to record version folders as "
        "they are, or --move-aside-foreign to move them into .modelstore/foreign/\n"
    )
    assert not staging.exists() and (orphan / "model.pkl").read_bytes() == b"orphan"
    moved = ok(home, "doctor", "--repair", "--move-aside-foreign")
    assert moved.stdout.splitlines()[-1] == "Repaired 1 problem."
    assert not orphan.exists() and registered.path.read_bytes() == model_file.read_bytes()
    assert ok(home, "doctor").stdout.startswith("Nothing to repair")
    assert register(home, model_file, "m").version == 2


def test_doctor_repair_adopt_foreign_records_the_folder_as_a_version(
    home: Path, model_file: Path
) -> None:
    register(home, model_file, "m")
    _staging, orphan = _leave_crash_leftovers(home)
    ok(home, "doctor", "--repair", "--adopt-foreign")
    adopted = ModelVersion.model_validate_json(ok(home, "show", "m:7", "--json").stdout)
    assert adopted.path == orphan.resolve() / "model.pkl" and adopted.size == len(b"orphan")
    assert register(home, model_file, "m").version == 8


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--adopt-foreign",), "--adopt-foreign acts only with --repair: add --repair"),
        (
            ("--repair", "--adopt-foreign", "--move-aside-foreign"),
            "--adopt-foreign and --move-aside-foreign exclude each other: choose one",
        ),
        (
            ("--rebuild-catalog", "--repair"),
            "--rebuild-catalog runs alone: rebuild first, then run 'modelstore doctor'",
        ),
    ],
)
def test_doctor_refuses_flags_that_do_not_go_together(
    home: Path, model_file: Path, args: tuple[str, ...], message: str
) -> None:
    register(home, model_file, "m")
    result = run(home, "doctor", *args)
    assert (result.exit_code, result.stderr) == (2, f"Error: {message}\n")


def test_doctor_json_is_the_report_serialisation(home: Path, model_file: Path) -> None:
    register(home, model_file, "m")
    _leave_crash_leftovers(home)
    result = run(home, "doctor", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert sorted(f["kind"] for f in report["findings"]) == ["orphan_folder", "staging_leftover"]


# --- a lost catalog, a read-only home, a full disk: real files on real mounts ----------------


def _cli_ok(home: Path, *args: str) -> str:
    return ok(home, *args).stdout


def test_an_emptied_catalog_is_refused_by_every_command_until_rebuilt_and_no_model_is_lost(
    tmp_path: Path, model_file: Path
) -> None:
    home = tmp_path / "home"
    for _ in range(3):
        _cli_ok(home, "register", str(model_file), "--name", "m")
    (home / "registry.db").write_bytes(b"")  # : > registry.db
    refusal = (
        f"Error: the catalog {home}/registry.db is empty but {home}/azureml-models holds 3 "
        "version folders; nothing was changed. Run `modelstore doctor --rebuild-catalog` to "
        "recreate the catalog from the tree, or restore it from a backup\n"
    )
    for args in (
        ("list",),
        ("path", "m:1"),
        ("register", str(model_file), "--name", "m"),
        ("delete", "m:1", "--yes"),
        ("doctor", "--repair"),
    ):
        done = run(home, *args)
        assert (done.exit_code, done.stdout, done.stderr) == (1, "", refusal), args
    assert (home / "registry.db").stat().st_size == 0
    assert sorted(os.listdir(home / "azureml-models" / "m")) == ["1", "2", "3"]

    rebuilt = _cli_ok(home, "doctor", "--rebuild-catalog", "--yes")
    assert rebuilt.splitlines()[0] == f"Rebuild plan: {refusal[7:].partition(';')[0]}."
    assert "  m:3  sklearn_regression_model.pkl  1 file, 19 B" in rebuilt.splitlines()
    assert rebuilt.splitlines()[-1].startswith(f"Rebuilt the catalog {home}/registry.db with 3")
    assert _cli_ok(home, "verify") == "OK: 3 versions verified, every file matches.\n"
    assert "Registered m:4" in _cli_ok(home, "register", str(model_file), "--name", "m")


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """``mount(*options, source=...)``: a real mount under tmp_path, undone after the test;
    the test is skipped (with the reason) where this process may not mount."""
    mounted: list[Path] = []

    def do(*argv: str, target: Path) -> None:
        done = subprocess.run(["mount", *argv, str(target)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(
                f"cannot mount here ({done.stderr.strip()}): needs root in a container "
                "that allows mount"
            )

    def make(kind: str, source: Path | None = None, size: str = "") -> Path:
        target = tmp_path / f"mount{len(mounted)}"
        target.mkdir()
        if kind == "ro-bind":
            assert source is not None
            do("--bind", str(source), target=target)
            mounted.append(target)
            do("-o", "remount,ro,bind", target=target)
            with pytest.raises(OSError):  # the premise: writes are really denied, even to root
                (target / "probe").write_bytes(b"x")
        else:
            do("-t", "tmpfs", "-o", f"size={size}", "tmpfs", target=target)
            mounted.append(target)
        return target

    yield make
    for target in reversed(mounted):
        subprocess.run(["umount", "--lazy", str(target)], check=False)


_WRITE_MODEL_DIR = "import os, sys; open(sys.argv[1], 'w').write(os.environ['AZUREML_MODEL_DIR'])"


def _register_and_die(home: Path, source: Path) -> None:
    """A process that registers and exits without closing: its commits stay in the WAL."""
    code = (
        "import os, sys; from modelstore import Registry; "
        "Registry(sys.argv[1]).register(sys.argv[2], 'm'); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code, str(home), str(source)], check=True)


@pytest.mark.parametrize("wal", [False, True], ids=["checkpointed", "commits-in-wal"])
def test_a_read_only_home_can_be_read_but_not_written(
    tmp_path: Path,
    model_file: Path,
    mount: Callable[..., Path],
    wal: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from modelstore.resolve import get_model_path

    home = tmp_path / "home"
    _cli_ok(home, "register", str(model_file), "--name", "m")
    if wal:
        _register_and_die(home, model_file)
        assert (home / "registry.db-wal").stat().st_size > 0  # the premise
    ro = mount("ro-bind", source=home)
    latest = "2" if wal else "1"
    entry = f"{ro}/azureml-models/m/{latest}/{model_file.name}"
    listed_ids = [v["id"] for v in json.loads(_cli_ok(ro, "list", "--json"))]
    assert listed_ids == [f"m:{n}" for n in range(int(latest), 0, -1)]
    assert _cli_ok(ro, "path", "m") == f"{entry}\n"
    assert f"id:                m:{latest}" in _cli_ok(ro, "show", "m")
    assert _cli_ok(ro, "verify").startswith("OK:")
    monkeypatch.setenv("MODELSTORE_HOME", str(ro))
    assert get_model_path("m") == entry
    refused = run(ro, "register", str(model_file), "--name", "m")
    assert (refused.exit_code, refused.stderr) == (
        1,
        f"Error: the registry home {ro} is read-only (a read-only mount or folder); writing "
        "commands need a writable home. Reading works there: list, show, path, verify\n",
    )
    # deploy and exec write only outside the home (a read-only model cache mounted into CI)
    app_root = tmp_path / "app"
    _cli_ok(ro, "deploy", "m", "--app-root", str(app_root))
    assert (app_root / "azureml-models" / "m" / latest / model_file.name).read_bytes() == (
        model_file.read_bytes()
    )
    seen = tmp_path / "model-dir.txt"  # the command's own output bypasses the CLI runner
    _cli_ok(ro, "exec", "--model", "m", "--", sys.executable, "-c", _WRITE_MODEL_DIR, str(seen))
    assert seen.read_text().endswith(f"azureml-models/m/{latest}")


def test_a_read_only_home_caching_a_shared_store_serves_what_it_caches_and_says_what_not(
    tmp_path: Path, model_file: Path, mount: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model cache mounted read-only into CI: cached versions deploy; one it does not cache
    is one line (it cannot be materialised there), and nothing is written."""
    store = tmp_path / "store"
    store.mkdir()
    monkeypatch.setenv("MODELSTORE_STORE_URL", f"file://{store}")
    monkeypatch.setenv("MODELSTORE_DB_URL", f"sqlite:///{tmp_path / 'catalog.db'}")
    _cli_ok(tmp_path / "a", "register", str(model_file), "--name", "m")
    _cli_ok(tmp_path / "a", "register", str(model_file), "--name", "n")
    cache = tmp_path / "cache"
    _cli_ok(cache, "path", "m:1")  # cached while writable
    ro = mount("ro-bind", source=cache)
    _cli_ok(ro, "deploy", "m:1", "--app-root", str(tmp_path / "app"))
    assert (tmp_path / "app" / "azureml-models" / "m" / "1" / model_file.name).is_file()
    for command in (["path", "n:1"], ["deploy", "n:1", "--app-root", str(tmp_path / "app2")]):
        refused = run(ro, *command)
        assert (refused.exit_code, refused.stderr) == (
            1,
            f"Error: n:1 is not cached in {ro}, which cannot be written (a read-only mount); "
            "nothing was changed (cache it there from a writable copy of the home first, or use "
            "a writable home)\n",
        )
    assert not (tmp_path / "app2").exists()


def test_a_full_disk_is_reported_as_a_full_disk_and_the_store_stays_intact(
    tmp_path: Path, model_file: Path, mount: Callable[..., Path]
) -> None:
    disk = mount("tmpfs", size="512k")
    home = disk / "home"
    _cli_ok(home, "register", str(model_file), "--name", "m")
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1024 * 1024))
    too_big = run(home, "register", str(big), "--name", "m")
    assert too_big.exit_code == 1 and "the disk is full" in too_big.stderr
    filler = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    with contextlib.suppress(OSError):
        while True:  # now fill it to the last block
            os.write(filler, b"\0" * 4096)
    os.close(filler)
    for args in (("list",), ("register", str(model_file), "--name", "m")):
        full = subprocess.run(  # a fresh process: nothing of the catalog is open or mapped yet
            [sys.executable, "-m", "modelstore", "--home", str(home), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        assert (full.returncode, full.stdout) == (1, "")
        assert full.stderr.startswith(f"Error: the disk holding {home} is full"), full.stderr
    (disk / "filler").unlink()
    assert [v["id"] for v in json.loads(_cli_ok(home, "list", "--json"))] == ["m:1"]
    assert _cli_ok(home, "verify").startswith("OK: 1 version verified")
    assert _cli_ok(home, "doctor").startswith("Nothing to repair")


# --- register -f MODEL.yml ----------------------------------------------------------------------


def _model_yml(folder: Path, text: str = "name: sklearn-regression\nversion: 2\npath: m\n") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "m").mkdir(exist_ok=True)
    (folder / "m" / "w.bin").write_bytes(b"weights")
    (folder / "model.yml").write_text(text)
    return folder / "model.yml"


def test_register_f_registers_the_v2_model_yaml_with_its_version(
    home: Path, tmp_path: Path
) -> None:
    spec = _model_yml(tmp_path / "project")
    result = ok(home, "register", "-f", str(spec))
    assert result.stdout.startswith("Registered sklearn-regression:2  ->  ")
    (shown,) = listed(home, "sklearn-regression")
    assert (shown.version, shown.entry) == (2, "m")


def test_register_f_with_a_taken_version_is_refused_in_one_line_exit_1(
    home: Path, tmp_path: Path
) -> None:
    from registry_helpers import snapshot

    spec = _model_yml(tmp_path / "project")
    ok(home, "register", "-f", str(spec))
    before = snapshot(home)
    result = run(home, "register", "-f", str(spec))
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: version 2 of 'sklearn-regression' exists; give a version above 2, or leave "
        "version: out to take the next one\n"
    )
    assert snapshot(home) == before


def test_register_f_with_a_bad_yaml_is_refused_in_one_line_exit_2(
    home: Path, tmp_path: Path
) -> None:
    spec = _model_yml(tmp_path / "project", "name: m\npath: m\nversoin: 2\n")
    result = run(home, "register", "-f", str(spec))
    assert result.exit_code == 2
    assert result.stderr == f"Error: {spec}:3: versoin: unknown key; did you mean version?\n"
    assert not home.exists()


@pytest.mark.parametrize("extra", [["./m"], ["--name", "x"], ["--tag", "a=b"]])
def test_register_f_with_path_or_name_or_options_is_refused_in_one_line(
    home: Path, tmp_path: Path, extra: list[str]
) -> None:
    spec = _model_yml(tmp_path / "project")
    result = run(home, "register", "-f", str(spec), *extra)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: -f MODEL.yml and ")
    assert result.stderr.count("\n") == 1
    assert not home.exists()


def test_register_without_path_or_file_says_what_is_missing(home: Path) -> None:
    result = run(home, "register", "--name", "m")
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "Error: Missing argument 'PATH' (or -f MODEL.yml instead of PATH and --name); see '"
    )
    assert result.stderr.endswith(" register --help'\n")
