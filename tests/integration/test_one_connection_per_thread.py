"""A request never takes a second database connection while it holds one.

Inside a write transaction, a lookup through another connection waits for a free one while the first holds
the (SQLite) write lock; under load every pooled connection ends up held by a thread that waits for another,
and requests time out after the pool's 30 s ("database is locked", 500s). Found by bench/load.py: 100
clerks got 4 requests/s and 20 errors; with lookups done before the transactions, 46 requests/s and none.
"""

from __future__ import annotations

import dataclasses
import threading
import traceback
import warnings
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import event

from inkless.app import Node, build_node
from inkless.delivery.service import NewDocument
from inkless.directory.demo import DemoSample
from inkless.web.app import create_app
from tests.helpers.seals import sample_pdf
from tests.helpers.web import bearer, browser_login

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient


@dataclasses.dataclass
class NestedCheckouts:
    """Stacks (inkless frames only) of every checkout made by a thread that already held a connection."""

    held: Counter[int] = dataclasses.field(default_factory=Counter)
    nested: list[str] = dataclasses.field(default_factory=list)


@pytest.fixture
def watched(node: Node, demo: DemoSample) -> Iterator[tuple[Node, NestedCheckouts]]:
    settings = dataclasses.replace(node.settings, delivery_concurrency=1, fax_line="none")
    watched_node = build_node(settings)
    seen = NestedCheckouts()

    def checkout(*_: object) -> None:
        thread = threading.get_ident()
        if seen.held[thread] > 0:
            seen.nested.append("".join(line for line in traceback.format_stack() if "/inkless/" in line))
        seen.held[thread] += 1

    def checkin(*_: object) -> None:
        seen.held[threading.get_ident()] -= 1

    event.listen(watched_node.db.engine, "checkout", checkout)
    event.listen(watched_node.db.engine, "checkin", checkin)
    try:
        yield watched_node, seen
    finally:
        watched_node.close()


def test_sending_receiving_reading_and_sealing_hold_one_connection_at_a_time(
    watched: tuple[Node, NestedCheckouts],
) -> None:
    node, seen = watched
    assert node.delivery is not None
    pdf = sample_pdf()
    node.delivery.send("tanaka", "civil-affairs", ["criminal-affairs@moj"], [], "照会", [NewDocument("a.pdf", pdf)],
                       classification=1)
    node.delivery.send("takahashi", "criminal-affairs", ["civil-affairs@moj"], [], "回答", [NewDocument("b.pdf", pdf)],
                       classification=1)
    assert node.delivery.deliver_due().delivered == 2
    [item] = node.delivery.inbox("civil-affairs", "tanaka")
    session = browser_login(node, "tanaka")
    token = bearer(node, "tanaka")
    client = TestClient(create_app(node), cookies=session.cookies)
    answers = {
        "inbox": client.get("/offices/civil-affairs/inbox").status_code,
        "message": client.get(f"/messages/{item.message_id}").status_code,
        "inbox_api": client.get("/api/v1/offices/civil-affairs/inbox", headers=token).status_code,
        "send": client.post("/api/v1/messages", headers=token,
                            data={"to": "criminal-affairs@moj", "subject": "送付", "classification": "1"},
                            files={"files": ("c.pdf", pdf, "application/pdf")}).status_code,
        "seal": client.post("/api/v1/seal", headers=token, data={"x": "400", "y": "700"},
                            files={"file": ("d.pdf", pdf, "application/pdf")}).status_code,
    }
    assert answers == {"inbox": 200, "message": 200, "inbox_api": 200, "send": 201, "seal": 200}
    assert seen.nested == []
