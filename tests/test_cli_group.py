"""The top-level `modelstore` group: every usage mistake is one line with exit code 2."""

from __future__ import annotations

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
    ]:
        assert f"  {name} " in result.output, name
