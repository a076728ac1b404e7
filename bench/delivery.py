"""Benchmark: secure delivery between two nodes against a local Postfix SMTP relay, same payloads, same run.

    .venv/bin/python bench/delivery.py [--messages 20,200] [--size-mb 1,20] [--rounds 3] [--memory 1,20,100]

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

(3) Memory: for messages of 1, 20 and 100 MB (``--memory``), fresh nodes deliver a few messages one at a
    time; the sending node runs in a process of its own, and the peak RSS (VmHWM) of it and of the
    receiving ``inkless serve`` are printed with their growth over the idle process per MB of message
    (the bound: at most 2, over a fixed base).

Prints, for every message count and size, messages/s of both and the ratio inkless / Postfix: the
median of ``--rounds`` alternating rounds on fresh nodes and a fresh Postfix, with the rounds' spread
(on a shared machine one round of 20 × 1 MB takes a few seconds and moves with the load). Postfix comes from Debian
(``apt-get install postfix``); without it the second part is skipped with a message.
"""

from __future__ import annotations

import argparse
import email.policy
import io
import multiprocessing
import os
import queue
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class InklessRun:
    """One inkless round: its time and the memory of the sending and the receiving node processes (MB)."""

    seconds: float
    sender_base: float
    sender_peak: float
    receiver_base: float
    receiver_peak: float
    upload_base: float = 0.0  # the sending node's server, taking one message through /api/v1/messages
    upload_peak: float = 0.0


def memory_mb(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (the peak so far) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / 1e6
    raise SystemExit(f"no {field} in /proc/{pid}/status")


def _deliver_all(delivery: Any, n: int) -> None:
    delivered = 0
    while delivered < n:
        result = delivery.deliver_due(limit=n)
        delivered += result.delivered
        if result.retrying or result.rejected or result.expired:
            rows = [r for r in delivery.outbox_rows() if r.state != "delivered"]
            raise SystemExit(f"delivery failed: {rows[0].state}: {rows[0].last_error}")


def _upload(url: str | None, headers: dict[str, str], name: str, path: Path) -> None:
    """One message through the sending node's web API (multipart, the file streamed from disk)."""
    if url is None:
        return
    with path.open("rb") as fh:
        answer = httpx.post(f"{url}/api/v1/messages", headers=headers, timeout=600,
                            files={"files": (name, fh, "application/pdf")},
                            data={"to": "security@npa", "subject": "upload", "classification": "1"})
    if answer.status_code != 201:
        raise SystemExit(f"the upload was refused: {answer.status_code} {answer.text[:300]}")


def _send_and_deliver(root: str, pdf_path: str, n: int, concurrency: int, results: Any, go: Any,
                      upload_url: str | None) -> None:
    """The sending node's work, in a process of its own (so that its memory is its own): seal, queue, deliver;
    with ``upload_url``, one more message goes through the sending node's server (the web upload path).

    A small message first warms both nodes up (imports, keys, connections): the idle memory is taken after it.
    """
    from tests.helpers.web import bearer

    from inkless.app import build_node
    from inkless.config import load_settings
    from inkless.delivery.service import NewDocument

    sender = build_node(load_settings(Path(root) / "pref", env={}, overrides={"delivery_concurrency": concurrency}))
    assert sender.delivery is not None
    headers = bearer(sender, "kato")
    try:
        sender.delivery.send("kato", "disaster", ["security@npa"], [], "warm-up", [NewDocument("warm.pdf", b"%PDF")])
        small = Path(root) / "warm.pdf"
        small.write_bytes(b"%PDF-1.7\n" + b"0" * 1000)
        _upload(upload_url, headers, "warm.pdf", small)
        _deliver_all(sender.delivery, 1 if upload_url is None else 2)
        base = memory_mb(os.getpid(), "VmRSS")
        results.put("warm")
        go.get(timeout=600)
        start = time.perf_counter()
        ids = []
        for i in range(n):
            pdf = Path(pdf_path).read_bytes()
            ids.append(sender.delivery.send("kato", "disaster", ["security@npa"], [], f"ベンチ {i}",
                                            [NewDocument(f"scan-{i}.pdf", pdf)], classification=1))
            del pdf
        _upload(upload_url, headers, "upload.pdf", Path(pdf_path))
        _deliver_all(sender.delivery, n if upload_url is None else n + 1)
        elapsed = time.perf_counter() - start
        for message_id in ids:
            [status] = sender.delivery.status(message_id, "kato")
            assert status.state == "delivered" and status.has_receipt
    finally:
        sender.close()
    results.put((elapsed, base, memory_mb(os.getpid(), "VmHWM")))


def _result(results: Any, child: Any) -> Any:
    """The sending process's next report; SystemExit if it died without one."""
    while True:
        try:
            return results.get(timeout=1)
        except queue.Empty:
            if not child.is_alive():
                raise SystemExit(f"the sending process ended ({child.exitcode}) without reporting") from None


def run_inkless(root: Path, pdf: bytes, n: int, concurrency: int = 4, upload: bool = False) -> InklessRun:
    """Deliver ``n`` messages end to end between two served nodes: seconds, and both nodes' memory."""
    from inkless.app import build_node, init_node
    from inkless.config import load_settings
    from inkless.directory.peers import PeerService

    ports = {"pref": free_port(), "npa": free_port()}
    offices = {"pref": ("disaster", "防災課"), "npa": ("security", "警備課")}
    fingerprints = {}
    # The document limit fits the largest size measured.
    limit = max(100 * 1024 * 1024, 2 * len(pdf))
    for node_id, port in ports.items():
        settings = load_settings(root / node_id, env={}, overrides={
            "node_id": node_id, "organisation": node_id, "base_url": f"http://127.0.0.1:{port}",
            "max_message_bytes": limit})
        node = init_node(settings)
        node.directory.add_office(*offices[node_id])
        if node_id == "pref":
            node.directory.add_user("kato", "disaster", "clerk", 3, "加藤 一")
        with node.db.begin() as conn:
            fingerprints[node_id] = node.pki.ca_certificate(conn).fingerprint
        node.close()
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    procs = {}
    try:
        for node_id, port in ports.items():
            log = open(root / f"{node_id}.log", "wb")
            procs[node_id] = subprocess.Popen(
                [str(INKLESS), "serve", "--data", str(root / node_id), "--port", str(port), "--no-workers"],
                stdout=log, stderr=subprocess.STDOUT, env=env)
        for node_id, port in ports.items():
            wait_http(f"http://127.0.0.1:{port}/healthz", procs[node_id])
        # The receiver pins the sender first, so that the sender's pin can fetch the receiver's directory.
        for me, other in (("npa", "pref"), ("pref", "npa")):
            node = build_node(load_settings(root / me, env={}))
            assert isinstance(node.peers, PeerService)
            node.peers.add(f"http://127.0.0.1:{ports[other]}", fingerprints[other], actor="bench")
            node.close()
        pdf_path = root / "document.pdf"
        pdf_path.write_bytes(pdf)
        context = multiprocessing.get_context("spawn")
        results, go = context.Queue(), context.Queue()
        child = context.Process(target=_send_and_deliver,
                                args=(str(root), str(pdf_path), n, concurrency, results, go,
                                      f"http://127.0.0.1:{ports['pref']}" if upload else None))
        child.start()
        if _result(results, child) != "warm":
            raise SystemExit("the sending process did not start")
        receiver_base = memory_mb(procs["npa"].pid, "VmRSS")
        upload_base = memory_mb(procs["pref"].pid, "VmRSS")
        go.put("go")
        elapsed, sender_base, sender_peak = _result(results, child)
        child.join(60)
        if child.exitcode:
            raise SystemExit(f"the sending process failed ({child.exitcode})")
        return InklessRun(elapsed, sender_base, sender_peak, receiver_base, memory_mb(procs["npa"].pid, "VmHWM"),
                          upload_base, memory_mb(procs["pref"].pid, "VmHWM"))
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
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


def memory_table(sizes: list[float], messages: int) -> None:
    """Peak memory of the nodes per message size: the ratio is the growth over the idle process per MB of message."""
    print(f"memory: {messages} messages of each size sent by a sending process, one more uploaded through the "
          "sending node's web API; one in flight.\npeak RSS (VmHWM) of each process, and (peak - idle) / message "
          "size (idle: after a small message)")
    print(f"{'message':>9} | {'sender':^20} | {'web upload (serve)':^20} | {'receiver (serve)':^20}")
    print(f"{'':>9} | {'idle':>6} {'peak':>6} {'ratio':>6} | {'idle':>6} {'peak':>6} {'ratio':>6} | "
          f"{'idle':>6} {'peak':>6} {'ratio':>6}")
    for size in sizes:
        pdf = big_pdf(size)
        with tempfile.TemporaryDirectory(prefix="inkless-bench-") as tmp:
            run = run_inkless(Path(tmp), pdf, messages, concurrency=1, upload=True)
        mb = len(pdf) / 1e6
        columns = [(run.sender_base, run.sender_peak), (run.upload_base, run.upload_peak),
                   (run.receiver_base, run.receiver_peak)]
        print(f"{mb:7.1f}MB | " + " | ".join(f"{idle:5.0f}M {peak:5.0f}M {(peak - idle) / mb:6.2f}"
                                              for idle, peak in columns), flush=True)


def _numbers(text: str, kind: type[float] | type[int]) -> list[Any]:
    return [kind(x) for x in text.split(",") if x.strip()]


def throughput_table(counts: list[int], sizes: list[float], rounds: int, concurrency: int) -> None:
    """inkless and Postfix on the same payloads, for every message count and size, in alternating rounds.

    Each round runs on fresh nodes and a fresh Postfix; the ratio is taken per round (both measured
    minutes apart at most) and the median of the rounds' ratios is printed with their spread.
    """
    why_not = postfix_available()
    if why_not is not None:
        print(f"postfix: skipped — {why_not}")
    print(f"throughput: inkless ({concurrency} in flight: seal, HTTP between two served nodes, durable store, "
          "signed receipt) against Postfix (SMTP relay into a discard sink: no crypto, no receipts);\n"
          f"median of {rounds} alternating rounds, each on fresh nodes")
    print(f"{'messages':>8} {'size':>7} | {'inkless msg/s':>13} {'postfix msg/s':>13} | {'ratio':>5} "
          f"{'(min–max)':>11} | {'receiver peak':>13}")
    for size in sizes:
        pdf = big_pdf(size)
        for n in counts:
            ours: list[float] = []
            theirs: list[float] = []
            ratios: list[float] = []
            peaks: list[float] = []
            for _ in range(rounds):
                with tempfile.TemporaryDirectory(prefix="inkless-bench-") as tmp:
                    root = Path(tmp)
                    (root / "inkless").mkdir()
                    run = run_inkless(root / "inkless", pdf, n, concurrency)
                    ours.append(n / run.seconds)
                    peaks.append(run.receiver_peak)
                    if why_not is None:
                        t_postfix = run_postfix(root / "postfix", pdf, n)
                        theirs.append(n / t_postfix)
                        ratios.append(t_postfix / run.seconds)
            line = f"{n:8d} {len(pdf) / 1e6:6.1f}M | {statistics.median(ours):13.2f} "
            if ratios:
                line += (f"{statistics.median(theirs):13.2f} | {statistics.median(ratios):5.2f} "
                         f"({min(ratios):.2f}–{max(ratios):.2f}) | ")
            else:
                line += f"{'—':>13} | {'—':>5} {'':>11} | "
            print(line + f"{max(peaks):11.0f}MB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", default="20,200", help="message counts, comma-separated (0: no throughput)")
    parser.add_argument("--size-mb", default="1,20", help="message sizes (MB) for the throughput, comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per count and size (median)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="deliveries in flight at once on the sender (delivery_concurrency)")
    parser.add_argument("--memory", default="1,20,100",
                        help="message sizes (MB) for the memory table; empty to skip it")
    parser.add_argument("--memory-messages", type=int, default=2, help="messages of each size in the memory table")
    args = parser.parse_args()
    if args.memory:
        memory_table(_numbers(args.memory, float), args.memory_messages)
    counts = [n for n in _numbers(args.messages, int) if n > 0]
    if counts:
        throughput_table(counts, _numbers(args.size_mb, float), max(1, args.rounds), args.concurrency)


if __name__ == "__main__":
    main()
