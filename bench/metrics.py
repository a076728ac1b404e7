"""Benchmark: the migration dashboard against a plain GROUP BY, and the cost roll-ups add to a send.

    .venv/bin/python bench/metrics.py [--scale 0.2] [--backend sqlite|postgresql] [--sends 30] [--rounds 3]

At ``--scale 1`` it generates the issue's history: 1,000,000 messages, 200,000 fax calls and
50,000 sealed documents over a year, across the demo offices and procedures (bulk inserts, then
``inkless metrics rebuild`` fills the roll-ups). Then, in the same run:

1. **Dashboard**: the node-wide report (``MetricsService.report``: 12 weeks, 12 months, the
   fiscal year, the 13-week procedure table, offices) against a plain ``GROUP BY`` over the raw
   rows for the same windows (messages, inbox, fax calls, seals by month and by week); median of
   ``--rounds`` each. Prints both times and the ratio (goal: the report ≥ 100× faster).
2. **Send + receive**: ``--sends`` messages sent and delivered between two offices of the node
   (CMS envelope, outbox, local delivery, receipt), alternating blocks with the roll-up
   maintenance on and switched off (``rollup.add`` replaced by a no-op for the "without"
   blocks). Prints the median per message of each and the ratio (goal ≤ 1.05).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.db import fresh_database
from tests.helpers.route_docs import sample_pdf

from inkless.app import Node, init_node
from inkless.config import load_settings
from inkless.db import tables as t
from inkless.db.tables_delivery import inbox, messages
from inkless.db.tables_fax import fax_calls
from inkless.db.tables_seals import route_documents, routes
from inkless.delivery.service import NewDocument
from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, create_demo
from inkless.metrics import rollup
from inkless.metrics.demo import DEMO_PROCEDURES, create_demo_procedures
from inkless.metrics.periods import months_back, week_bounds, weeks_back

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
BATCH = 20_000
REPORT_WEEK = "2026-W49"


def generate(node: Node, scale: float, seed: int = 7) -> dict[str, int]:
    rnd = random.Random(seed)
    n_messages, n_calls, n_seals = int(1_000_000 * scale), int(200_000 * scale), int(50_000 * scale)
    end = week_bounds(REPORT_WEEK)[1]
    span = timedelta(days=364).total_seconds()
    with node.db.read() as conn:
        offices = [r.id for r in conn.execute(sa.select(t.offices.c.id))]
        users = {r.office_id: r.id for r in conn.execute(sa.select(t.users.c.office_id, t.users.c.id))}
    codes = [p[0] for p in DEMO_PROCEDURES] + [None]

    def when() -> datetime:
        return end - timedelta(seconds=rnd.random() * span)

    with node.db.begin() as conn:
        for start in range(0, n_messages, BATCH):
            rows = [{"id": str(uuid.UUID(int=rnd.getrandbits(128))), "office_id": rnd.choice(offices),
                     "sender_login": "bench", "classification": 0, "priority": "normal",
                     "procedure_code": rnd.choice(codes), "subject_enc": b"x", "envelope_sha256": "0" * 64,
                     "envelope_size": 1, "document_count": 1, "created_at": when()}
                    for _ in range(min(BATCH, n_messages - start))]
            conn.execute(sa.insert(messages), rows)
            # Half of them also arrive in an inbox of this node (received from other offices and nodes).
            conn.execute(sa.insert(inbox), [
                {"message_id": r["id"], "office_id": rnd.choice(offices), "sender": "x@peer", "classification": 0,
                 "priority": "normal", "subject_enc": b"x", "envelope_sha256": "0" * 64, "envelope_size": 1,
                 "document_count": 1, "source": "inkless", "authenticated": True, "received_at": r["created_at"],
                 "procedure_code": r["procedure_code"]} for r in rows[: len(rows) // 2]])
        for start in range(0, n_calls, BATCH):
            conn.execute(sa.insert(fax_calls), [
                {"direction": rnd.choice(("SEND", "RECV")), "line": "sip", "started_at": when(), "duration_s": 40.0,
                 "remote_number": f"03-{rnd.randrange(10000):04d}-{rnd.randrange(10000):04d}",
                 "pages": rnd.randint(1, 9),
                 "bit_rate": 14400, "ecm": True, "compression": "T.6", "bad_rows": 0, "t30_code": 0, "t30_text": "OK",
                 "success": True, "status": "delivered", "office_id": rnd.choice(offices),
                 "procedure_code": rnd.choice(codes)} for _ in range(min(BATCH, n_calls - start))])
        route_ids = []
        for office in offices:
            for code in codes:
                route_ids.append(conn.execute(sa.insert(routes).values(
                    office_id=office, starter_id=users[office], document_name="d.pdf", state="completed",
                    current_step=None, revision=0, original_digest="0" * 64, strip_page=0, procedure_code=code,
                    created_at=end, updated_at=end)).inserted_primary_key[0])
        revisions = dict.fromkeys(route_ids, 0)
        for start in range(0, n_seals, BATCH):
            rows = []
            for _ in range(min(BATCH, n_seals - start)):
                route = rnd.choice(route_ids)
                revisions[route] += 1
                rows.append({"route_id": route, "revision": revisions[route], "blob_digest": "0" * 64,
                             "kind": "stamp", "created_at": when()})
            conn.execute(sa.insert(route_documents), rows)
    return {"messages": n_messages, "inbox": n_messages // 2, "fax_calls": n_calls, "seals": n_seals}


def plain_group_by(node: Node) -> int:
    """What a dashboard without roll-ups would run: GROUP BY over the raw rows of the same windows."""
    weeks = weeks_back(REPORT_WEEK, 13)
    start_weeks = week_bounds(weeks[0])[0]
    months = months_back("2026-12", 12)
    start_months = datetime(int(months[0][:4]), int(months[0][5:]), 1, tzinfo=UTC) - timedelta(hours=9)
    end = week_bounds(REPORT_WEEK)[1]
    found = 0
    with node.db.read() as conn:
        for start in (start_weeks, start_months):
            for table, at, extra in ((messages, messages.c.created_at, ()),
                                     (inbox, inbox.c.received_at, ()),
                                     (fax_calls, fax_calls.c.started_at, (fax_calls.c.direction,))):
                day = sa.func.date(at)
                query = (sa.select(table.c.office_id, table.c.procedure_code, day, *extra, sa.func.count(),
                                   *( [sa.func.sum(fax_calls.c.pages)] if table is fax_calls else []))
                         .where(at >= start, at < end).group_by(table.c.office_id, table.c.procedure_code, day, *extra))
                found += len(conn.execute(query).all())
            d = route_documents.c
            query = (sa.select(routes.c.office_id, routes.c.procedure_code, sa.func.date(d.created_at), sa.func.count())
                     .join(routes, routes.c.id == d.route_id).where(d.created_at >= start, d.created_at < end)
                     .group_by(routes.c.office_id, routes.c.procedure_code, sa.func.date(d.created_at)))
            found += len(conn.execute(query).all())
    return found


def median_time(fn: object, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def send_block(node: Node, count: int) -> float:
    """Seconds per message for ``count`` messages sent and delivered locally."""
    assert node.delivery is not None
    pdf = sample_pdf(1)
    started = time.perf_counter()
    for i in range(count):
        node.delivery.send("tanaka", "civil-affairs", ["criminal-affairs@moj"], [], f"bench {i}",
                           [NewDocument("a.pdf", pdf)], procedure_code="MOJ-MIN-001")
        node.delivery.deliver_due()
    return (time.perf_counter() - started) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=0.2, help="1.0 = 1M messages, 200k fax calls, 50k seals")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--sends", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    server = os.environ.get("INKLESS_TEST_POSTGRES_URL") or DEFAULT_PG
    with tempfile.TemporaryDirectory() as tmp, fresh_database(args.backend, Path(tmp), server=server,
                                                               prefix="bench_") as url:
        settings = load_settings(Path(tmp) / "node", env={}, overrides={
            "node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION, "database_url": url})
        node = init_node(settings)
        try:
            create_demo(node.directory)
            assert node.procedures is not None and node.metrics is not None
            create_demo_procedures(node.procedures)
            started = time.perf_counter()
            counts = generate(node, args.scale)
            generated = time.perf_counter() - started
            started = time.perf_counter()
            result = rollup.rebuild(node.db)
            rebuilt = time.perf_counter() - started
            print(f"history ({args.backend}, scale {args.scale}): " + ", ".join(f"{v:,} {k}" for k, v in counts.items())
                  + f"; generated in {generated:.1f} s; rebuild: {result.counters:,} counters in {rebuilt:.1f} s")

            report = median_time(lambda: node.metrics.report(REPORT_WEEK), args.rounds)  # type: ignore[union-attr]
            plain = median_time(lambda: plain_group_by(node), args.rounds)
            print(f"dashboard (node-wide report, {REPORT_WEEK}): {report * 1000:.1f} ms; "
                  f"plain GROUP BY over the raw rows: {plain * 1000:.1f} ms; ratio {plain / report:.0f}x faster "
                  "(goal >= 100x)")

            send_block(node, 3)  # warm up: keys decrypted, caches filled
            real_add = rollup.add
            with_metrics, without = [], []
            for _ in range(args.rounds):
                rollup.add = lambda *a, **k: None  # type: ignore[assignment]
                try:
                    without.append(send_block(node, args.sends))
                finally:
                    rollup.add = real_add  # type: ignore[assignment]
                with_metrics.append(send_block(node, args.sends))
            w, wo = statistics.median(with_metrics), statistics.median(without)
            print(f"send + receive per message: with roll-ups {w * 1000:.2f} ms, without {wo * 1000:.2f} ms; "
                  f"ratio {w / wo:.3f} (goal <= 1.05)")
        finally:
            node.close()


if __name__ == "__main__":
    main()
