"""Two running nodes, each registered at a real Kamailio as a fax number, fax each other over SIP.

Node A (the sender) and node B (the receiver) are ``inkless init --demo`` + ``inkless serve``
processes with ``fax_line = "sip"``. A's clerk queues a fax with ``inkless fax send``; A's workers
dial B's number through Kamailio (407 challenge, record-route); B answers, runs the fax in real
time and deposits it in civil-affairs' inbox (its fax number is the DID). These calls take real
line time (tens of seconds a page), so the pages are few and the tests are marked slow.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from inkless.config import load_settings
from inkless.db.tables_fax import fax_sip_softmodem
from inkless.fax import imaging
from tests.e2e.conftest import INKLESS, ServedNode, _clean_env, _wait_until_healthy, free_port
from tests.helpers.faxdocs import three_page_pdf
from tests.helpers.kamailio import Kamailio, free_udp_port, running_kamailio

pytestmark = pytest.mark.slow

B_NUMBER = "0335804111"  # civil-affairs' fax number in the demo data, as digits
A_NUMBER = "0669410351"
PASSWORDS = {B_NUMBER: "b-secret-4111", A_NUMBER: "a-secret-0351"}
CALL_LIMIT_S = 420.0


@dataclass
class SipNode:
    node: ServedNode
    sip_port: int
    number: str

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.node.cli(*args)
        assert result.returncode == 0, f"{args}: {result.stderr}\n{self.node.log.read_text()[-4000:]}"
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)


@contextmanager
def sip_node(tmp_path: Path, name: str, number: str, kamailio: Kamailio, rtp: str, **sip: str) -> Iterator[SipNode]:
    """A demo node served with the SIP line, registered at ``kamailio`` as ``number``."""
    data = tmp_path / name
    port = free_port()
    sip_port = free_udp_port()
    env = _clean_env({
        "INKLESS_FAX_LINE": "sip", "INKLESS_FAX_SIP_LISTEN": f"127.0.0.1:{sip_port}",
        "INKLESS_FAX_SIP_REGISTRAR": kamailio.uri, "INKLESS_FAX_SIP_USERNAME": number,
        "INKLESS_FAX_SIP_PASSWORD": PASSWORDS[number], "INKLESS_FAX_SIP_RTP_PORTS": rtp,
        "INKLESS_FAX_SIP_TRUSTED_SOURCES": "127.0.0.1", "INKLESS_FAX_POLL_SECONDS": "1",
        **{f"INKLESS_FAX_SIP_{k.upper()}": v for k, v in sip.items()},
    })
    url = f"http://127.0.0.1:{port}"
    init = subprocess.run([INKLESS, "init", "--data", str(data), "--demo", "--url", url, "--json"],
                          capture_output=True, text=True, env=env, check=False, timeout=300)
    assert init.returncode == 0, init.stderr
    log = tmp_path / f"{name}-serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen([INKLESS, "serve", "--data", str(data), "--port", str(port)],
                                   stdout=out, stderr=subprocess.STDOUT, env=env)
    node = ServedNode(url=url, data=data, env=env, process=process, log=log)
    try:
        _wait_until_healthy(node)
        sip_node = SipNode(node, sip_port, number)
        _wait_registered(sip_node)
        yield sip_node
    finally:
        node.stop()


def _wait_registered(node: SipNode, limit: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        status = node.json("fax", "line", "status")
        if status.get("running") and status["registration"]["state"] == "registered":
            return dict(status)
        time.sleep(0.5)
    raise AssertionError(f"not registered: {status}\n{node.node.log.read_text()[-4000:]}")


def _send(sender: SipNode, document: Path, number: str) -> None:
    sender.cli("fax", "send", "--from", "civil-affairs", "--to", number, str(document), "--as", "tanaka",
               "--tries", "1", "--kill-time", "30m")


def _wait_job(sender: SipNode, count: int = 1) -> list[dict[str, Any]]:
    deadline = time.monotonic() + CALL_LIMIT_S
    while time.monotonic() < deadline:
        jobs = sender.json("fax", "jobs")
        if len(jobs) >= count and all(j["state"] in ("done", "failed") for j in jobs):
            return list(jobs)
        time.sleep(1)
    raise AssertionError(f"jobs not finished: {jobs}\n{sender.node.log.read_text()[-4000:]}")


def _wait_received(receiver: SipNode, count: int = 1) -> list[dict[str, Any]]:
    deadline = time.monotonic() + CALL_LIMIT_S
    while time.monotonic() < deadline:
        calls = [c for c in receiver.json("fax", "log") if c["direction"] == "RECV"]
        if len(calls) >= count and all(c["status"] not in ("routed",) for c in calls):
            return calls
        time.sleep(1)
    raise AssertionError(f"no call received\n{receiver.node.log.read_text()[-4000:]}")


def _one_page_pdf(tmp_path: Path) -> Path:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    path = tmp_path / "one.pdf"
    c = canvas.Canvas(str(path), pagesize=A4, invariant=True)
    c.setFont("Helvetica", 28)
    c.drawString(60, 760, "inkless SIP fax test")
    c.rect(50, 600, 400, 100)
    c.showPage()
    c.save()
    return path


@pytest.fixture
def kamailio(tmp_path: Path) -> Iterator[Kamailio]:
    with running_kamailio(tmp_path / "kamailio", PASSWORDS) as k:
        yield k


def _hostile_traffic(target: SipNode) -> bytes:
    """A burst of malformed datagrams, then an INVITE from an address outside fax_sip_trusted_sources."""
    garbage = [b"", b"\x00" * 100, b"INVITE sip:x SIP/2.0\r\n", b"SIP/2.0 200 OK\r\n\r\n", b"\xff" * 1400,
               b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKx\r\n" + b"X: y\r\n" * 300 + b"\r\n"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _ in range(20):
            for datagram in garbage:
                sock.sendto(datagram, ("127.0.0.1", target.sip_port))
    invite = (
        f"INVITE sip:{B_NUMBER}@127.0.0.1:{target.sip_port} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.2:5099;branch=z9hG4bKhostile1;rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:intruder@127.0.0.2>;tag=evil\r\n"
        f"To: <sip:{B_NUMBER}@127.0.0.1>\r\nCall-ID: hostile-call@127.0.0.2\r\nCSeq: 1 INVITE\r\n"
        "Contact: <sip:intruder@127.0.0.2:5099>\r\nContent-Type: application/sdp\r\n"
    )
    body = "v=0\r\no=- 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    message = (invite + f"Content-Length: {len(body)}\r\n\r\n" + body).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.2", 0))
        sock.settimeout(5)
        sock.sendto(message, ("127.0.0.1", target.sip_port))
        return sock.recv(4096)


def test_g711_fax_a_to_b_through_kamailio_after_hostile_traffic(tmp_path: Path, kamailio: Kamailio) -> None:
    with ExitStack() as stack:
        b = stack.enter_context(sip_node(tmp_path, "b", B_NUMBER, kamailio, "40000-40099", t38="accept"))
        a = stack.enter_context(sip_node(tmp_path, "a", A_NUMBER, kamailio, "41000-41099", t38="accept",
                                         gateways=kamailio.uri))

        # Garbage and an untrusted INVITE first: refused (403) and audited, and the line keeps serving.
        reply = _hostile_traffic(b)
        assert reply.startswith(b"SIP/2.0 403 "), reply[:200]
        time.sleep(1.5)
        status = b.json("fax", "line", "status")
        assert status["malformed_datagrams"] >= 100 and status["refused_invites"] == 1
        audit = b.json("audit", "list", "--action", "fax.sip_refused")
        assert [e["details"]["source"] for e in audit] == ["127.0.0.2"]

        source = three_page_pdf()
        document = tmp_path / "notice.pdf"
        document.write_bytes(source)
        _send(a, document, B_NUMBER)
        [job] = _wait_job(a)
        assert job["state"] == "done", a.node.log.read_text()[-4000:]
        [received] = _wait_received(b)

    assert received["status"] == "delivered" and received["pages"] == "3"
    assert (received["line"], received["media"]) == ("sip", "g711")
    assert received["remote"] == A_NUMBER and received["called"] == B_NUMBER
    sent = _sent_call(a)
    assert (sent["line"], sent["media"], sent["status"]) == ("sip", "g711", "done")
    assert sent["call_id"] == received["call_id"] and sent["call_id"]
    assert sent["gateway"] == kamailio.uri

    # B's office inbox has the three pages as A rendered them (header line aside).
    pdf = _inbox_pdf(b, tmp_path / "export")
    pages = tmp_path / "pages"
    pages.mkdir()
    subprocess.run(["pdfimages", "-tiff", str(pdf), str(pages / "p")], check=True)
    from PIL import Image

    got = [Image.open(p).convert("1") for p in sorted(pages.glob("p-*.tif"))]
    rendered = imaging.tiff_images(imaging.document_to_tiff(source))
    assert len(got) == len(rendered) == 3
    for theirs, ours in zip(got, rendered, strict=True):
        body = (0, 40, theirs.width, theirs.height)
        assert imaging.pixel_difference(theirs.crop(body), ours.crop(body)) < 0.01


def _sent_call(node: SipNode) -> dict[str, Any]:
    [sent] = [c for c in node.json("fax", "log") if c["direction"] == "SEND"]
    return dict(sent)


def _inbox_pdf(node: SipNode, out: Path) -> Path:
    listing = node.json("inbox", "civil-affairs", "--as", "tanaka")
    [item] = [i for i in listing if i["source"] == "fax"]
    node.cli("message", "export", item["message_id"], "--out", str(out), "--as", "tanaka")
    [pdf] = sorted(out.rglob("*.pdf"))
    return pdf


def test_t38_when_one_side_prefers_it(tmp_path: Path, kamailio: Kamailio) -> None:
    with ExitStack() as stack:
        b = stack.enter_context(sip_node(tmp_path, "b", B_NUMBER, kamailio, "40100-40199", t38="accept"))
        a = stack.enter_context(sip_node(tmp_path, "a", A_NUMBER, kamailio, "41100-41199", t38="prefer",
                                         gateways=kamailio.uri))
        _send(a, _one_page_pdf(tmp_path), B_NUMBER)
        [job] = _wait_job(a)
        [received] = _wait_received(b)
    assert job["state"] == "done"
    assert (received["status"], received["media"], received["pages"]) == ("delivered", "t38", "1")
    assert _sent_call(a)["media"] == "t38"


def test_t38_refused_completes_in_g711_and_the_next_call_starts_in_audio(tmp_path: Path, kamailio: Kamailio) -> None:
    with ExitStack() as stack:
        b = stack.enter_context(sip_node(tmp_path, "b", B_NUMBER, kamailio, "40200-40299", t38="off"))
        a = stack.enter_context(sip_node(tmp_path, "a", A_NUMBER, kamailio, "41200-41299", t38="prefer",
                                         gateways=kamailio.uri))
        document = _one_page_pdf(tmp_path)
        _send(a, document, B_NUMBER)
        [job] = _wait_job(a)
        assert job["state"] == "done"
        # A learned that B needs the softmodem ...
        settings = load_settings(a.node.data, env=a.node.env)
        engine = sa.create_engine(settings.database_url)
        try:
            with engine.connect() as conn:
                learned = conn.execute(sa.select(fax_sip_softmodem.c.number, fax_sip_softmodem.c.reason)).all()
        finally:
            engine.dispose()
        assert [n for n, _ in learned] == [B_NUMBER] and "488" in learned[0][1]
        # ... so the second call to B offers no T.38 at all (one refusal in A's log, not two).
        _send(a, document, B_NUMBER)
        jobs = _wait_job(a, count=2)
        received = _wait_received(b, count=2)
    assert [j["state"] for j in jobs] == ["done", "done"]
    assert [(c["status"], c["media"]) for c in received] == [("delivered", "g711")] * 2
    assert a.node.log.read_text().count("T.38 re-INVITE refused") == 1


def test_gateway_failover_skips_a_dead_gateway(tmp_path: Path, kamailio: Kamailio) -> None:
    dead = f"sip:127.0.0.1:{free_udp_port()}"
    with ExitStack() as stack:
        b = stack.enter_context(sip_node(tmp_path, "b", B_NUMBER, kamailio, "40300-40399"))
        a = stack.enter_context(sip_node(tmp_path, "a", A_NUMBER, kamailio, "41300-41399",
                                         gateways=f"{dead},{kamailio.uri}"))
        _send(a, _one_page_pdf(tmp_path), B_NUMBER)
        [job] = _wait_job(a)
        [received] = _wait_received(b)
    assert job["state"] == "done" and received["status"] == "delivered"
    sent = _sent_call(a)
    assert sent["gateway"] == kamailio.uri and sent["call_id"] == received["call_id"]
