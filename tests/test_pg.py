"""The PostgreSQL test server's rules: the tests needing it may skip on a developer machine
without PostgreSQL, never in CI."""

from __future__ import annotations

import pytest
from pg import missing_server


def test_a_missing_postgresql_skips_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="PostgreSQL is not installed"):
        missing_server()


def test_a_missing_postgresql_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set but PostgreSQL is not installed"):
        missing_server()
