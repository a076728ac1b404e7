"""Databases for tests: a fresh SQLite file, or a fresh schema on the real PostgreSQL server."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

from inkless.db.engine import normalise_url

POSTGRES_ENV = "INKLESS_TEST_POSTGRES_URL"


def postgres_url() -> str | None:
    """The server the PostgreSQL tests use, or None (then those tests are skipped)."""
    return os.environ.get(POSTGRES_ENV) or None


@contextmanager
def fresh_database(backend: str, folder: Path, server: str | None = None, prefix: str = "t_") -> Iterator[str]:
    """Yield the URL of an empty database; PostgreSQL gets a private schema, dropped afterwards.

    ``server`` is the PostgreSQL URL to use (default ``$INKLESS_TEST_POSTGRES_URL``).
    """
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'inkless.db'}"
        return
    base = server or postgres_url()
    assert base, f"{POSTGRES_ENV} is not set"
    base = normalise_url(base)
    schema = prefix + secrets.token_hex(6)
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()
