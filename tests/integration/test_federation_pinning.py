"""Pinning a hostile peer: each way a peer can lie while presenting the right fingerprint, refused for that reason.

The peer is played through httpx.MockTransport by :class:`HostilePeer` (a real CA, real JWS documents and real
RFC 9421 answers, each part settable wrong); the pinning node is a real node on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from inkless.app import Node
from inkless.directory.peers import PeerService
from inkless.errors import AuthenticationError, ConflictError, NotFoundError
from inkless.federation import httpsig
from inkless.federation.client import DIRECTORY_PATH, NODE_PATH, FederationClient, certificate_header
from inkless.federation.documents import DIRECTORY_DOCUMENT, NODE_DOCUMENT, sign_document
from inkless.pki.ca import fingerprint
from tests.helpers.pki import StandaloneCA

NODE_EKU = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
OFFICE_EKU = [ExtendedKeyUsageOID.EMAIL_PROTECTION]
URL = "http://127.0.0.1:9"  # never dialled: the MockTransport answers


class HostilePeer:
    """Node ``npa`` at :data:`URL`; change an attribute to make one part of its answers a lie."""

    def __init__(self, ca: StandaloneCA | None = None) -> None:
        self.ca = ca or StandaloneCA("npa CA")
        key, self.node_cert = self.ca.issue(NODE_EKU)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        self.node_key = key
        # Who signs the node document (the node certificate, unless a test forges it).
        self.document_signer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] = (key, self.node_cert)
        self.sign_answers = True
        self.offices = [self.office("security@npa")]

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.ca.cert.public_bytes(serialization.Encoding.DER))

    def office(self, address: str, *, signing_expires: datetime | None = None,
               issuer: StandaloneCA | None = None) -> dict[str, Any]:
        ca = issuer or self.ca
        _, enc = ca.issue(OFFICE_EKU, encipher=True, office=address)
        _, sig = ca.issue(OFFICE_EKU, office=address, not_after=signing_expires)
        return {
            "address": address, "name": "警備局", "fax_number": None,
            "encryption_certificate": base64.b64encode(enc.public_bytes(serialization.Encoding.DER)).decode(),
            "signing_certificate": base64.b64encode(sig.public_bytes(serialization.Encoding.DER)).decode(),
        }

    def _body(self, path: str) -> dict[str, Any]:
        now = datetime.now(self.ca.now.tzinfo).isoformat()
        if path == NODE_PATH:
            payload = {"type": NODE_DOCUMENT, "node_id": "npa", "organisation": "警察庁", "base_url": URL,
                       "ca_certificate": self.ca.pem, "ca_fingerprint": self.fingerprint, "issued_at": now}
            key, cert = self.document_signer
            return {**{k: v for k, v in payload.items() if k != "type"}, "signed": sign_document(payload, key, cert)}
        payload = {"type": DIRECTORY_DOCUMENT, "node_id": "npa", "issued_at": now, "offices": self.offices}
        return {"node_id": "npa", "offices": len(self.offices),
                "signed": sign_document(payload, self.node_key, self.node_cert)}

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path in (NODE_PATH, DIRECTORY_PATH), request.url
        body = json.dumps(self._body(request.url.path)).encode()
        headers: dict[str, str] = {}
        if self.sign_answers:
            message = httpsig.HttpMessage(dict(request.headers.items()), request.method, str(request.url))
            headers = httpsig.sign_response(200, body, message, self.node_key, "npa",
                                            int(datetime.now(self.ca.now.tzinfo).timestamp()))
            headers[httpsig.NODE_CERTIFICATE_HEADER] = certificate_header(self.node_cert)
        return httpx.Response(200, content=body, headers={**headers, "Content-Type": "application/json"})


@pytest.fixture
def peers(node: Node) -> Iterator[tuple[PeerService, HostilePeer]]:
    service = node.peers
    assert isinstance(service, PeerService)
    hostile = HostilePeer()
    service.client = FederationClient(node.node_id, service.node_key, node.clock,
                                      http=httpx.Client(transport=httpx.MockTransport(hostile.handler)))
    yield service, hostile


def test_an_honest_peer_is_pinned_with_its_directory(peers: tuple[PeerService, HostilePeer]) -> None:
    service, peer = peers
    pinned, result = service.add(URL, peer.fingerprint)
    assert pinned.node_id == "npa" and result.ok and result.offices == 1
    assert service.office("security@npa").address == "security@npa"


def test_right_fingerprint_but_a_node_document_signed_by_another_ca(peers: tuple[PeerService, HostilePeer]) -> None:
    service, peer = peers
    forger = StandaloneCA("npa CA")  # same name, another key: presents the pinned CA, signs with its own
    key, cert = forger.issue(NODE_EKU)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    peer.document_signer = (key, cert)
    with pytest.raises(AuthenticationError, match=r"presents the pinned CA but its document fails: .*"
                                                  r"was not issued by the pinned CA"):
        service.add(URL, peer.fingerprint)
    assert service.all() == []


def test_right_fingerprint_but_a_node_document_signed_by_an_office_key(peers: tuple[PeerService, HostilePeer]) -> None:
    service, peer = peers
    key, cert = peer.ca.issue(OFFICE_EKU, office="security@npa")  # the right CA, the wrong kind of certificate
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    peer.document_signer = (key, cert)
    with pytest.raises(AuthenticationError, match="document fails: the signing certificate is not the peer's node"):
        service.add(URL, peer.fingerprint)
    assert service.all() == []


def test_an_unsigned_answer_is_not_pinned(peers: tuple[PeerService, HostilePeer]) -> None:
    service, peer = peers
    peer.sign_answers = False
    with pytest.raises(AuthenticationError, match=f"the answer of npa at {URL} is not properly signed: "
                                                  "the message is not signed"):
        service.add(URL, peer.fingerprint)
    assert service.all() == []


def test_re_pinning_with_another_ca_is_refused(peers: tuple[PeerService, HostilePeer]) -> None:
    service, peer = peers
    service.add(URL, peer.fingerprint)
    first = peer.fingerprint
    replacement = HostilePeer(StandaloneCA("npa CA"))  # the "same" node with a new CA
    peer.__dict__.update(replacement.__dict__)
    with pytest.raises(ConflictError, match=f"already pinned with another CA \\({first}\\)"):
        service.add(URL, peer.fingerprint)
    assert service.get("npa").fingerprint == first


def test_a_directory_listing_a_foreign_office_is_not_taken(peers: tuple[PeerService, HostilePeer]) -> None:
    service, peer = peers
    # npa's directory claims an office of moj, with certificates from npa's own CA.
    peer.offices.append(peer.office("civil-affairs@moj"))
    _, result = service.add(URL, peer.fingerprint)
    assert not result.ok and result.error == "the directory of npa lists a foreign office 'civil-affairs@moj'"
    with pytest.raises(NotFoundError, match="no office directory from npa yet"):
        service.office("security@npa")


def test_a_directory_with_an_expired_office_certificate_is_not_taken(peers: tuple[PeerService, HostilePeer]) -> None:
    service, peer = peers
    expired = peer.ca.now - timedelta(days=1)
    peer.offices = [peer.office("security@npa", signing_expires=expired)]
    _, result = service.add(URL, peer.fingerprint)
    assert not result.ok
    assert result.error == f"the signing (security@npa) certificate expired on {expired:%Y-%m-%d}"
    with pytest.raises(NotFoundError, match="no office directory from npa yet"):
        service.office("security@npa")


def test_a_directory_with_an_office_certificate_from_another_ca_is_not_taken(
        peers: tuple[PeerService, HostilePeer]) -> None:
    service, peer = peers
    peer.offices = [peer.office("security@npa", issuer=StandaloneCA("npa CA"))]
    _, result = service.add(URL, peer.fingerprint)
    assert not result.ok and result.error is not None and "was not issued by the pinned CA" in result.error
    with pytest.raises(NotFoundError, match="no office directory from npa yet"):
        service.office("security@npa")
