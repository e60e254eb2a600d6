"""Alembic environment: always run programmatically by ``modelstore.catalog.migrate`` on a
connection it passes in ``config.attributes["connection"]`` (no alembic.ini, no logging set-up)."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
