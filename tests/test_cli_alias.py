"""``modelstore alias``, ``prune``, ``delete --force`` and ``list --sort``: thin commands over the
registry, one line per refusal with exit 2 (bad input) or 1 (conflict), store unchanged."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from registry_helpers import make_file, snapshot

from modelstore import Registry
from modelstore.cli import main


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    with Registry(home) as registry:
        for content in (b"one", b"two-2", b"three-33"):
            registry.register(make_file(tmp_path / "src" / "model.pkl", content), "m")
    return home


def run(home: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, ["--home", str(home), *args], input=input)


def ok(home: Path, *args: str) -> Result:
    result = run(home, *args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def refused(home: Path, code: int, *args: str) -> str:
    """The one error line of a refused command, after checking the store did not change."""
    before = _state(home)
    result = run(home, *args)
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert _state(home) == before
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def _state(home: Path) -> object:
    """The tree, every row of every catalog table (its file's bytes move with WAL checkpoints
    that change no row) and what the registry says."""
    connection = sqlite3.connect(f"file:{home / 'registry.db'}?mode=ro", uri=True)
    try:
        catalog = list(connection.iterdump())
    finally:
        connection.close()
    with Registry(home, read_only=True) as registry:
        return (
            catalog,
            snapshot(home),
            [v.id for v in registry.list()],
            registry.aliases(),
            registry.alias_history("m"),
        )


def test_alias_set_moves_and_reports_where_it_pointed(home: Path) -> None:
    assert ok(home, "alias", "set", "m:1", "champion").stdout == "Set alias m@champion -> m:1\n"
    assert ok(home, "alias", "set", "m", "champion").stdout == (
        "Moved alias m@champion -> m:3 (was m:1)\n"
    )
    assert ok(home, "alias", "set", "m:3", "champion").stdout == (
        "m@champion already points at m:3\n"
    )
    moved = json.loads(ok(home, "alias", "set", "m@champion", "prod", "--json").stdout)
    assert (moved["alias"], moved["from_version"], moved["to_version"]) == ("prod", None, 3)


def test_name_at_alias_works_for_path_show_tag_verify_and_deploy(
    home: Path, tmp_path: Path
) -> None:
    ok(home, "alias", "set", "m:2", "champion")
    with Registry(home) as registry:
        assert ok(home, "path", "m@champion").stdout.strip() == str(registry.path("m", 2))
    assert json.loads(ok(home, "show", "m@champion", "--json").stdout)["id"] == "m:2"
    assert ok(home, "tag", "m@champion", "stage=prod").stdout == "Tagged m:2: stage=prod\n"
    assert "1 version verified" in ok(home, "verify", "m@champion").stdout
    ok(home, "deploy", "m@champion", "--app-root", str(tmp_path / "app"))
    assert (tmp_path / "app" / "azureml-models" / "m" / "2" / "model.pkl").read_bytes() == b"two-2"


def test_alias_list_and_history_as_tables_and_json(home: Path) -> None:
    ok(home, "alias", "set", "m:1", "champion")
    ok(home, "alias", "set", "m:2", "champion")
    ok(home, "alias", "set", "m:3", "prod")
    ok(home, "alias", "rm", "m", "prod")
    assert ok(home, "alias", "list").stdout.splitlines() == [
        "ALIAS       VERSION",
        "m@champion  m:2",
    ]
    assert json.loads(ok(home, "alias", "list", "m", "--json").stdout) == [
        {"name": "m", "alias": "champion", "version": 2}
    ]
    lines = ok(home, "alias", "history", "m").stdout.splitlines()
    assert lines[0].split() == ["WHEN", "ALIAS", "FROM", "TO", "BY"]
    assert [line.split()[2:5] for line in lines[1:]] == [
        ["champion", "(none)", "m:1"],
        ["champion", "m:1", "m:2"],
        ["prod", "(none)", "m:3"],
        ["prod", "m:3", "(none)"],
    ]
    moves = json.loads(ok(home, "alias", "history", "m", "--json").stdout)
    assert [(m["from_version"], m["to_version"]) for m in moves] == [
        (None, 1),
        (1, 2),
        (None, 3),
        (3, None),
    ]
    assert all("@" in m["by"] and m["at"] for m in moves)


def test_alias_list_and_history_say_when_there_is_none(home: Path) -> None:
    assert ok(home, "alias", "list").stdout == "No aliases.\n"
    assert ok(home, "alias", "history", "m").stdout == "No alias of m was ever set.\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("alias", "set", "m:1", "latest"), "Error: the alias 'latest' is reserved"),
        (("alias", "set", "m:1", "9lives"), "Error: invalid alias '9lives'"),
        (("alias", "set", "m@x:1", "champion"), "give either an alias or a version"),
        (("alias", "rm", "m", "a.b"), "Error: invalid alias 'a.b'"),
        (("alias", "frob"), "Error: No such command 'frob'"),
        (("alias", "set", "m:1"), "Error: Missing argument 'ALIAS'"),
        (("prune", "m", "--keep", "-1"), "Error: Invalid value for '--keep'"),
        (("prune", "m"), "Error: Missing option '--keep'"),
        (("list", "--sort", "age"), "Error: Invalid value for '--sort'"),
        (("path", "m@"), "Error: invalid alias ''"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    home: Path, args: tuple[str, ...], message: str
) -> None:
    ok(home, "alias", "set", "m:1", "champion")
    assert message in refused(home, 2, *args)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("alias", "set", "m:7", "champion"), "Error: model 'm' has no version 7"),
        (("alias", "rm", "m", "prod"), "Error: model 'm' has no alias 'prod'"),
        (("path", "m@prod"), "Error: model 'm' has no alias 'prod'; its aliases are champion"),
        (
            ("delete", "m:1", "--yes"),
            "Error: m:1 is what alias 'champion' points at; move or remove the alias first "
            "(modelstore alias rm m champion), or pass --force to delete it and remove the alias",
        ),
        (("delete", "m@champion", "--yes"), "m:1 is what alias 'champion' points at"),
        (("delete", "m", "--all-versions", "--yes"), "m:1 is what alias 'champion' points at"),
    ],
)
def test_conflicts_are_one_line_exit_1_and_change_nothing(
    home: Path, args: tuple[str, ...], message: str
) -> None:
    ok(home, "alias", "set", "m:1", "champion")
    assert message in refused(home, 1, *args)


def test_delete_force_removes_the_alias_shown_in_the_plan(home: Path) -> None:
    ok(home, "alias", "set", "m:1", "champion")
    result = ok(home, "delete", "m@champion", "--force", "--yes")
    assert result.stdout.splitlines() == [
        "Will delete m:1 (1 version, 3 B)",
        "and remove alias m@champion (-> m:1)",
        "Deleted m:1 (1 version, 3 B)",
        "Removed alias m@champion (-> m:1)",
    ]
    assert ok(home, "alias", "list").stdout == "No aliases.\n"
    last = json.loads(ok(home, "alias", "history", "m", "--json").stdout)[-1]
    assert (last["from_version"], last["to_version"]) == (1, None)


def test_prune_prints_the_plan_keeps_aliased_versions_and_deletes_with_yes(home: Path) -> None:
    ok(home, "alias", "set", "m:1", "baseline")
    dry = ok(home, "prune", "m", "--keep", "1", "--dry-run")
    assert dry.stdout.splitlines() == [
        "Keeping m:1: alias 'baseline' points at it",
        "Will delete m:2 (1 version, 5 B)",
        "Dry run: nothing was deleted.",
    ]
    plan = json.loads(ok(home, "prune", "m", "--keep", "1", "--dry-run", "--json").stdout)
    assert ([v["id"] for v in plan["versions"]], plan["bytes"], plan["dry_run"]) == (
        ["m:2"],
        5,
        True,
    )
    assert plan["kept"] == [{"name": "m", "alias": "baseline", "version": 1}]
    assert ok(home, "prune", "m", "--keep", "1", "--yes").stdout.splitlines()[-2:] == [
        "Deleted m:2 (1 version, 5 B)",
        "m now has 2 versions.",
    ]
    assert ok(home, "prune", "m", "--keep", "1").stdout.splitlines()[-1] == (
        "Nothing to prune: every version of m is kept (the newest 1, or one an alias points at)."
    )


def test_prune_without_a_terminal_needs_yes(home: Path) -> None:
    assert "pass --yes to delete" in refused(home, 2, "prune", "m", "--keep", "1")


def test_prune_answered_no_deletes_nothing(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelstore.cli import registry_commands

    monkeypatch.setattr(registry_commands, "_stdin_is_terminal", lambda: True)
    before = _state(home)
    result = run(home, "prune", "m", "--keep", "1", input="n\n")
    assert result.exit_code == 1 and "Nothing was deleted." in result.stderr
    assert _state(home) == before


def test_list_sorts_by_size_and_ends_with_the_total(home: Path, tmp_path: Path) -> None:
    with Registry(home) as registry:
        registry.register(make_file(tmp_path / "big.bin", b"x" * 3000), "big")
    lines = ok(home, "list", "--sort", "size").stdout.splitlines()
    assert [line.split()[0] for line in lines[1:-1]] == ["big:1", "m:3", "m:2", "m:1"]
    assert lines[-1] == "4 versions, 2.9 KiB in total"
    created = ok(home, "list", "--sort", "created").stdout.splitlines()
    assert [line.split()[0] for line in created[1:-1]] == ["big:1", "m:3", "m:2", "m:1"]
    assert ok(home, "list", "m", "--latest").stdout.splitlines()[-1] == ("1 version, 8 B in total")
    as_json = json.loads(ok(home, "list", "--sort", "size", "--json").stdout)
    assert [v["id"] for v in as_json] == ["big:1", "m:3", "m:2", "m:1"]  # still a plain array


def test_exec_deploys_the_version_an_alias_points_at(home: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    ok(home, "alias", "set", "m:2", "champion")
    env = {k: v for k, v in os.environ.items() if k != "MODELSTORE_DB_URL"}
    env.pop("AML_APP_ROOT", None)
    env.pop("AZUREML_MODEL_DIR", None)
    show = "import os; print(open(os.environ['AZUREML_MODEL_DIR'] + '/model.pkl').read())"
    command = [sys.executable, "-m", "modelstore", "--home", str(home), "exec"]
    result = subprocess.run(
        [*command, "--model", "m@champion", "--", sys.executable, "-c", show],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert (result.returncode, result.stdout) == (0, "two-2\n"), result.stderr
