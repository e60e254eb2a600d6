"""The top-level `modelstore` group: every usage mistake is one line with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelstore.cli import main


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["nosuch"], "No such command 'nosuch'"),
        (["register"], "Missing argument 'PATH'"),
        (["deploy"], "Missing argument"),
        (["serve"], "Missing option '--entry-script'"),
        (["register", "x", "--name", "m", "--bogus"], "No such option '--bogus'"),
    ],
)
def test_usage_mistakes_are_one_error_line_with_exit_code_2(args: list[str], words: str) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and words in lines[0]
    assert "--help'" in lines[0]  # and says where to look


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for name in [
        "register",
        "list",
        "show",
        "path",
        "tag",
        "untag",
        "property",
        "describe",
        "delete",
        "verify",
        "doctor",
        "deploy",
        "exec",
        "serve",
        "score",
        "completion",
    ]:
        assert f"  {name} " in result.output, name


@pytest.mark.parametrize(
    ("typed", "meant"),
    [("regster", "register"), ("lsit", "list"), ("serv", "serve"), ("delet", "delete")],
)
def test_a_misspelt_command_suggests_the_closest_one(typed: str, meant: str) -> None:
    result = CliRunner().invoke(main, [typed], prog_name="modelstore")
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: No such command '{typed}' (did you mean '{meant}'?); see 'modelstore --help'\n"
    )


def test_an_unknown_command_far_from_every_command_suggests_nothing() -> None:
    result = CliRunner().invoke(main, ["xyzzy"], prog_name="modelstore")
    assert result.stderr == "Error: No such command 'xyzzy'; see 'modelstore --help'\n"


def test_ls_is_list(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    model = tmp_path / "model.pkl"
    model.write_bytes(b"model")
    assert (
        CliRunner().invoke(main, ["--home", home, "register", str(model), "--name", "m"]).exit_code
        == 0
    )
    listed = CliRunner().invoke(main, ["--home", home, "ls", "--json"])
    assert listed.exit_code == 0, listed.stderr
    assert [version["id"] for version in json.loads(listed.stdout)] == ["m:1"]
    assert CliRunner().invoke(main, ["--home", home, "list", "--json"]).stdout == listed.stdout
