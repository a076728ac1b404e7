"""Pinning a peer by URL and CA fingerprint: what is stored when everything holds, and each refusal when not.

The pinning node is a real node on SQLite (copied from one initialised per process); the peers are played
through httpx.MockTransport with real CAs and real signatures (tests/helpers/played_peers.py). Every refusal
is checked to store nothing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from sqlalchemy import func, select

from inkless.db.tables_federation import federation_peers
from inkless.directory.peers import Peer, PeerService, RefreshResult
from inkless.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PeerUnreachableError,
    PKIError,
    ValidationError,
)
from inkless.federation.client import DIRECTORY_PATH, NODE_PATH
from inkless.federation.documents import DIRECTORY_DOCUMENT, NODE_DOCUMENT, verify_document
from inkless.federation.httpsig import parse_signature
from inkless.pki.ca import NodeCA, fingerprint
from inkless.pki.model import CertPurpose
from tests.helpers.pki import StandaloneCA
from tests.helpers.played_peers import (
    NODE_URL,
    PeerWorld,
    PlayedPeer,
    audit_entries,
    copied_world,
    encryption_key,
    peer_world,
)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[PeerWorld]:
    with copied_world(tmp_path, [PlayedPeer("npa", ["security@npa"]),
                                 PlayedPeer("kyoto", ["b@kyoto", "a@kyoto"])]) as world:
        yield world


_audit = audit_entries


def _stored(world: PeerWorld) -> int:
    with world.node.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(federation_peers)).scalar_one())


def _add(world: PeerWorld, node_id: str = "npa") -> tuple[Peer, RefreshResult]:
    peer = world.peers[node_id]
    return world.service.add(peer.url, peer.fingerprint, actor="admin:taro")


def test_pinning_stores_the_peer_its_ca_and_its_directory_and_audits_it(world: PeerWorld) -> None:
    npa = world.peers["npa"]
    # The forms an administrator pastes: lower case, colons, a trailing slash.
    typed = npa.fingerprint.removeprefix("SHA256:").lower()
    peer, result = world.service.add(npa.url + "/", ":".join(typed[i:i + 2] for i in range(0, 64, 2)), "admin:taro")
    now = world.clock.now()
    assert result == RefreshResult("npa", True, 1, True, None)
    assert (peer.node_id, peer.url, peer.fingerprint, peer.added_at, peer.last_seen_at) == (
        "npa", npa.url, npa.fingerprint, now, now)
    assert (peer.last_error, peer.unreachable_since, peer.directory_fetched_at, peer.office_count) == (
        None, None, now, 1)
    assert peer.ca_certificate == npa.ca.cert
    [added] = _audit(world, "peer.added")
    assert (added.at, added.actor, added.object_type, added.object_id, added.digests, added.details) == (
        now, "admin:taro", "peer", "npa", {"ca": npa.fingerprint}, {"url": npa.url})
    [updated] = _audit(world, "peer.directory_updated")
    assert (updated.at, updated.actor, updated.object_id, updated.details) == (now, "admin:taro", "npa",
                                                                               {"offices": 1})
    # The node document was asked for unsigned (nothing is pinned yet), the directory signed.
    assert [(r.method, r.url.path) for r in npa.seen] == [("GET", NODE_PATH), ("GET", DIRECTORY_PATH)]
    assert "signature" not in npa.seen[0].headers
    assert parse_signature(dict(npa.seen[1].headers.items())).params.keyid == "moj"
    assert world.service.all() == [peer] and world.service.get("npa") == peer
    assert world.service.is_pinned("npa") and not world.service.is_pinned("kyoto")
    assert world.service.ca_certificates() == [npa.ca.cert]
    assert world.service.ca_certificate("npa") == npa.ca.cert


def test_peers_are_listed_by_node_id_with_their_office_counts(world: PeerWorld) -> None:
    _add(world, "npa")
    world.pin("kyoto")  # by the operator unless said otherwise
    assert [(e.actor, e.object_id) for e in _audit(world, "peer.added")] == [("admin:taro", "npa"),
                                                                            ("system", "kyoto")]
    assert [(p.node_id, p.office_count) for p in world.service.all()] == [("kyoto", 2), ("npa", 1)]
    assert world.service.ca_certificates() == [world.peers["kyoto"].ca.cert, world.peers["npa"].ca.cert]
    with pytest.raises(NotFoundError, match=r"^no pinned peer 'osaka'$"):
        world.service.get("osaka")
    with pytest.raises(NotFoundError, match=r"^no pinned peer 'osaka'$"):
        world.service.ca_certificate("osaka")


def test_a_wrong_fingerprint_is_refused_saying_what_differs(world: PeerWorld) -> None:
    npa = world.peers["npa"]
    wrong = "SHA256:" + "AB" * 32
    with pytest.raises(AuthenticationError) as info:
        world.service.add(npa.url, wrong)
    assert str(info.value) == (
        f"CA fingerprint mismatch for {npa.url}: you pinned {wrong} but the node presents {npa.fingerprint}. "
        "Nothing was stored. Check the fingerprint with the peer's administrator ('inkless node info' on that "
        "node) and the URL."
    )
    assert _stored(world) == 0 and _audit(world, "peer.added") == []


def test_bad_input_is_refused_before_anything_is_asked(world: PeerWorld) -> None:
    npa = world.peers["npa"]
    with pytest.raises(ValidationError, match="is not an http:// or https:// base URL"):
        world.service.add("npa.invalid:9", npa.fingerprint)
    with pytest.raises(ValidationError) as info:
        world.service.add(npa.url, "SHA1:abcd")
    assert str(info.value) == ("'SHA1:abcd' is not a SHA-256 fingerprint (expected SHA256: followed by 64 hex "
                               "digits, as printed by 'inkless node info' on the peer)")
    assert npa.seen == [] and _stored(world) == 0


def _forged_node_document(world: PeerWorld) -> None:
    """npa's document signed by a certificate of the same name from a CA that is not npa's."""
    npa = world.peers["npa"]
    npa.document_signer = npa.node_certificate(StandaloneCA("npa CA"))


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        (_forged_node_document,
         "the certificate 'CN=leaf' was not issued by the pinned CA 'CN=npa CA' (InvalidSignature)"),
        # A directory is no node document, even signed by the node.
        (lambda w: w.peers["npa"].payload_edit.update({NODE_PATH: lambda p: p | {"type": DIRECTORY_DOCUMENT}}),
         f"expected a signed {NODE_DOCUMENT} document, got '{DIRECTORY_DOCUMENT}'"),
    ],
)
def test_the_right_fingerprint_with_a_forged_node_document_is_refused(world: PeerWorld, forge: Any,
                                                                       reason: str) -> None:
    forge(world)
    npa = world.peers["npa"]
    with pytest.raises(AuthenticationError) as info:
        _add(world)
    assert str(info.value) == f"the node at {npa.url} presents the pinned CA but its document fails: {reason}"
    assert _stored(world) == 0


def test_a_node_document_whose_signature_does_not_cover_it_is_refused(world: PeerWorld) -> None:
    npa = world.peers["npa"]

    def swap_payload(body: dict[str, Any]) -> dict[str, Any]:
        head, payload, signature = body["signed"].split(".")
        other = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        other["base_url"] = "http://attacker.invalid:9"
        forged = base64.urlsafe_b64encode(json.dumps(other).encode()).decode().rstrip("=")
        return body | {"signed": f"{head}.{forged}.{signature}"}

    npa.body_edit[NODE_PATH] = swap_payload
    with pytest.raises(AuthenticationError) as info:
        _add(world)
    assert str(info.value) == (
        f"the node at {npa.url} presents the pinned CA but its document fails: the signature does not verify "
        "(message altered, or signed by another key)")
    assert _stored(world) == 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (lambda b: {k: v for k, v in b.items() if k != "signed"}, "'signed'"),
        (lambda b: {k: v for k, v in b.items() if k != "node_id"}, "'node_id'"),
        (lambda b: {k: v for k, v in b.items() if k != "ca_certificate"}, "'ca_certificate'"),
        (lambda b: b | {"ca_certificate": 12}, "'int' object has no attribute 'encode'"),
        (lambda b: b | {"ca_certificate": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
         None),
        (lambda b: ["a", "list"], "list indices must be integers or slices, not str"),
    ],
)
def test_an_answer_that_is_no_node_document_is_refused(world: PeerWorld, body: Any, reason: str | None) -> None:
    npa = world.peers["npa"]
    npa.body_edit[NODE_PATH] = body
    calls: list[Any] = [world.service.add]
    if reason != "'signed'":  # what a node presents needs no signature
        calls.append(lambda url, _: world.service.presented(url))
    for call in calls:
        with pytest.raises(ValidationError) as info:
            call(npa.url, npa.fingerprint)
        assert str(info.value).startswith(f"{npa.url}{NODE_PATH} did not return an inkless node document (")
        if reason is not None:
            assert str(info.value).endswith(f" ({reason})")
    assert _stored(world) == 0


def test_an_answer_that_is_not_json_is_refused(world: PeerWorld) -> None:
    npa = world.peers["npa"]

    def garbage(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"<html>welcome</html>")

    npa.handle = garbage  # type: ignore[method-assign]
    with pytest.raises(ValidationError) as info:
        _add(world)
    assert str(info.value) == (f"{npa.url}{NODE_PATH} did not return an inkless node document "
                               "(Expecting value: line 1 column 1 (char 0))")


def test_a_node_that_answers_an_error_is_unreachable_and_nothing_is_stored(world: PeerWorld) -> None:
    npa = world.peers["npa"]
    npa.answer = (503, "maintenance until 18:00", True)
    for call in (world.service.add, lambda url, _: world.service.presented(url)):
        with pytest.raises(PeerUnreachableError) as info:
            call(npa.url, npa.fingerprint)
        assert str(info.value) == f"{npa.url} answered HTTP 503 to {NODE_PATH}: maintenance until 18:00"
    assert _stored(world) == 0


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda p: p | {"node_id": "NPA!"}, "the node at {url} has an invalid node id 'NPA!'"),
        (lambda p: p | {"node_id": 7}, "the node at {url} has an invalid node id 7"),
        (lambda p: p | {"node_id": "-npa"}, "the node at {url} has an invalid node id '-npa'"),
        (lambda p: {k: v for k, v in p.items() if k != "base_url"},
         "'' is not an http:// or https:// base URL (no query, no fragment)"),
        (lambda p: p | {"base_url": "http://npa.example.jp"},
         "the node npa says its URL is http://npa.example.jp, not {url}: add it with http://npa.example.jp "
         "(or fix base_url in that node's inkless.toml)"),
        (lambda p: p | {"node_id": "moj"}, "{url} is this node (moj); a node does not peer with itself"),
    ],
)
def test_a_signed_node_document_with_a_bad_identity_is_refused(world: PeerWorld, edit: Any, reason: str) -> None:
    npa = world.peers["npa"]
    npa.payload_edit[NODE_PATH] = edit
    npa.body_edit[NODE_PATH] = lambda b: b | {"node_id": json.loads(
        base64.urlsafe_b64decode(b["signed"].split(".")[1] + "==="))["node_id"]}
    with pytest.raises(ValidationError) as info:
        _add(world)
    assert str(info.value) == reason.format(url=npa.url)
    assert _stored(world) == 0


def test_a_node_id_outside_the_signature_must_match_the_signed_one(world: PeerWorld) -> None:
    npa = world.peers["npa"]
    npa.body_edit[NODE_PATH] = lambda b: b | {"node_id": "kyoto"}
    with pytest.raises(ValidationError) as info:
        _add(world)
    assert str(info.value) == f"the node at {npa.url} has an invalid node id 'npa'"
    assert world.service.presented(npa.url) == ("kyoto", npa.fingerprint)
    assert _stored(world) == 0


def _unsigned(world: PeerWorld) -> str:
    world.peers["npa"].answer = (200, "", False)
    return "the message is not signed (no Signature-Input / Signature headers)"


def _signed_by_another_node(world: PeerWorld) -> str:
    npa = world.peers["npa"]
    key, cert = npa.node_certificate()
    npa.answer_signer = (key, cert, "kyoto")
    return "signed by 'kyoto', not 'npa'"


def _signed_under_another_ca(world: PeerWorld) -> str:
    npa = world.peers["npa"]
    key, cert = npa.node_certificate(StandaloneCA("npa CA"))
    npa.answer_signer = (key, cert, "npa")
    return "the certificate 'CN=leaf' was not issued by the pinned CA 'CN=npa CA' (InvalidSignature)"


def _signed_by_an_expired_certificate(world: PeerWorld) -> str:
    npa = world.peers["npa"]
    key, cert = npa.ca.issue([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
                             not_after=world.clock.now() - timedelta(days=1))
    npa.answer_signer = (key, cert, "npa")
    return f"the node certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}"


@pytest.mark.parametrize("forge", [_unsigned, _signed_by_another_node, _signed_under_another_ca,
                                   _signed_by_an_expired_certificate])
def test_a_node_document_in_an_answer_not_signed_by_that_node_is_refused(world: PeerWorld, forge: Any) -> None:
    reason = forge(world)
    npa = world.peers["npa"]
    with pytest.raises(AuthenticationError) as info:
        _add(world)
    assert str(info.value) == f"the answer of npa at {npa.url} is not properly signed: {reason}"
    assert _stored(world) == 0 and _audit(world, "peer.added") == []


def test_a_pinned_node_cannot_be_pinned_again_nor_re_pinned_with_another_ca(world: PeerWorld) -> None:
    npa = world.peers["npa"]
    peer, _ = _add(world)
    with pytest.raises(ConflictError) as info:
        _add(world)
    assert str(info.value) == "node npa is already pinned with this fingerprint"
    # The same node id at the same URL, now with another CA (a new node, or an attacker in between).
    impostor = world.play(PlayedPeer("npa", ["security@npa"]))
    with pytest.raises(ConflictError) as info:
        world.service.add(impostor.url, impostor.fingerprint)
    assert str(info.value) == (
        f"node npa is already pinned with another CA ({npa.fingerprint}); "
        "run 'inkless peer remove npa' first if the peer really changed its CA"
    )
    assert world.service.all() == [peer]
    assert len(_audit(world, "peer.added")) == 1


def test_presented_shows_what_a_node_presents_without_trusting_it(world: PeerWorld) -> None:
    npa = world.peers["npa"]
    npa.answer = (200, "", False)  # not even signed: nothing is trusted here
    assert world.service.presented(npa.url + "/") == ("npa", npa.fingerprint)
    assert _stored(world) == 0
    # Asked like any stranger would: a GET without a signature (this node is not pinned there yet).
    [request] = npa.seen
    assert (request.method, str(request.url)) == ("GET", npa.url + NODE_PATH)
    assert "signature" not in request.headers and "signature-input" not in request.headers


def test_a_node_that_cannot_be_reached_is_named_by_its_url(world: PeerWorld) -> None:
    npa = world.peers["npa"]
    npa.answer = httpx.ConnectError("connection refused")
    for call in (world.service.add, lambda url, _: world.service.presented(url)):
        with pytest.raises(PeerUnreachableError) as info:
            call(npa.url, npa.fingerprint)
        assert str(info.value) == f"{npa.url} is unreachable: connection refused ({npa.url}{NODE_PATH})"
    assert _stored(world) == 0


def test_removing_a_peer_forgets_it_its_nonces_and_its_offices(world: PeerWorld) -> None:
    npa = world.peers["npa"]
    _add(world)
    _add(world, "kyoto")
    assert world.service.office("security@npa").address == "security@npa"
    world.service.remove("npa", actor="admin:taro")
    assert [p.node_id for p in world.service.all()] == ["kyoto"]
    [removed] = _audit(world, "peer.removed")
    assert (removed.actor, removed.object_type, removed.object_id, removed.digests) == (
        "admin:taro", "peer", "npa", {"ca": npa.fingerprint})
    with pytest.raises(NotFoundError, match=r"^no pinned peer 'npa'$"):
        world.service.office("security@npa")
    with pytest.raises(NotFoundError, match=r"^no pinned peer 'npa'$"):
        world.service.remove("npa")
    # Pinned again, it is a new peer with a fresh directory.
    peer, result = _add(world)
    assert (peer.node_id, result.ok, result.changed) == ("npa", True, True)
    world.service.remove("npa")  # by the operator unless said otherwise
    assert [e.actor for e in _audit(world, "peer.removed")] == ["admin:taro", "system"]


def test_a_peer_pinned_while_its_directory_cannot_be_fetched_was_seen_at_pinning(world: PeerWorld) -> None:
    npa = world.peers["npa"]
    npa.answer, npa.answer_path = httpx.ConnectError("connection reset"), DIRECTORY_PATH
    peer, result = _add(world)
    error = f"npa is unreachable: connection reset ({npa.url}{DIRECTORY_PATH})"
    assert result == RefreshResult("npa", False, 0, False, error)
    now = world.clock.now()
    peer = world.service.get("npa")
    assert (peer.added_at, peer.last_seen_at, peer.unreachable_since, peer.directory_fetched_at, peer.last_error) == (
        now, now, now, None, f"directory: {error}")


def test_a_peer_removed_before_its_directory_came_is_removed(world: PeerWorld) -> None:
    npa = world.peers["npa"]
    npa.answer, npa.answer_path = (503, "busy", True), DIRECTORY_PATH
    _add(world)
    world.service.remove("npa")
    assert world.service.all() == []


def test_a_peer_re_pinned_elsewhere_after_its_removal_is_read_afresh(world: PeerWorld) -> None:
    """Removed here and pinned again by another process (the CLI) in the same second: the offices this
    process had read from the old directory are not served for the new one."""
    _add(world)
    assert world.service.office("security@npa").name == "office security@npa"
    world.service.remove("npa")
    npa = world.play(PlayedPeer("npa", ["security@npa"]))
    npa.listed[0]["name"] = "警備局"
    cli = peer_world(world.node, [npa])
    cli.clock.current = world.clock.now()
    cli.service.add(npa.url, npa.fingerprint)
    cli.service.client.close()
    assert world.service.get("npa").directory_fetched_at == world.clock.now()
    assert world.service.office("security@npa").name == "警備局"


# --- what this node presents ------------------------------------------------------------------------------


def _ca(world: PeerWorld) -> tuple[x509.Certificate, str]:
    with world.node.db.read() as conn:
        ca = world.node.pki.ca_certificate(conn)
    return x509.load_der_x509_certificate(ca.der), ca.fingerprint


def test_the_node_document_is_signed_by_the_node_and_says_the_same_outside(world: PeerWorld) -> None:
    ca, ca_fingerprint = _ca(world)
    document = world.service.node_document()
    now = world.clock.now()
    payload = verify_document(document["signed"], ca, now, NODE_DOCUMENT)
    assert payload == {
        "type": NODE_DOCUMENT, "node_id": "moj", "organisation": "法務省", "base_url": NODE_URL,
        "ca_certificate": ca.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        "ca_fingerprint": ca_fingerprint, "issued_at": now.isoformat(),
    }
    assert ca_fingerprint == fingerprint(ca.public_bytes(serialization.Encoding.DER))
    assert {k: v for k, v in document.items() if k != "signed"} == {k: v for k, v in payload.items() if k != "type"}
    # The key is read once and kept.
    assert world.service.node_key() is world.service.node_key()
    with world.node.db.read() as conn:
        _, cert = world.node.pki.key_and_certificate(conn, CertPurpose.NODE, "moj")
    assert world.service.node_key()[1] == cert


def test_the_node_document_gives_the_base_url_without_a_trailing_slash(world: PeerWorld) -> None:
    node = world.node
    service = PeerService(node.db, "moj", NODE_URL + "/", "法務省", node.pki, node.directory, node.audit,
                          world.clock)
    assert service.node_document()["base_url"] == NODE_URL
    service.client.close()
    # Under a path ending in X, only the slash goes.
    service = PeerService(node.db, "moj", NODE_URL + "/FAX/", "法務省", node.pki, node.directory, node.audit,
                          world.clock)
    assert service.node_document()["base_url"] == NODE_URL + "/FAX"
    service.client.close()


def test_the_directory_lists_every_office_with_its_certificates_signed(world: PeerWorld) -> None:
    ca, _ = _ca(world)
    document = world.service.directory_document()
    now = world.clock.now()
    payload = verify_document(document["signed"], ca, now, DIRECTORY_DOCUMENT)
    assert (document["node_id"], document["offices"]) == ("moj", 2)
    assert (payload["node_id"], payload["organisation"], payload["issued_at"]) == ("moj", "法務省", now.isoformat())
    offices = payload["offices"]
    assert [{k: v for k, v in o.items() if not k.endswith("_certificate")} for o in offices] == [
        {"address": "audit@moj", "name": "監査室", "kana": None, "fax_number": None},
        {"address": "civil-affairs@moj", "name": "民事局", "kana": "ミンジキョク", "fax_number": "03-1234-5678"},
    ]
    with world.node.db.read() as conn:
        for office in offices:
            code = office["address"].split("@")[0]
            for purpose, key in ((CertPurpose.OFFICE_ENCRYPTION, "encryption_certificate"),
                                 (CertPurpose.OFFICE_SIGNING, "signing_certificate")):
                assert base64.b64decode(office[key]) == world.node.pki.certificate(conn, purpose, code).der


class _RsaNodeKey:
    """A node CA whose node key is RSA (as a hand-edited or foreign key store could hold)."""

    def __init__(self, pki: NodeCA) -> None:
        self._pki = pki

    def key_and_certificate(self, conn: Any, purpose: CertPurpose, owner: str) -> tuple[Any, x509.Certificate]:
        _, cert = self._pki.key_and_certificate(conn, purpose, owner)
        return encryption_key(), cert


def test_a_node_key_that_is_not_ecdsa_is_refused(world: PeerWorld) -> None:
    node = world.node
    service = PeerService(node.db, "moj", NODE_URL, "法務省", _RsaNodeKey(node.pki),  # type: ignore[arg-type]
                          node.directory, node.audit, world.clock)
    with pytest.raises(PKIError) as info:
        service.node_key()
    assert str(info.value) == "the node key is not an ECDSA key"
    service.client.close()
