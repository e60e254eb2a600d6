"""Leases: work in progress (a registration or deletion under way) belongs to the catalog.

One row per operation under way, with its owner (home, host, process) and a heartbeat from the
database's clock, so a doctor on any home can tell live work from work whose process is gone
(see ``modelstore.catalog.leases``). The same table on SQLite and PostgreSQL.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    int64 = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "leases",
        sa.Column("token", sa.String(64), primary_key=True),
        sa.Column("operation", sa.String(16), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("home", sa.Text, nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("host_id", sa.String(255), nullable=False),
        sa.Column("pid", int64, nullable=False),
        sa.Column("started", sa.String(64), nullable=False),
        sa.Column("heartbeat", int64, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("leases")
