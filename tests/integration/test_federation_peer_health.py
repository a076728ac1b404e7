"""What a node remembers about its peers: the probe before a fax, the offices in the address book, refusals.

The pinning node is a real node (SQLite and PostgreSQL); its peers are played through httpx.MockTransport
(real CAs, real signed documents and RFC 9421 answers), so that each answer can be made to fail one way.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from inkless.app import Node
from inkless.db.tables_federation import federation_peers
from inkless.db.tables_traffic import anonymous_requests
from inkless.directory.peers import PeerService
from inkless.federation import httpsig
from inkless.federation.client import DIRECTORY_PATH, MESSAGES_PATH, NODE_PATH
from inkless.federation.documents import DIRECTORY_DOCUMENT
from tests.helpers.played_peers import Answer, PeerWorld, PlayedPeer, node_copy, peer_world


@pytest.fixture
def world(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[PeerWorld]:
    """Peers of the node: aomori (no offices), kyoto (two, listed out of order), npa (one), osaka (one), and
    kobe (no offices) behind a reverse proxy under ``/FAX``. On SQLite the node is a copy of one initialised
    per process (fast enough for mutation runs); on PostgreSQL a fresh one."""
    node: Node = node_copy(tmp_path) if backend == "sqlite" else request.getfixturevalue("node")
    world = peer_world(node, [
        PlayedPeer("aomori", []),
        PlayedPeer("kyoto", ["b@kyoto", "a@kyoto"]),
        PlayedPeer("npa", ["security@npa"]),
        PlayedPeer("osaka", ["port@osaka"]),
        PlayedPeer("kobe", [], base_path="/FAX"),
    ])
    try:
        yield world
    finally:
        world.service.client.close()
        if backend == "sqlite":
            node.close()


# --- the probe the fax fallback asks right before faxing ---------------------------------------------------


def test_a_probe_answered_with_a_signed_answer_clears_the_unreachable_flag(world: PeerWorld) -> None:
    world.pin("npa")
    service, npa = world.service, world.peers["npa"]
    service.record_contact("npa", "messages: npa is unreachable", reachable=False)
    flagged_at = world.clock.now()
    assert service.get("npa").unreachable_since == flagged_at
    world.clock.advance(minutes=5)
    npa.seen.clear()
    assert service.probe("npa") is True
    peer = service.get("npa")
    assert (peer.unreachable_since, peer.last_error, peer.last_seen_at) == (None, None, world.clock.now())
    # One signed request for the node document, at the pinned URL.
    [request] = npa.seen
    assert (request.method, str(request.url)) == ("GET", npa.url + NODE_PATH)
    assert httpsig.parse_signature(dict(request.headers.items())).params.keyid == world.node.node_id


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (
            httpx.ConnectError("connection refused"),
            "probe: npa is unreachable: connection refused (http://npa.invalid:9/federation/v1/node)",
        ),
        ((503, "try again later", True), "probe: HTTP 503: try again later"),
        ((500, "internal error", True), "probe: HTTP 500: internal error"),
        ((200, "", False), "probe: HTTP 200: the message is not signed (no Signature-Input / Signature headers)"),
    ],
)
def test_a_probe_that_fails_keeps_the_peer_unreachable_since_the_first_failure(
    world: PeerWorld, answer: Answer, error: str
) -> None:
    world.pin("npa")
    service, npa = world.service, world.peers["npa"]
    npa.answer = answer
    pinned_at = world.clock.now()
    world.clock.advance(minutes=1)
    first = world.clock.now()
    assert service.probe("npa") is False
    peer = service.get("npa")
    assert (peer.unreachable_since, peer.last_error) == (first, error)
    world.clock.advance(minutes=5)
    assert service.probe("npa") is False
    peer = service.get("npa")
    assert (peer.unreachable_since, peer.last_error) == (first, error)  # still since the first failure
    assert peer.last_seen_at == pinned_at  # the last answer that came


def test_a_peer_that_answers_a_signed_refusal_is_reachable(world: PeerWorld) -> None:
    """A signed 401 or 404 proves the peer is up: the fallback must not fax it."""
    world.pin("npa")
    service, npa = world.service, world.peers["npa"]
    service.record_contact("npa", "messages: npa is unreachable", reachable=False)
    for status in (401, 404, 499):
        npa.answer = (status, "no", True)
        assert service.probe("npa") is True
        assert service.get("npa").unreachable_since is None and service.get("npa").last_error is None


def test_a_peer_served_under_a_path_is_probed_there(world: PeerWorld) -> None:
    world.pin("kobe")
    kobe = world.peers["kobe"]
    kobe.seen.clear()
    assert world.service.probe("kobe") is True
    assert [str(r.url) for r in kobe.seen] == ["http://kobe.invalid:9/FAX/federation/v1/node"]


def test_a_contact_without_a_verdict_is_reachable_exactly_when_it_brought_no_error(world: PeerWorld) -> None:
    world.pin("npa")
    service = world.service
    service.record_contact("npa", "messages: npa is unreachable")
    peer = service.get("npa")
    assert (peer.unreachable_since, peer.last_error) == (world.clock.now(), "messages: npa is unreachable")
    world.clock.advance(minutes=1)
    service.record_contact("npa", None)
    peer = service.get("npa")
    assert (peer.unreachable_since, peer.last_error, peer.last_seen_at) == (None, None, world.clock.now())
    # A peer's error text is kept to 2000 characters; a contact for a peer not pinned changes nothing.
    service.record_contact("npa", "HTTP 503: " + "x" * 2500, reachable=False)
    assert service.get("npa").last_error == ("HTTP 503: " + "x" * 2500)[:2000]
    service.record_contact("nowhere", "unreachable", reachable=False)
    assert [p.node_id for p in service.all()] == ["npa"]


# --- the offices of peers in the address book ---------------------------------------------------------------


def _addresses(service: PeerService, node_id: str | None = None) -> list[str]:
    return [o.address for o in service.remote_offices(node_id)]


def test_remote_offices_come_from_every_fetched_directory_in_address_order(world: PeerWorld) -> None:
    service = world.service
    assert _addresses(service) == []
    world.pin("kyoto", "npa", "osaka")
    assert _addresses(service) == ["a@kyoto", "b@kyoto", "port@osaka", "security@npa"]
    assert _addresses(service, "kyoto") == ["a@kyoto", "b@kyoto"]
    assert _addresses(service, "npa") == ["security@npa"]
    assert _addresses(service, "nowhere") == []
    [office] = service.remote_offices("npa")
    assert (office.name, office.organisation) == ("office security@npa", None)


def test_a_peer_without_a_directory_is_skipped_not_the_end_of_the_list(world: PeerWorld) -> None:
    # aomori sorts first: its directory request is refused, so nothing of it is known yet.
    world.peers["aomori"].answer = (401, "moj is not pinned here", True)
    world.peers["aomori"].answer_path = DIRECTORY_PATH
    world.pin("npa")
    world.service.add(world.peers["aomori"].url, world.peers["aomori"].fingerprint)
    assert world.service.get("aomori").directory_fetched_at is None
    assert _addresses(world.service) == ["security@npa"]


def test_a_stored_directory_that_no_longer_verifies_is_left_out(world: PeerWorld) -> None:
    world.pin("kyoto", "npa")
    with world.node.db.begin() as conn:
        jws = conn.execute(
            select(federation_peers.c.directory_jws).where(federation_peers.c.node_id == "kyoto")
        ).scalar_one()
        head, _body, signature = jws.split(".")
        forged = base64.urlsafe_b64encode(json.dumps({"type": DIRECTORY_DOCUMENT, "node_id": "kyoto"}).encode())
        conn.execute(
            update(federation_peers)
            .where(federation_peers.c.node_id == "kyoto")
            .values(directory_jws=f"{head}.{forged.decode().rstrip('=')}.{signature}")
        )
    assert _addresses(world.service) == ["security@npa"]
    # And one whose office certificates have expired since it was fetched.
    world.clock.advance(days=400)
    assert _addresses(world.service) == []


def test_a_peer_marked_fetched_without_a_stored_directory_is_skipped(world: PeerWorld) -> None:
    world.pin("kyoto", "npa")
    with world.node.db.begin() as conn:
        conn.execute(update(federation_peers).where(federation_peers.c.node_id == "kyoto").values(directory_jws=None))
    assert _addresses(world.service) == ["security@npa"]


# --- federation requests refused after their signature held -------------------------------------------------


def _refusals(node: Node) -> list[Any]:
    with node.db.read() as conn:
        return node.audit.entries(conn, 0, 1000, action="federation.request_refused")


def _tally(node: Node) -> dict[tuple[str, str, str], int]:
    with node.db.read() as conn:
        rows = conn.execute(
            select(
                anonymous_requests.c.endpoint,
                anonymous_requests.c.client,
                anonymous_requests.c.outcome,
                anonymous_requests.c.count.label("n"),
            )
        ).all()
    return {(r.endpoint, r.client, r.outcome): int(r.n) for r in rows}


def test_a_refusal_of_a_signed_request_is_audited_with_its_peer_reason_method_path_and_client(world: PeerWorld) -> None:
    world.pin("npa")
    node, service = world.node, world.service
    reason = "the envelope is larger than this node's limit of 4096 bytes " + "x" * 600
    service.refuse(reason, "npa", "POST", "http://moj.example:8080/federation/v1/messages?retry=2#x", "203.0.113.7")
    [entry] = _refusals(node)
    assert (entry.actor, entry.action, entry.object_type, entry.object_id, entry.digests) == (
        "peer:npa",
        "federation.request_refused",
        "peer",
        "npa",
        {},
    )
    assert entry.details == {"reason": reason[:500], "method": "POST", "path": MESSAGES_PATH, "client": "203.0.113.7"}
    service.refuse(
        "sender office kyoto@kyoto is not of node npa", "npa", "PUT", "http://moj.example/federation/v1/messages", None
    )
    assert [(e.details["reason"], e.details["method"], e.details["client"]) for e in _refusals(node)] == [
        (reason[:500], "POST", "203.0.113.7"),
        ("sender office kyoto@kyoto is not of node npa", "PUT", None),
    ]
    assert not [k for k in _tally(node) if k[0] == "federation"]


def test_a_refusal_before_any_signature_is_counted_not_audited(world: PeerWorld) -> None:
    node, service = world.node, world.service
    for _ in range(2):
        service.refuse(
            "the body is larger than this node's limit",
            None,
            "POST",
            "http://moj.example/federation/v1/messages",
            "198.51.100.4",
        )
    service.refuse(
        "the body is larger than this node's limit", None, "POST", "http://moj.example/federation/v1/messages", None
    )
    assert _refusals(node) == []
    assert {k: v for k, v in _tally(node).items() if k[0] == "federation"} == {
        ("federation", "198.51.100.4", "refused"): 2,
        ("federation", "unknown", "refused"): 1,
    }
