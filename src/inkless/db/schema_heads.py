"""Which schema revisions a database is at and which this inkless expects, without loading Alembic.

Every command that opens a node checks the schema first; Alembic (and its Mako templates) takes about
a fifth of a second to import, and reading the migration scripts through it imports each of them. Here
the stored heads are one query of ``alembic_version`` and the expected heads come from the ``revision``
and ``down_revision`` assignments of the scripts, read as syntax (the same values Alembic reads).
``inkless.db.migrate`` still runs the migrations; a test checks that both agree.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

from sqlalchemy import Select, column, exc, inspect, select, table

from inkless.db.engine import Database, storage_error

VERSIONS = Path(__file__).parent / "migrations" / "versions"
VERSION_TABLE = "alembic_version"


def stored_heads(db: Database) -> frozenset[str]:
    """The revisions the database is at (empty for a database inkless never touched)."""
    try:
        # A read: it must not queue behind a writer for the write lock.
        with db.engine.connect() as conn:
            conn = conn.execution_options(inkless_read_only=True)
            if not inspect(conn).has_table(VERSION_TABLE):
                return frozenset()
            query: Select[tuple[str]] = select(column("version_num")).select_from(table(VERSION_TABLE))
            return frozenset(str(v) for v in conn.execute(query).scalars())
    except exc.OperationalError as error:
        # Locked, full or unreachable: a storage failure, not a configuration mistake.
        raise storage_error(error) from error


def _assignments(path: Path) -> dict[str, object]:
    values: dict[str, object] = {}
    for statement in ast.parse(path.read_text(encoding="utf-8"), str(path)).body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(statement, ast.Assign):
            targets, value = statement.targets, statement.value
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets, value = [statement.target], statement.value
        for target in targets:
            if value is not None and isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                values[target.id] = ast.literal_eval(value)
    return values


@functools.lru_cache(maxsize=1)
def expected_heads() -> frozenset[str]:
    """The revisions this version of inkless expects: those no other migration builds on."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in VERSIONS.glob("*.py"):
        values = _assignments(path)
        revision = values.get("revision")
        if not isinstance(revision, str):
            continue
        revisions.add(revision)
        down = values.get("down_revision")
        if isinstance(down, str):
            parents.add(down)
        elif isinstance(down, (tuple, list)):
            parents.update(str(d) for d in down)
    return frozenset(revisions - parents)
