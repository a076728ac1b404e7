"""The Alembic migrations create exactly the tables the code uses, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from inkless.db.engine import Database
from inkless.db.migrate import current_heads, downgrade, script_heads, upgrade
from inkless.db.schema import include_object, metadata


def test_migrations_match_the_tables_and_downgrade_cleanly(database_url: str) -> None:
    db = Database(database_url, create=True)
    try:
        assert current_heads(db) == frozenset()
        upgrade(db)
        assert current_heads(db) == script_heads(db)
        with db.engine.connect() as conn:
            # The engines' own full-text objects (FTS5 table, GIN index) are not described by the tables.
            opts = {"compare_type": True, "include_object": include_object}
            diff = compare_metadata(MigrationContext.configure(conn, opts=opts), metadata)
        assert diff == []
        assert set(metadata.tables) <= set(inspect(db.engine).get_table_names())
        downgrade(db, "base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade(db)  # and back up again
        assert current_heads(db) == script_heads(db)
    finally:
        db.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path: object) -> None:
    from pathlib import Path

    db = Database(f"sqlite:///{Path(str(tmp_path)) / 'x.db'}", create=True)
    try:
        with db.begin() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        db.dispose()
