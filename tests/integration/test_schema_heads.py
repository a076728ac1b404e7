"""The schema check that every command makes without Alembic agrees with Alembic itself."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory

from inkless.db.engine import Database
from inkless.db.migrate import alembic_config, current_heads, upgrade
from inkless.db.schema_heads import expected_heads, stored_heads


def test_the_expected_heads_are_alembics_heads(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}", create=True)
    try:
        assert expected_heads() == frozenset(ScriptDirectory.from_config(alembic_config(db)).get_heads())
        assert expected_heads()
    finally:
        db.dispose()


def test_the_stored_heads_are_what_alembic_reads_before_and_after_migrating(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x.db'}", create=True)
    try:
        assert stored_heads(db) == current_heads(db) == frozenset()
        upgrade(db)
        assert stored_heads(db) == current_heads(db) == expected_heads()
    finally:
        db.dispose()
