"""Signed requests from peers: who signed, under which pinned CA, once only; refusals are tallied, not audited.

A real node on SQLite (copied from one initialised per process) with a peer pinned through
httpx.MockTransport (tests/helpers/played_peers.py); the requests are signed as the peer would sign them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from sqlalchemy import select

from inkless.db.tables_federation import federation_nonces
from inkless.db.tables_traffic import anonymous_requests
from inkless.directory.peers import NONCE_LIFETIME
from inkless.federation import httpsig
from inkless.federation.client import MESSAGES_PATH, certificate_header
from inkless.federation.httpsig import SignatureError
from tests.helpers.pki import StandaloneCA
from tests.helpers.played_peers import NODE_URL, PeerWorld, PlayedPeer, copied_world

TARGET = NODE_URL + MESSAGES_PATH
BODY = b"envelope"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[PeerWorld]:
    with copied_world(tmp_path, [PlayedPeer("npa", ["security@npa"]), PlayedPeer("kyoto", [])]) as world:
        world.pin("npa")
        yield world


def _signed(world: PeerWorld, *, keyid: str = "npa", nonce: str | None = None,
            signer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None = None,
            certificate: bool = True) -> dict[str, str]:
    npa = world.peers["npa"]
    key, cert = signer or (npa.key, npa.cert)
    headers = {"content-type": "application/pkcs7-mime", "inkless-recipient": "civil-affairs@moj"}
    headers |= httpsig.sign_request("POST", TARGET, BODY, key, keyid, int(world.clock.now().timestamp()),
                                    nonce=nonce, covered={"inkless-recipient": "civil-affairs@moj"})
    if certificate:
        headers[httpsig.NODE_CERTIFICATE_HEADER] = certificate_header(cert)
    return headers


def _verify(world: PeerWorld, headers: dict[str, str], body: bytes = BODY, client: str | None = "192.0.2.9") -> str:
    return world.service.verify_request("POST", TARGET, headers, body, ("inkless-recipient",), client)


def _tally(world: PeerWorld) -> dict[tuple[str, str], int]:
    with world.node.db.read() as conn:
        rows = conn.execute(select(anonymous_requests.c.client, anonymous_requests.c.outcome,
                                   anonymous_requests.c.count.label("n"))
                            .where(anonymous_requests.c.endpoint == "federation"))
        return {(r.client, r.outcome): int(r.n) for r in rows}


def _nonces(world: PeerWorld) -> list[tuple[str, str, Any]]:
    with world.node.db.read() as conn:
        rows = conn.execute(select(federation_nonces).order_by(federation_nonces.c.nonce)).all()
    return [(r.node_id, r.nonce, r.expires_at) for r in rows]


def test_a_request_signed_by_a_pinned_peer_names_it_and_its_nonce_is_kept(world: PeerWorld) -> None:
    assert _verify(world, _signed(world, nonce="n-1")) == "npa"
    assert _nonces(world) == [("npa", "n-1", world.clock.now() + NONCE_LIFETIME)]
    assert _tally(world) == {}
    assert NONCE_LIFETIME == timedelta(seconds=2 * httpsig.MAX_SKEW_SECONDS + 60)


def test_a_replayed_request_is_refused_and_counted_for_its_peer(world: PeerWorld) -> None:
    headers = _signed(world, nonce="n-1")
    _verify(world, headers)
    with pytest.raises(SignatureError) as info:
        _verify(world, headers)
    assert str(info.value) == "replayed request: the nonce 'n-1' of npa was already used"
    assert _tally(world) == {("192.0.2.9", "refused:npa"): 1}
    # The same nonce from another peer is that peer's own.
    kyoto = world.peers["kyoto"]
    world.pin("kyoto")
    assert _verify(world, _signed(world, keyid="kyoto", nonce="n-1", signer=(kyoto.key, kyoto.cert))) == "kyoto"


def test_expired_nonces_are_forgotten(world: PeerWorld) -> None:
    _verify(world, _signed(world, nonce="old"))
    world.clock.advance(seconds=NONCE_LIFETIME.total_seconds() - 1)
    _verify(world, _signed(world, nonce="new"))
    assert [n for _, n, _ in _nonces(world)] == ["new", "old"]
    world.clock.advance(seconds=2)
    _verify(world, _signed(world, nonce="newer"))
    assert [n for _, n, _ in _nonces(world)] == ["new", "newer"]


def test_a_nonce_is_refused_until_the_end_of_its_lifetime_included(world: PeerWorld) -> None:
    _verify(world, _signed(world, nonce="n-1"))
    world.clock.advance(seconds=NONCE_LIFETIME.total_seconds())
    # Signed anew (a valid time), with the nonce of a request made exactly one lifetime ago.
    with pytest.raises(SignatureError) as info:
        _verify(world, _signed(world, nonce="n-1"))
    assert str(info.value) == "replayed request: the nonce 'n-1' of npa was already used"
    world.clock.advance(seconds=1)
    assert _verify(world, _signed(world, nonce="n-1")) == "npa"


def test_removing_a_peer_forgets_its_nonces_only(world: PeerWorld) -> None:
    kyoto = world.peers["kyoto"]
    world.pin("kyoto")
    _verify(world, _signed(world, nonce="n-1"))
    _verify(world, _signed(world, keyid="kyoto", nonce="n-2", signer=(kyoto.key, kyoto.cert)))
    world.service.remove("npa")
    assert [(node, n) for node, n, _ in _nonces(world)] == [("kyoto", "n-2")]


def test_a_nonce_longer_than_128_characters_is_refused(world: PeerWorld) -> None:
    assert _verify(world, _signed(world, nonce="n" * 128)) == "npa"
    with pytest.raises(SignatureError) as info:
        _verify(world, _signed(world, nonce="m" * 129))
    assert str(info.value) == "the nonce is longer than 128 characters"
    assert [n for _, n, _ in _nonces(world)] == ["n" * 128]


def test_an_unsigned_request_is_counted_as_unsigned(world: PeerWorld) -> None:
    with pytest.raises(SignatureError) as info:
        _verify(world, {"content-type": "application/pkcs7-mime"}, client=None)
    assert str(info.value) == "the message is not signed (no Signature-Input / Signature headers)"
    assert _tally(world) == {("unknown", "unsigned"): 1}


def test_a_request_from_a_node_not_pinned_here_is_refused_with_what_to_do(world: PeerWorld) -> None:
    kyoto = world.peers["kyoto"]
    with pytest.raises(SignatureError) as info:
        _verify(world, _signed(world, keyid="kyoto", signer=(kyoto.key, kyoto.cert)))
    assert str(info.value) == ("node 'kyoto' is not pinned here; ask this node's administrator to run "
                               "'inkless peer add URL --fingerprint ...' for it")
    assert _tally(world) == {("192.0.2.9", "not-pinned"): 1}


def test_a_request_without_a_keyid_is_refused(world: PeerWorld) -> None:
    headers = _signed(world)
    headers["Signature-Input"] = headers["Signature-Input"].replace(';keyid="npa"', "")
    with pytest.raises(SignatureError) as info:
        _verify(world, headers)
    assert str(info.value) == "the signature has no 'keyid'"
    assert _tally(world) == {("192.0.2.9", "unsigned"): 1}


def _kyoto_signs_as_npa(world: PeerWorld) -> tuple[dict[str, str], str]:
    kyoto = world.peers["kyoto"]
    return (_signed(world, signer=(kyoto.key, kyoto.cert)),
            "the certificate 'CN=leaf' was not issued by the pinned CA 'CN=npa CA' "
            "(Issuer certificate subject does not match certificate issuer.)")


def _another_ca_of_the_same_name(world: PeerWorld) -> tuple[dict[str, str], str]:
    signer = world.peers["npa"].node_certificate(StandaloneCA("npa CA"))
    return (_signed(world, signer=signer),
            "the certificate 'CN=leaf' was not issued by the pinned CA 'CN=npa CA' (InvalidSignature)")


def _an_office_certificate(world: PeerWorld) -> tuple[dict[str, str], str]:
    npa = world.peers["npa"]
    key, cert = npa.ca.issue([ExtendedKeyUsageOID.EMAIL_PROTECTION], office="security@npa")
    return _signed(world, signer=(key, cert)), "the signing certificate is not the peer's node certificate"


def _no_certificate(world: PeerWorld) -> tuple[dict[str, str], str]:
    return (_signed(world, certificate=False),
            "no Inkless-Node-Certificate header: the signer's certificate is needed")


def _a_certificate_of_another_key(world: PeerWorld) -> tuple[dict[str, str], str]:
    npa = world.peers["npa"]
    headers = _signed(world)
    headers[httpsig.NODE_CERTIFICATE_HEADER] = certificate_header(npa.node_certificate()[1])
    return headers, "the signature does not verify (message altered, or signed by another key)"


@pytest.mark.parametrize("forge", [_kyoto_signs_as_npa, _another_ca_of_the_same_name, _an_office_certificate,
                                   _no_certificate, _a_certificate_of_another_key])
def test_a_request_naming_a_pinned_peer_but_not_signed_by_it_is_refused(world: PeerWorld, forge: Any) -> None:
    headers, reason = forge(world)
    with pytest.raises(SignatureError) as info:
        _verify(world, headers)
    assert str(info.value) == reason
    assert _tally(world) == {("192.0.2.9", "refused:npa"): 1}
    assert _nonces(world) == []


def test_a_body_other_than_the_signed_one_is_refused(world: PeerWorld) -> None:
    with pytest.raises(SignatureError, match="Content-Digest"):
        _verify(world, _signed(world), body=b"another envelope")
    assert _tally(world) == {("192.0.2.9", "refused:npa"): 1}


def test_a_signature_that_does_not_cover_the_required_headers_is_refused(world: PeerWorld) -> None:
    npa = world.peers["npa"]
    headers = httpsig.sign_request("POST", TARGET, BODY, npa.key, "npa", int(world.clock.now().timestamp()))
    headers[httpsig.NODE_CERTIFICATE_HEADER] = certificate_header(npa.cert)
    headers["inkless-recipient"] = "civil-affairs@moj"
    with pytest.raises(SignatureError, match="inkless-recipient"):
        _verify(world, headers)
