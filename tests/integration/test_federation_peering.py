"""Peering two nodes over real HTTP: pinning, signed directories, and every way a signed request is refused."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from inkless.app import Node, init_node
from inkless.config import load_settings
from inkless.db import tables as t
from inkless.db.tables_delivery import inbox
from inkless.db.tables_federation import federation_nonces
from inkless.db.tables_traffic import anonymous_requests
from inkless.delivery import envelope as env
from inkless.directory.peers import PeerService
from inkless.errors import (
    AuthenticationError,
    ConflictError,
    DeliveryRejectedError,
    NotFoundError,
    PeerUnreachableError,
    ValidationError,
)
from inkless.federation import httpsig
from inkless.federation.client import (
    DIRECTORY_PATH,
    ENVELOPE_MEDIA_TYPE,
    MESSAGE_ID_HEADER,
    MESSAGES_PATH,
    NODE_PATH,
    RECIPIENT_HEADER,
    SENDER_HEADER,
    FederationAnswer,
    certificate_header,
)
from inkless.pki.model import CertPurpose
from inkless.web.app import create_app
from tests.conftest import BACKENDS
from tests.helpers.db import fresh_database
from tests.helpers.nodes import ThreadedServer, free_port


@dataclass
class Pair:
    moj: Node
    npa: Node
    moj_url: str
    npa_url: str
    # The audit index each node had reached when the test began: tests see only their own entries.
    audit_from: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def peers(node: Node) -> PeerService:
        assert isinstance(node.peers, PeerService)
        return node.peers

    def audit(self, node: Node, action: str) -> list[dict[str, object]]:
        """The entries of ``action`` that ``node`` recorded since the test began."""
        with node.db.begin() as conn:
            rows = conn.execute(select(t.audit_entries.c.entry).where(
                t.audit_entries.c.action == action, t.audit_entries.c.idx >= self.audit_from[node.node_id])
                .order_by(t.audit_entries.c.idx)).all()
        return [json.loads(r.entry) for r in rows]


def _node(folder: Path, node_id: str, port: int, database_url: str) -> Node:
    settings = load_settings(
        folder, env={},
        overrides={"node_id": node_id, "database_url": database_url, "base_url": f"http://127.0.0.1:{port}",
                   "max_message_bytes": 4096},
    )
    node = init_node(settings)
    return node


@pytest.fixture(scope="module", params=BACKENDS)
def served_pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Two nodes, moj and npa, each with an office, served over HTTP on loopback (kept for the module)."""
    folder = tmp_path_factory.mktemp("federation")
    backend = str(request.param)
    ports = free_port(), free_port()
    with fresh_database(backend, folder / "moj") as moj_db, fresh_database(backend, folder / "npa") as npa_db:
        moj = _node(folder / "moj", "moj", ports[0], moj_db)
        npa = _node(folder / "npa", "npa", ports[1], npa_db)
        moj.directory.add_office("civil-affairs", "民事局", "03-3580-4111")
        npa.directory.add_office("security", "警備局")
        try:
            with ThreadedServer(create_app(moj), ports[0]) as a, ThreadedServer(create_app(npa), ports[1]) as b:
                yield Pair(moj, npa, a.url, b.url)
        finally:
            moj.close()
            npa.close()


def _next_audit_index(node: Node) -> int:
    with node.db.begin() as conn:
        return int(conn.execute(select(func.coalesce(func.max(t.audit_entries.c.idx) + 1, 0))).scalar_one())


@pytest.fixture
def pair(served_pair: Pair) -> Pair:
    """The two nodes, not peered, whatever earlier tests pinned; audit entries counted from here."""
    for node in (served_pair.moj, served_pair.npa):
        peers = Pair.peers(node)
        for peer in peers.all():
            peers.remove(peer.node_id, actor="test-reset")
        served_pair.audit_from[node.node_id] = _next_audit_index(node)
    return served_pair


def _fingerprint(node: Node) -> str:
    with node.db.begin() as conn:
        return node.pki.ca_certificate(conn).fingerprint


def _peer_count(node: Node) -> int:
    return len(Pair.peers(node).all())


def test_pinning_refuses_wrong_fingerprints_urls_and_itself(pair: Pair) -> None:
    moj = Pair.peers(pair.moj)
    wrong = "SHA256:" + "AB" * 32
    with pytest.raises(AuthenticationError) as info:
        moj.add(pair.npa_url, wrong)
    # Both fingerprints named, so that the administrator can compare them.
    assert wrong in str(info.value) and _fingerprint(pair.npa) in str(info.value)
    cases: list[tuple[str, str, type[Exception], str]] = [
        (pair.npa_url, "SHA256:12", ValidationError, "not a SHA-256 fingerprint"),
        ("ftp://127.0.0.1/", _fingerprint(pair.npa), ValidationError, "not an http"),
        (f"http://127.0.0.1:{free_port()}", _fingerprint(pair.npa), PeerUnreachableError, "unreachable"),
        (pair.npa_url.replace("127.0.0.1", "localhost"), _fingerprint(pair.npa), ValidationError,
         f"says its URL is {pair.npa_url}"),
        (pair.moj_url, _fingerprint(pair.moj), ValidationError, "does not peer with itself"),
    ]
    for url, fp, error, reason in cases:
        with pytest.raises(error, match=reason):
            moj.add(url, fp)
    assert _peer_count(pair.moj) == 0
    assert pair.audit(pair.moj, "peer.added") == []


def test_peering_both_ways_and_the_signed_directory(pair: Pair) -> None:
    moj, npa = Pair.peers(pair.moj), Pair.peers(pair.npa)
    # Colons and lower case, as people copy them, are accepted.
    pasted = _fingerprint(pair.npa).lower().replace("sha256:", "")
    pasted = ":".join(pasted[i:i + 2] for i in range(0, len(pasted), 2))
    peer, first = moj.add(pair.npa_url + "/", pasted, actor="cli")
    assert peer.node_id == "npa" and peer.fingerprint == _fingerprint(pair.npa) and peer.url == pair.npa_url
    # npa has not pinned moj yet: it refuses the directory request, and says why.
    assert not first.ok and "not pinned" in str(first.error)
    # Anyone can name a node that is not pinned: npa counts it for its hourly tally of anonymous
    # traffic ("not-pinned") instead of writing a permanent audit entry per request.
    with pair.npa.db.begin() as conn:
        tallied = conn.execute(select(func.sum(anonymous_requests.c.count)).where(
            anonymous_requests.c.endpoint == "federation", anonymous_requests.c.outcome == "not-pinned")).scalar_one()
    assert tallied >= 1
    assert "not pinned" in str(moj.get("npa").last_error)
    with pytest.raises(ConflictError, match="already pinned"):
        moj.add(pair.npa_url, _fingerprint(pair.npa))

    _, second = npa.add(pair.moj_url, _fingerprint(pair.moj))
    assert second.ok and second.offices == 1 and second.changed
    office = npa.office("civil-affairs@moj")
    assert office.name == "民事局" and office.fax_number == "03-3580-4111"
    with pair.moj.db.begin() as conn:
        enc = pair.moj.pki.certificate(conn, CertPurpose.OFFICE_ENCRYPTION, "civil-affairs")
    assert office.encryption_certificate.public_bytes(serialization.Encoding.DER) == enc.der
    office.encryption_certificate.verify_directly_issued_by(npa.ca_certificate("moj"))

    # moj has no directory of npa yet: the first lookup fetches it.
    assert moj.get("npa").directory_fetched_at is None
    assert moj.office("security@npa").name == "警備局"
    assert moj.get("npa").last_error is None and moj.get("npa").office_count == 1
    with pytest.raises(NotFoundError, match="no office 'nobody@npa'"):
        moj.office("nobody@npa")
    with pytest.raises(NotFoundError):
        moj.office("security@nowhere")
    assert moj.is_pinned("npa") and not moj.is_pinned("nowhere")

    # A refresh of an unchanged directory is not audited again.
    before = len(pair.audit(pair.moj, "peer.directory_updated"))
    [result] = moj.refresh("npa")
    assert result.ok and not result.changed
    assert len(pair.audit(pair.moj, "peer.directory_updated")) == before
    pair.npa.directory.add_office("traffic", "交通局")
    [result] = moj.refresh()
    assert result.ok and result.changed and result.offices == 2
    assert moj.office("traffic@npa").name == "交通局"
    assert [a["object_id"] for a in pair.audit(pair.moj, "peer.added")] == ["npa"]


@pytest.fixture
def peered(pair: Pair) -> Pair:
    """The pair with each node pinning the other and holding its directory; audit entries counted from here."""
    for node, other, url in ((pair.moj, pair.npa, pair.npa_url), (pair.npa, pair.moj, pair.moj_url)):
        Pair.peers(node).add(url, _fingerprint(other))
    # moj pinned npa first, when npa still refused it: fetch its directory now.
    [fetched] = Pair.peers(pair.moj).refresh("npa")
    assert fetched.ok, fetched.error
    for node in (pair.moj, pair.npa):
        pair.audit_from[node.node_id] = _next_audit_index(node)
    return pair


def _signed_get(node: Node, url: str, path: str, **overrides: object) -> httpx.Request:
    """A directory request signed as ``node`` would sign it, with parts replaced to forge it."""
    peers = Pair.peers(node)
    key, cert = peers.node_key()
    created = int(node.clock.now().timestamp()) + int(str(overrides.get("skew", 0)))
    signing_key = overrides.get("key", key)
    assert isinstance(signing_key, ec.EllipticCurvePrivateKey)
    headers = httpsig.sign_request("GET", url + path, b"", signing_key, str(overrides.get("keyid", node.node_id)),
                                   created)
    sender_cert = overrides.get("cert", cert)
    assert isinstance(sender_cert, x509.Certificate)
    headers[httpsig.NODE_CERTIFICATE_HEADER] = certificate_header(sender_cert)
    return httpx.Request("GET", url + path, headers=headers)


def _federation_tally(node: Node) -> dict[str, int]:
    with node.db.begin() as conn:
        rows = conn.execute(select(anonymous_requests.c.outcome, func.sum(anonymous_requests.c.count))
                            .where(anonymous_requests.c.endpoint == "federation")
                            .group_by(anonymous_requests.c.outcome)).all()
    return {outcome: int(total) for outcome, total in rows}


def test_signed_requests_are_checked_and_refusals_tallied(peered: Pair) -> None:
    pair = peered
    url = pair.npa_url
    with httpx.Client() as client:
        ok = _signed_get(pair.moj, url, DIRECTORY_PATH)
        assert client.send(ok).status_code == 200
        # The very same bytes again: a replay.
        again = client.send(ok)
        assert again.status_code == 401 and "replayed" in again.json()["detail"]

        stranger = ec.generate_private_key(ec.SECP256R1())
        with pair.moj.db.begin() as conn:
            office_key, office_cert = pair.moj.pki.key_and_certificate(conn, CertPurpose.OFFICE_SIGNING,
                                                                       "civil-affairs")
        with pair.npa.db.begin() as conn:
            npa_key, npa_cert = pair.npa.pki.key_and_certificate(conn, CertPurpose.NODE, "npa")
        cases: list[tuple[httpx.Request, str]] = [
            (httpx.Request("GET", url + DIRECTORY_PATH), "not signed"),
            (_signed_get(pair.moj, url, DIRECTORY_PATH, skew=-400), "stale"),
            (_signed_get(pair.moj, url, DIRECTORY_PATH, skew=400), "stale"),
            (_signed_get(pair.moj, url, DIRECTORY_PATH, keyid="kyoto"), "'kyoto' is not pinned here"),
            (_signed_get(pair.moj, url, DIRECTORY_PATH, key=stranger), "does not verify"),
            (_signed_get(pair.moj, url, DIRECTORY_PATH, key=office_key, cert=office_cert),
             "not the peer's node certificate"),
            # npa's own node certificate, presented as moj: not issued by the CA pinned for moj.
            (_signed_get(pair.moj, url, DIRECTORY_PATH, key=npa_key, cert=npa_cert), "not issued by the pinned CA"),
            # Signed for another endpoint, sent to this one.
            (httpx.Request("GET", url + DIRECTORY_PATH, headers=_signed_get(pair.moj, url, NODE_PATH).headers),
             "does not verify"),
        ]
        before = len(pair.audit(pair.npa, "federation.request_refused"))
        tallied_before = _federation_tally(pair.npa)
        for request, reason in cases:
            answer = client.send(request)
            assert answer.status_code == 401, (reason, answer.text)
            assert reason in answer.json()["detail"]
            # Even a refusal is signed by npa.
            assert "sig1=" in answer.headers["signature"]
        # A request whose signature does not hold is anyone's, whichever node it names: counted for the
        # periodic audit tally by kind and named peer, not one permanent audit entry each.
        assert len(pair.audit(pair.npa, "federation.request_refused")) == before
        tallied = _federation_tally(pair.npa)
        grown = {k: tallied.get(k, 0) - tallied_before.get(k, 0) for k in tallied}
        assert {k: v for k, v in grown.items() if v} == {"unsigned": 1, "not-pinned": 1, "refused:moj": 6}
    with pair.npa.db.begin() as conn:
        assert conn.execute(select(func.count()).select_from(federation_nonces)).scalar_one() >= 1


def test_messages_endpoint_refuses_bad_senders_and_oversized_bodies(peered: Pair) -> None:
    pair = peered
    transport = pair.moj.transport
    assert transport is not None
    cases = [
        ("security@npa", "civil-affairs@moj", b"x", "may not send for security@npa"),
        ("civil-affairs@moj", "civil-affairs@moj", b"x", "not an office of this node"),
        # 4096 bytes of documents: an envelope of up to 1.5 times that and 64 KiB of metadata and CMS.
        ("civil-affairs@moj", "security@npa", b"x" * 80000, "larger than this node's limit of 71680 bytes "
                                                            "(max_message_bytes 4096 with the envelope's overhead)"),
    ]
    for sender, recipient, envelope, reason in cases:
        with pytest.raises(DeliveryRejectedError) as info:
            transport.deliver("npa", sender, recipient, "m-1", envelope)
        assert reason in info.value.reason
    assert pair.npa.delivery is not None
    with pytest.raises(DeliveryRejectedError):
        transport.deliver("npa", "civil-affairs@moj", "security@npa", "m-2", b"garbage")
    with pytest.raises(DeliveryRejectedError, match="not a pinned peer"):
        transport.deliver("kyoto", "civil-affairs@moj", "x@kyoto", "m-3", b"x")


def _envelope_for_npa(pair: Pair, message_id: str, subject: str) -> bytes:
    """A genuine envelope from civil-affairs@moj to security@npa (kept small: npa accepts 4096 bytes)."""
    with pair.moj.db.begin() as conn:
        key, cert = pair.moj.pki.key_and_certificate(conn, CertPurpose.OFFICE_SIGNING, "civil-affairs")
    recipient = Pair.peers(pair.moj).office("security@npa").encryption_certificate
    meta = env.MessageMetadata(message_id, "civil-affairs@moj", ("security@npa",), subject, 0, "normal",
                               pair.moj.clock.now())
    mime = env.build_mime(meta, [env.Document("a.txt", "text/plain", subject.encode())])
    return env.encrypt(env.sign(mime, key, cert, []), [recipient])


def test_a_replayed_message_id_with_another_envelope_is_refused_with_409(peered: Pair) -> None:
    pair = peered
    peers = Pair.peers(pair.moj)
    npa = peers.get("npa")
    message_id = str(uuid.uuid4())

    def post(envelope: bytes) -> FederationAnswer:
        covered = {SENDER_HEADER: "civil-affairs@moj", RECIPIENT_HEADER: "security@npa", MESSAGE_ID_HEADER: message_id}
        return peers.client.request("POST", npa.url + MESSAGES_PATH, peer="npa", ca=npa.ca_certificate,
                                    body=envelope, covered=covered, content_type=ENVELOPE_MEDIA_TYPE)

    first = _envelope_for_npa(pair, message_id, "照会")
    assert len(first) < 4096
    stored = post(first)
    assert stored.status == 200 and stored.verified
    assert post(first).body == stored.body  # the same envelope again: the same receipt
    replay = post(_envelope_for_npa(pair, message_id, "差替"))
    assert replay.status == 409 and replay.verified
    assert f"message {message_id} was already received for security@npa with a different envelope" in (
        replay.detail())
    [refused] = pair.audit(pair.npa, "message.replay_refused")
    assert refused["object_id"] == "security@npa"
    # The first envelope is still the one npa holds.
    assert npa_inbox_digests(pair.npa, message_id) == [env.envelope_digest(first)]


def npa_inbox_digests(node: Node, message_id: str) -> list[str]:
    with node.db.begin() as conn:
        return [r.envelope_sha256 for r in conn.execute(
            select(inbox.c.envelope_sha256).where(inbox.c.message_id == message_id)).all()]


def test_unreachable_peer_is_recorded_and_removal_forgets_it(peered: Pair, tmp_path: Path) -> None:
    pair = peered
    moj = Pair.peers(pair.moj)
    transport = pair.moj.transport
    assert transport is not None
    # Point moj's record of npa at a closed port: the transport reports "retry later" and remembers since when.
    from sqlalchemy import update

    from inkless.db.tables_federation import federation_peers

    with pair.moj.db.begin() as conn:
        conn.execute(update(federation_peers).where(federation_peers.c.node_id == "npa")
                     .values(url=f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(PeerUnreachableError):
        transport.deliver("npa", "civil-affairs@moj", "security@npa", "m-4", b"x")
    since = moj.get("npa").unreachable_since
    assert since is not None and "unreachable" in str(moj.get("npa").last_error)
    with pytest.raises(PeerUnreachableError):
        transport.deliver("npa", "civil-affairs@moj", "security@npa", "m-4", b"x")
    assert moj.get("npa").unreachable_since == since
    [result] = moj.refresh("npa")
    assert not result.ok
    # The directory we already had still answers lookups while the peer is down.
    assert moj.office("security@npa").name == "警備局"
    with pair.moj.db.begin() as conn:
        conn.execute(update(federation_peers).where(federation_peers.c.node_id == "npa").values(url=pair.npa_url))

    # npa unpins moj: moj's requests are refused from now on.
    Pair.peers(pair.npa).remove("moj", actor="cli")
    [result] = moj.refresh("npa")
    assert not result.ok and "not pinned" in str(result.error)
    assert pair.audit(pair.npa, "peer.removed")[-1]["object_id"] == "moj"
    with pytest.raises(NotFoundError):
        Pair.peers(pair.npa).remove("moj")
    # And moj can pin it again with the same fingerprint.
    _, again = Pair.peers(pair.npa).add(pair.moj_url, _fingerprint(pair.moj))
    assert again.ok
    assert moj.get("npa").added_at <= pair.moj.clock.now() + timedelta(seconds=1)
    assert base64.b64decode(certificate_header(moj.node_key()[1]))
    assert MESSAGES_PATH.endswith("/messages")


def test_peers_api_for_administrators(peered: Pair) -> None:
    from inkless.directory.tokens import ApiTokenService

    pair = peered
    moj = pair.moj
    moj.directory.add_user("kanri", "civil-affairs", "admin", 3, "管理 一郎")
    moj.directory.add_user("tanaka", "civil-affairs", "clerk", 1, "田中 花子")
    tokens = ApiTokenService(moj.db, moj.directory, moj.audit, moj.clock)
    admin = {"Authorization": "Bearer " + tokens.create("kanri", "civil-affairs", "peers", None).secret}
    clerk = {"Authorization": "Bearer " + tokens.create("tanaka", "civil-affairs", "peers", None).secret}
    api = pair.moj_url + "/api/v1/peers"
    with httpx.Client() as client:
        assert client.get(api).status_code == 401
        assert client.get(api, headers=clerk).status_code == 403
        listed = client.get(api, headers=admin)
        assert listed.status_code == 200 and [p["node_id"] for p in listed.json()] == ["npa"]
        wrong = client.post(api, headers=admin, json={"url": pair.npa_url, "fingerprint": _fingerprint(pair.moj)})
        assert wrong.status_code == 422 and _fingerprint(pair.npa) in wrong.json()["detail"]
        gone = client.post(api, headers=admin, json={"url": f"http://127.0.0.1:{free_port()}",
                                                     "fingerprint": _fingerprint(pair.npa)})
        assert gone.status_code == 502 and "unreachable" in gone.json()["detail"]
        refreshed = client.post(api + "/npa/refresh", headers=admin)
        assert refreshed.status_code == 200 and refreshed.json()["ok"]
        assert client.post(api + "/kyoto/refresh", headers=admin).status_code == 404
        assert client.delete(api + "/npa", headers=clerk).status_code == 403
        assert client.delete(api + "/npa", headers=admin).status_code == 204
        assert client.get(api, headers=admin).json() == []
        again = client.post(api, headers=admin, json={"url": pair.npa_url, "fingerprint": _fingerprint(pair.npa)})
        assert again.status_code == 201 and again.json()["directory"]["ok"]
        assert again.json()["offices"] == len(pair.npa.directory.offices())
    assert [a["actor"] for a in pair.audit(pair.moj, "peer.removed")] == ["kanri"]
