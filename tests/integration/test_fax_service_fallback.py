"""Disaster fallback on real nodes: urgent mail to a peer that has been down too long goes out by fax.

Node ``moj`` has pinned node ``mlit`` (its real CA and signed office directory), whose URL
answers nothing. Messages that differ from the qualifying one in exactly one condition stay
in the electronic queue; the qualifying one moves to state ``fax`` with the reason, its fax
is dialled through the real modem path, and the outcome is written where the sender looks.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from inkless.app import Node, init_node
from inkless.clock import FixedClock
from inkless.config import load_settings
from inkless.db.tables import audit_entries
from inkless.db.tables_delivery import outbox
from inkless.db.tables_federation import federation_peers
from inkless.delivery.service import NewDocument
from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, create_demo
from inkless.directory.peers import PeerService
from inkless.fax.fallback import DisasterFallback
from inkless.fax.loopback import LoopbackLine
from inkless.fax.simulate import AnsweringRemote
from inkless.pki.ca import fingerprint
from tests.conftest import BACKENDS
from tests.helpers.db import fresh_database
from tests.helpers.faxdocs import three_page_pdf

FALLBACK_MINUTES = 60


@dataclass
class Pair:
    moj: Node
    mlit: Node
    clock: FixedClock
    sockets: Path


def _pin_without_network(moj: Node, mlit: Node, url: str) -> None:
    """Pin ``mlit`` in ``moj`` with its real CA and signed directory, as ``inkless peer add`` would store them."""
    assert isinstance(mlit.peers, PeerService)
    with mlit.db.begin() as conn:
        ca_der = mlit.pki.ca_certificate(conn).der
    jws = mlit.peers.directory_document()["signed"]
    now = moj.clock.now()
    with moj.db.begin() as conn:
        conn.execute(insert(federation_peers).values(
            node_id=mlit.node_id, url=url, ca_der=ca_der, fingerprint=fingerprint(ca_der), added_at=now,
            last_seen_at=now, directory_jws=jws, directory_fetched_at=now))


@pytest.fixture(scope="module", params=BACKENDS)
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    folder = tmp_path_factory.mktemp("fallback")
    sockets = Path(tempfile.mkdtemp(prefix="inkfb-"))
    # Real time: envelopes carry the CMS signing time, which is checked against the node's clock.
    clock = FixedClock(datetime.now(UTC))
    backend = str(request.param)
    with fresh_database(backend, folder / "moj") as moj_db, fresh_database(backend, folder / "mlit") as mlit_db:
        moj = init_node(load_settings(folder / "moj", env={}, overrides={
            "node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION, "database_url": moj_db,
            "fax_fallback_after_minutes": FALLBACK_MINUTES,
            "fax_loopback_remote": str(sockets / "remote.sock")}), clock)
        mlit = init_node(load_settings(folder / "mlit", env={}, overrides={
            "node_id": "mlit", "organisation": "国土交通省", "database_url": mlit_db,
            "base_url": "http://127.0.0.1:9"}), clock)
        try:
            create_demo(moj.directory)
            mlit.directory.add_office("disaster-hq", "災害対策本部", "03-5253-8111")
            mlit.directory.add_office("roads", "道路局")
            # Port 9 (discard) answers nothing: the peer is down for as long as the test likes.
            _pin_without_network(moj, mlit, "http://127.0.0.1:9")
            yield Pair(moj, mlit, clock, sockets)
        finally:
            moj.close()
            mlit.close()
            shutil.rmtree(sockets, ignore_errors=True)


def _send(node: Node, login: str, office: str, to: str, *, classification: int = 1, priority: str = "urgent") -> str:
    assert node.delivery is not None
    documents = [NewDocument("notice.pdf", three_page_pdf())]
    return node.delivery.send(login, office, [to], [], "避難所の開設について", documents,
                              classification=classification, priority=priority)


def _state(node: Node, message_id: str) -> tuple[str, str | None]:
    with node.db.begin() as conn:
        row = conn.execute(select(outbox.c.state, outbox.c.last_error).where(outbox.c.message_id == message_id)).one()
    return row.state, row.last_error


def _fallback(node: Node) -> DisasterFallback:
    return DisasterFallback(node.db, node.audit, node.clock, node.node_id, FALLBACK_MINUTES, node.fax,
                            delivery=lambda: node.delivery, peers=lambda: node.peers)


def test_fallback_to_fax_only_when_every_condition_holds(pair: Pair) -> None:
    moj, clock = pair.moj, pair.clock
    assert moj.delivery is not None and moj.fax is not None
    moj.fax.set_office_settings("civil-affairs", fallback_enabled=True, actor="yamada")
    qualifying = _send(moj, "tanaka", "civil-affairs", "disaster-hq@mlit")
    others = {
        "normal priority": _send(moj, "tanaka", "civil-affairs", "disaster-hq@mlit", priority="normal"),
        "classification 2": _send(moj, "sato", "civil-affairs", "disaster-hq@mlit", classification=2),
        "no published fax number": _send(moj, "tanaka", "civil-affairs", "roads@mlit"),
        "fallback not enabled": _send(moj, "takahashi", "criminal-affairs", "disaster-hq@mlit"),
    }
    # The peer does not answer: every row is retrying, and federation notes since when.
    result = moj.delivery.deliver_due(limit=20)
    assert result.retrying == 5, result
    for message_id in (qualifying, *others.values()):
        assert _state(moj, message_id)[0] == "retrying"
    with moj.db.begin() as conn:
        since = conn.execute(select(federation_peers.c.unreachable_since)).scalar()
        if since is None:  # the transport records it; make the test independent of when exactly
            conn.execute(update(federation_peers).values(unreachable_since=clock.now()))

    clock.advance(minutes=FALLBACK_MINUTES - 5)
    assert _fallback(moj).scan() == []  # not down long enough: nothing goes by fax
    assert _state(moj, qualifying)[0] == "retrying"

    clock.advance(minutes=10)
    jobs = _fallback(moj).scan()
    assert len(jobs) == 1
    state, reason = _state(moj, qualifying)
    assert state == "fax" and reason and "03-5253-8111" in reason and "mlit" in reason
    for why, message_id in others.items():
        assert _state(moj, message_id)[0] == "retrying", why
    job = moj.fax.job(jobs[0])
    assert (job.origin, job.number, job.office_code, job.classification) == ("fallback", "03-5253-8111",
                                                                             "civil-affairs", 1)
    assert job.pages == 4  # the cover page, then the document
    # The sender sees it: the recipient's status says fax, and why.
    [status] = moj.delivery.status(qualifying, "tanaka")
    assert status.state == "fax" and "FAX" in (status.last_error or "")
    assert _fallback(moj).scan() == []  # never twice

    # The fax goes out through the real modem path; its outcome is written on the outbox row.
    line = LoopbackLine(pair.sockets / "moj.sock", pair.sockets / "remote.sock")
    with AnsweringRemote(pair.sockets / "remote.sock", pair.sockets / "received") as remote:
        assert moj.fax.run_due_jobs(line) == 1
        [received] = remote.wait_for_results(1, timeout_s=120)
    assert received.pages_transferred == 4
    assert moj.fax.job(jobs[0]).state == "done"
    state, reason = _state(moj, qualifying)
    assert state == "fax" and reason and "sent by fax" in reason
    with moj.db.begin() as conn:
        actions = set(conn.execute(select(audit_entries.c.action).where(
            audit_entries.c.object_id == qualifying)).scalars())
    assert {"message.fax_fallback", "message.fax_sent"} <= actions


def test_no_fallback_when_the_sending_office_turns_it_off(pair: Pair) -> None:
    moj, clock = pair.moj, pair.clock
    assert moj.delivery is not None and moj.fax is not None
    moj.fax.set_office_settings("civil-affairs", fallback_enabled=False, actor="yamada")
    message_id = _send(moj, "tanaka", "civil-affairs", "disaster-hq@mlit")
    moj.delivery.deliver_due(limit=20)
    clock.advance(minutes=FALLBACK_MINUTES + 1)
    assert _fallback(moj).scan() == []
    assert _state(moj, message_id)[0] == "retrying"
    moj.fax.set_office_settings("civil-affairs", fallback_enabled=True, actor="yamada")
    assert len(_fallback(moj).scan()) == 1
    assert _state(moj, message_id)[0] == "fax"


def test_a_failed_fallback_fax_returns_the_message_to_electronic_delivery(pair: Pair) -> None:
    moj, clock = pair.moj, pair.clock
    assert moj.delivery is not None and moj.fax is not None
    moj.fax.set_office_settings("civil-affairs", fallback_enabled=True, actor="yamada")
    message_id = _send(moj, "tanaka", "civil-affairs", "disaster-hq@mlit")
    moj.delivery.deliver_due(limit=20)
    clock.advance(minutes=FALLBACK_MINUTES + 1)
    [job_id] = _fallback(moj).scan()
    # The far end drops every call part-way: the fax job gives up after its tries.
    line = LoopbackLine(pair.sockets / "moj2.sock", pair.sockets / "remote2.sock")
    with AnsweringRemote(pair.sockets / "remote2.sock", pair.sockets / "dropped", hangup_after_page=1):
        for _ in range(moj.fax.job(job_id).max_tries):
            assert moj.fax.run_due_jobs(line) >= 1  # (the job left by the previous test goes along)
            clock.advance(seconds=moj.fax.job(job_id).interval_s)
    assert moj.fax.job(job_id).state == "failed"
    state, reason = _state(moj, message_id)
    assert state == "retrying" and reason and "electronic delivery continues" in reason
    assert _fallback(moj).scan() == []  # not faxed a second time
