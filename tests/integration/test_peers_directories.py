"""The signed office directories of pinned peers: refreshing them, what is read from them, and each refusal.

A real node on SQLite (copied from one initialised per process); peers played through httpx.MockTransport
with real CAs, real signed directories and real RFC 9421 answers (tests/helpers/played_peers.py).
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
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select, update

from inkless.db.tables_federation import federation_peers
from inkless.directory.peers import RefreshResult
from inkless.errors import NotFoundError, PKIError
from inkless.federation.client import DIRECTORY_PATH, NODE_PATH
from inkless.federation.documents import NODE_DOCUMENT
from tests.helpers.pki import StandaloneCA
from tests.helpers.played_peers import PeerWorld, PlayedPeer, audit_entries, copied_world, peer_world


@pytest.fixture
def world(tmp_path: Path) -> Iterator[PeerWorld]:
    with copied_world(tmp_path, [PlayedPeer("npa", ["security@npa"]),
                                 PlayedPeer("kyoto", ["b@kyoto", "a@kyoto"])]) as world:
        yield world


_audit = audit_entries


def _stored_directory(world: PeerWorld, node_id: str) -> str | None:
    with world.node.db.read() as conn:
        return conn.execute(
            select(federation_peers.c.directory_jws).where(federation_peers.c.node_id == node_id)).scalar()


def _pin_without_directory(world: PeerWorld, node_id: str) -> None:
    """Pin ``node_id`` while it refuses its directory (a signed 401), then let it answer again."""
    peer = world.peers[node_id]
    peer.answer, peer.answer_path = (401, "moj is not pinned here", True), DIRECTORY_PATH
    world.pin(node_id)
    peer.answer = peer.answer_path = None


# --- refreshing ------------------------------------------------------------------------------------------


def test_a_refresh_records_a_changed_directory_once_and_an_unchanged_one_silently(world: PeerWorld) -> None:
    world.pin("npa")
    npa = world.peers["npa"]
    first = _stored_directory(world, "npa")
    world.clock.advance(minutes=10)
    # Signed again (another issued_at), the same offices: no change, no audit entry, but a new fetch time.
    assert world.service.refresh("npa", actor="admin:taro") == [RefreshResult("npa", True, 1, False, None)]
    assert _stored_directory(world, "npa") != first
    peer = world.service.get("npa")
    assert (peer.directory_fetched_at, peer.last_seen_at) == (world.clock.now(), world.clock.now())
    assert len(_audit(world, "peer.directory_updated")) == 1
    npa.listed.append(npa.office_entry("traffic@npa"))
    world.clock.advance(minutes=10)
    assert world.service.refresh("npa", actor="admin:taro") == [RefreshResult("npa", True, 2, True, None)]
    latest = _audit(world, "peer.directory_updated")[-1]
    assert (latest.at, latest.actor, latest.object_type, latest.object_id, latest.details) == (
        world.clock.now(), "admin:taro", "peer", "npa", {"offices": 2})
    assert latest.digests["directory"] != _audit(world, "peer.directory_updated")[0].digests["directory"]
    assert world.service.get("npa").office_count == 2


def test_the_same_offices_written_in_another_key_order_are_no_change(world: PeerWorld) -> None:
    world.pin("npa")
    npa = world.peers["npa"]
    npa.listed = [dict(reversed(entry.items())) for entry in npa.listed]
    world.clock.advance(minutes=1)
    assert world.service.refresh("npa") == [RefreshResult("npa", True, 1, False, None)]
    assert len(_audit(world, "peer.directory_updated")) == 1


def test_a_stored_directory_that_cannot_be_read_is_replaced_as_a_change(world: PeerWorld) -> None:
    world.pin("npa")
    with world.node.db.begin() as conn:
        conn.execute(update(federation_peers).where(federation_peers.c.node_id == "npa").values(directory_jws="x"))
    assert world.service.refresh("npa") == [RefreshResult("npa", True, 1, True, None)]
    assert len(_audit(world, "peer.directory_updated")) == 2
    # Replaced by a directory that lists no offices at all: a change too.
    with world.node.db.begin() as conn:
        conn.execute(update(federation_peers).where(federation_peers.c.node_id == "npa").values(directory_jws="x"))
    world.peers["npa"].payload_edit[DIRECTORY_PATH] = lambda p: {k: v for k, v in p.items() if k != "offices"}
    assert world.service.refresh("npa") == [RefreshResult("npa", True, 0, True, None)]


def test_refreshing_every_peer_and_an_unknown_one(world: PeerWorld) -> None:
    world.pin("npa", "kyoto")
    assert world.service.refresh() == [RefreshResult("kyoto", True, 2, False, None),
                                       RefreshResult("npa", True, 1, False, None)]
    for peer in world.peers.values():
        peer.listed.pop()
    assert world.service.refresh(actor="admin:taro") == [RefreshResult("kyoto", True, 1, True, None),
                                                         RefreshResult("npa", True, 0, True, None)]
    world.peers["npa"].listed.append(world.peers["npa"].office_entry("security@npa"))
    assert world.service.refresh("npa") == [RefreshResult("npa", True, 1, True, None)]
    assert [(e.actor, e.object_id) for e in _audit(world, "peer.directory_updated")][2:] == [
        ("admin:taro", "kyoto"), ("admin:taro", "npa"), ("system", "npa")]
    with pytest.raises(NotFoundError, match=r"^no pinned peer 'osaka'$"):
        world.service.refresh("osaka")


def _refresh_fails(world: PeerWorld, error: str) -> None:
    before = _stored_directory(world, "npa")
    world.clock.advance(minutes=3)
    assert world.service.refresh("npa") == [RefreshResult("npa", False, 0, False, error)]
    peer = world.service.get("npa")
    assert peer.last_error == f"directory: {error}"
    assert _stored_directory(world, "npa") == before  # the last good directory is kept


def test_a_directory_answer_without_a_valid_signature_marks_the_peer_unreachable(world: PeerWorld) -> None:
    world.pin("npa")
    world.peers["npa"].answer = (200, "", False)
    _refresh_fails(world, "npa answered HTTP 200 without a valid signature: "
                          "the message is not signed (no Signature-Input / Signature headers)")
    assert world.service.get("npa").unreachable_since == world.clock.now()


def test_a_network_failure_marks_the_peer_unreachable(world: PeerWorld) -> None:
    world.pin("npa")
    world.peers["npa"].answer = httpx.ConnectError("connection refused")
    _refresh_fails(world, f"npa is unreachable: connection refused ({world.peers['npa'].url}{DIRECTORY_PATH})")
    assert world.service.get("npa").unreachable_since == world.clock.now()


def test_a_signed_refusal_is_an_error_from_a_reachable_peer(world: PeerWorld) -> None:
    world.pin("npa")
    world.service.record_contact("npa", "messages: npa is unreachable", reachable=False)
    world.peers["npa"].answer = (403, "moj may not read this directory", True)
    _refresh_fails(world, "npa refused the directory request (403): moj may not read this directory")
    peer = world.service.get("npa")
    assert (peer.unreachable_since, peer.last_seen_at) == (None, world.clock.now())


def test_a_good_refresh_clears_the_last_error_and_the_unreachable_flag(world: PeerWorld) -> None:
    world.pin("npa")
    world.peers["npa"].answer = httpx.ConnectError("connection refused")
    world.service.refresh("npa")
    assert world.service.get("npa").unreachable_since is not None
    world.peers["npa"].answer = None
    world.clock.advance(minutes=1)
    assert world.service.refresh("npa") == [RefreshResult("npa", True, 1, False, None)]
    peer = world.service.get("npa")
    assert (peer.last_error, peer.unreachable_since, peer.last_seen_at) == (None, None, world.clock.now())


def _payload_of(body: dict[str, Any]) -> dict[str, Any]:
    part = body["signed"].split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (lambda w: w.peers["npa"].body_edit.update({DIRECTORY_PATH: lambda b: {"node_id": "npa"}}), "'signed'"),
        (lambda w: w.peers["npa"].payload_edit.update({DIRECTORY_PATH: lambda p: p | {"node_id": "kyoto"}}),
         "the directory is for node 'kyoto', not 'npa'"),
        (lambda w: w.peers["npa"].payload_edit.update({DIRECTORY_PATH: lambda p: p | {"type": NODE_DOCUMENT}}),
         f"expected a signed inkless-directory document, got '{NODE_DOCUMENT}'"),
        (lambda w: w.peers["npa"].listed.append(w.peers["npa"].office_entry("port@osaka")),
         "the directory of npa lists a foreign office 'port@osaka'"),
        (lambda w: w.peers["npa"].listed[0].update(address="traffic@npa"),
         "the encryption certificate names office 'security@npa', not 'traffic@npa'"),
        (lambda w: w.peers["npa"].listed[0].update(
            encryption_certificate=w.peers["npa"].listed[0]["signing_certificate"]),
         "the encryption certificate of security@npa does not allow key encipherment"),
        (lambda w: w.peers["npa"].listed[0].update(
            signing_certificate=w.peers["npa"].listed[0]["encryption_certificate"]),
         "the signing certificate of security@npa does not allow signatures"),
        (lambda w: w.peers["npa"].listed[0].pop("name"), "'name'"),
        (lambda w: w.peers["npa"].listed[0].pop("signing_certificate"), "'signing_certificate'"),
    ],
)
def test_a_directory_that_does_not_hold_is_refused_and_the_last_good_one_kept(world: PeerWorld, edit: Any,
                                                                              error: str) -> None:
    world.pin("npa")
    world.service.record_contact("npa", "messages: npa is unreachable", reachable=False)
    edit(world)
    _refresh_fails(world, error)
    # The peer answered, properly signed: it is reachable, its directory is what is wrong.
    assert world.service.get("npa").unreachable_since is None
    assert world.service.office("security@npa").address == "security@npa"


def test_a_directory_of_another_peers_ca_is_refused(world: PeerWorld) -> None:
    world.pin("npa")
    npa = world.peers["npa"]
    npa.document_signer = npa.node_certificate(StandaloneCA("npa CA"))
    _refresh_fails(world, "the certificate 'CN=leaf' was not issued by the pinned CA 'CN=npa CA' (InvalidSignature)")


def test_an_office_certificate_that_has_expired_is_refused_at_refresh(world: PeerWorld) -> None:
    world.pin("npa")
    npa = world.peers["npa"]
    expired = world.clock.now() - timedelta(days=1)
    npa.listed[0] = npa.office_entry("security@npa", not_after=expired)
    _refresh_fails(world, f"the encryption (security@npa) certificate expired on {expired:%Y-%m-%d}")
    npa.listed[0] = npa.office_entry("security@npa", signing_not_after=expired)
    _refresh_fails(world, f"the signing (security@npa) certificate expired on {expired:%Y-%m-%d}")


# --- what is read from a directory ---------------------------------------------------------------------


def test_an_office_is_read_with_every_field_its_peer_signed(world: PeerWorld) -> None:
    npa = world.peers["npa"]
    npa.organisation = "警察庁"
    npa.listed[0].update(name="警備局", kana="ケイビキョク", fax_number="03-3581-0141")
    world.pin("npa")
    office = world.service.office("security@npa")
    entry = npa.listed[0]
    assert (office.address, office.name, office.kana, office.fax_number, office.organisation) == (
        "security@npa", "警備局", "ケイビキョク", "03-3581-0141", "警察庁")
    for cert, key in ((office.encryption_certificate, "encryption_certificate"),
                      (office.signing_certificate, "signing_certificate")):
        assert base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode() == entry[key]
    # Without kana, organisation or fax number they are None, not "None" nor "".
    world.pin("kyoto")
    [a, b] = world.service.remote_offices("kyoto")
    assert (a.address, a.name, a.kana, a.fax_number, a.organisation) == ("a@kyoto", "office a@kyoto", None, None, None)
    assert b.address == "b@kyoto"


def test_a_directory_without_an_office_list_lists_no_offices(world: PeerWorld) -> None:
    world.peers["npa"].payload_edit[DIRECTORY_PATH] = lambda p: {k: v for k, v in p.items() if k != "offices"}
    world.pin("npa")
    assert world.service.refresh("npa") == [RefreshResult("npa", True, 0, False, None)]
    assert world.service.remote_offices() == [] and world.service.get("npa").office_count == 0


def test_empty_readings_are_none(world: PeerWorld) -> None:
    npa = world.peers["npa"]
    npa.organisation = ""
    npa.listed[0].update(kana="")
    world.pin("npa")
    office = world.service.office("security@npa")
    assert (office.kana, office.organisation) == (None, None)


def test_an_office_the_directory_does_not_list_is_not_found(world: PeerWorld) -> None:
    world.pin("npa")
    with pytest.raises(NotFoundError, match=r"^no office 'traffic@npa' in the directory of npa$"):
        world.service.office("traffic@npa")
    with pytest.raises(NotFoundError, match=r"^no pinned peer 'osaka'$"):
        world.service.office("port@osaka")


def test_an_office_certificate_that_expired_since_the_refresh_is_refused(world: PeerWorld) -> None:
    npa = world.peers["npa"]
    soon = world.clock.now() + timedelta(days=2)
    npa.listed[0] = npa.office_entry("security@npa", not_after=soon)
    world.pin("npa")
    assert world.service.office("security@npa").address == "security@npa"
    world.clock.advance(days=3)
    with pytest.raises(PKIError) as info:
        world.service.office("security@npa")
    assert str(info.value) == f"the encryption certificate of security@npa expired on {soon:%Y-%m-%d}"
    npa.listed[0] = npa.office_entry("security@npa", signing_not_after=world.clock.now() + timedelta(days=2))
    assert world.service.refresh("npa")[0].ok
    world.clock.advance(days=3)
    with pytest.raises(PKIError) as info:
        world.service.office("security@npa")
    assert str(info.value) == (
        f"the signing certificate of security@npa expired on {world.clock.now() - timedelta(days=1):%Y-%m-%d}")


def test_an_office_at_the_last_second_of_its_certificate_is_still_valid(world: PeerWorld) -> None:
    npa = world.peers["npa"]
    until = world.clock.now() + timedelta(days=2)
    npa.listed[0] = npa.office_entry("security@npa", not_after=until, signing_not_after=until)
    world.pin("npa")
    world.clock.advance(days=2)
    assert world.service.office("security@npa").address == "security@npa"


def test_a_directory_is_fetched_on_first_use_when_none_came_at_pinning(world: PeerWorld) -> None:
    _pin_without_directory(world, "npa")
    assert world.service.get("npa").directory_fetched_at is None
    office = world.service.office("security@npa")
    assert office.address == "security@npa"
    assert world.service.get("npa").directory_fetched_at == world.clock.now()
    [fetched] = _audit(world, "peer.directory_updated")
    assert (fetched.actor, fetched.object_id, fetched.details) == ("system", "npa", {"offices": 1})


def test_a_directory_that_cannot_be_fetched_on_first_use_is_not_found_with_the_reason(world: PeerWorld) -> None:
    _pin_without_directory(world, "npa")
    world.peers["npa"].answer = (503, "maintenance", True)
    with pytest.raises(NotFoundError) as info:
        world.service.office("security@npa")
    assert str(info.value) == ("no office directory from npa yet "
                               "(npa refused the directory request (503): maintenance)")


def test_a_peer_marked_fetched_without_a_stored_directory_has_no_offices(world: PeerWorld) -> None:
    world.pin("npa")
    world.service.remove("npa")
    world.pin("npa")
    with world.node.db.begin() as conn:
        conn.execute(update(federation_peers).where(federation_peers.c.node_id == "npa").values(directory_jws=None))
    world.clock.advance(seconds=1)
    with world.node.db.begin() as conn:
        conn.execute(update(federation_peers).where(federation_peers.c.node_id == "npa")
                     .values(directory_fetched_at=world.clock.now()))
    with pytest.raises(NotFoundError, match=r"^no office directory from npa yet$"):
        world.service.office("security@npa")
    assert world.service.get("npa").office_count == 0


def test_a_stored_directory_that_no_longer_verifies_is_refused(world: PeerWorld) -> None:
    world.pin("npa")
    head, _body, signature = (_stored_directory(world, "npa") or "").split(".")
    forged = base64.urlsafe_b64encode(json.dumps(
        {"type": "inkless-directory", "node_id": "npa", "offices": []}).encode()).decode().rstrip("=")
    world.clock.advance(seconds=1)
    with world.node.db.begin() as conn:
        conn.execute(update(federation_peers).where(federation_peers.c.node_id == "npa").values(
            directory_jws=f"{head}.{forged}.{signature}", directory_fetched_at=world.clock.now()))
    with pytest.raises(PKIError) as info:
        world.service.office("security@npa")
    assert str(info.value) == ("the stored directory of npa no longer verifies: the signature does not verify "
                               "(message altered, or signed by another key)")
    # The office count is read from the stored payload, signature or not.
    assert world.service.get("npa").office_count == 0


def test_a_parsed_directory_is_kept_until_the_next_fetch(world: PeerWorld) -> None:
    world.pin("npa")
    first = world.service.office("security@npa")
    assert world.service.office("security@npa") is first
    npa = world.peers["npa"]
    npa.listed[0].update(name="警備局")
    world.clock.advance(minutes=1)
    world.service.refresh("npa")
    assert world.service.office("security@npa").name == "警備局"
    # A directory stored by another process (a new fetch time) is read again.
    npa.listed[0].update(name="警備局第二")
    other = peer_world(world.node, [npa])
    other.clock.advance(minutes=2)
    other.service.refresh("npa")
    other.service.client.close()
    again = world.service.office("security@npa")
    assert again.name == "警備局第二"
    assert world.service.office("security@npa") is again  # parsed once, then kept


def test_a_stored_directory_that_is_not_a_signed_document_counts_no_offices(world: PeerWorld) -> None:
    world.pin("npa")
    for stored in ("garbage", "a.!!!.c", "a." + base64.urlsafe_b64encode(b"[1, 2]").decode() + ".c"):
        with world.node.db.begin() as conn:
            conn.execute(update(federation_peers).where(federation_peers.c.node_id == "npa")
                         .values(directory_jws=stored))
        assert world.service.get("npa").office_count == 0, stored
        assert world.service.remote_offices() == []


def test_a_node_path_request_is_never_made_by_a_refresh(world: PeerWorld) -> None:
    world.pin("npa")
    npa = world.peers["npa"]
    npa.seen.clear()
    world.service.refresh("npa")
    assert [r.url.path for r in npa.seen] == [DIRECTORY_PATH]
    assert NODE_PATH not in [r.url.path for r in npa.seen]
