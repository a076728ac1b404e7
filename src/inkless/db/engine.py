"""The database engine: one place that knows how SQLite and PostgreSQL differ."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

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

T = TypeVar("T")


@dataclass
class _SharedWork:
    """One thread's part of a shared transaction (:meth:`Database.together`)."""

    work: Callable[[Connection], Any]
    done: bool = False
    result: Any = None
    error: BaseException | None = None


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
        # Group commit (together()): the work handed in while a shared transaction commits, and whether one does.
        self._sharing = threading.Condition()
        self._queued: list[_SharedWork] = []
        self._committing = False

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

    def together(self, work: Callable[[Connection], T]) -> T:
        """Run ``work`` in a write transaction shared with the work other threads of this process hand in at the
        same moment (group commit), and return its result once that transaction has committed.

        Nobody waits for company: the first thread commits at once what is there; the work handed in while it
        commits goes into the next transaction, one commit (one fsync) for all of it. Each work runs in a
        savepoint of its own, so one that raises is rolled back alone and its thread gets its error; if the
        commit fails, every thread of that transaction gets the failure and nothing of it is stored.
        """
        mine = _SharedWork(work)
        with self._sharing:
            self._queued.append(mine)
            while self._committing and not mine.done:
                self._sharing.wait()
            lead = not mine.done
            if lead:
                self._committing = True
                batch, self._queued = self._queued, []
        if lead:
            try:
                self._commit_together(batch)
            finally:
                with self._sharing:
                    for shared in batch:
                        shared.done = True
                    self._committing = False
                    self._sharing.notify_all()
        if mine.error is not None:
            raise mine.error
        return cast(T, mine.result)

    def _commit_together(self, batch: list[_SharedWork]) -> None:
        committed = False
        try:
            with self.engine.begin() as conn:
                for shared in batch:
                    try:
                        with conn.begin_nested():
                            shared.result = shared.work(conn)
                    except Exception as error:  # this thread's error, raised in this thread
                        shared.error = storage_error(error) if isinstance(error, exc.OperationalError) else error
            committed = True
        except Exception as error:  # the transaction failed as a whole: nothing of it is stored
            for shared in batch:
                if shared.error is None:
                    shared.error = storage_error(error) if isinstance(error, exc.OperationalError) else error
        finally:
            if not committed:  # interrupted (a BaseException in this thread): no other thread may think it stored
                for shared in batch:
                    if shared.error is None:
                        shared.error = StorageError("the shared transaction was interrupted before it committed")

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
