"""Delivery between two nodes through the transport seam: a fake transport hands the envelope to the
other node's ``receive`` in-process (the HTTP path is tested by the federation tests), so what is
checked here is the delivery core: trust anchors per node, receipts verified against the receiver's CA,
policy for confidential mail, and how rejections and bad receipts show up for the sender."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from inkless.app import Node, init_node
from inkless.config import load_settings
from inkless.delivery.service import NewDocument
from inkless.delivery.transport import RemoteOffice, split_address
from inkless.errors import DeliveryRejectedError, EnvelopeError, NotFoundError, PolicyError
from inkless.pki.model import CertPurpose
from inkless.streams import StoredBody
from tests.helpers.nodes import refused_url, settle_pending_work


class Peers:
    """What node ``me`` knows of the other nodes: their CA (pinned or not) and office certificates."""

    def __init__(self, nodes: dict[str, Node], pinned: set[str]) -> None:
        self.nodes = nodes
        self.pinned = pinned

    def is_pinned(self, node_id: str) -> bool:
        return node_id in self.pinned

    def ca_certificate(self, node_id: str) -> x509.Certificate:
        with self.nodes[node_id].db.begin() as conn:
            return x509.load_der_x509_certificate(self.nodes[node_id].pki.ca_certificate(conn).der)

    def office(self, address: str) -> RemoteOffice:
        code, node_id = split_address(address)
        if node_id not in self.nodes:
            raise NotFoundError(f"no node {node_id}")
        node = self.nodes[node_id]
        office = node.directory.office(code)
        with node.db.begin() as conn:
            enc = node.pki.certificate(conn, CertPurpose.OFFICE_ENCRYPTION, code).der
            sig = node.pki.certificate(conn, CertPurpose.OFFICE_SIGNING, code).der
        return RemoteOffice(address, office.name, office.fax_number, x509.load_der_x509_certificate(enc),
                            x509.load_der_x509_certificate(sig))


class InProcess:
    """Hands envelopes to the peer's receive(), mapping refusals as the federation endpoint does."""

    def __init__(self, nodes: dict[str, Node]) -> None:
        self.nodes = nodes
        self.tamper = False
        self.garble_receipt = False

    def deliver(self, peer_node_id: str, sender_address: str, recipient_address: str, message_id: str,
                body: StoredBody) -> bytes:
        envelope = body.read_all()
        if self.tamper:
            envelope = envelope[:-20] + bytes([envelope[-20] ^ 1]) + envelope[-19:]
        delivery = self.nodes[peer_node_id].delivery
        assert delivery is not None
        try:
            receipt = delivery.receive(envelope, sender_address, recipient_address)
        except EnvelopeError as exc:
            raise DeliveryRejectedError(f"{peer_node_id} refused the envelope: {exc}", reason=str(exc)) from None
        return receipt[:-3] + b"\x00\x00\x00" if self.garble_receipt else receipt


def make(folder: Path, node_id: str, offices: list[tuple[str, str]], users: list[tuple[str, str, int]]) -> Node:
    settings = load_settings(folder / node_id, env={}, overrides={
        "node_id": node_id, "organisation": node_id, "base_url": refused_url(f"/{node_id}")})
    node = init_node(settings)
    for code, name in offices:
        node.directory.add_office(code, name)
    for login, office, clearance in users:
        node.directory.add_user(login, office, "clerk", clearance, login)
    return node


@pytest.fixture(scope="module")
def shared_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, Node, InProcess]]:
    folder = tmp_path_factory.mktemp("pair")
    a = make(folder, "pref", [("disaster", "防災課")], [("kato", "disaster", 3)])
    b = make(folder, "npa", [("security", "警備課")], [("mori", "security", 3)])
    nodes = {"pref": a, "npa": b}
    transport = InProcess(nodes)
    # The prefecture pins the police agency but the agency has not pinned the prefecture yet.
    a.peers, a.transport = Peers(nodes, {"npa"}), transport
    b.peers, b.transport = Peers(nodes, set()), transport
    try:
        yield a, b, transport
    finally:
        a.close()
        b.close()


@pytest.fixture
def pair(shared_pair: tuple[Node, Node, InProcess]) -> tuple[Node, Node, InProcess]:
    """The two nodes as the module made them: pref pins npa, npa pins nobody, nothing queued, no tampering."""
    a, b, transport = shared_pair
    a.peers, b.peers = Peers(transport.nodes, {"npa"}), Peers(transport.nodes, set())
    transport.tamper = transport.garble_receipt = False
    for node in (a, b):
        settle_pending_work(node)
    return shared_pair


def test_delivery_across_nodes(pair: tuple[Node, Node, InProcess]) -> None:
    a, b, transport = pair
    assert a.delivery is not None and b.delivery is not None
    doc = NewDocument("被害状況.pdf", b"%PDF-1.4 damage report")
    # Not pinned on the receiving side: the receiver refuses, the sender sees a rejection with the reason.
    first = a.delivery.send("kato", "disaster", ["security@npa"], [], "被害状況", [doc], classification=1)
    a.delivery.deliver_due()
    [status] = a.delivery.status(first, "kato")
    assert status.state == "rejected" and "pref is not a pinned peer of npa" in (status.last_error or "")

    b.peers = Peers(transport.nodes, {"pref"})
    second = a.delivery.send("kato", "disaster", ["security@npa"], [], "被害状況 2", [doc], classification=2)
    a.delivery.deliver_due()
    [status] = a.delivery.status(second, "kato")
    assert status.state == "delivered" and status.has_receipt
    [receipt] = a.delivery.receipts(second, "kato")
    assert receipt.status == "valid" and receipt.signer_address == "security@npa"
    opened = b.delivery.open_message(second, "mori")
    assert opened.documents[0].data == doc.data and opened.signer_address == "disaster@pref"
    # The reply goes back the same way, verified against the prefecture's CA by its sender.
    reply = b.delivery.reply(second, "mori", None, [NewDocument("了解.pdf", b"%PDF-1.4 ack")])
    b.delivery.deliver_due()
    assert [s.state for s in b.delivery.status(reply, "mori")] == ["delivered"]
    assert a.delivery.open_message(reply, "kato").metadata.reply_to == second


def test_tampering_in_transit_and_bad_receipts_are_visible(pair: tuple[Node, Node, InProcess]) -> None:
    a, b, transport = pair
    assert a.delivery is not None
    b.peers = Peers(transport.nodes, {"pref"})
    transport.tamper = True
    try:
        mid = a.delivery.send("kato", "disaster", ["security@npa"], [], "途中改ざん", [NewDocument("x.pdf", b"%PDF")])
        a.delivery.deliver_due()
    finally:
        transport.tamper = False
    [status] = a.delivery.status(mid, "kato")
    assert status.state == "rejected" and status.last_error

    transport.garble_receipt = True
    try:
        mid = a.delivery.send("kato", "disaster", ["security@npa"], [], "受領証", [NewDocument("y.pdf", b"%PDF")])
        a.delivery.deliver_due()
    finally:
        transport.garble_receipt = False
    [status] = a.delivery.status(mid, "kato")
    # A receipt that does not verify is not a delivery: retried, with the reason shown.
    assert status.state == "retrying" and status.last_error and not status.has_receipt

    # Confidential mail only to pinned peers.
    a.peers = Peers(transport.nodes, set())
    try:
        with pytest.raises(PolicyError, match="not pinned"):
            a.delivery.send("kato", "disaster", ["security@npa"], [], "秘", [NewDocument("z.pdf", b"%PDF")],
                            classification=2)
    finally:
        a.peers = Peers(transport.nodes, {"npa"})
