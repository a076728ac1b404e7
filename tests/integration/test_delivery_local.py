"""Delivery between offices of one node, on SQLite and PostgreSQL: send, deliver, inbox, open, export,
and every kind of bad input refused with nothing else changed."""

from __future__ import annotations

import dataclasses
import io
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas
from sqlalchemy import func, select

from inkless.app import Node, init_node
from inkless.clock import FixedClock
from inkless.config import load_settings
from inkless.db import tables as t
from inkless.db.tables_delivery import inbox, outbox
from inkless.delivery import envelope as env
from inkless.delivery.receipt import verify_receipt
from inkless.delivery.service import DeliveryService, NewDocument, build_delivery
from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, create_demo
from inkless.errors import ConflictError, EnvelopeError, MessageTooLargeError, NotFoundError, PolicyError
from inkless.pki.model import CertPurpose
from tests.conftest import BACKENDS
from tests.helpers.db import fresh_database
from tests.helpers.nodes import refused_url, settle_pending_work

CIVIL = f"civil-affairs@{DEMO_NODE_ID}"
CRIMINAL = f"criminal-affairs@{DEMO_NODE_ID}"
SECRETARIAT = f"secretariat@{DEMO_NODE_ID}"


def pdf(text: str) -> bytes:
    """A small but real one-page PDF (the same bytes for the same text)."""
    out = io.BytesIO()
    page = canvas.Canvas(out, pagesize=A4, invariant=True)
    page.drawString(72, 720, text)
    page.showPage()
    page.save()
    return out.getvalue()


@pytest.fixture(scope="module", params=BACKENDS)
def shared_node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """One demo node per backend for the whole module (offices and keys are expensive)."""
    folder = tmp_path_factory.mktemp("delivery")
    with fresh_database(str(request.param), folder) as url:
        settings = load_settings(folder, env={}, overrides={
            "node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION, "database_url": url,
            "base_url": refused_url(),
        })
        node = init_node(settings)
        create_demo(node.directory)
        try:
            yield node
        finally:
            node.close()


@pytest.fixture
def shared(shared_node: Node) -> Node:
    """The module's demo node with no message of an earlier test still waiting for delivery."""
    settle_pending_work(shared_node)
    return shared_node


def service(node: Node) -> DeliveryService:
    assert node.delivery is not None
    return node.delivery


def counts(node: Node) -> tuple[int, int, int]:
    with node.db.begin() as conn:
        return (
            conn.execute(select(func.count()).select_from(inbox)).scalar_one(),
            conn.execute(select(func.count()).select_from(outbox)).scalar_one(),
            conn.execute(select(func.count()).select_from(t.audit_entries)).scalar_one(),
        )


def actions(node: Node, object_id: str) -> list[str]:
    with node.db.begin() as conn:
        return list(conn.execute(select(t.audit_entries.c.action).where(t.audit_entries.c.object_id == object_id)
                                 .order_by(t.audit_entries.c.idx)).scalars())


def test_send_deliver_open_export_between_two_offices(shared: Node, tmp_path: Path) -> None:
    svc = service(shared)
    docs = [NewDocument("申請書.pdf", pdf("Application 1")), NewDocument("notes.txt", b"plain\n", "text/plain")]
    message_id = svc.send("tanaka", "civil-affairs", [CRIMINAL], [], "照会の件", docs, classification=1)
    assert [s.state for s in svc.status(message_id, "tanaka")] == ["queued"]

    result = svc.deliver_due()
    assert (result.delivered, result.retrying) == (1, 0)
    [status] = svc.status(message_id, "tanaka")
    assert status.state == "delivered" and status.has_receipt and status.received_at is not None

    items = [i for i in svc.inbox("criminal-affairs", "takahashi") if i.message_id == message_id]
    assert len(items) == 1 and items[0].subject == "照会の件" and items[0].sender == CIVIL and not items[0].opened
    opened = svc.open_message(message_id, "takahashi")
    assert [(d.name, d.data) for d in opened.documents] == [(d.name, d.data) for d in docs]
    assert opened.metadata.subject == "照会の件" and opened.signer_address == CIVIL
    assert [i.opened for i in svc.inbox("criminal-affairs", "takahashi") if i.message_id == message_id] == [True]

    # The sender's copy opens too (it is encrypted to the sending office as well).
    assert svc.open_message(message_id, "tanaka").documents[0].data == docs[0].data

    files = svc.export(message_id, "tanaka", tmp_path / "out")
    names = sorted(p.name for p in files)
    assert names == sorted(["申請書.pdf", "notes.txt", "envelope.p7m", "receipt-criminal-affairs_at_moj.p7s"])
    receipt = (tmp_path / "out" / "receipt-criminal-affairs_at_moj.p7s").read_bytes()
    with shared.db.begin() as conn:
        ca = x509.load_der_x509_certificate(shared.pki.ca_certificate(conn).der)
    checked = verify_receipt(receipt, ca, shared.clock.now(), message_id=message_id,
                             envelope_sha256=env.envelope_digest((tmp_path / "out" / "envelope.p7m").read_bytes()),
                             recipient=CRIMINAL)
    assert checked.signer_address == CRIMINAL
    [info] = svc.receipts(message_id, "tanaka")
    assert info.status == "valid" and info.signer_address == CRIMINAL

    assert actions(shared, message_id) == [
        "message.sent", "message.received", "message.delivered", "message.opened", "message.opened",
        "message.exported",
    ]


def test_duplicate_delivery_gives_the_same_receipt_and_one_copy(shared: Node) -> None:
    svc = service(shared)
    message_id = svc.send("takahashi", "criminal-affairs", [CIVIL, SECRETARIAT], [], "二重配達",
                          [NewDocument("a.pdf", pdf("dup"))])
    svc.deliver_due()
    envelope = export_envelope(shared, message_id)
    first = svc.receive(envelope, CRIMINAL, CIVIL)
    before = counts(shared)
    assert svc.receive(envelope, CRIMINAL, CIVIL) == first
    assert counts(shared) == before
    with shared.db.begin() as conn:
        stored = conn.execute(select(outbox.c.receipt).where(outbox.c.message_id == message_id,
                                                             outbox.c.recipient == CIVIL)).scalar_one()
    assert stored == first
    assert [i.message_id for i in svc.inbox("civil-affairs", None)].count(message_id) == 1


def export_envelope(node: Node, message_id: str) -> bytes:
    sent = service(node).message(message_id, None)
    return node.blobs.get(sent.envelope_sha256)


def forge(node: Node, message_id: str, sender: str, recipient: str, subject: str) -> bytes:
    """A validly signed envelope from ``sender`` reusing ``message_id``: what a replay with other content looks like."""
    code = sender.split("@")[0]
    with node.db.begin() as conn:
        key, cert = node.pki.key_and_certificate(conn, CertPurpose.OFFICE_SIGNING, code)
        ca = x509.load_der_x509_certificate(node.pki.ca_certificate(conn).der)
        rcpt = x509.load_der_x509_certificate(
            node.pki.certificate(conn, CertPurpose.OFFICE_ENCRYPTION, recipient.split("@")[0]).der)
    meta = env.MessageMetadata(message_id, sender, (recipient,), subject, 0, "normal", node.clock.now())
    mime = env.build_mime(meta, [env.Document("x.pdf", "application/pdf", pdf("forged"))])
    return env.encrypt(env.sign(mime, key, cert, [ca]), [rcpt])


def test_bad_envelopes_are_refused_audited_and_change_nothing(shared: Node) -> None:
    svc = service(shared)
    message_id = svc.send("tanaka", "civil-affairs", [CRIMINAL], [], "改ざん検査", [NewDocument("a.pdf", pdf("t"))])
    svc.deliver_due()
    good = export_envelope(shared, message_id)
    tampered = bytearray(good)
    tampered[len(tampered) // 2] ^= 0x01
    cases: list[tuple[bytes, str, str, type[Exception], str]] = [
        (bytes(tampered), CIVIL, CRIMINAL, EnvelopeError, ""),
        (b"garbage, not CMS at all", CIVIL, CRIMINAL, EnvelopeError, "cannot be opened"),
        (good, CIVIL, SECRETARIAT, EnvelopeError, "cannot be opened"),  # not encrypted to secretariat
        (good, SECRETARIAT, CRIMINAL, EnvelopeError, "claims to be"),  # signed by civil-affairs
        (good, CIVIL, "nobody@moj", EnvelopeError, "no such office"),
        (good, CIVIL, "criminal-affairs@other", EnvelopeError, "not an office of node"),
        (forge(shared, message_id, CIVIL, CRIMINAL, "差し替え"), CIVIL, CRIMINAL, ConflictError, "different envelope"),
    ]
    for data, sender, recipient, error, words in cases:
        before = counts(shared)
        with pytest.raises(error) as caught:
            svc.receive(data, sender, recipient)
        assert words in str(caught.value)
        inbox_rows, outbox_rows, audit_rows = counts(shared)
        assert (inbox_rows, outbox_rows, audit_rows) == (before[0], before[1], before[2] + 1)
        with shared.db.begin() as conn:
            last = conn.execute(select(t.audit_entries.c.action).order_by(t.audit_entries.c.idx.desc())).scalar()
        assert last == ("message.replay_refused" if error is ConflictError else "message.refused")
    # The genuine message is still there, unchanged, and opens.
    assert svc.open_message(message_id, "takahashi").metadata.subject == "改ざん検査"


def forge_metadata(node: Node, signer: str, encrypted_to: str, **meta: object) -> bytes:
    """An envelope really signed by ``signer``'s office key, with metadata set by the caller."""
    fields: dict[str, object] = {"message_id": str(uuid.uuid4()), "sender": signer, "recipients": (encrypted_to,),
                                 "subject": "照会", "classification": 0, "priority": "normal",
                                 "created_at": node.clock.now(), **meta}
    with node.db.begin() as conn:
        key, cert = node.pki.key_and_certificate(conn, CertPurpose.OFFICE_SIGNING, signer.split("@")[0])
        ca = x509.load_der_x509_certificate(node.pki.ca_certificate(conn).der)
        rcpt = x509.load_der_x509_certificate(
            node.pki.certificate(conn, CertPurpose.OFFICE_ENCRYPTION, encrypted_to.split("@")[0]).der)
    mime = env.build_mime(env.MessageMetadata(**fields),  # type: ignore[arg-type]
                          [env.Document("x.pdf", "application/pdf", pdf("forged"))])
    return env.encrypt(env.sign(mime, key, cert, [ca]), [rcpt])


def test_every_receive_refusal_names_its_reason_and_is_audited(shared: Node) -> None:
    svc = service(shared)
    small = DeliveryService(dataclasses.replace(shared.settings, max_message_bytes=10_000), shared.db, shared.blobs,
                            shared.pki, shared.directory, shared.audit, shared.box, shared.clock)
    good = forge_metadata(shared, CIVIL, CRIMINAL)
    cases: list[tuple[DeliveryService, bytes, str, str, str]] = [
        # A certified office signs metadata naming another office as the sender: replies would go there.
        (svc, forge_metadata(shared, CIVIL, CRIMINAL, sender=SECRETARIAT), CIVIL, CRIMINAL,
         f"the envelope says it is from {SECRETARIAT}, the delivery claims {CIVIL}"),
        (svc, forge_metadata(shared, CIVIL, CRIMINAL, recipients=(SECRETARIAT,)), CIVIL, CRIMINAL,
         f"the envelope is not addressed to {CRIMINAL}"),
        (svc, forge_metadata(shared, CIVIL, CRIMINAL, message_id="42; DROP TABLE inbox"), CIVIL, CRIMINAL,
         "the message id is not a UUID"),
        (svc, good, CIVIL, "criminal-affairs", "address 'criminal-affairs' must look like office-code@node-id"),
        (svc, good, "civil-affairs@", CRIMINAL, "address 'civil-affairs@' must look like office-code@node-id"),
        (small, b"\x30" * 100_000, CIVIL, CRIMINAL, "over this node's limit of"),
    ]
    for receiver, data, sender, recipient, words in cases:
        before = counts(shared)
        with pytest.raises(EnvelopeError) as caught:
            receiver.receive(data, sender, recipient)
        assert words in str(caught.value), (words, str(caught.value))
        assert counts(shared) == (before[0], before[1], before[2] + 1)
        with shared.db.begin() as conn:
            last = conn.execute(select(t.audit_entries.c.action, t.audit_entries.c.entry)
                                .order_by(t.audit_entries.c.idx.desc())).first()
        assert last is not None and last.action == "message.refused"
        assert words in json.loads(last.entry)["details"]["reason"]
    # The same envelope, delivered as it should be, is accepted: each refusal above was for its one flaw.
    assert svc.receive(good, CIVIL, CRIMINAL)


def test_oversized_and_invalid_sends_change_nothing(shared: Node) -> None:
    small = dataclasses.replace(shared.settings, max_message_bytes=10_000)
    svc = DeliveryService(small, shared.db, shared.blobs, shared.pki, shared.directory, shared.audit,
                          shared.box, shared.clock)
    before = counts(shared)
    with pytest.raises(MessageTooLargeError) as caught:
        svc.send("tanaka", "civil-affairs", [CRIMINAL], [], "大きい", [NewDocument("big.pdf", b"x" * 10_001)])
    assert caught.value.limit == 10_000 and "10,000" in str(caught.value)
    bad: list[tuple[str | None, str, list[str], int, type[Exception]]] = [
        ("tanaka", "civil-affairs", [CRIMINAL], 2, PolicyError),  # clearance 1 < 2
        ("tanaka", "criminal-affairs", [CIVIL], 0, PolicyError),  # not her office
        ("tanaka", "civil-affairs", ["nobody@moj"], 0, NotFoundError),
        ("tanaka", "civil-affairs", ["someone@unknown-node"], 0, NotFoundError),
    ]
    for login, office, to, level, error in bad:
        with pytest.raises(error):
            svc.send(login, office, to, [], "件名", [NewDocument("a.pdf", b"%PDF-")], classification=level)
    assert counts(shared) == before


def test_who_may_open_what(shared: Node) -> None:
    svc = service(shared)
    secret = svc.send("sato", "civil-affairs", [CRIMINAL], [], "秘文書", [NewDocument("s.pdf", pdf("s"))],
                      classification=2)
    svc.deliver_due()
    assert svc.open_message(secret, "takahashi").metadata.classification == 2  # criminal, clearance 2
    with pytest.raises(PolicyError):
        svc.open_message(secret, "tanaka")  # civil (the sender office), clearance 1
    with pytest.raises(NotFoundError):
        svc.open_message(secret, "yamada")  # secretariat: neither sender nor recipient
    with pytest.raises(NotFoundError):
        svc.status(secret, "takahashi")  # status is for the sending office
    listed = [i for i in svc.inbox("criminal-affairs", "takahashi") if i.message_id == secret]
    assert listed[0].subject == "秘文書"
    with pytest.raises(PolicyError):
        svc.inbox("criminal-affairs", "tanaka")
    # Forwarding may raise the classification but not lower it (unless an admin does).
    with pytest.raises(PolicyError):
        svc.forward(secret, "takahashi", [SECRETARIAT], classification=1)
    fwd = svc.forward(secret, "takahashi", [SECRETARIAT], classification=2)
    svc.deliver_due()
    assert svc.open_message(fwd, "yamada").documents[0].data == pdf("s")
    reply = svc.reply(fwd, "yamada", None, [NewDocument("r.pdf", pdf("r"))])
    svc.deliver_due()
    opened = svc.open_message(reply, "ito")
    assert opened.metadata.reply_to == fwd and opened.metadata.subject.startswith("Re: ")


def test_distribution_list_and_fax_deposit(shared: Node) -> None:
    svc = service(shared)
    svc.set_list("all-moj", [CIVIL, CRIMINAL, SECRETARIAT])
    message_id = svc.send("yamada", "secretariat", [], ["all-moj"], "全庁通知", [NewDocument("n.pdf", pdf("n"))],
                          priority="urgent")
    svc.deliver_due()
    assert sorted((s.recipient, s.state) for s in svc.status(message_id, "yamada")) == [
        (CIVIL, "delivered"), (CRIMINAL, "delivered"), (SECRETARIAT, "delivered")]
    fax_id = svc.deposit_external("civil-affairs", [("fax-1.pdf", pdf("fax"), "application/pdf")], "fax",
                                  {"from": "+81-3-1234-5678", "pages": 1}, "FAX 受信")
    [item] = [i for i in svc.inbox("civil-affairs", "tanaka") if i.message_id == fax_id]
    assert item.source == "fax" and not item.authenticated and item.sender == "fax:+81-3-1234-5678"
    opened = svc.open_message(fax_id, "tanaka")
    assert opened.documents[0].data == pdf("fax") and opened.metadata.facts["from"] == "+81-3-1234-5678"


def test_two_workers_never_claim_the_same_row(shared: Node) -> None:
    svc = service(shared)
    for i in range(6):
        svc.send("yamada", "secretariat", [CIVIL, CRIMINAL], [], f"並行 {i}", [NewDocument("p.pdf", b"%PDF-1")])
    claimed: list[list[tuple[str, str]]] = [[], []]
    barrier = threading.Barrier(2)

    def worker(n: int) -> None:
        other = build_delivery(shared)  # its own service, as a second worker process would have
        barrier.wait()
        while batch := other.claim(limit=2):
            claimed[n].extend(batch)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    everything = claimed[0] + claimed[1]
    assert len(everything) == len(set(everything)) == 12


def test_an_attempt_cut_short_by_a_killed_worker_still_counts(shared: Node) -> None:
    clock = FixedClock(shared.clock.now())
    svc = DeliveryService(shared.settings, shared.db, shared.blobs, shared.pki, shared.directory, shared.audit,
                          shared.box, clock, transport=lambda: Unreachable(), peers=lambda: FakePeers(shared))
    message_id = svc.send("yamada", "secretariat", ["records@far"], [], "遠隔", [NewDocument("a.pdf", b"%PDF-1")])
    # A worker claims the row, dials the peer, and is killed (kill -9) before it records anything.
    assert (message_id, "records@far") in svc.claim(limit=50)
    clock.advance(seconds=shared.settings.delivery_lease_seconds + 1)
    svc.deliver_due(limit=50)  # another worker takes the row over once the lease has run out
    [row] = [r for r in svc.outbox_rows() if r.message_id == message_id]
    assert row.state == "retrying" and row.attempts == 2


def test_backoff_and_expiry_with_a_fixed_clock(shared: Node) -> None:
    clock = FixedClock(shared.clock.now())
    svc = DeliveryService(shared.settings, shared.db, shared.blobs, shared.pki, shared.directory, shared.audit,
                          shared.box, clock, transport=lambda: Unreachable(), peers=lambda: FakePeers(shared))
    message_id = svc.send("yamada", "secretariat", ["records@far"], [], "遠隔", [NewDocument("a.pdf", b"%PDF-1")])
    own = [r for r in svc.outbox_rows() if r.message_id == message_id]
    assert [r.state for r in own] == ["queued"]
    delays = []
    for attempt in range(1, 6):
        svc.deliver_due()
        [row] = [r for r in svc.outbox_rows() if r.message_id == message_id]
        assert row.state == "retrying" and row.attempts == attempt and "down for maintenance" in (row.last_error or "")
        delay = (row.next_attempt_at - clock.now()).total_seconds()
        step = min(3600, 30 * 2 ** (attempt - 1))
        assert step / 2 <= delay <= step
        delays.append(delay)
        clock.advance(seconds=delay)
    clock.current = own[0].expires_at
    svc.deliver_due()
    [row] = [r for r in svc.outbox_rows() if r.message_id == message_id]
    assert row.state == "expired" and "not delivered within 72 h" in (row.last_error or "")
    assert "message.expired" in actions(shared, message_id)
    assert actions(shared, message_id).count("message.delivery_failed") == 5


class Unreachable:
    def deliver(self, peer_node_id: str, sender_address: str, recipient_address: str, message_id: str,
                envelope: bytes) -> bytes:
        from inkless.errors import PeerUnreachableError

        raise PeerUnreachableError(f"{peer_node_id} is down for maintenance")


class FakePeers:
    """One pinned peer 'far' whose office 'records' reuses a local office's certificates."""

    def __init__(self, node: Node) -> None:
        with node.db.begin() as conn:
            self._enc = x509.load_der_x509_certificate(
                node.pki.certificate(conn, CertPurpose.OFFICE_ENCRYPTION, "secretariat").der)
            self._ca = x509.load_der_x509_certificate(node.pki.ca_certificate(conn).der)

    def is_pinned(self, node_id: str) -> bool:
        return node_id == "far"

    def ca_certificate(self, node_id: str) -> x509.Certificate:
        return self._ca

    def office(self, address: str) -> object:
        from inkless.delivery.transport import RemoteOffice

        if address != "records@far":
            raise NotFoundError(f"no office {address}")
        return RemoteOffice(address, "記録課", None, self._enc, self._enc)


def test_urgent_rows_are_claimed_first(shared: Node) -> None:
    # A clock a day back: only the rows sent here are due at that time.
    clock = FixedClock(shared.clock.now() - timedelta(days=1))
    svc = DeliveryService(shared.settings, shared.db, shared.blobs, shared.pki, shared.directory, shared.audit,
                          shared.box, clock)
    normal = svc.send("ito", "criminal-affairs", [CIVIL], [], "通常", [NewDocument("n.pdf", b"%PDF-1")])
    clock.advance(seconds=1)
    urgent = svc.send("ito", "criminal-affairs", [CIVIL], [], "至急", [NewDocument("u.pdf", b"%PDF-1")],
                      priority="urgent")
    assert svc.claim(limit=1) == [(urgent, CIVIL)]
    assert svc.claim(limit=1) == [(normal, CIVIL)]
    assert svc.claim(limit=1) == []


def test_the_background_task_delivers(shared: Node) -> None:
    from inkless import workers

    workers._load_tasks()
    [task] = [t for t in workers.TASKS if t.name == "delivery.outbox"]
    assert task.interval(shared) == shared.settings.delivery_poll_seconds
    svc = service(shared)
    message_id = svc.send(None, "secretariat", [CIVIL], [], "作業者", [NewDocument("w.pdf", b"%PDF-1")])
    task.run(shared)
    assert [s.state for s in svc.status(message_id, None)] == ["delivered"]
    assert svc.outbox_rows("queued") == []
