"""How a database failure becomes one ``CatalogError`` line, whichever layer raised it (an
SQLAlchemy error or a bare DBAPI one from the SQLite fast path)."""

from __future__ import annotations

from modelstore.errors import CatalogError


def catalog_error(exc: Exception, doing: str) -> CatalogError:
    cause = one_line(getattr(exc, "orig", None) or exc)
    if "disk" in cause and "full" in cause:
        hint = "the disk is full; free some space and retry"
    elif "locked" in cause:
        hint = "another process kept the catalog locked too long; retry"
    else:
        hint = "check the database file or URL, then retry; `modelstore doctor` reports leftovers"
    return CatalogError(f"error {doing} the catalog ({cause}): {hint}")


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]
