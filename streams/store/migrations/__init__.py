"""Alembic migrations of the store's schema (`otklik store migrate`)."""
