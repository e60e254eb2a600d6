"""The catalog of registered versions (SQLite through SQLAlchemy 2.x, schema by alembic).

It never touches the model tree; ``modelstore.registry`` joins the two.
"""

from __future__ import annotations

from modelstore.catalog.catalog import Catalog
from modelstore.catalog.records import FileRecord, NewVersion, VersionRecord
from modelstore.catalog.tables import DELETING, PENDING, READY

__all__ = [
    "DELETING",
    "PENDING",
    "READY",
    "Catalog",
    "FileRecord",
    "NewVersion",
    "VersionRecord",
]
