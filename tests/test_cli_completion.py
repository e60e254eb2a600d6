"""Shell completion: ``modelstore completion SHELL`` and REF arguments completed from the
registry, through click's completion protocol (the variables a shell sets when Tab is pressed)."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelstore.cli import main


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A registry holding alpha:1, alpha:2 and beta:1."""
    home = tmp_path / "home"
    model = tmp_path / "model.pkl"
    model.write_bytes(b"model")
    for name in ("alpha", "alpha", "beta"):
        result = CliRunner().invoke(
            main, ["--home", str(home), "register", str(model), "--name", name]
        )
        assert result.exit_code == 0, result.stderr
    return home


def complete(*words: str, shell: str = "bash") -> list[str]:
    """What the shell would offer after ``modelstore WORDS`` (the last word is being typed)."""
    line = " ".join(["modelstore", *words])
    env = {
        "_MODELSTORE_COMPLETE": f"{shell}_complete",
        "COMP_WORDS": line,
        # bash and zsh give the index of the word being typed; fish gives the word itself
        "COMP_CWORD": words[-1] if shell == "fish" else str(len(words)),
    }
    result = CliRunner().invoke(main, [], env=env, prog_name="modelstore")
    assert result.exit_code == 0, result.output
    return [line for line in result.stdout.splitlines() if line]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_clicks_script_for_the_shell(shell: str) -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "modelstore", "completion", shell],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "_MODELSTORE_COMPLETE" in printed.stdout
    assert f"{shell}_complete" in printed.stdout
    assert printed.stderr == ""


def test_completion_refuses_a_shell_click_cannot_complete() -> None:
    result = CliRunner().invoke(main, ["completion", "tcsh"], prog_name="modelstore")
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert "'tcsh' is not one of 'bash', 'zsh', 'fish'" in result.stderr


def test_commands_complete_by_prefix() -> None:
    assert complete("reg") == ["plain,register"]
    assert "plain,completion" in complete("")


def test_a_ref_completes_registered_names(home: Path) -> None:
    assert complete("--home", str(home), "show", "") == ["plain,alpha", "plain,beta"]
    assert complete("--home", str(home), "delete", "a") == ["plain,alpha"]


def test_a_name_and_colon_complete_its_versions_newest_first(home: Path) -> None:
    assert complete("--home", str(home), "path", "alpha:") == [
        "plain,alpha:2",
        "plain,alpha:1",
        "plain,alpha:latest",
    ]
    assert complete("--home", str(home), "tag", "alpha:l") == ["plain,alpha:latest"]
    assert complete("--home", str(home), "show", "nosuch:") == []


def test_zsh_and_fish_complete_refs_too(home: Path) -> None:
    assert complete("--home", str(home), "show", "b", shell="zsh") == ["plain", "beta", "_"]
    assert complete("--home", str(home), "show", "b", shell="fish") == ["plain,beta"]


def test_list_completes_names_only(home: Path) -> None:
    assert complete("--home", str(home), "list", "") == ["plain,alpha", "plain,beta"]


def test_the_home_can_come_from_the_environment(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELSTORE_HOME", str(home))
    assert complete("show", "al") == ["plain,alpha"]


def test_without_a_registry_nothing_is_completed_and_nothing_is_created(tmp_path: Path) -> None:
    home = tmp_path / "no-home"
    assert complete("--home", str(home), "show", "") == []
    assert complete("--home", str(home), "show", "alpha:") == []
    assert not home.exists()


def test_deploy_falls_back_to_path_completion_when_no_name_matches(home: Path) -> None:
    assert complete("--home", str(home), "deploy", "al") == ["plain,alpha"]
    assert complete("--home", str(home), "deploy", "./mod") == ["file,./mod"]


def test_bash_completes_versions_although_it_splits_words_at_colons(home: Path) -> None:
    """bash hands ``alpha:`` over as ``alpha`` ``:`` and replaces only what follows the colon."""
    assert complete("--home", str(home), "show", "alpha", ":") == [
        "plain,2",
        "plain,1",
        "plain,latest",
    ]
    assert complete("--home", str(home), "show", "alpha", ":", "l") == ["plain,latest"]
    assert complete("--home", str(home), "show", "alpha:") == [
        "plain,alpha:2",  # a bash without ':' in COMP_WORDBREAKS passes the word whole
        "plain,alpha:1",
        "plain,alpha:latest",
    ]


@pytest.fixture
def aliased(home: Path) -> Path:
    """``home`` with alpha@champion -> 1, alpha@candidate -> 2 and beta@champion -> 1."""
    for ref, alias in (("alpha:1", "champion"), ("alpha:2", "candidate"), ("beta:1", "champion")):
        result = CliRunner().invoke(main, ["--home", str(home), "alias", "set", ref, alias])
        assert result.exit_code == 0, result.stderr
    return home


def test_a_name_and_at_sign_complete_that_models_aliases(aliased: Path) -> None:
    assert complete("--home", str(aliased), "show", "alpha@") == [
        "plain,alpha@candidate",
        "plain,alpha@champion",
    ]
    assert complete("--home", str(aliased), "path", "alpha@ch") == ["plain,alpha@champion"]
    assert complete("--home", str(aliased), "deploy", "beta@") == ["plain,beta@champion"]
    assert complete("--home", str(aliased), "show", "alpha@ch", shell="zsh") == [
        "plain",
        "alpha@champion",
        "_",
    ]
    assert complete("--home", str(aliased), "show", "alpha@", shell="fish") == [
        "plain,alpha@candidate",
        "plain,alpha@champion",
    ]


def test_an_at_sign_after_a_name_without_aliases_completes_nothing(home: Path) -> None:
    assert complete("--home", str(home), "show", "alpha@") == []
    assert complete("--home", str(home), "show", "nosuch@") == []
    assert complete("--home", str(home), "show", "bad name@") == []


def test_alias_completion_without_a_registry_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "no-home"
    assert complete("--home", str(home), "show", "alpha@") == []
    assert not home.exists()


def _files(home: Path) -> dict[Path, tuple[int, bytes]]:
    """Every file but SQLite's -wal/-shm (which any reader of a WAL database opens)."""
    return {
        p: (p.stat().st_mtime_ns, p.read_bytes())
        for p in home.rglob("*")
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


def test_alias_completion_writes_nothing_to_the_registry(aliased: Path) -> None:
    before = _files(aliased)
    assert complete("--home", str(aliased), "show", "alpha@") != []
    assert _files(aliased) == before


def test_bash_completes_aliases_although_it_splits_words_at_at_signs(aliased: Path) -> None:
    """bash hands ``alpha@`` over as ``alpha`` ``@`` and replaces only what follows the @."""
    assert complete("--home", str(aliased), "show", "alpha", "@") == [
        "plain,candidate",
        "plain,champion",
    ]
    assert complete("--home", str(aliased), "show", "alpha", "@", "cha") == ["plain,champion"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_printed_bash_script_completes_aliases_in_a_real_bash(aliased: Path) -> None:
    modelstore = shlex.quote(str(Path(sys.executable).parent / "modelstore"))  # the venv's
    script = f"""
        eval "$({modelstore} completion bash)"
        COMP_WORDS=(modelstore --home {shlex.quote(str(aliased))} show alpha @ c)
        COMP_CWORD=6
        _modelstore_completion {modelstore}
        echo "${{COMPREPLY[*]}}"
    """
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout == "candidate champion\n", done.stderr


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_printed_bash_script_completes_in_a_real_bash(home: Path) -> None:
    modelstore = shlex.quote(str(Path(sys.executable).parent / "modelstore"))  # the venv's
    script = f"""
        eval "$({modelstore} completion bash)"
        COMP_WORDS=(modelstore --home {shlex.quote(str(home))} show alpha :)
        COMP_CWORD=5
        _modelstore_completion {modelstore}
        echo "${{COMPREPLY[*]}}"
    """
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout == "2 1 latest\n", done.stderr
