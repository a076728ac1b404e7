"""Run the Alembic migrations programmatically (``inkless init``, ``inkless migrate`` and tests).

Each feature package owns a branch of migrations that starts from the foundation
revision ``0001`` (branch labels ``delivery``, ``seals``, ``fax`` …), so features
can grow their tables independently; a node is up to date when its database is at
every head. ``0007_merge_heads`` joined every branch into one head, on which later
revisions build (``0008_blobs``); a feature that starts a branch again is joined
by the next merge revision.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import exc

from inkless.db.engine import Database, storage_error
from inkless.pki.keystore import SecretBox

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(db: Database, box: SecretBox | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = db.engine
    # Migrations that derive data from sealed columns (the search index) need the master key.
    cfg.attributes["box"] = box
    return cfg


def upgrade(db: Database, revision: str = "heads", box: SecretBox | None = None) -> None:
    """Bring the schema up to ``revision`` (default: every head); ``box``: the node's master key."""
    try:
        command.upgrade(alembic_config(db, box), revision)
    except exc.OperationalError as error:
        raise storage_error(error) from error


def downgrade(db: Database, revision: str) -> None:
    command.downgrade(alembic_config(db), revision)


def current_heads(db: Database) -> frozenset[str]:
    """The revisions the database is at (empty for a database inkless never touched)."""
    try:
        # A read: it must not queue behind a writer for the write lock.
        with db.engine.connect() as conn:
            conn = conn.execution_options(inkless_read_only=True)
            return frozenset(MigrationContext.configure(conn).get_current_heads())
    except exc.OperationalError as error:
        # Locked, full or unreachable: a storage failure, not a configuration mistake.
        raise storage_error(error) from error


def script_heads(db: Database) -> frozenset[str]:
    """The revisions this version of inkless expects."""
    return frozenset(ScriptDirectory.from_config(alembic_config(db)).get_heads())


def describe(revisions: frozenset[str]) -> str:
    return ", ".join(sorted(revisions)) or "empty"
