"""The database engine: one place that knows how SQLite and PostgreSQL differ."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import make_url

from inkless.errors import ConfigurationError, StorageError


def storage_error(error: exc.OperationalError | exc.DBAPIError) -> StorageError:
    """The database could not be used (locked, full, unreachable): exit code 8 / HTTP 503, with the driver's reason."""
    return StorageError(f"database unavailable: {error.orig}")


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` as a short form of ``postgresql+psycopg://``."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Database:
    """A node's database: SQLite (WAL) or PostgreSQL behind the same interface."""

    def __init__(self, url: str, *, create: bool = False, echo: bool = False, lock_timeout: float = 30.0) -> None:
        self.url = normalise_url(url)
        try:
            parsed = make_url(self.url)
        except exc.ArgumentError as error:
            raise ConfigurationError(f"database_url is not a valid URL: {error}") from None
        self.backend = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.backend == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                path = Path(parsed.database)
                if create:
                    path.parent.mkdir(parents=True, exist_ok=True)
                elif not path.exists():
                    # Opening would create an empty database file: a typo in --data must change nothing.
                    raise ConfigurationError(
                        f"no inkless node in {path.parent} (no database file {path.name}): "
                        "run 'inkless init --data DIR'"
                    )
            kwargs["connect_args"] = {"timeout": lock_timeout, "check_same_thread": False}
        elif self.backend == "postgresql":
            kwargs["pool_pre_ping"] = True
        else:
            raise ConfigurationError(f"unsupported database backend {self.backend!r}")
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.backend == "sqlite":
            _configure_sqlite(self.engine, lock_timeout)

    @contextmanager
    def begin(self, *, durable: bool = True) -> Iterator[Connection]:
        """A transaction: committed when the block ends, rolled back on an exception.

        On SQLite every transaction takes the write lock up front (BEGIN IMMEDIATE),
        the SQLite equivalent of row locks: two workers never interleave a
        read-then-write on the same rows.

        ``durable=False``: the commit does not wait for the disk (SQLite: no fsync of the WAL for this
        commit; PostgreSQL: ``synchronous_commit = off`` for this transaction). Its rows still survive a
        killed process (they are in the operating system's hands), and the next durable commit makes them
        durable with its own (the log is written in order); only a power cut before that may lose them.
        For bookkeeping whose loss is harmless (a replay nonce of a request that changed nothing).
        """
        try:
            if durable:
                with self.engine.begin() as conn:
                    yield conn
                return
            with self.engine.connect() as conn:
                relaxed = self.backend == "sqlite"
                if relaxed:
                    # Outside any transaction (the driver is in autocommit mode): the setting holds for the commit.
                    conn.connection.driver_connection.execute("PRAGMA synchronous=NORMAL")  # type: ignore[union-attr]
                try:
                    with conn.begin():
                        if not relaxed:
                            conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
                        yield conn
                finally:
                    if relaxed:
                        conn.connection.driver_connection.execute("PRAGMA synchronous=FULL")  # type: ignore[union-attr]
        except exc.OperationalError as error:
            raise storage_error(error) from error

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction: never waits for the write lock.

        On SQLite it starts DEFERRED, so WAL readers see the last committed state
        while another connection writes; on PostgreSQL it is READ ONLY. Use
        :meth:`begin` for anything that reads and then writes.
        """
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(inkless_read_only=True)
                with conn.begin():
                    yield conn
        except exc.OperationalError as error:
            raise storage_error(error) from error

    def dispose(self) -> None:
        self.engine.dispose()


def _configure_sqlite(engine: Engine, lock_timeout: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions start (see begin()).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(lock_timeout * 1000)}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Readers take no lock up front: in WAL mode they never wait behind a writer.
        if conn.get_execution_options().get("inkless_read_only"):
            conn.exec_driver_sql("BEGIN DEFERRED")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
