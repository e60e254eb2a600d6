"""``modelstore export`` / ``import`` as a user runs them: one line per refusal, exit 2 for bad
input and 1 for a conflict, the store unchanged."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result
from registry_helpers import make_file
from test_registry_archive import file_info, hostile_archive, manifest_for, store_state

from modelstore.cli import main


def run(home: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--home", str(home), *args])


def ok(home: Path, *args: str) -> Result:
    result = run(home, *args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def one_error_line(result: Result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def test_export_then_import_moves_versions_between_homes(tmp_path: Path) -> None:
    source, target = tmp_path / "a", tmp_path / "b"
    model = make_file(tmp_path / "model.pkl", b"weights")
    ok(source, "register", str(model), "--name", "m", "--tag", "stage=prod")
    ok(source, "register", str(model), "--name", "m")
    archive = tmp_path / "m.tar.gz"
    exported = ok(source, "export", "m:1", "m:2", "-o", str(archive))
    assert exported.stdout == f"Exported m:1, m:2 (2 files, 14 B) to {archive}\n"
    assert ok(target, "import", str(archive)).stdout == "Imported m:1, m:2 (14 B)\n"
    shown = json.loads(ok(target, "show", "m:1", "--json").stdout)
    assert shown["tags"] == {"stage": "prod"}
    skipped = ok(target, "import", str(archive), "--skip-existing", "--json")
    assert json.loads(skipped.stdout) == {
        "imported": [],
        "skipped": ["m:1", "m:2"],
        "bytes": 0,
        "aliases": [],
    }


def test_import_with_aliases_sets_the_archives_aliases_and_says_so(tmp_path: Path) -> None:
    source, target = tmp_path / "a", tmp_path / "b"
    model = make_file(tmp_path / "model.pkl", b"weights")
    ok(source, "register", str(model), "--name", "m")
    ok(source, "register", str(model), "--name", "m")
    ok(source, "alias", "set", "m:2", "champion")
    archive = tmp_path / "m.tar"
    ok(source, "export", "m:1", "m:2", "-o", str(archive))
    imported = ok(target, "import", str(archive), "--with-aliases")
    assert imported.stdout == ("Imported m:1, m:2 (14 B)\nSet aliases: m@champion -> m:2\n")
    assert ok(target, "path", "m@champion").stdout.strip().endswith("/m/2/model.pkl")


def test_import_with_an_alias_pointing_elsewhere_is_one_line_exit_1_and_changes_nothing(
    tmp_path: Path,
) -> None:
    source, target = tmp_path / "a", tmp_path / "b"
    model = make_file(tmp_path / "model.pkl", b"weights")
    for home in (source, target):
        ok(home, "register", str(model), "--name", "m")
        ok(home, "register", str(model), "--name", "m")
    ok(source, "alias", "set", "m:2", "champion")
    ok(target, "alias", "set", "m:1", "champion")
    ok(source, "export", "m:2", "-o", str(tmp_path / "m.tar"))
    before = store_state(target)
    result = run(target, "import", str(tmp_path / "m.tar"), "--skip-existing", "--with-aliases")
    assert result.exit_code == 1
    assert one_error_line(result) == (
        f"Error: nothing was imported from {tmp_path / 'm.tar'}: m:2 has alias 'champion' in "
        "the archive, which points at m:1 here (move or remove it first, or import without "
        "--with-aliases)"
    )
    assert store_state(target) == before


def test_an_import_conflict_is_one_line_exit_1_and_changes_nothing(tmp_path: Path) -> None:
    source, target = tmp_path / "a", tmp_path / "b"
    ok(source, "register", str(make_file(tmp_path / "x.pkl", b"x")), "--name", "m")
    ok(target, "register", str(make_file(tmp_path / "y.pkl", b"y")), "--name", "m")
    ok(source, "export", "m", "-o", str(tmp_path / "m.tar"))
    before = store_state(target)
    result = run(target, "import", str(tmp_path / "m.tar"), "--skip-existing")
    assert result.exit_code == 1
    assert one_error_line(result) == (
        f"Error: nothing was imported from {tmp_path / 'm.tar'}: m:1 exists with other files"
    )
    assert store_state(target) == before


def test_a_hostile_archive_is_one_line_exit_2_and_changes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "b"
    ok(target, "register", str(make_file(tmp_path / "y.pkl", b"y")), "--name", "own")
    archive = hostile_archive(
        tmp_path, [(file_info("../evil", 4), b"evil")], manifest_for({"e/w.bin": b"w"})
    )
    before = store_state(target)
    result = run(target, "import", str(archive))
    assert result.exit_code == 2
    assert one_error_line(result) == (
        f"Error: {archive} is refused: member '../evil' leaves the archive's folder ('..'); "
        "nothing was imported"
    )
    assert store_state(target) == before


def test_export_of_an_unknown_ref_or_to_an_existing_file_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "a"
    ok(home, "register", str(make_file(tmp_path / "x.pkl", b"x")), "--name", "m")
    (tmp_path / "taken.tar").write_bytes(b"keep")
    result = run(home, "export", "m", "-o", str(tmp_path / "taken.tar"))
    assert result.exit_code == 2 and "already exists" in one_error_line(result)
    result = run(home, "export", "m:7", "-o", str(tmp_path / "new.tar"))
    assert result.exit_code == 1 and "has no version 7" in one_error_line(result)
    assert not (tmp_path / "new.tar").exists()
    assert (tmp_path / "taken.tar").read_bytes() == b"keep"


def test_import_adopts_a_deployed_copy(tmp_path: Path) -> None:
    source, target = tmp_path / "a", tmp_path / "b"
    ok(source, "register", str(make_file(tmp_path / "x.pkl", b"x")), "--name", "m")
    ok(source, "register", str(make_file(tmp_path / "x.pkl", b"x2")), "--name", "m")
    ok(source, "deploy", "m:2", "--copy", "--app-root", str(tmp_path / "app"))
    result = ok(target, "import", str(tmp_path / "app" / "azureml-models"))
    assert result.stdout == "Imported m:2 (2 B)\n"
    assert ok(target, "path", "m:2").stdout.strip().endswith("azureml-models/m/2/x.pkl")
