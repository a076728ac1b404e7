"""Commits that need not wait for the disk (Database.begin(durable=False)) still commit, roll back like any
other, and leave the connection they used durable for the next transaction (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, insert, select, text

from inkless.app import Node
from inkless.db.tables_federation import federation_nonces
from tests.conftest import reopen


def _nonces(node: Node) -> int:
    with node.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(federation_nonces)).scalar_one())


def _durability(node: Node) -> str:
    with node.db.begin() as conn:
        if node.db.backend == "sqlite":
            return "FULL" if conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2 else "relaxed"
        return "FULL" if conn.execute(text("SHOW synchronous_commit")).scalar() == "on" else "relaxed"


def test_a_commit_that_does_not_wait_for_the_disk_is_seen_by_others_and_leaves_the_next_one_durable(node: Node) -> None:
    now = node.clock.now()
    with node.db.begin(durable=False) as conn:
        conn.execute(insert(federation_nonces).values(node_id="npa", nonce="n-1", expires_at=now))
    other = reopen(node)
    try:
        assert _nonces(other) == 1
    finally:
        other.close()
    with pytest.raises(RuntimeError), node.db.begin(durable=False) as conn:
        conn.execute(insert(federation_nonces).values(node_id="npa", nonce="n-2", expires_at=now))
        raise RuntimeError("refused halfway")
    assert _nonces(node) == 1
    # The pool hands the same connection back: it waits for the disk again.
    for _ in range(3):
        assert _durability(node) == "FULL"
