"""State that must hold for the whole node, not per process: two Node objects on one PostgreSQL database
stand for two worker processes (on two machines) of one node."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from inkless.app import Node, build_node, init_node
from inkless.audit.model import AuditEvent
from inkless.audit.tasks import sign_tree_head_when_due
from inkless.audit.traffic import AnonymousTraffic
from inkless.clock import FixedClock
from inkless.config import load_settings
from inkless.directory.demo import DEMO_NODE_ID, create_demo
from inkless.errors import RateLimitedError
from inkless.web.app import create_app
from tests.helpers.db import fresh_database
from tests.helpers.seals import sample_pdf
from tests.helpers.web import TestClient, browser_login

pytestmark = pytest.mark.postgres


@pytest.fixture
def two_processes(tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    with fresh_database("postgresql", tmp_path / "node") as url:
        settings = load_settings(
            tmp_path / "node",
            env={},
            overrides={
                "node_id": DEMO_NODE_ID,
                "database_url": url,
                "tree_head_interval_seconds": 600,
                "fax_max_calls": 2,
            },
        )
        first = init_node(settings)
        second = build_node(dataclasses.replace(settings))
        try:
            yield first, second
        finally:
            second.close()
            first.close()


def record(node: Node, n: int) -> None:
    with node.db.begin() as conn:
        for i in range(n):
            node.audit.record(conn, AuditEvent(actor="test", action="test.event", object_type="t", object_id=str(i)))


def test_the_signed_head_schedule_is_the_nodes_not_each_processes(two_processes: tuple[Node, Node]) -> None:
    first, second = two_processes
    record(first, 3)
    head = sign_tree_head_when_due(first)
    assert head is not None
    record(second, 2)
    # The other process's timer fires too: the node signed a head less than the interval ago, so it waits.
    assert sign_tree_head_when_due(second) is None
    assert sign_tree_head_when_due(first) is None
    later = build_node(second.settings, FixedClock(head.timestamp + timedelta(seconds=600)))
    try:
        newer = sign_tree_head_when_due(later)
    finally:
        later.close()
    assert newer is not None and newer.tree_size == head.tree_size + 2


def test_the_fax_lines_calls_are_counted_for_the_whole_node(two_processes: tuple[Node, Node]) -> None:
    first, second = two_processes
    create_demo(first.directory)
    assert first.fax is not None and second.fax is not None
    jobs = [first.fax.send("tanaka", "civil-affairs", f"03123456{i:02d}", [sample_pdf()]) for i in range(4)]
    # fax_max_calls = 2: one process takes both slots of the line; the other may dial nothing meanwhile.
    taken = first.fax.claim_due_jobs(limit=2, max_calls=2)
    assert len(taken) == 2
    assert second.fax.claim_due_jobs(limit=2, max_calls=2) == []
    # A claim that runs out (its worker was killed) frees its slot, and the job is dialled again.
    late = FixedClock(second.clock.now() + timedelta(hours=1))
    rescuer = build_node(second.settings, late)
    try:
        assert rescuer.fax is not None
        again = rescuer.fax.claim_due_jobs(limit=4, max_calls=2)
    finally:
        rescuer.close()
    assert len(again) == 2 and set(again) <= set(jobs)


def test_a_browser_session_is_the_same_on_every_web_process(two_processes: tuple[Node, Node]) -> None:
    first, second = two_processes
    create_demo(first.directory)
    session = browser_login(first, "tanaka")
    with TestClient(create_app(first)) as on_first, TestClient(create_app(second)) as on_second:
        for c in (on_first, on_second):
            c.cookies.set("inkless_session", session.cookie)
        assert on_first.get("/api/v1/sessions").status_code == 200
        assert on_second.get("/api/v1/sessions").status_code == 200  # haproxy sent the next request elsewhere
        ended = on_second.post("/api/v1/sessions/end-all", headers={"X-CSRF-Token": session.csrf})
        assert ended.status_code == 200, ended.text
        assert on_first.get("/api/v1/sessions").status_code == 401  # signed out everywhere


def test_two_processes_admitting_one_client_at_once_share_its_limit(two_processes: tuple[Node, Node]) -> None:
    limit = 5
    traffic = [AnonymousTraffic(n.db, n.clock, n.audit, limit, 3600) for n in two_processes]
    admitted: list[bool] = []
    start = threading.Barrier(20)

    def knock(i: int) -> None:
        start.wait()
        try:
            traffic[i % 2].admit("verify", "198.51.100.9")
        except RateLimitedError:
            admitted.append(False)
        else:
            admitted.append(True)

    threads = [threading.Thread(target=knock, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert admitted.count(True) == limit and admitted.count(False) == 20 - limit
