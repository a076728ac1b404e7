"""Benchmark: secure delivery between two nodes against a local Postfix SMTP relay, same payloads, same run.

    .venv/bin/python bench/delivery.py [--messages 20] [--size-mb 1]

(1) inkless: two nodes in two data folders, each served by a real ``inkless serve`` process on loopback
    (workers off), peered with each other by URL and CA fingerprint. The sending node runs in this
    process: every message with one PDF of ``--size-mb`` MB is sealed (MIME → CMS SignedData by the
    office key → CMS EnvelopedData AES-256), queued, handed over HTTP with RFC 9421 signed requests to
    the receiving node, which decrypts, verifies, stores durably (fsync) and answers with a signed
    receipt, which the sender verifies and stores. The clock runs from the first send until the last
    receipt is stored.

(2) Postfix: a private Postfix instance (own config and queue folder, listening on a loopback port,
    every transport ``discard:`` — the local sink) receives the same PDFs as MIME mails over SMTP;
    the clock runs from the first submission until the queue is empty (each mail fsynced into the
    queue and delivered to the sink). No encryption, no signatures, no receipts.

Prints messages/s and MB/s for both and the ratio inkless / Postfix. Postfix comes from Debian
(``apt-get install postfix``); without it the second part is skipped with a message.
"""

from __future__ import annotations

import argparse
import email.policy
import io
import os
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers.postfix import PrivatePostfix, postfix_available, running_postfix

INKLESS = Path(sys.executable).with_name("inkless")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def big_pdf(size_mb: float) -> bytes:
    """A PDF of about ``size_mb`` MB: one page with an incompressible (noise) image, as a scan would be."""
    from PIL import Image
    from reportlab import rl_config
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    rl_config.useA85 = 0  # binary streams: the PDF is as large as its image, not a quarter more
    side = int((size_mb * 1_000_000 / 3) ** 0.5)
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    c = canvas.Canvas(out, pagesize=A4)
    c.drawString(72, 800, "inkless delivery benchmark")
    c.drawImage(ImageReader(image), 72, 200, 450, 450)
    c.showPage()
    c.save()
    return out.getvalue()


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"inkless serve exited early ({proc.returncode}); see its log")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not come up")


def run_inkless(root: Path, pdf: bytes, n: int, concurrency: int = 4) -> float:
    """Seconds to deliver ``n`` messages end to end between two served nodes."""
    from inkless.app import build_node, init_node
    from inkless.config import load_settings
    from inkless.delivery.service import NewDocument
    from inkless.directory.peers import PeerService

    ports = {"pref": free_port(), "npa": free_port()}
    offices = {"pref": ("disaster", "防災課"), "npa": ("security", "警備課")}
    fingerprints = {}
    for node_id, port in ports.items():
        settings = load_settings(root / node_id, env={}, overrides={
            "node_id": node_id, "organisation": node_id, "base_url": f"http://127.0.0.1:{port}"})
        node = init_node(settings)
        node.directory.add_office(*offices[node_id])
        if node_id == "pref":
            node.directory.add_user("kato", "disaster", "clerk", 3, "加藤 一")
        with node.db.begin() as conn:
            fingerprints[node_id] = node.pki.ca_certificate(conn).fingerprint
        node.close()
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    procs = []
    try:
        for node_id, port in ports.items():
            log = open(root / f"{node_id}.log", "wb")
            procs.append(subprocess.Popen(
                [str(INKLESS), "serve", "--data", str(root / node_id), "--port", str(port), "--no-workers"],
                stdout=log, stderr=subprocess.STDOUT, env=env))
        for (_, port), proc in zip(ports.items(), procs, strict=True):
            wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        # The receiver pins the sender first, so that the sender's pin can fetch the receiver's directory.
        for me, other in (("npa", "pref"), ("pref", "npa")):
            node = build_node(load_settings(root / me, env={}))
            assert isinstance(node.peers, PeerService)
            node.peers.add(f"http://127.0.0.1:{ports[other]}", fingerprints[other], actor="bench")
            node.close()
        sender = build_node(load_settings(root / "pref", env={}, overrides={"delivery_concurrency": concurrency}))
        assert sender.delivery is not None
        try:
            start = time.perf_counter()
            ids = [
                sender.delivery.send("kato", "disaster", ["security@npa"], [], f"ベンチ {i}",
                                     [NewDocument(f"scan-{i}.pdf", pdf)], classification=1)
                for i in range(n)
            ]
            delivered = 0
            while delivered < n:
                result = sender.delivery.deliver_due(limit=n)
                delivered += result.delivered
                if result.retrying or result.rejected or result.expired:
                    rows = [r for r in sender.delivery.outbox_rows() if r.state != "delivered"]
                    raise SystemExit(f"delivery failed: {rows[0].state}: {rows[0].last_error}")
            elapsed = time.perf_counter() - start
            for message_id in ids:
                [status] = sender.delivery.status(message_id, "kato")
                assert status.state == "delivered" and status.has_receipt
        finally:
            sender.close()
        return elapsed
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)


def run_postfix(root: Path, pdf: bytes, n: int) -> float:
    """Seconds for ``n`` mails with the same PDF to pass through a private Postfix into the discard sink."""
    with running_postfix(root, sink="discard") as postfix:
        return _postfix_round(postfix, pdf, n)


def _postfix_round(postfix: PrivatePostfix, pdf: bytes, n: int) -> float:
    mails = []
    for i in range(n):
        msg = EmailMessage(policy=email.policy.SMTP)
        msg["From"] = "disaster@pref.localdomain"
        msg["To"] = "security@npa.example"
        msg["Subject"] = f"bench {i}"
        msg.set_content("benchmark")
        msg.add_attachment(pdf, maintype="application", subtype="pdf", filename=f"scan-{i}.pdf")
        mails.append(msg.as_bytes())
    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=60) as s:
        for mail in mails:
            s.sendmail("disaster@pref.localdomain", ["security@npa.example"], mail)
    # Done when every mail has left the queue for the sink.
    while not postfix.queue_empty():
        time.sleep(0.01)
    elapsed = time.perf_counter() - start
    discarded = postfix.log().count("status=sent (benchmark sink)")
    if discarded and discarded < n:
        raise SystemExit(f"postfix delivered only {discarded} of {n} mails to the sink")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--size-mb", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=4,
                        help="deliveries in flight at once on the sender (delivery_concurrency)")
    args = parser.parse_args()
    pdf = big_pdf(args.size_mb)
    n = args.messages
    mb = len(pdf) * n / 1e6
    print(f"{n} messages, one PDF of {len(pdf) / 1e6:.2f} MB each ({mb:.1f} MB in all)")
    with tempfile.TemporaryDirectory(prefix="inkless-bench-") as tmp:
        root = Path(tmp)
        (root / "inkless").mkdir()
        t_inkless = run_inkless(root / "inkless", pdf, n, args.concurrency)
        print(f"inkless, {args.concurrency} in flight (seal, HTTP between two served nodes, durable store, receipt): "
              f"{n / t_inkless:7.2f} messages/s  {mb / t_inkless:7.2f} MB/s  ({t_inkless:.2f} s)")
        why_not = postfix_available()
        if why_not is not None:
            print(f"postfix: skipped — {why_not}")
            return
        t_postfix = run_postfix(root / "postfix", pdf, n)
        print(f"postfix (SMTP relay into a discard sink, no crypto, no receipts):            "
              f"{n / t_postfix:7.2f} messages/s  {mb / t_postfix:7.2f} MB/s  ({t_postfix:.2f} s)")
        print(f"ratio inkless / postfix (throughput): {t_postfix / t_inkless:.2f}")


if __name__ == "__main__":
    main()
