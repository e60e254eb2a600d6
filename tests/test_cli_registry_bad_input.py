"""Every bad input of issue 2, as seen from the CLI: one ``Error: ...`` line on stderr, exit 2
(bad input) or 1 (the operation failed), and the store and catalog exactly as before."""

from __future__ import annotations

import os
import resource
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from modelstore import Registry
from modelstore.cli import main
from modelstore.errors import ModelstoreError


def run(home: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, ["--home", str(home), *args], input=input)


def snapshot(home: Path) -> tuple[list[tuple[str, int, bytes]], str]:
    """Every file of the tree (path, size, content) and the catalog as ``list --json`` sees it."""
    files = []
    for root in (
        home / "azureml-models",
        home / ".modelstore" / "staging",
        home / ".modelstore" / "trash",
    ):
        for path in sorted(root.rglob("*")) if root.exists() else []:
            if path.is_file():
                files.append((str(path.relative_to(home)), path.stat().st_size, path.read_bytes()))
            else:
                files.append((str(path.relative_to(home)), -1, b""))
    listing = run(home, "list", "--json")
    assert listing.exit_code == 0, listing.stderr
    return files, listing.stdout


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A store holding two versions of ``m`` (tag team=fraud, property auc=0.91 on m:1)."""
    home = tmp_path / "home"
    source = tmp_path / "model.pkl"
    source.write_bytes(b"model")
    for extra in (["--tag", "team=fraud", "--property", "auc=0.91"], []):
        result = run(home, "register", str(source), "--name", "m", *extra)
        assert result.exit_code == 0, result.stderr
    yield home


def assert_refused(home: Path, args: list[str], exit_code: int, *words: str) -> Result:
    before = snapshot(home)
    result = run(home, *args)
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    for word in words:
        assert word in lines[0]
    assert snapshot(home) == before
    return result


# --- names and paths given to register --------------------------------------------------------


@pytest.mark.parametrize("name", ["../x", "a/b", "", "a" * 256, "ÄÖ", "model\n", "-m"])
def test_register_refuses_a_name_outside_the_azure_ml_rule(
    home: Path, tmp_path: Path, name: str
) -> None:
    assert_refused(home, ["register", str(tmp_path / "model.pkl"), "--name", name], 2, "model name")


def test_register_of_an_empty_path_is_refused_with_the_apis_message_not_the_current_folder(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """click.Path(path_type=Path) turned "" into Path("."): the current folder was registered."""
    work = tmp_path / "work"
    (work / "outputs").mkdir(parents=True)
    (work / "outputs" / "model.pkl").write_bytes(b"weights")
    monkeypatch.chdir(work)
    with Registry(tmp_path / "other-home") as registry, pytest.raises(ModelstoreError) as api:
        registry.register("", "e")
    result = assert_refused(home, ["register", "", "--name", "e"], 2)
    assert result.stderr == f"Error: {api.value}\n"


def test_register_refuses_a_missing_path(home: Path, tmp_path: Path) -> None:
    assert_refused(home, ["register", str(tmp_path / "nope.pkl"), "--name", "m"], 2, "nope.pkl")


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["register", "{tmp}/nope.pkl", "--name", "m"], id="register-missing-path"),
        pytest.param(
            ["register", "{tmp}/model.pkl", "--name", "m", "--framework-version", "1.0"],
            id="register-framework-version-alone",
        ),
        pytest.param(
            ["register", "{tmp}/model.pkl", "--name", "m", "--child-path", "nope"],
            id="register-missing-child-path",
        ),
        pytest.param(["import", "{tmp}/nope.tar"], id="import-missing-archive"),
    ],
)
def test_bad_input_to_a_home_that_does_not_exist_yet_creates_nothing(
    tmp_path: Path, args: list[str]
) -> None:
    (tmp_path / "model.pkl").write_bytes(b"model")
    new_home = tmp_path / "new-home"
    result = run(new_home, *[arg.format(tmp=tmp_path) for arg in args])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("Error: ")
    assert not new_home.exists()
    listing = run(new_home, "list")
    assert listing.exit_code == 1 and "no modelstore registry" in listing.stderr


def test_register_refuses_a_fifo(home: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert_refused(home, ["register", str(fifo), "--name", "m"], 2, "pipe")


def test_register_refuses_a_socket(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "sock"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        assert stat.S_ISSOCK(path.stat().st_mode)
        assert_refused(home, ["register", str(path), "--name", "m"], 2, "sock")
    finally:
        server.close()


def test_register_refuses_a_device(home: Path) -> None:
    assert_refused(home, ["register", "/dev/null", "--name", "m"], 2, "null")


def test_register_refuses_an_empty_folder(home: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    assert_refused(home, ["register", str(empty), "--name", "m"], 2, "empty_dir")


def test_register_refuses_a_folder_with_a_symlink_pointing_outside_it(
    home: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "model_dir"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"w")
    (folder / "escape").symlink_to(tmp_path / "model.pkl")
    assert_refused(home, ["register", str(folder), "--name", "m"], 2, "escape")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_register_refuses_an_unreadable_file(home: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.pkl"
    secret.write_bytes(b"s")
    secret.chmod(0)
    assert_refused(home, ["register", str(secret), "--name", "m"], 2, "secret.pkl")


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")
def test_register_of_a_file_that_cannot_be_read_leaves_the_store_unchanged(home: Path) -> None:
    """/proc/self/mem is a regular file whose first bytes cannot be read (EIO), even by root:
    an unreadable file that passes every check made before the copy."""
    assert_refused(
        home, ["register", "/proc/self/mem", "--name", "m"], 2, "cannot read '/proc/self/mem'"
    )


def register_with_a_full_disk(home: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``register`` of a 1 MiB file in a process whose writes stop at 256 KiB."""
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(1024 * 1024))

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))

    return subprocess.run(
        [sys.executable, "-m", "modelstore", "--home", str(home),
         "register", str(big), "--name", "big"],
        preexec_fn=limit_file_size, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_a_full_disk_during_the_copy_leaves_no_lock_file(home: Path, tmp_path: Path) -> None:
    locks = home / ".modelstore" / "locks"
    before = sorted(os.listdir(locks))
    assert not [name for name in before if name.startswith("token-")]
    assert register_with_a_full_disk(home, tmp_path).returncode == 1
    assert sorted(os.listdir(locks)) == before


def test_a_full_disk_during_the_copy_leaves_nothing_behind(home: Path, tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes the kernel refuse writes past 256 KiB, as a full disk refuses them;
    a real process, because the limit applies to the whole process."""
    before = snapshot(home)
    done = register_with_a_full_disk(home, tmp_path)
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("Error: ") and "nothing was published" in done.stderr
    assert snapshot(home) == before
    result = run(home, "register", str(tmp_path / "model.pkl"), "--name", "big")
    assert result.stdout.startswith("Registered big:1 ")


@pytest.mark.parametrize("option", ["--tag", "--property"])
def test_register_refuses_a_pair_without_equals_and_says_how_to_write_it(
    home: Path, tmp_path: Path, option: str
) -> None:
    assert_refused(
        home,
        ["register", str(tmp_path / "model.pkl"), "--name", "m", option, "team"],
        2,
        option,
        "KEY=VALUE",
    )


def test_register_refuses_a_key_given_twice(home: Path, tmp_path: Path) -> None:
    args = ["register", str(tmp_path / "model.pkl"), "--name", "m"]
    assert_refused(home, [*args, "--tag", "a=1", "--tag", "a=2"], 2, "twice")


def test_register_without_name_is_one_line_not_a_usage_screen(home: Path, tmp_path: Path) -> None:
    assert_refused(home, ["register", str(tmp_path / "model.pkl")], 2, "--name", "--help")


def test_an_unknown_option_is_one_line(home: Path) -> None:
    assert_refused(home, ["list", "--colour"], 2, "--colour")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--home-dir", "x", "list"], ["--home-dir", "--help"]),
        (["--home"], ["--home", "requires an argument"]),
    ],
)
def test_a_bad_top_level_option_is_one_line_not_a_usage_screen(
    args: list[str], words: list[str]
) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("Error: ")
    for word in words:
        assert word in result.stderr


def test_a_home_that_is_a_file_is_one_line_and_exit_2(home: Path) -> None:
    model = home.parent / "model.pkl"
    result = CliRunner().invoke(main, ["--home", str(model), "list"])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("Error: ") and "is a file" in result.stderr


# --- references -------------------------------------------------------------------------------

REF_COMMANDS = [
    ["show"],
    ["path"],
    ["tag", "REF", "k=v"],
    ["untag", "REF", "team"],
    ["property", "REF", "k=v"],
    ["describe", "REF", "text"],
    ["delete", "REF", "--yes"],
    ["verify"],
]


def with_ref(command: list[str], ref: str) -> list[str]:
    return [ref if word == "REF" else word for word in command] + (
        [ref] if "REF" not in command else []
    )


@pytest.mark.parametrize("ref", ["m:", "m:0", "m:-1", "m:x"])
@pytest.mark.parametrize("command", REF_COMMANDS, ids=lambda c: c[0])
def test_a_malformed_ref_is_refused_with_what_a_ref_looks_like(
    home: Path, command: list[str], ref: str
) -> None:
    assert_refused(home, with_ref(command, ref), 2, "NAME:VERSION")


TOO_LARGE = ["m:9223372036854775808", "m:" + "9" * 40]  # 2**63: one past SQLite INTEGER


@pytest.mark.parametrize("ref", TOO_LARGE, ids=["2**63", "40-digits"])
@pytest.mark.parametrize(
    "command",
    [
        *REF_COMMANDS,
        ["deploy", "REF", "--app-root", "APP"],
        ["exec", "--model", "REF", "--", "true"],
        ["score", "--entry-script", "SCRIPT", "--model", "REF", "--data", "1"],
    ],
    ids=lambda c: c[0],
)
def test_a_version_beyond_sqlite_integer_is_one_line_and_exit_2(
    home: Path, tmp_path: Path, command: list[str], ref: str
) -> None:
    script = tmp_path / "score.py"
    script.write_text("def init():\n    pass\n\ndef run(data):\n    return data\n")
    places = {"APP": str(tmp_path / "app"), "SCRIPT": str(script)}
    args = [places.get(word, word) for word in with_ref(command, ref)]
    assert_refused(home, args, 2, "out of range", "9223372036854775807")
    assert not (tmp_path / "app").exists()


@pytest.mark.parametrize("ref", ["nope", "nope:1", "m:3"])
@pytest.mark.parametrize("command", REF_COMMANDS, ids=lambda c: c[0])
def test_an_unknown_name_or_version_fails_with_exit_1(
    home: Path, command: list[str], ref: str
) -> None:
    if command[0] == "delete" and ":" not in ref:
        ref_args = [*with_ref(command, ref), "--all-versions"]
    else:
        ref_args = with_ref(command, ref)
    assert_refused(home, ref_args, 1, ref.split(":")[0])


@pytest.mark.parametrize("command", ["tag", "property"])
def test_a_tag_or_property_pair_without_equals_is_refused(home: Path, command: str) -> None:
    assert_refused(home, [command, "m:1", "team"], 2, "KEY=VALUE")


@pytest.mark.parametrize("pair", ["=fraud", "="])
def test_a_list_filter_without_a_key_is_refused(home: Path, pair: str) -> None:
    assert_refused(home, ["list", "--tag", pair], 2, "KEY")


def test_changing_an_existing_property_is_refused(home: Path) -> None:
    assert_refused(home, ["property", "m:1", "auc=0.5"], 1, "auc")


def test_adding_a_new_property_together_with_a_changed_one_adds_nothing(home: Path) -> None:
    assert_refused(home, ["property", "m:1", "f1=0.8", "auc=0.5"], 1, "auc")


def test_a_refused_property_change_says_error_once_in_the_sdk_wording(home: Path) -> None:
    result = assert_refused(home, ["property", "m:1", "auc=0.5"], 1)
    assert result.stderr == (
        "Error: properties are immutable, the following keys cannot be added/modified: auc "
        "(register a new version to change them)\n"
    )


def test_setting_a_property_to_the_value_it_has_is_accepted(home: Path) -> None:
    result = run(home, "property", "m:1", "auc=0.91", "f1=0.8")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "Added properties to m:1: auc=0.91, f1=0.8\n"


def test_an_invalid_name_says_error_once_and_keeps_the_sdk_rule_text(
    home: Path, tmp_path: Path
) -> None:
    result = assert_refused(
        home, ["register", str(tmp_path / "model.pkl"), "--name", "bad/name"], 2
    )
    assert result.stderr == (
        "Error: provided model name is invalid. It must only consist of letters, numbers, "
        "dashes, periods, or underscores, start with a letter or number, and be between 1 and "
        "255 characters long. Got 'bad/name'; choose a name such as 'my_model' or "
        "'fraud-detector.v2'.\n"
    )


def test_a_missing_child_path_says_error_once(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model_dir"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    result = assert_refused(home, ["register", str(folder), "--name", "m", "--child-path", "x"], 2)
    assert result.stderr == (
        f'Error: provided child path "x" cannot be found; child paths are relative to the '
        f"model folder {folder}\n"
    )


def test_a_child_path_given_with_a_file_says_child_paths_apply_to_folders(
    home: Path, tmp_path: Path
) -> None:
    model = str(tmp_path / "model.pkl")
    result = assert_refused(home, ["register", model, "--name", "m", "--child-path", "x"], 2)
    assert result.stderr == (
        f'Error: provided child path "x" cannot be found: child paths apply to folders, and '
        f"{model!r} is a file; register it without child paths\n"
    )


# --- delete -----------------------------------------------------------------------------------


def test_delete_of_a_bare_name_asks_for_a_version_or_all_versions(home: Path) -> None:
    assert_refused(home, ["delete", "m", "--yes"], 2, "m:VERSION", "--all-versions")


def test_delete_all_versions_with_a_version_is_refused(home: Path) -> None:
    assert_refused(home, ["delete", "m:1", "--all-versions", "--yes"], 2, "--all-versions")


def test_delete_without_a_terminal_and_without_yes_refuses_and_says_to_pass_yes(
    home: Path,
) -> None:
    before = snapshot(home)
    result = run(home, "delete", "m:1")
    assert result.exit_code == 2
    assert "Will delete m:1" in result.stdout
    assert result.stderr.splitlines() == [
        "Error: refusing to delete without confirmation: stdin is not a terminal; "
        "pass --yes to delete"
    ]
    assert snapshot(home) == before


def test_ctrl_c_during_a_command_is_one_error_line_and_exit_130(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """click alone would print "Aborted!" and exit 1, the code of a failed operation."""

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(Registry, "register", interrupted)
    before = snapshot(home)
    result = run(home, "register", str(tmp_path / "model.pkl"), "--name", "m")
    assert result.exit_code == 130
    assert result.stderr == (  # one line: no blank one before it when stderr is no terminal
        "Error: interrupted (Ctrl-C); nothing half-done is visible, and 'modelstore doctor' "
        "reports anything left over\n"
    )
    assert snapshot(home) == before
