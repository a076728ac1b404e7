"""How the HTTP transport turns a peer's answers into outcomes, with httpx.MockTransport as the peer."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from inkless.clock import FixedClock
from inkless.delivery.transport_http import HttpTransport
from inkless.errors import DeliveryRejectedError, NotFoundError, PeerUnreachableError
from inkless.federation import httpsig
from inkless.federation.client import FederationClient, certificate_header
from inkless.federation.httpsig import HttpMessage
from tests.unit.test_peers_documents import ThrowawayCA

NODE_EKU = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
URL = "http://127.0.0.1:9999"
CLOCK = FixedClock(datetime(2026, 11, 30, 9, 0, tzinfo=UTC))


@dataclass
class FakePeer:
    node_id: str
    url: str
    ca_certificate: x509.Certificate


@dataclass
class FakePeers:
    """What HttpTransport needs from the peer service: lookup, client, and a record of contacts."""

    peer: FakePeer
    client: FederationClient
    contacts: list[tuple[str | None, bool | None]] = field(default_factory=list)

    def get(self, node_id: str) -> FakePeer:
        if node_id != self.peer.node_id:
            raise NotFoundError(f"no pinned peer {node_id!r}")
        return self.peer

    def record_contact(self, node_id: str, error: str | None, *, reachable: bool | None = None) -> None:
        self.contacts.append((error, reachable))


Answer = Callable[[httpx.Request], tuple[int, bytes, bool]]


def _transport(answer: Answer, forge: str | None = None) -> tuple[HttpTransport, FakePeers, list[httpx.Request]]:
    moj_ca, npa_ca = ThrowawayCA.create("moj"), ThrowawayCA.create("npa")
    moj_key, moj_cert = moj_ca.issue(NODE_EKU)
    npa_key, npa_cert = npa_ca.issue(NODE_EKU)
    if forge == "foreign":
        # A certificate with npa's name from a CA nobody pinned.
        npa_key, npa_cert = ThrowawayCA.create("npa").issue(NODE_EKU)
    assert isinstance(moj_key, ec.EllipticCurvePrivateKey) and isinstance(npa_key, ec.EllipticCurvePrivateKey)
    seen: list[httpx.Request] = []
    answered: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status, body, sign = answer(request)
        headers: dict[str, str] = {}
        if sign:
            message = HttpMessage(dict(request.headers.items()), request.method, str(request.url))
            created = int(CLOCK.now().timestamp()) - (3600 if forge == "stale" else 0)
            headers = httpsig.sign_response(status, body, message, npa_key, "npa", created)
            headers[httpsig.NODE_CERTIFICATE_HEADER] = certificate_header(npa_cert)
            if forge == "replay" and answered:
                # The answer to an earlier request, played back.
                headers = answered[0]
            answered.append(headers)
        return httpx.Response(status, content=body, headers=headers)

    client = FederationClient("moj", lambda: (moj_key, moj_cert), CLOCK,
                              http=httpx.Client(transport=httpx.MockTransport(handler)))
    peers = FakePeers(FakePeer("npa", URL, npa_ca.cert), client)
    return HttpTransport(peers), peers, seen  # type: ignore[arg-type]


def _detail(reason: str) -> bytes:
    return json.dumps({"detail": reason}).encode()


def test_a_signed_200_is_the_receipt_and_the_request_was_signed() -> None:
    transport, peers, seen = _transport(lambda r: (200, b"receipt-der", True))
    assert transport.deliver("npa", "civil-affairs@moj", "security@npa", "m-1", b"envelope") == b"receipt-der"
    [request] = seen
    assert request.url == URL + "/federation/v1/messages"
    assert request.headers["inkless-message-id"] == "m-1" and request.content == b"envelope"
    signature = httpsig.parse_signature(dict(request.headers.items()))
    assert signature.params.keyid == "moj" and httpsig.Component("inkless-recipient") in signature.params.components
    assert peers.contacts == [(None, True)]


@pytest.mark.parametrize(
    ("status", "body", "signed", "outcome", "reason"),
    [
        (401, _detail("node 'moj' is not pinned here"), True, PeerUnreachableError, "not pinned here"),
        (429, _detail("slow down"), True, PeerUnreachableError, "slow down"),
        (503, _detail("try again later"), True, PeerUnreachableError, "try again later"),
        (200, b"receipt", False, PeerUnreachableError, "without a valid signature"),
        (502, b"<html>bad gateway</html>", False, PeerUnreachableError, "without a valid signature"),
        (413, _detail("larger than this node's limit"), True, DeliveryRejectedError, "larger than this node's limit"),
        (422, _detail("tampered envelope"), True, DeliveryRejectedError, "tampered envelope"),
        (409, _detail("another envelope with this id"), True, DeliveryRejectedError, "another envelope"),
        (413, b"<html>Request Entity Too Large</html>", False, DeliveryRejectedError, "HTTP 413"),
    ],
)
def test_answers_map_to_retry_or_rejection(status: int, body: bytes, signed: bool, outcome: type[Exception],
                                           reason: str) -> None:
    transport, peers, _ = _transport(lambda r: (status, body, signed))
    with pytest.raises(outcome) as info:
        transport.deliver("npa", "civil-affairs@moj", "security@npa", "m-1", b"envelope")
    text = info.value.reason if isinstance(info.value, DeliveryRejectedError) else str(info.value)
    assert reason in text
    [(error, reachable)] = peers.contacts
    assert error is not None
    assert reachable is (status < 500 and signed)


def test_network_failures_and_unknown_peers() -> None:
    def refuse(request: httpx.Request) -> tuple[int, bytes, bool]:
        raise httpx.ConnectError("connection refused", request=request)

    transport, peers, _ = _transport(refuse)
    with pytest.raises(PeerUnreachableError, match="unreachable: connection refused"):
        transport.deliver("npa", "civil-affairs@moj", "security@npa", "m-1", b"envelope")
    assert peers.contacts == [("npa is unreachable: connection refused (http://127.0.0.1:9999/federation/v1/messages)",
                               False)]

    def slow(request: httpx.Request) -> tuple[int, bytes, bool]:
        raise httpx.ReadTimeout("timed out", request=request)

    transport, _, _ = _transport(slow)
    with pytest.raises(PeerUnreachableError, match="did not answer in time"):
        transport.deliver("npa", "civil-affairs@moj", "security@npa", "m-1", b"envelope")
    with pytest.raises(DeliveryRejectedError) as info:
        transport.deliver("kyoto", "civil-affairs@moj", "x@kyoto", "m-1", b"envelope")
    assert "not pinned on this node" in info.value.reason


def test_an_answer_that_is_stale_foreign_or_for_another_request_is_not_trusted() -> None:
    for forge, reason in (("stale", "stale"), ("foreign", "not issued by the pinned CA"),
                          ("replay", "does not verify")):
        transport, peers, _ = _transport(lambda r: (200, b"receipt", True), forge)
        if forge == "replay":
            transport.deliver("npa", "civil-affairs@moj", "security@npa", "m-1", b"envelope")
        with pytest.raises(PeerUnreachableError, match=reason):
            transport.deliver("npa", "civil-affairs@moj", "security@npa", "m-1", b"envelope")
        assert peers.contacts[-1][1] is False
