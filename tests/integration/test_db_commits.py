"""Commits that need not wait for the disk (Database.begin(durable=False)) still commit, roll back like any
other, and leave the connection they used durable for the next transaction; work handed in together
(Database.together) commits for every thread, each with its own outcome (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Connection, func, insert, select, text
from sqlalchemy.exc import IntegrityError

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


def test_work_handed_in_together_commits_for_each_thread_and_a_refusal_stays_with_its_own(node: Node) -> None:
    now = node.clock.now()
    start = threading.Barrier(6)
    outcomes: dict[int, object] = {}

    def hand_in(number: int) -> None:
        def work(conn: Connection) -> int:
            conn.execute(insert(federation_nonces).values(node_id="npa", nonce=f"t-{number}", expires_at=now))
            if number == 3:
                raise ValueError("refused")
            return number

        start.wait()
        try:
            outcomes[number] = node.db.together(work)
        except ValueError as exc:
            outcomes[number] = exc

    threads = [threading.Thread(target=hand_in, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert {n: o for n, o in outcomes.items() if n != 3} == {0: 0, 1: 1, 2: 2, 4: 4, 5: 5}
    assert isinstance(outcomes[3], ValueError)
    with node.db.read() as conn:
        stored = set(conn.execute(select(federation_nonces.c.nonce)).scalars())
    assert stored == {"t-0", "t-1", "t-2", "t-4", "t-5"}
    # The same nonce twice in one shared transaction: the second gets the database's refusal, the first stays.
    with pytest.raises(IntegrityError):
        node.db.together(lambda conn: conn.execute(
            insert(federation_nonces).values(node_id="npa", nonce="t-0", expires_at=now)))
    assert _nonces(node) == 5
