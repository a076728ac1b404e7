"""The complete schema: the foundation tables plus every feature's table module.

Feature packages keep their tables in ``db/tables_<feature>.py`` (on the shared
``metadata`` of ``db/tables.py``) with their own Alembic branch; importing this
module makes sure all of them are registered, for Alembic and for the tests that
compare the migrations with the tables.
"""

from __future__ import annotations

import importlib
import pkgutil

import inkless.db
from inkless.db.tables import metadata

for _info in pkgutil.iter_modules(inkless.db.__path__):
    if _info.name.startswith("tables_"):
        importlib.import_module(f"inkless.db.{_info.name}")

__all__ = ["metadata"]
