"""Roll-ups: exact counters per period, office, procedure and metric, kept in the event's own transaction.

Each kind of source row (a sent message, a received one, a fax call, a seal, a paper record, an
intake submission) has one function saying what it counts (:func:`message_out`, :func:`fax_call` …).
The services call :func:`add` with those counts inside the transaction that writes the row — and
subtract the old counts when a row changes what it counts for (a fax assigned to an office, a
fax classified). :func:`recompute` applies the same functions to every source row, so ``inkless
metrics rebuild`` agrees with the live roll-ups by construction; a crashed process rolls back its
counts with its rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.dialects import postgresql, sqlite

from inkless.db import tables as t
from inkless.db.engine import Database
from inkless.db.tables_metrics import metrics_paper_records, metrics_rollup
from inkless.metrics.periods import month_of, week_of

MESSAGES_OUT = "messages_out"
MESSAGES_IN = "messages_in"
INTAKE = "intake"
FAX_IN = "fax_in"
FAX_IN_PAGES = "fax_in_pages"
FAX_OUT = "fax_out"
FAX_OUT_PAGES = "fax_out_pages"
SEALS_DIGITAL = "seals_digital"
PAPER_RECEIVED = "paper_received"
PAPER_SEALED = "paper_sealed"
METRICS = (MESSAGES_OUT, MESSAGES_IN, INTAKE, FAX_IN, FAX_IN_PAGES, FAX_OUT, FAX_OUT_PAGES, SEALS_DIGITAL,
           PAPER_RECEIVED, PAPER_SEALED)
# Items that went the digital way, and those that went by fax or on paper (pages and seals aside).
DIGITAL_ITEMS = (MESSAGES_OUT, MESSAGES_IN, INTAKE)
ANALOGUE_ITEMS = (FAX_IN, FAX_OUT, PAPER_RECEIVED)
# Inbox rows counted as items: messages from peers and intake submissions (faxes count as fax calls).
INBOX_SOURCES = ("inkless", "intake")
# Route revisions that put a digital seal on a document.
SEAL_KINDS = ("stamp", "office_seal")

Key = tuple[str, str, str, str]  # period, office, procedure, metric
TOTAL = "total"
# Delivery latency (sent → receipt verified) as a histogram of running totals, for OpenMetrics.
LATENCY_BUCKETS = (1.0, 5.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 21600.0, 86400.0)
LATENCY_COUNT = "latency_count"
LATENCY_SUM_MS = "latency_sum_ms"


def latency_metric(bound: float) -> str:
    return f"latency_le_{int(bound)}"
BATCH = 5000


@dataclass(frozen=True)
class Counts:
    """What one source row counts: metric values at a time, for an office and a procedure."""

    at: datetime | date | None  # None: node-wide running totals only (period "total")
    office: str | None
    procedure: str | None
    values: Mapping[str, int]

    def keys(self) -> Iterable[tuple[Key, int]]:
        office, procedure = self.office or "", self.procedure or ""
        periods = (TOTAL,) if self.at is None else (week_of(self.at), month_of(self.at))
        for metric, value in self.values.items():
            if value:
                for period in periods:
                    yield (period, office, procedure, metric), value


# --- what each source row counts ---------------------------------------------------------------

def message_out(at: datetime, office: str, procedure: str | None) -> Counts:
    return Counts(at, office, procedure, {MESSAGES_OUT: 1})


def message_in(at: datetime, office: str, procedure: str | None, source: str) -> Counts:
    """A received message: from a peer, or an intake submission (its inbox row); fax deposits are counted as
    fax calls, not here."""
    if source == "intake":
        return intake(at, office, procedure)
    return Counts(at, office, procedure, {MESSAGES_IN: 1 if source == "inkless" else 0})


def fax_call(direction: str, at: datetime, office: str | None, procedure: str | None, pages: int, success: bool,
             status: str) -> Counts:
    """A call of the fax log: received faxes with pages (junk aside), sent faxes that succeeded, pages both ways."""
    if direction == "RECV":
        received = pages > 0 and status not in ("blocked", "voice")
        return Counts(at, office, procedure, {FAX_IN: int(received), FAX_IN_PAGES: pages if received else 0})
    return Counts(at, office, procedure, {FAX_OUT: int(success), FAX_OUT_PAGES: pages})


def delivered(sent_at: datetime, delivered_at: datetime) -> Counts:
    """A delivery confirmed by a receipt: one observation of the latency histogram."""
    seconds = max(0.0, (delivered_at - sent_at).total_seconds())
    values = {latency_metric(b): int(seconds <= b) for b in LATENCY_BUCKETS}
    values.update({LATENCY_COUNT: 1, LATENCY_SUM_MS: round(seconds * 1000)})
    return Counts(None, None, None, values)


def seal(at: datetime, office: str, procedure: str | None, kind: str) -> Counts:
    return Counts(at, office, procedure, {SEALS_DIGITAL: int(kind in SEAL_KINDS)})


def paper(day: date, office: str, procedure: str | None, received: int, sealed: int) -> Counts:
    return Counts(day, office, procedure, {PAPER_RECEIVED: received, PAPER_SEALED: sealed})


def intake(at: datetime, office: str, procedure: str | None) -> Counts:
    """An intake submission, counted with the inbox row the window deposits (source ``intake``)."""
    return Counts(at, office, procedure, {INTAKE: 1})


# --- keeping them ---------------------------------------------------------------------------------

def _upsert(conn: Connection, rows: list[dict[str, Any]]) -> None:
    dialect = conn.dialect.name
    stmt: Any
    if dialect == "postgresql":
        stmt = postgresql.insert(metrics_rollup)
    else:
        stmt = sqlite.insert(metrics_rollup)
    stmt = stmt.on_conflict_do_update(
        index_elements=[metrics_rollup.c.period, metrics_rollup.c.office_code, metrics_rollup.c.procedure_code,
                        metrics_rollup.c.metric],
        set_={"value": metrics_rollup.c.value + stmt.excluded.value},
    )
    conn.execute(stmt, rows)


def add(conn: Connection, *changes: Counts, sign: int = 1) -> None:
    """Add (or with ``sign=-1`` take away) counts, in the caller's transaction."""
    totals: dict[Key, int] = defaultdict(int)
    for change in changes:
        for key, value in change.keys():
            totals[key] += sign * value
    rows = [{"period": k[0], "office_code": k[1], "procedure_code": k[2], "metric": k[3], "value": v}
            for k, v in sorted(totals.items()) if v]
    if rows:
        _upsert(conn, rows)


def move(conn: Connection, before: Counts, after: Counts) -> None:
    """A row now counts differently (another office, another procedure): take the old counts, add the new."""
    add(conn, before, sign=-1)
    add(conn, after)


# --- recomputing from the source rows ----------------------------------------------------------------

def _offices(conn: Connection) -> dict[int, str]:
    return {r.id: r.code for r in conn.execute(select(t.offices.c.id, t.offices.c.code))}


def source_counts(conn: Connection) -> Iterable[Counts]:
    """The Counts of every source row, read in batches."""
    from inkless.db.tables_delivery import inbox, messages, outbox
    from inkless.db.tables_fax import fax_calls
    from inkless.db.tables_seals import route_documents, routes

    offices = _offices(conn)
    m = messages.c
    for row in conn.execute(select(m.created_at, m.office_id, m.procedure_code).execution_options(yield_per=BATCH)):
        yield message_out(row.created_at, offices[row.office_id], row.procedure_code)
    o = outbox.c
    for row1 in conn.execute(
            select(m.created_at, o.delivered_at).join(messages, m.id == o.message_id)
            .where(o.state == "delivered", o.delivered_at.is_not(None)).execution_options(yield_per=BATCH)):
        yield delivered(row1.created_at, row1.delivered_at)
    i = inbox.c
    for row2 in conn.execute(
            select(i.received_at, i.office_id, i.procedure_code, i.source).where(i.source.in_(INBOX_SOURCES))
            .execution_options(yield_per=BATCH)):
        yield message_in(row2.received_at, offices[row2.office_id], row2.procedure_code, row2.source)
    f = fax_calls.c
    for row3 in conn.execute(
            select(f.direction, f.started_at, f.office_id, f.procedure_code, f.pages, f.success, f.status)
            .execution_options(yield_per=BATCH)):
        yield fax_call(row3.direction, row3.started_at, offices.get(row3.office_id) if row3.office_id else None,
                       row3.procedure_code, row3.pages, bool(row3.success), row3.status)
    d, r = route_documents.c, routes.c
    for row4 in conn.execute(
            select(d.created_at, d.kind, r.office_id, r.procedure_code).join(routes, r.id == d.route_id)
            .where(d.kind.in_(SEAL_KINDS)).execution_options(yield_per=BATCH)):
        yield seal(row4.created_at, offices[row4.office_id], row4.procedure_code, row4.kind)
    p = metrics_paper_records.c
    for row5 in conn.execute(select(p.day, p.office_code, p.procedure_code, p.received, p.sealed)):
        yield paper(row5.day, row5.office_code, row5.procedure_code, row5.received, row5.sealed)


def recompute(conn: Connection) -> dict[Key, int]:
    """Every roll-up counter as the source rows say it should be (zeros left out)."""
    totals: dict[Key, int] = defaultdict(int)
    for counts in source_counts(conn):
        for key, value in counts.keys():
            totals[key] += value
    return {k: v for k, v in totals.items() if v}


def stored(conn: Connection) -> dict[Key, int]:
    """The roll-up counters as kept (zeros left out)."""
    c = metrics_rollup.c
    return {(r.period, r.office_code, r.procedure_code, r.metric): int(r.value)
            for r in conn.execute(select(c.period, c.office_code, c.procedure_code, c.metric, c.value)) if r.value}


@dataclass(frozen=True)
class RebuildResult:
    """What ``inkless metrics rebuild`` found and did."""

    counters: int
    differences: dict[Key, tuple[int, int]]  # key -> (kept, recomputed)


def rebuild(db: Database, *, check_only: bool = False) -> RebuildResult:
    """Recompute every roll-up from the source rows and replace them, in one transaction.

    A process killed during a rebuild leaves the old roll-ups as they were (the transaction is
    rolled back). ``check_only`` compares and changes nothing.
    """
    with db.begin() as conn:
        fresh = recompute(conn)
        kept = stored(conn)
        differences = {k: (kept.get(k, 0), fresh.get(k, 0)) for k in set(fresh) | set(kept)
                       if kept.get(k, 0) != fresh.get(k, 0)}
        if not check_only:
            conn.execute(delete(metrics_rollup))
            rows = [{"period": k[0], "office_code": k[1], "procedure_code": k[2], "metric": k[3], "value": v}
                    for k, v in sorted(fresh.items())]
            for start in range(0, len(rows), 5000):
                conn.execute(insert(metrics_rollup), rows[start:start + 5000])
    return RebuildResult(counters=len(fresh), differences=differences)
