"""Alembic migrations of the catalog, shipped inside the package and applied on open."""
