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
