"""Alembic's environment for the store: run on the connection `otklik store migrate` hands it."""

from __future__ import annotations

from alembic import context

from otklik.streams.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
