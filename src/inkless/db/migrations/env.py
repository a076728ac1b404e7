"""Alembic environment: the engine is handed over by inkless.db.migrate."""

from __future__ import annotations

from alembic import context

from inkless.db.schema import include_object, metadata

engine = context.config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=engine.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
