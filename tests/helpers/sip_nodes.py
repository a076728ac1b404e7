"""Served demo nodes on the SIP line, registered at a private Kamailio: shared by the SIP end-to-end tests."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.conftest import INKLESS, ServedNode, _clean_env, _wait_until_healthy, free_port
from tests.helpers.kamailio import Kamailio, free_udp_port

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
        wait_registered(sip_node)
        yield sip_node
    finally:
        node.stop()


def wait_registered(node: SipNode, limit: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        status = node.json("fax", "line", "status")
        if status.get("running") and status["registration"]["state"] == "registered":
            return dict(status)
        time.sleep(0.5)
    raise AssertionError(f"not registered: {status}\n{node.node.log.read_text()[-4000:]}")


def send_fax(sender: SipNode, document: Path, number: str) -> None:
    # Two tries, as a clerk's fax has: a real-time call starved of CPU on a loaded test machine may drop,
    # and the job's retry schedule is what answers that in service. The assertions read the last call.
    sender.cli("fax", "send", "--from", "civil-affairs", "--to", number, str(document), "--as", "tanaka",
               "--tries", "2", "--interval", "5", "--kill-time", "30m")


def wait_jobs(sender: SipNode, count: int = 1) -> list[dict[str, Any]]:
    deadline = time.monotonic() + CALL_LIMIT_S
    while time.monotonic() < deadline:
        jobs = sender.json("fax", "jobs")
        if len(jobs) >= count and all(j["state"] in ("done", "failed") for j in jobs):
            return list(jobs)
        time.sleep(1)
    raise AssertionError(f"jobs not finished: {jobs}\n{sender.node.log.read_text()[-4000:]}")


def wait_received(receiver: SipNode, count: int = 1) -> list[dict[str, Any]]:
    deadline = time.monotonic() + CALL_LIMIT_S
    while time.monotonic() < deadline:
        calls = [c for c in receiver.json("fax", "log") if c["direction"] == "RECV"]
        delivered = [c for c in calls if c["status"] == "delivered"]
        if len(delivered) >= count and all(c["status"] != "routed" for c in calls):
            return delivered
        time.sleep(1)
    raise AssertionError(f"no call received\n{receiver.node.log.read_text()[-4000:]}")


def one_page_pdf(tmp_path: Path) -> Path:
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


def hostile_traffic(target: SipNode) -> bytes:
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


def sent_call(node: SipNode) -> dict[str, Any]:
    """The last outbound call (the one that ended the job)."""
    sent = [c for c in node.json("fax", "log") if c["direction"] == "SEND"]
    return dict(sent[-1])


def inbox_pdf(node: SipNode, out: Path) -> Path:
    listing = node.json("inbox", "civil-affairs", "--as", "tanaka")
    [item] = [i for i in listing if i["source"] == "fax"]
    node.cli("message", "export", item["message_id"], "--out", str(out), "--as", "tanaka")
    [pdf] = sorted(out.rglob("*.pdf"))
    return pdf
