"""MODELSTORE_DB_URL mistakes are one line, never a traceback, and never echo a password."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from modelstore.cli import main


def run(home: Path, url: str, *args: str) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, ["--home", str(home), *args], env={"MODELSTORE_DB_URL": url})
    return result.exit_code, result.stderr.splitlines()


def test_a_catalog_url_that_is_not_a_url_is_one_line_with_exit_code_2(tmp_path: Path) -> None:
    code, lines = run(tmp_path / "home", "not a url", "list")
    assert code == 2
    assert len(lines) == 1 and "is not a SQLAlchemy URL" in lines[0]
    assert "sqlite:////" in lines[0]  # says what one looks like
    assert not (tmp_path / "home").exists()


@pytest.mark.parametrize("driver", ["pg8000", "psycopg2"])
def test_a_catalog_url_whose_driver_is_missing_names_it_and_hides_the_password(
    tmp_path: Path, driver: str
) -> None:
    pytest.importorskip("sqlalchemy.dialects.postgresql")
    try:
        __import__(driver)
        pytest.skip(f"{driver} is installed here")
    except ImportError:
        pass
    code, lines = run(tmp_path / "home", f"postgresql+{driver}://me:s3cret@localhost/db", "list")
    assert code == 1
    assert len(lines) == 1 and "database driver is not installed" in lines[0]
    assert f"pip install {driver}" in lines[0]
    assert "postgresql+psycopg:// with pip install 'modelstore[team]'" in lines[0]
    assert "s3cret" not in lines[0]


@pytest.mark.parametrize(
    "url, says",
    [
        ("postgres://me:s3cret@localhost/db", "(postgres://); write postgresql+psycopg://"),
        ("nosuchdb://me:s3cret@localhost/db", "(nosuchdb://); write postgresql+psycopg://"),
    ],
)
def test_a_catalog_url_naming_an_unknown_database_says_how_a_supported_one_looks(
    tmp_path: Path, url: str, says: str
) -> None:
    """SQLAlchemy says "Can't load plugin: sqlalchemy.dialects:postgres" for Heroku's
    spelling of PostgreSQL URLs; the user needs to know what to write instead."""
    code, lines = run(tmp_path / "home", url, "register", __file__, "--name", "m")
    assert code == 2
    assert len(lines) == 1 and says in lines[0]
    assert "s3cret" not in lines[0]
    assert not (tmp_path / "home").exists()


def test_a_missing_driver_of_another_database_names_its_module_not_a_pip_package(
    tmp_path: Path,
) -> None:
    pytest.importorskip("sqlalchemy.dialects.mysql")
    try:
        __import__("MySQLdb")
        pytest.skip("MySQLdb is installed here")
    except ImportError:
        pass
    code, lines = run(tmp_path / "home", "mysql://me:s3cret@localhost/db", "list")
    assert code == 1
    assert len(lines) == 1 and "provides the Python module 'MySQLdb'" in lines[0]
    assert "only SQLite and PostgreSQL catalogs are tested" in lines[0]
    assert "s3cret" not in lines[0]
