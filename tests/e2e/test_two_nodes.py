"""Two nodes as separate ``inkless serve`` processes on loopback: peered with the CLI, messages both ways and to a
list spanning both, receipts verified with openssl, the envelope opened across nodes with ``openssl cms``, and
forged, replayed, stale and tampered federation requests refused."""

from __future__ import annotations

import email
import email.policy
import io
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas
from sqlalchemy import func, select

from inkless.app import Node
from inkless.db import tables as t
from inkless.delivery.model import RecipientStatus
from inkless.delivery.service import NewDocument
from inkless.directory.peers import PeerService
from inkless.federation import httpsig
from inkless.federation.client import DIRECTORY_PATH, MESSAGE_HEADERS, MESSAGES_PATH, certificate_header
from inkless.pki.model import CertPurpose
from tests.conftest import BACKENDS
from tests.helpers.nodes import NodeProcess, init_nodes, node_processes, start_nodes
from tests.helpers.pki import cert_and_key_pem

# Small intervals so that the outbox and its retries move within seconds.
FAST = {
    "delivery_poll_seconds": "1",
    "delivery_backoff_base_seconds": "1",
    "delivery_backoff_cap_seconds": "2",
    "delivery_lease_seconds": "5",
}
WAIT_SECONDS = 120


def pdf(text: str) -> bytes:
    out = io.BytesIO()
    page = canvas.Canvas(out, pagesize=A4, invariant=True)
    page.drawString(72, 720, text)
    page.showPage()
    page.save()
    return out.getvalue()


def openssl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["openssl", *args], capture_output=True, check=False)


@dataclass
class Federation:
    moj: NodeProcess
    npa: NodeProcess
    moj_ctl: Node
    npa_ctl: Node
    mismatch: subprocess.CompletedProcess[str]
    added_on_moj: dict[str, object]
    added_on_npa: dict[str, object]
    refreshed_on_moj: object


@pytest.fixture(scope="module", params=BACKENDS)
def federation(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    """moj (two offices) and npa (one office), served on loopback ports and pinned both ways with the CLI."""
    folder = tmp_path_factory.mktemp("two-nodes")
    with node_processes(str(request.param), folder, ["moj", "npa"], FAST) as nodes:
        moj, npa = nodes["moj"], nodes["npa"]
        init_nodes({moj: (("civil-affairs", "民事局"), ("criminal-affairs", "刑事局")), npa: (("security", "警備局"),)})
        start_nodes(moj, npa)
        # A wrong fingerprint first: refused, nothing stored.
        mismatch = moj.cli("peer", "add", npa.url, "--fingerprint", moj.fingerprint, check=False)
        added_on_moj = moj.cli_json("peer", "add", npa.url, "--fingerprint", npa.fingerprint)
        added_on_npa = npa.cli_json("peer", "add", moj.url, "--fingerprint", moj.fingerprint)
        # Now npa answers moj: the refresh fetches its directory (before any test can have looked an office up).
        refreshed_on_moj = moj.cli_json("peer", "refresh", "npa")
        moj_ctl, npa_ctl = moj.control(), npa.control()
        try:
            yield Federation(moj, npa, moj_ctl, npa_ctl, mismatch, added_on_moj, added_on_npa, refreshed_on_moj)
        finally:
            moj_ctl.close()
            npa_ctl.close()


def wait_delivered(node: Node, message_id: str, log: Path) -> list[RecipientStatus]:
    """Poll the sender's outbox until every recipient of ``message_id`` is delivered."""
    assert node.delivery is not None
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        rows = node.delivery.status(message_id, None)
        if all(r.state == "delivered" for r in rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"not delivered in time: {rows}\n{log.read_text()[-3000:]}")
        time.sleep(0.3)


def test_peering_with_the_cli(federation: Federation) -> None:
    f = federation
    # Exit code 4 (not allowed) and both fingerprints named; nothing was stored.
    assert f.mismatch.returncode == 4
    assert f.npa.fingerprint in f.mismatch.stderr and f.moj.fingerprint in f.mismatch.stderr
    # moj pinned npa before npa pinned moj: npa refused the directory request and moj says so.
    assert f.added_on_moj["node_id"] == "npa" and f.added_on_moj["fingerprint"] == f.npa.fingerprint
    directory = f.added_on_moj["directory"]
    assert isinstance(directory, dict) and not directory["ok"] and "not pinned" in str(directory["error"])
    directory = f.added_on_npa["directory"]
    assert isinstance(directory, dict) and directory["ok"] and directory["offices"] == 2
    assert f.refreshed_on_moj == [{"node_id": "npa", "ok": True, "offices": 1, "changed": True, "error": None}]
    assert isinstance(f.moj_ctl.peers, PeerService)
    [peer] = f.moj_ctl.peers.all()
    assert peer.node_id == "npa" and peer.url == f.npa.url and peer.office_count == 1 and peer.last_error is None


def test_messages_both_ways_and_to_a_list_with_receipts(federation: Federation, tmp_path: Path) -> None:
    f = federation
    moj, npa = f.moj_ctl.delivery, f.npa_ctl.delivery
    assert moj is not None and npa is not None
    doc = tmp_path / "照会書.pdf"
    doc.write_bytes(pdf("Inquiry from the Ministry of Justice"))
    # The clerk's command; the rest is sent the way the API and the UI do, through the same service.
    to_npa = f.moj.cli_json("send", "--from", "civil-affairs", "--to", "security@npa", "--subject", "照会",
                            "--classification", "1", str(doc))["message_id"]
    answer = pdf("Answer from the National Police Agency")
    to_moj = npa.send(None, "security", ["civil-affairs@moj"], [], "回答", [NewDocument("回答書.pdf", answer)])
    moj.set_list("all-offices", ["criminal-affairs@moj", "security@npa"])
    broadcast = moj.send(None, "civil-affairs", [], ["all-offices"], "一斉連絡",
                         [NewDocument("照会書.pdf", doc.read_bytes())], priority="urgent")

    for ctl, node, message_id, recipients in (
        (f.moj_ctl, f.moj, to_npa, ["security@npa"]),
        (f.npa_ctl, f.npa, to_moj, ["civil-affairs@moj"]),
        (f.moj_ctl, f.moj, broadcast, ["criminal-affairs@moj", "security@npa"]),
    ):
        rows = wait_delivered(ctl, message_id, node.log)
        assert sorted(r.recipient for r in rows) == recipients
        assert all(r.has_receipt and r.received_at is not None for r in rows)

    npa_inbox = {i.message_id: i for i in npa.inbox("security", None)}
    assert set(npa_inbox) == {to_npa, broadcast}
    assert npa_inbox[to_npa].sender == "civil-affairs@moj" and npa_inbox[to_npa].authenticated
    assert [i.message_id for i in moj.inbox("civil-affairs", None)] == [to_moj]
    assert [i.message_id for i in moj.inbox("criminal-affairs", None)] == [broadcast]

    # The sender's receipt is signed by the receiving office of the other node: openssl checks it against npa's CA.
    npa_ca = tmp_path / "npa-ca.pem"
    npa_ca.write_bytes(httpx.get(f"{f.npa.url}/pki/ca.pem").content)
    moj_ca = tmp_path / "moj-ca.pem"
    moj_ca.write_bytes(httpx.get(f"{f.moj.url}/pki/ca.pem").content)
    sent = tmp_path / "sent"
    f.moj.cli("message", "export", to_npa, "--out", str(sent))
    [receipt] = sent.glob("receipt-*.p7s")
    checked = openssl("cms", "-verify", "-inform", "DER", "-in", str(receipt), "-CAfile", str(npa_ca), "-binary")
    assert checked.returncode == 0, checked.stderr.decode()
    facts = json.loads(checked.stdout)
    assert facts["message_id"] == to_npa and facts["recipient"] == "security@npa"
    assert openssl("cms", "-verify", "-inform", "DER", "-in", str(receipt), "-CAfile", str(moj_ca),
                   "-binary").returncode != 0

    # The envelope as npa stored it opens with npa's office key and verifies against moj's CA.
    received = tmp_path / "received"
    npa.export(to_npa, None, received)
    cert, key = cert_and_key_pem(f.npa_ctl, CertPurpose.OFFICE_ENCRYPTION, "security", tmp_path)
    signed = tmp_path / "signed.der"
    dec = openssl("cms", "-decrypt", "-inform", "DER", "-in", str(received / "envelope.p7m"), "-recip", str(cert),
                  "-inkey", str(key), "-binary", "-out", str(signed))
    assert dec.returncode == 0, dec.stderr.decode()
    ver = openssl("cms", "-verify", "-inform", "DER", "-in", str(signed), "-CAfile", str(moj_ca), "-binary",
                  "-out", str(tmp_path / "message.eml"))
    assert ver.returncode == 0 and b"Verification successful" in ver.stderr, ver.stderr.decode()
    assert openssl("cms", "-verify", "-inform", "DER", "-in", str(signed), "-CAfile", str(npa_ca),
                   "-binary").returncode != 0
    mime = email.message_from_bytes((tmp_path / "message.eml").read_bytes(), policy=email.policy.default)
    parts = list(mime.iter_parts())  # type: ignore[attr-defined]
    meta = json.loads(parts[0].get_payload(decode=True))
    assert meta["message_id"] == to_npa and meta["from"] == "civil-affairs@moj" and meta["to"] == ["security@npa"]
    assert parts[1].get_payload(decode=True) == doc.read_bytes()


def _signed(f: Federation, method: str, path: str, body: bytes = b"", *, created_offset: int = 0,
            key: ec.EllipticCurvePrivateKey | None = None, keyid: str = "moj",
            covered: dict[str, str] | None = None) -> httpx.Request:
    """A request to npa signed as moj signs it (moj's real node key, read from its data folder)."""
    assert isinstance(f.moj_ctl.peers, PeerService)
    node_key, node_cert = f.moj_ctl.peers.node_key()
    url = f.npa.url + path
    headers = httpsig.sign_request(method, url, body, key or node_key, keyid, int(time.time()) + created_offset,
                                   covered=covered)
    headers[httpsig.NODE_CERTIFICATE_HEADER] = certificate_header(node_cert)
    return httpx.Request(method, url, content=body, headers=headers)


def _refusals(node: Node) -> int:
    with node.db.begin() as conn:
        return int(conn.execute(select(func.count()).select_from(t.audit_entries)
                                .where(t.audit_entries.c.action == "federation.request_refused")).scalar_one())


def test_forged_replayed_stale_and_tampered_requests_are_refused(federation: Federation) -> None:
    f = federation
    covered = dict(zip(MESSAGE_HEADERS, ("civil-affairs@moj", "security@npa", "m-forged"), strict=True))
    before = _refusals(f.npa_ctl)
    with httpx.Client() as client:
        good = _signed(f, "GET", DIRECTORY_PATH)
        first = client.send(good)
        assert first.status_code == 200 and first.json()["node_id"] == "npa"
        # The same bytes sent again, as an eavesdropper would.
        replayed = client.send(good)
        assert replayed.status_code == 401 and "replayed" in replayed.json()["detail"]

        # A well-signed message whose envelope is garbage gets a reason; its replay is refused before that.
        garbage = _signed(f, "POST", MESSAGES_PATH, b"not an envelope", covered=covered)
        assert client.send(garbage).status_code == 422
        assert "replayed" in client.send(garbage).json()["detail"]

        tampered = _signed(f, "POST", MESSAGES_PATH, b"envelope A", covered=covered)
        tampered = httpx.Request("POST", tampered.url, content=b"envelope B", headers=tampered.headers)
        stranger = ec.generate_private_key(ec.SECP256R1())
        cases = [
            (tampered, "Content-Digest"),
            (_signed(f, "GET", DIRECTORY_PATH, created_offset=-600), "stale"),
            (_signed(f, "GET", DIRECTORY_PATH, key=stranger, keyid="kyoto"), "'kyoto' is not pinned here"),
            (_signed(f, "GET", DIRECTORY_PATH, key=stranger), "does not verify"),
            (httpx.Request("GET", f.npa.url + DIRECTORY_PATH), "not signed"),
        ]
        for request, reason in cases:
            answer = client.send(request)
            assert answer.status_code == 401 and reason in answer.json()["detail"], (reason, answer.text)
    # A request whose signature does not hold (forged, stale, replayed, unsigned) is anyone's: npa counts it
    # for its periodic audit tally, not as one permanent entry each (the 422 is delivery's, audited by it).
    assert _refusals(f.npa_ctl) == before
    # Nothing of this reached an inbox.
    assert f.npa_ctl.delivery is not None
    assert all(i.message_id != "m-forged" for i in f.npa_ctl.delivery.inbox("security", None))
