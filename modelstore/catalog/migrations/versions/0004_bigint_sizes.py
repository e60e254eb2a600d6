"""Every number 64-bit: sizes, file counts, versions, high-water marks and row ids.

A 32-bit ``size`` overflowed at 2 GiB on PostgreSQL ("integer out of range" after the copy of a
2.3 GB model). SQLite's INTEGER is 64-bit already, and there the declared type must stay INTEGER
(an id is the rowid only when declared exactly so), so this revision changes nothing on SQLite.

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# (table, column, nullable)
_COLUMNS = [
    ("model_names", "last_version", False),
    ("model_versions", "id", False),
    ("model_versions", "version", False),
    ("model_versions", "size", False),
    ("model_versions", "file_count", False),
    ("version_files", "version_id", False),
    ("version_files", "size", False),
    ("model_aliases", "version", False),
    ("alias_history", "id", False),
    ("alias_history", "from_version", True),
    ("alias_history", "to_version", True),
]

_SERIAL_IDS = [("model_versions", "id"), ("alias_history", "id")]


def upgrade() -> None:
    _retype(sa.Integer(), sa.BigInteger())


def downgrade() -> None:
    _retype(sa.BigInteger(), sa.Integer())


def _retype(old: sa.types.TypeEngine[int], new: sa.types.TypeEngine[int]) -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        return
    for table, column, nullable in _COLUMNS:
        op.alter_column(table, column, type_=new, existing_type=old, existing_nullable=nullable)
    if bind.dialect.name == "postgresql":
        # An id's sequence (made by SERIAL) has a type of its own, capped at 2**31 - 1.
        kind = "BIGINT" if isinstance(new, sa.BigInteger) else "INTEGER"
        for table, column in _SERIAL_IDS:
            sequence = bind.execute(
                sa.text("SELECT pg_get_serial_sequence(:table, :column)"),
                {"table": table, "column": column},
            ).scalar_one()
            if sequence is not None:
                op.execute(f"ALTER SEQUENCE {sequence} AS {kind}")
