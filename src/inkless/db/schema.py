"""The complete schema: the foundation tables plus every feature's table module.

Feature packages keep their tables in ``db/tables_<feature>.py`` (on the shared
``metadata`` of ``db/tables.py``) with their own Alembic branch; importing this
module makes sure all of them are registered, for Alembic and for the tests that
compare the migrations with the tables.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from sqlalchemy import Column

import inkless.db
from inkless.db.tables import metadata

for _info in pkgutil.iter_modules(inkless.db.__path__):
    if _info.name.startswith("tables_"):
        importlib.import_module(f"inkless.db.{_info.name}")

# Full-text structures each engine builds over ``search_index.tokens`` (FTS5 on SQLite, GIN on PostgreSQL):
# created by the search migration, not described by the tables.
ENGINE_SEARCH_OBJECTS = ("search_fts_", "ix_search_index_tokens_gin")


def blob_columns() -> list[Column[Any]]:
    """Every column of the schema that names a blob (``info=BLOB``)."""
    return [c for table in metadata.sorted_tables for c in table.columns if c.info.get("blob")]


def include_object(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    """Alembic's filter: leave the engines' own full-text objects out of schema comparisons."""
    return not (reflected and name is not None and name.startswith(ENGINE_SEARCH_OBJECTS))


__all__ = ["ENGINE_SEARCH_OBJECTS", "blob_columns", "include_object", "metadata"]
