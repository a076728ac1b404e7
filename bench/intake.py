"""Benchmark: the public intake window against bare pyHanko, and its mail against Postfix alone.

    .venv/bin/python bench/intake.py [--n 10] [--mails 200]

Creates a demo node (SQLite) in a temporary folder with civil-affairs' window open, and measures:

* **submissions**: one submission of a 1 MB PDF through the web app in process (the form with its
  file checked by content and by pdfium, kept encrypted, a code queued for mail; then the code
  confirmed: the office-sealed, time-stamped 受付証明, the deposit in the office inbox as an
  encrypted envelope, the audit entry and the receipt mail) against bare pyHanko sealing a
  one-page PDF with the same key, TSA and imprint (``bench/seal.py``'s peer), alternating single
  runs; prints submissions/s, seals/s and the ratio of the medians (how many bare seals' time one
  whole submission costs);
* **mail** (when the node has a mail outbox and Postfix is installed): ``--mails`` intake notices
  queued in the outbox and sent by its worker through a private Postfix on a loopback port, against
  the same number of mails sent to that Postfix by ``smtplib`` alone on one connection; prints
  mails/s and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import re
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from reportlab.lib.pagesizes import A4  # type: ignore[import-untyped]
from reportlab.pdfgen import canvas  # type: ignore[import-untyped]

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from seal import bare_signer
from tests.helpers.mailbox import smtp_nowhere

from inkless.app import Node, init_node
from inkless.config import load_settings
from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, create_demo
from inkless.intake.mailer import OutgoingMail

OFFICE = "civil-affairs"
FORM = {"name": "山田 太郎", "email": "taro@example.jp", "subject": "営業許可の更新申請", "procedure": "その他",
        "message": "更新の書類を送ります。"}


def one_megabyte_pdf() -> bytes:
    """A PDF of about 1 MB: text pages with an incompressible image stream each."""
    import os

    from PIL import Image
    from reportlab.lib.utils import ImageReader  # type: ignore[import-untyped]

    out = io.BytesIO()
    page = canvas.Canvas(out, pagesize=A4)
    for number in range(3):
        page.drawString(72, 780, f"申請書 page {number + 1}")
        noise = Image.frombytes("L", (520, 520), os.urandom(520 * 520))
        page.drawImage(ImageReader(noise), 72, 200, 450, 450)
        page.showPage()
    page.save()
    return out.getvalue()


class Codes:
    """The intake mailer of the submissions run: the code mails are kept to read the code back."""

    def __init__(self, passthrough: object | None) -> None:
        self.last = ""
        self.passthrough = passthrough

    def send(self, mail: OutgoingMail) -> None:
        found = re.search(r"確認コード: (\d{6})", mail.text)
        if found:
            self.last = found.group(1)
        if self.passthrough is not None:
            self.passthrough.send(mail)  # type: ignore[attr-defined]


def submissions(node: Node, n: int) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*httpx2.*")
        from fastapi.testclient import TestClient

    from inkless.web.app import create_app

    assert node.intake is not None
    codes = Codes(node.intake.mailer)
    node.intake.mailer = codes
    # The flood guards would stop a benchmark at 30 a minute: one client address per run.
    pdf = one_megabyte_pdf()
    app = create_app(node)
    counter = iter(range(1_000_000))

    def submit() -> None:
        client = TestClient(app, client=(f"10.0.{next(counter) // 250}.{next(counter) % 250}", 40000))
        node.intake.address_traffic.limit_per_minute = 10**9  # type: ignore[union-attr]
        page = client.post(f"/intake/{OFFICE}", data=FORM, files=[("files", ("申請書.pdf", pdf, "application/pdf"))])
        token = re.search(r'name="token" value="([^"]+)"', page.text)
        assert page.status_code == 200 and token, page.text[-500:]
        done = client.post(f"/intake/{OFFICE}/confirm", data={"token": token.group(1), "code": codes.last})
        assert done.status_code == 200 and "receipt-number" in done.text, done.text[-500:]

    bare_sign = bare_signer(node)
    one_page = _one_page()
    loop = asyncio.new_event_loop()

    def seal_bare() -> None:
        loop.run_until_complete(bare_sign(one_page))

    try:
        measure(f"submission of a {len(pdf) / 1e6:.1f} MB PDF", n, submit, seal_bare, "submissions/s", "seals/s")
    finally:
        loop.close()


def _one_page() -> bytes:
    from seal import make_pdf

    return bytes(make_pdf(1))


def measure(label: str, n: int, ours: Callable[[], object], peer: Callable[[], object], unit: str,
            peer_unit: str) -> None:
    """Alternate single runs of both; rates from the medians, and the ratio of the medians."""
    ours(), peer()  # warm-up
    t_ours: list[float] = []
    t_peer: list[float] = []
    for _ in range(n):
        start = time.perf_counter()
        ours()
        t_ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        peer()
        t_peer.append(time.perf_counter() - start)
    m_ours, m_peer = statistics.median(t_ours), statistics.median(t_peer)
    print(f"{label}: inkless {1 / m_ours:6.2f} {unit}   bare pyHanko {1 / m_peer:6.2f} {peer_unit}   "
          f"ratio {m_ours / m_peer:5.2f} (median)  {sum(t_ours) / sum(t_peer):5.2f} (mean)")


def mail_round(node: Node, postfix: object, n: int) -> float:
    """Seconds for ``n`` intake notices: queued in the outbox one transaction each, sent by its worker pass,
    until Postfix has handed every one to its sink."""
    from tests.helpers.postfix import PrivatePostfix

    assert isinstance(postfix, PrivatePostfix) and node.intake is not None and node.mail is not None
    from inkless.intake.mailer import OutboxMailer

    mailer = OutboxMailer(node.mail)
    start = time.perf_counter()
    for i in range(n):
        mailer.send(OutgoingMail(f"user{i}@example.jp", f"受付番号 20261203-BENCH{i:02d} / Receipt number",
                                 NOTICE, purpose="intake.receipt", ref=f"bench-{i}"))
    sent = 0
    while sent < n:
        sent += node.mail.deliver_due(limit=100).sent
    while not postfix.queue_empty():
        time.sleep(0.01)
    return time.perf_counter() - start


def postfix_round(postfix: object, n: int) -> float:
    """Seconds for ``n`` mails of the same size handed to Postfix by smtplib on one connection, until sunk."""
    import email.policy
    import smtplib
    from email.message import EmailMessage

    from tests.helpers.postfix import PrivatePostfix

    assert isinstance(postfix, PrivatePostfix)
    mails = []
    for i in range(n):
        msg = EmailMessage(policy=email.policy.SMTP)
        msg["From"] = "no-reply@moj.example.lg.jp"
        msg["To"] = f"user{i}@example.jp"
        msg["Subject"] = f"受付番号 20261203-BENCH{i:02d} / Receipt number"
        msg.set_content(NOTICE, charset="utf-8", cte="base64")
        mails.append((msg["To"], msg.as_bytes()))
    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", postfix.port, timeout=60) as client:
        for to, mail in mails:
            client.sendmail("no-reply@moj.example.lg.jp", [to], mail)
    while not postfix.queue_empty():
        time.sleep(0.01)
    return time.perf_counter() - start


NOTICE = ("法務省 民事局 受付窓口です。次のとおり受け付けました。\n\n受付番号: 20261203-BENCH00\n"
          "受付状況の確認と受付証明のダウンロードは次のページからできます:\nhttps://moj.example.lg.jp/intake/civil-affairs/status\n")


def mails(n: int, rounds: int) -> None:
    from tests.helpers.postfix import postfix_available, running_postfix

    why_not = postfix_available()
    if why_not:
        print(f"mail: skipped — {why_not}")
        return
    with running_postfix(sink="discard") as postfix, tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        settings = load_settings(data, env={}, overrides={
            "node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION,
            "database_url": f"sqlite:///{data / 'inkless.db'}", "smtp_url": postfix.smtp_url,
            "smtp_from": "法務省 民事局 <no-reply@moj.example.lg.jp>", "workers": False,
        })
        node = init_node(settings)
        try:
            ours, peer = [], []
            mail_round(node, postfix, 5), postfix_round(postfix, 5)  # warm-up
            for _ in range(rounds):
                ours.append(mail_round(node, postfix, n))
                peer.append(postfix_round(postfix, n))
        finally:
            node.close()
    m_ours, m_peer = statistics.median(ours), statistics.median(peer)
    print(f"{n} intake notices: inkless outbox → Postfix {n / m_ours:7.1f} mails/s   Postfix alone (smtplib, one "
          f"connection) {n / m_peer:7.1f} mails/s   ratio {m_ours / m_peer:5.2f} (median of {rounds})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10, help="submissions (and bare seals) to time")
    parser.add_argument("--mails", type=int, default=200, help="mails per run of the mail comparison")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the mail comparison")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        settings = load_settings(data, env={}, overrides={
            "node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION,
            "database_url": f"sqlite:///{data / 'inkless.db'}", "public_requests_per_minute": 10**6,
            # The mails are queued in the outbox as in production (no worker sends them in this part).
            "smtp_url": smtp_nowhere(), "smtp_from": "法務省 民事局 <no-reply@moj.example.lg.jp>", "workers": False,
        })
        node = init_node(settings)
        try:
            create_demo(node.directory)
            assert node.intake is not None
            node.intake.set_window(OFFICE, True, "bench", max_file_mb=5)
            submissions(node, args.n)
        finally:
            node.close()
    mails(args.mails, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
