"""Benchmark: server time of the inbox, search and message pages with 100,000 messages in one office.

    .venv/bin/python bench/ui.py [--messages 100000] [--runs 21] [--backend sqlite|postgresql]

Creates a fresh demo node in a temporary folder (PostgreSQL: a private schema, dropped afterwards),
fills 刑事局's inbox with generated messages (sealed subjects, search index rows, one in ten
unread, some faxes), delivers one real message, and then times, in-process through the ASGI app
(no network), a logged-in clerk's

* inbox page (first page of 50, unread counts, the menu count),
* search pages (a common two-character term, a five-character term, a rare term),
* message page (decrypting and verifying the envelope, counting the PDF's pages, the audit entry).

Each page's median over ``--runs`` is printed next to the median of the yardstick, a bare
``SELECT`` of the same rows (the page's 50 inbox rows by id, or the one message's row), and their
ratio. The goal is a median under 100 ms per page.
"""

from __future__ import annotations

import argparse
import io
import random
import re
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from inkless.app import Node, init_node
from inkless.config import load_settings
from inkless.db.tables_delivery import inbox
from inkless.db.tables_search import search_index
from inkless.delivery.service import NewDocument
from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, create_demo
from inkless.search.index import inbox_texts, tokens_of
from inkless.web.app import create_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers.db import fresh_database
from tests.helpers.web import browser_login

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
OFFICE = "criminal-affairs"
BATCH = 2000
TOPICS = ["登記", "戸籍", "予算", "人事", "国籍", "供託", "訟務", "矯正", "保護観察", "出入国", "統計", "会計"]
KINDS = ["照会", "回答", "通知", "依頼", "報告", "送付", "申請", "証明書の交付", "協議", "連絡"]
SENDERS = ["civil-affairs@moj", "secretariat@moj", "criminal-affairs@npa", "legal@mof", "soumu@pref-tokyo"]
RARE = "特別調達案件"


def subject(rng: random.Random, n: int) -> str:
    return f"{rng.choice(TOPICS)}に関する{rng.choice(KINDS)}（第{n}号）"


def fill(node: Node, count: int) -> None:
    """``count`` generated inbox rows of OFFICE with their search index rows, over the last two years."""
    rng = random.Random(12)
    office_id = node.directory.office(OFFICE).id
    tokens = tokens_of(node.box)
    now = datetime.now(UTC)
    start = now - timedelta(days=730)
    step = (now - timedelta(hours=1) - start) / count
    for first in range(0, count, BATCH):
        rows, index = [], []
        for n in range(first, min(first + BATCH, count)):
            message_id = f"{n:08d}-0000-4000-8000-{rng.getrandbits(48):012x}"
            text = RARE if n == count // 3 else subject(rng, n)
            fax = n % 10 == 0
            sender = f"fax:03-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}" if fax else rng.choice(SENDERS)
            rows.append({
                "id": n + 1, "message_id": message_id, "office_id": office_id, "sender": sender,
                "classification": rng.choice((0, 0, 1, 1, 2)), "priority": "urgent" if n % 50 == 0 else "normal",
                "subject_enc": node.box.seal(text.encode(), f"inkless/subject/{message_id}"),
                "envelope_sha256": "0" * 64, "envelope_size": 1000, "document_count": 1,
                "source": "fax" if fax else "inkless", "authenticated": not fax, "received_at": start + step * n,
                "receipt": None, "opened_at": None if n % 10 == 3 else start + step * n + timedelta(minutes=5),
            })
            index.append({"inbox_id": n + 1, "tokens": tokens.document(inbox_texts(text, sender))})
        with node.db.begin() as conn:
            conn.execute(sa.insert(inbox), rows)
            conn.execute(sa.insert(search_index), index)
    if node.db.backend == "postgresql":
        with node.db.begin() as conn:
            conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('inbox', 'id'), (SELECT max(id) FROM inbox))")
            conn.exec_driver_sql("ANALYZE")
    else:
        with node.db.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def pdf() -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    page = canvas.Canvas(out, pagesize=A4, invariant=True)
    for n in range(3):
        page.drawString(72, 720, f"page {n + 1}")
        page.showPage()
    page.save()
    return out.getvalue()


class ServerTimer:
    """ASGI wrapper: how long the app took for the last request, from the call to the last byte sent."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.last = 0.0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        began = time.perf_counter()
        await self.app(scope, receive, send)
        self.last = time.perf_counter() - began


def median_ms(action: Callable[[], Any], runs: int, timer: ServerTimer | None = None) -> float:
    """Median milliseconds of ``action`` (or of the server's part of it, with ``timer``), after 3 warm-ups."""
    for _ in range(3):
        action()
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        action()
        times.append(timer.last if timer is not None else time.perf_counter() - began)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    import os

    if args.backend == "postgresql":
        os.environ.setdefault("INKLESS_TEST_POSTGRES_URL", DEFAULT_PG)
    with tempfile.TemporaryDirectory(prefix="inkless-bench-ui-") as tmp, \
            fresh_database(args.backend, Path(tmp), prefix="bench_") as url:
        settings = load_settings(Path(tmp), env={}, overrides={
            "node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION, "database_url": url, "workers": False,
            "base_url": "http://127.0.0.1:9",
        })
        node = init_node(settings)
        try:
            create_demo(node.directory)
            began = time.perf_counter()
            fill(node, args.messages)
            print(f"{args.backend}: {args.messages:,} messages in {OFFICE}'s inbox "
                  f"(generated in {time.perf_counter() - began:.0f} s), median of {args.runs} runs")
            assert node.delivery is not None
            real = node.delivery.send("tanaka", "civil-affairs", [f"{OFFICE}@moj"], [], "登記簿の照会",
                                      [NewDocument("a.pdf", pdf())])
            node.delivery.deliver_due()
            timer = ServerTimer(create_app(node))
            client = TestClient(timer)
            client.__enter__()  # one event loop and portal for every request
            client.cookies.set("inkless_session", browser_login(node, "takahashi").cookie)
            base = f"/offices/{OFFICE}/inbox"

            def ids_on(path: str) -> list[int]:
                html = client.get(path).text
                found = re.findall(r'data-message="([0-9a-f-]{36})"', html)
                with node.db.read() as conn:
                    return list(conn.execute(sa.select(inbox.c.id).where(inbox.c.message_id.in_(found))).scalars())

            def bare(ids: list[int]) -> Callable[[], Any]:
                def select() -> Any:
                    with node.db.read() as conn:
                        return conn.execute(sa.select(inbox).where(inbox.c.id.in_(ids))).all()
                return select

            def bare_first_page() -> Any:
                office_id = node.directory.office(OFFICE).id
                with node.db.read() as conn:
                    return conn.execute(sa.select(inbox).where(inbox.c.office_id == office_id)
                                        .order_by(inbox.c.received_at.desc(), inbox.c.id.desc()).limit(50)).all()

            cases: list[tuple[str, str, Callable[[], Any]]] = [
                ("inbox, first page", base, bare_first_page),
                ("inbox, page 3 (keyset)", "", bare_first_page),
                ("search 登記 (2 chars, common)", base + "?q=登記", bare([])),
                ("search 証明書の交付 (6 chars)", base + "?q=証明書の交付", bare([])),
                (f"search {RARE} (rare)", base + f"?q={RARE}", bare([])),
                ("search 照会 + unread + fax", base + "?q=照会&unread=1&kind=fax", bare([])),
                ("message page", f"/messages/{real}", lambda: None),
            ]
            first = client.get(base).text
            older = re.search(r'href="\?(before=[^"]+)" rel="next"', first)
            assert older
            second = client.get(base + "?" + older.group(1)).text
            third = re.search(r'href="\?(before=[^"]+)" rel="next"', second)
            assert third
            page3 = base + "?" + third.group(1)
            cases[1] = ("inbox, page 3 (keyset)", page3, bare(ids_on(page3)))
            for n in (2, 3, 4, 5):
                name, path, _ = cases[n]
                cases[n] = (name, path, bare(ids_on(path)))

            def message_row() -> Any:
                with node.db.read() as conn:
                    return conn.execute(sa.select(inbox).where(inbox.c.message_id == real)).all()

            cases[6] = ("message page", f"/messages/{real}", message_row)
            print(f"{'page':<34} {'page ms':>8} {'SELECT ms':>10} {'ratio':>7}  rows")
            for name, path, yardstick in cases:
                response = client.get(path)
                assert response.status_code == 200, (path, response.status_code)
                shown = len(re.findall(r'<tr data-message=', response.text)) or 1
                page_ms = median_ms(lambda p=path: client.get(p), args.runs, timer)
                select_ms = median_ms(yardstick, args.runs)
                verdict = "" if page_ms < 100 else "  (over 100 ms)"
                print(f"{name:<34} {page_ms:8.1f} {select_ms:10.2f} {page_ms / select_ms:7.1f}x {shown:>4}{verdict}")
            client.__exit__(None, None, None)
        finally:
            node.close()


if __name__ == "__main__":
    main()
