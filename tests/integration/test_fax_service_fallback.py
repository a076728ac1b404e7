"""Disaster fallback on real nodes: urgent mail to a peer that has been down too long goes out by fax.

Node ``moj`` has pinned node ``mlit`` (its real CA and signed office directory), whose pinned URL
answers nothing. Messages that differ from the qualifying one in exactly one condition stay in the
electronic queue, each with the reason code the sender sees; the qualifying one moves to state
``fax``, its fax is dialled through the real modem path, and the outcome is kept where the sender
looks. When ``mlit`` answers again (served over real HTTP), the envelope is delivered as well.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, insert, select, update

from inkless.app import Node, init_node
from inkless.clock import FixedClock
from inkless.config import load_settings
from inkless.db.tables import audit_entries
from inkless.db.tables_delivery import outbox
from inkless.db.tables_fax import fax_jobs
from inkless.db.tables_federation import federation_peers
from inkless.delivery.faxnote import FAX_FIRST_HEADER, FaxFirst
from inkless.delivery.service import NewDocument
from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, create_demo
from inkless.directory.peers import PeerService
from inkless.fax.fallback import DisasterFallback
from inkless.fax.loopback import LoopbackLine
from inkless.fax.simulate import AnsweringRemote
from inkless.federation import httpsig
from inkless.federation.client import (
    ENVELOPE_MEDIA_TYPE,
    MESSAGE_ID_HEADER,
    MESSAGES_PATH,
    RECIPIENT_HEADER,
    SENDER_HEADER,
    certificate_header,
)
from inkless.pki.ca import fingerprint
from inkless.web.app import create_app
from inkless.web.i18n import load_translations
from tests.conftest import BACKENDS
from tests.helpers.db import fresh_database
from tests.helpers.faxdocs import three_page_pdf
from tests.helpers.nodes import ThreadedServer, free_port, refused_url

FALLBACK_MINUTES = 60
DOWN_URL = refused_url()  # refuses every connection: the peer is down as long as the test likes
JA = load_translations("ja")
EN = load_translations("en")


@dataclass
class Pair:
    moj: Node
    mlit: Node
    clock: FixedClock
    sockets: Path
    mlit_port: int


def _pin_without_network(node: Node, peer: Node, url: str) -> None:
    """Pin ``peer`` in ``node`` with its real CA and signed directory, as ``inkless peer add`` would store them."""
    assert isinstance(peer.peers, PeerService)
    with peer.db.begin() as conn:
        ca_der = peer.pki.ca_certificate(conn).der
    jws = peer.peers.directory_document()["signed"]
    now = node.clock.now()
    with node.db.begin() as conn:
        conn.execute(insert(federation_peers).values(
            node_id=peer.node_id, url=url, ca_der=ca_der, fingerprint=fingerprint(ca_der), added_at=now,
            last_seen_at=now, directory_jws=jws, directory_fetched_at=now))


@pytest.fixture(params=BACKENDS)
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    """Fresh nodes for every test: nothing one test queues (rows, fax jobs, peers) reaches another."""
    sockets = Path(tempfile.mkdtemp(prefix="inkfb-"))
    # Real time: envelopes carry the CMS signing time, which is checked against the node's clock.
    clock = FixedClock(datetime.now(UTC))
    backend = str(request.param)
    mlit_port = free_port()
    with fresh_database(backend, tmp_path / "moj") as moj_db, fresh_database(backend, tmp_path / "mlit") as mlit_db:
        moj = init_node(load_settings(tmp_path / "moj", env={}, overrides={
            "node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION, "database_url": moj_db,
            "base_url": f"http://127.0.0.1:{free_port()}", "fax_fallback_after_minutes": FALLBACK_MINUTES,
            "fax_loopback_remote": str(sockets / "remote.sock")}), clock)
        mlit = init_node(load_settings(tmp_path / "mlit", env={}, overrides={
            "node_id": "mlit", "organisation": "国土交通省", "database_url": mlit_db,
            "base_url": f"http://127.0.0.1:{mlit_port}"}), clock)
        try:
            create_demo(moj.directory)
            mlit.directory.add_office("disaster-hq", "災害対策本部", "03-5253-8111")
            mlit.directory.add_office("roads", "道路局")
            _pin_without_network(moj, mlit, DOWN_URL)
            _pin_without_network(mlit, moj, moj.settings.base_url)
            yield Pair(moj, mlit, clock, sockets, mlit_port)
        finally:
            moj.close()
            mlit.close()
            shutil.rmtree(sockets, ignore_errors=True)


@contextmanager
def _mlit_back(pair: Pair) -> Iterator[str]:
    """mlit answers again: served over real HTTP at the URL moj has pinned for it."""
    url = f"http://127.0.0.1:{pair.mlit_port}"
    with pair.moj.db.begin() as conn:
        conn.execute(update(federation_peers).where(federation_peers.c.node_id == "mlit").values(url=url))
    with ThreadedServer(create_app(pair.mlit), pair.mlit_port):
        yield url


def _send(node: Node, login: str | None, office: str, to: str, *, classification: int = 1,
          priority: str = "urgent", documents: list[NewDocument] | None = None) -> str:
    assert node.delivery is not None
    documents = documents or [NewDocument("notice.pdf", three_page_pdf())]
    return node.delivery.send(login, office, [to], [], "避難所の開設について", documents,
                              classification=classification, priority=priority)


def _state(node: Node, message_id: str) -> tuple[str, str | None]:
    with node.db.begin() as conn:
        row = conn.execute(select(outbox.c.state, outbox.c.last_error).where(outbox.c.message_id == message_id)).one()
    return row.state, row.last_error


def _fallback(node: Node) -> DisasterFallback:
    return DisasterFallback(node.db, node.audit, node.clock, node.node_id, FALLBACK_MINUTES, node.fax,
                            delivery=lambda: node.delivery, peers=lambda: node.peers)


def _audited(node: Node, message_id: str, action: str) -> int:
    with node.db.begin() as conn:
        return int(conn.execute(select(func.count()).select_from(audit_entries).where(
            audit_entries.c.object_id == message_id, audit_entries.c.action == action)).scalar_one())


def _peer_down_for(pair: Pair, minutes: int) -> None:
    """Every pending row has failed against the silent peer, which has been down ``minutes`` by now."""
    assert pair.moj.delivery is not None
    pair.moj.delivery.deliver_due(limit=50)
    with pair.moj.db.begin() as conn:
        assert conn.execute(select(federation_peers.c.unreachable_since)).scalar() is not None
        conn.execute(update(federation_peers).values(unreachable_since=pair.clock.now()))
    pair.clock.advance(minutes=minutes)


def _no_japanese(text: str) -> bool:
    return all(ord(c) < 0x3000 for c in text)


def test_fallback_to_fax_only_when_every_condition_holds(pair: Pair) -> None:
    moj, clock = pair.moj, pair.clock
    assert moj.delivery is not None and moj.fax is not None
    moj.fax.set_office_settings("civil-affairs", fallback_enabled=True, actor="yamada")
    qualifying = _send(moj, "tanaka", "civil-affairs", "disaster-hq@mlit")
    others = {
        "not_urgent": _send(moj, "tanaka", "civil-affairs", "disaster-hq@mlit", priority="normal"),
        "classification": _send(moj, "sato", "civil-affairs", "disaster-hq@mlit", classification=2),
        "no_fax_number": _send(moj, "tanaka", "civil-affairs", "roads@mlit"),
        "fallback_disabled": _send(moj, "takahashi", "criminal-affairs", "disaster-hq@mlit"),
    }
    _peer_down_for(pair, FALLBACK_MINUTES - 5)
    for message_id in (qualifying, *others.values()):
        assert _state(moj, message_id)[0] == "retrying"
    assert _fallback(moj).scan() == []  # not down long enough: nothing goes by fax
    assert _state(moj, qualifying)[0] == "retrying"

    clock.advance(minutes=10)
    jobs = _fallback(moj).scan()
    assert len(jobs) == 1
    [status] = moj.delivery.status(qualifying, "tanaka")
    assert status.state == "fax"
    assert status.fax_decision is not None and status.fax_decision.code == "faxing"
    assert status.fax_decision.render(JA.gettext) == (
        "送信先ノード mlit に65分以上接続できないため、FAX（03-5253-8111）で送信します。")
    assert status.fax_decision.render(EN.gettext) == (
        "Peer mlit has been unreachable for 65 minutes: sending by fax to 03-5253-8111.")
    assert status.fax_outcome is not None and status.fax_outcome.code == "queued"
    # Where the fallback does not apply, the sender sees why, in one language at a time.
    for why, message_id in others.items():
        [other] = moj.delivery.status(message_id, None)
        assert other.state == "retrying", why
        assert other.fax_decision is not None and other.fax_decision.code == why
        assert other.fax_outcome is None
        japanese, english = other.fax_decision.render(JA.gettext), other.fax_decision.render(EN.gettext)
        assert japanese.startswith("FAX送信しません") and "Not faxed" not in japanese, japanese
        assert english.startswith("Not faxed") and _no_japanese(english), english
    [classified] = moj.delivery.status(others["classification"], None)
    assert classified.fax_decision is not None and "秘密区分 2" in classified.fax_decision.render(JA.gettext)

    job = moj.fax.job(jobs[0])
    assert (job.origin, job.number, job.office_code, job.classification) == ("fallback", "03-5253-8111",
                                                                             "civil-affairs", 1)
    assert job.pages == 4  # the cover page, then the document
    assert _fallback(moj).scan() == []  # never twice

    # The fax goes out through the real modem path; its outcome is kept on the outbox row.
    line = LoopbackLine(pair.sockets / "moj.sock", pair.sockets / "remote.sock")
    with AnsweringRemote(pair.sockets / "remote.sock", pair.sockets / "received") as remote:
        assert moj.fax.run_due_jobs(line) == 1
        [received] = remote.wait_for_results(1, timeout_s=120)
    assert received.pages_transferred == 4
    assert moj.fax.job(jobs[0]).state == "done"
    [status] = moj.delivery.status(qualifying, "tanaka")
    assert status.fax_outcome is not None and status.fax_outcome.code == "sent"
    assert status.fax_outcome.render(JA.gettext) == f"03-5253-8111 へFAXで送信しました（FAXジョブ {jobs[0]}、4枚）。"
    # The envelope still goes electronically once the peer is back: the row is back in the queue.
    assert status.state == "retrying"
    assert _audited(moj, qualifying, "message.fax_fallback") == 1
    assert _audited(moj, qualifying, "message.fax_sent") == 1


def test_the_decision_follows_the_office_setting(pair: Pair) -> None:
    moj = pair.moj
    assert moj.delivery is not None and moj.fax is not None
    moj.fax.set_office_settings("civil-affairs", fallback_enabled=False, actor="yamada")
    message_id = _send(moj, "tanaka", "civil-affairs", "disaster-hq@mlit")
    _peer_down_for(pair, FALLBACK_MINUTES + 1)
    assert _fallback(moj).scan() == []
    [status] = moj.delivery.status(message_id, None)
    assert status.state == "retrying" and status.fax_decision is not None
    assert status.fax_decision.code == "fallback_disabled"
    moj.fax.set_office_settings("civil-affairs", fallback_enabled=True, actor="yamada")
    assert len(_fallback(moj).scan()) == 1
    [status] = moj.delivery.status(message_id, None)
    assert status.state == "fax" and status.fax_decision is not None and status.fax_decision.code == "faxing"


def test_a_failed_fallback_fax_stays_visible_while_electronic_delivery_goes_on(pair: Pair) -> None:
    moj, clock = pair.moj, pair.clock
    assert moj.delivery is not None and moj.fax is not None
    moj.fax.set_office_settings("civil-affairs", fallback_enabled=True, actor="yamada")
    message_id = _send(moj, "tanaka", "civil-affairs", "disaster-hq@mlit")
    _peer_down_for(pair, FALLBACK_MINUTES + 1)
    [job_id] = _fallback(moj).scan()
    # The far end drops every call part-way: the fax job gives up after its tries.
    line = LoopbackLine(pair.sockets / "moj.sock", pair.sockets / "remote.sock")
    with AnsweringRemote(pair.sockets / "remote.sock", pair.sockets / "dropped", hangup_after_page=1):
        for _ in range(moj.fax.job(job_id).max_tries):
            assert moj.fax.run_due_jobs(line) == 1
            clock.advance(seconds=moj.fax.job(job_id).interval_s)
    assert moj.fax.job(job_id).state == "failed"
    [status] = moj.delivery.status(message_id, None)
    assert status.state == "retrying"
    assert status.fax_outcome is not None and status.fax_outcome.code == "failed"
    # The next electronic retries write their own error; the fax's failure is still what the sender sees.
    for _ in range(2):
        clock.advance(hours=1)
        assert moj.delivery.deliver_due(limit=20).retrying == 1
    [status] = moj.delivery.status(message_id, None)
    assert status.last_error and "mlit" in status.last_error
    assert status.fax_outcome is not None and status.fax_outcome.code == "failed"
    assert status.fax_outcome.params["job"] == job_id
    text = status.fax_outcome.render(JA.gettext)
    code = status.fax_outcome.params["code"]
    assert isinstance(code, int) and code != 0
    assert text == (f"03-5253-8111 へのFAX送信に失敗しました（FAXジョブ {job_id}、T.30 コード {code}）。"
                    "電子配達を続けます。")
    assert _no_japanese(status.fax_outcome.render(EN.gettext))
    assert _fallback(moj).scan() == []  # not faxed a second time


def test_a_message_the_operator_sent_falls_back_and_is_audited_once(pair: Pair) -> None:
    moj = pair.moj
    assert moj.delivery is not None and moj.fax is not None
    moj.fax.set_office_settings("civil-affairs", fallback_enabled=True, actor="yamada")
    message_id = _send(moj, None, "civil-affairs", "disaster-hq@mlit")  # inkless send without --as
    _peer_down_for(pair, FALLBACK_MINUTES + 1)
    [job_id] = _fallback(moj).scan()
    job = moj.fax.job(job_id)
    assert (job.origin, job.created_by, job.office_code) == ("fallback", "operator", "civil-affairs")
    [status] = moj.delivery.status(message_id, None)
    assert status.state == "fax" and status.fax_outcome is not None and status.fax_outcome.code == "queued"
    for _ in range(3):
        pair.clock.advance(minutes=1)
        assert _fallback(moj).scan() == []
    assert _audited(moj, message_id, "message.fax_fallback") == 1


def test_a_fax_that_cannot_be_queued_is_recorded_once_with_its_reason(pair: Pair) -> None:
    moj = pair.moj
    assert moj.delivery is not None and moj.fax is not None
    moj.fax.set_office_settings("civil-affairs", fallback_enabled=True, actor="yamada")
    broken = [NewDocument("notice.pdf", b"%PDF-1.7\nthis is not a PDF at all\n")]
    message_id = _send(moj, "tanaka", "civil-affairs", "disaster-hq@mlit", documents=broken)
    _peer_down_for(pair, FALLBACK_MINUTES + 1)
    for _ in range(3):  # the fallback looks every minute
        assert _fallback(moj).scan() == []
        pair.clock.advance(minutes=1)
    [status] = moj.delivery.status(message_id, None)
    assert status.state == "retrying"
    assert status.fax_outcome is not None and status.fax_outcome.code == "not_queued"
    assert status.fax_outcome.params["reason"]
    assert status.fax_outcome.render(JA.gettext) == "FAXへの切替ができませんでした。電子配達を続けます。"
    assert status.fax_outcome.detail  # the fax service's own words, shown apart from the sentence
    assert _audited(moj, message_id, "message.fax_fallback") == 0  # nothing was faxed
    assert _audited(moj, message_id, "message.fax_fallback_failed") == 1
    with moj.db.begin() as conn:
        assert conn.execute(select(func.count()).select_from(fax_jobs)).scalar_one() == 0


def test_a_peer_that_answers_the_probe_is_not_faxed(pair: Pair) -> None:
    moj = pair.moj
    assert moj.delivery is not None and moj.fax is not None and isinstance(moj.peers, PeerService)
    moj.fax.set_office_settings("civil-affairs", fallback_enabled=True, actor="yamada")
    message_id = _send(moj, "tanaka", "civil-affairs", "disaster-hq@mlit")
    _peer_down_for(pair, FALLBACK_MINUTES + 1)
    # Retries are far apart: the peer came back meanwhile, but the "unreachable" flag is from its outage.
    with _mlit_back(pair):
        assert moj.peers.get("mlit").unreachable_since is not None
        assert _fallback(moj).scan() == []
        [status] = moj.delivery.status(message_id, None)
        assert status.state == "retrying"
        assert status.fax_decision is not None and status.fax_decision.code == "peer_answered"
        assert status.fax_decision.render(EN.gettext).startswith("Peer mlit answered again just before the fax")
        assert moj.peers.get("mlit").unreachable_since is None
        assert status.next_attempt_at is not None and status.next_attempt_at <= pair.clock.now()
        assert moj.delivery.deliver_due(limit=20).delivered == 1
    with moj.db.begin() as conn:
        assert conn.execute(select(func.count()).select_from(fax_jobs)).scalar_one() == 0
    [status] = moj.delivery.status(message_id, None)
    assert status.state == "delivered" and status.has_receipt


def test_after_the_fax_the_envelope_is_delivered_too_and_linked_to_the_faxed_copy(pair: Pair) -> None:
    moj, mlit = pair.moj, pair.mlit
    assert moj.delivery is not None and moj.fax is not None and mlit.delivery is not None and mlit.fax is not None
    moj.fax.set_office_settings("civil-affairs", fallback_enabled=True, actor="yamada")
    message_id = _send(moj, "tanaka", "civil-affairs", "disaster-hq@mlit")
    _peer_down_for(pair, FALLBACK_MINUTES + 1)
    [job_id] = _fallback(moj).scan()
    # mlit's network is down, its fax line is not: moj's fax reaches mlit's own line (DID → disaster-hq).
    mlit_line = LoopbackLine(pair.sockets / "mlit.sock", pair.sockets / "nowhere.sock")
    mlit_line.listen(mlit.fax.handler(mlit_line.name))
    try:
        moj_line = LoopbackLine(pair.sockets / "moj.sock", pair.sockets / "mlit.sock")
        assert moj.fax.run_due_jobs(moj_line) == 1
        assert moj.fax.job(job_id).state == "done"
        deadline = time.monotonic() + 120
        while not (faxes := [i for i in mlit.delivery.inbox("disaster-hq", None) if i.source == "fax"]):
            assert time.monotonic() < deadline, "the fax never reached mlit's inbox"
            time.sleep(0.2)
    finally:
        mlit_line.close()
    [faxed_copy] = faxes
    assert faxed_copy.sender == "fax:03-3580-4111" and not faxed_copy.authenticated

    with _mlit_back(pair):
        assert moj.delivery.deliver_due(limit=20).delivered == 1
    # The sender has both: the fax outcome and the signed receipt of the electronic delivery.
    [status] = moj.delivery.status(message_id, "tanaka")
    assert status.state == "delivered" and status.has_receipt
    assert status.fax_outcome is not None and status.fax_outcome.code == "sent"
    [receipt] = moj.delivery.receipts(message_id, "tanaka")
    assert receipt.status == "valid"
    # The recipient holds the signed original, marked as received by fax first and linked to the fax.
    [original] = [i for i in mlit.delivery.inbox("disaster-hq", None) if i.message_id == message_id]
    assert original.authenticated and original.source == "inkless"
    assert original.fax_first is not None
    assert (original.fax_first.number, original.fax_first.from_number, original.fax_first.pages,
            original.fax_first.job) == ("03-5253-8111", "03-3580-4111", 4, job_id)
    assert original.fax_copy_message_id == faxed_copy.message_id


def _post_signed(pair: Pair, url: str, extra: dict[str, str], covered: dict[str, str]) -> httpx.Response:
    """A delivery request from moj, signed by moj's node key over ``covered``, with ``extra`` headers added."""
    assert isinstance(pair.moj.peers, PeerService)
    key, cert = pair.moj.peers.node_key()
    body = b"not an envelope"  # refused later, if the headers pass
    headers = httpsig.sign_request("POST", url + MESSAGES_PATH, body, key, "moj",
                                   int(pair.clock.now().timestamp()), covered=covered)
    headers[httpsig.NODE_CERTIFICATE_HEADER] = certificate_header(cert)
    headers.update(extra)
    headers["Content-Type"] = ENVELOPE_MEDIA_TYPE
    return httpx.post(url + MESSAGES_PATH, content=body, headers=headers, timeout=30)


def test_a_fax_first_claim_outside_the_signature_is_refused(pair: Pair) -> None:
    base = {SENDER_HEADER: "civil-affairs@moj", RECIPIENT_HEADER: "disaster-hq@mlit",
            MESSAGE_ID_HEADER: "7d1f7f62-0c5e-4a8e-9a57-0f7f9e9f6c01"}
    claim = FaxFirst("03-5253-8111", "03-3580-4111", pair.clock.now(), 4, 1).header()
    with _mlit_back(pair) as url:
        # Signed without the header, the header added afterwards (by anyone on the way): refused.
        answer = _post_signed(pair, url, {FAX_FIRST_HEADER: claim}, base)
        assert answer.status_code == 401
        assert "inkless-fax-first" in answer.json()["detail"].lower()
        # Signed, but not a fax-first claim: refused with the reason.
        answer = _post_signed(pair, url, {}, {**base, FAX_FIRST_HEADER: '{"number":"x"}'})
        assert answer.status_code == 422
        assert "Inkless-Fax-First header has no valid fax number" in answer.json()["detail"]
