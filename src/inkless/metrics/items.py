"""The items behind a figure (drill-down) and the remote fax senders and recipients ("who still faxes").

Both read source rows of one period at most (indexed by time), never the whole history. A viewer
limited to an office sees only that office's items; messages above the viewer's clearance are
left out (only their count stays in the figure).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, select

from inkless.db import tables as t
from inkless.errors import ValidationError
from inkless.metrics import rollup as r
from inkless.metrics.periods import MONTH_RE, TOKYO, WEEK_RE, week_bounds
from inkless.metrics.uptake import Uptake

MAX_ITEMS = 500

# Whether remote fax numbers were invited and have since moved (inkless.metrics.uptake.RemoteUptake):
# (connection, numbers, start of the period) -> number -> Uptake. Without one both read "unknown".
RemoteStatus = Callable[[Connection, list[str], datetime], dict[str, Uptake]]


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """A week (2026-W49) or month (2026-12) as UTC start and end (exclusive), in Tokyo time."""
    if WEEK_RE.match(period):
        return week_bounds(period)
    match = MONTH_RE.match(period)
    if not match:
        raise ValidationError(f"period: {period!r} is not a week (2026-W49) or a month (2026-12)")
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= month <= 12:
        raise ValidationError(f"period: {period!r} is not a month")
    start = datetime(year, month, 1, tzinfo=TOKYO)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=TOKYO)
    return start.astimezone(UTC), end.astimezone(UTC)


@dataclass(frozen=True)
class Item:
    """One source row behind a figure."""

    kind: str  # message_out, message_in, intake, fax_in, fax_out, seal, paper
    ref: str  # message id, fax call id, route id, paper record id
    at: datetime
    office: str | None
    procedure: str | None
    counterpart: str | None
    value: int

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "ref": self.ref, "at": self.at.isoformat(), "office": self.office,
                "procedure": self.procedure, "counterpart": self.counterpart, "value": self.value}


def _procedure_filter(column: Any, procedure: str | None) -> Any:
    if procedure is None:
        return None
    return column.is_(None) if procedure == "" else column == procedure


def items(conn: Connection, metric: str, period: str, office: str | None, procedure: str | None,
          clearance: int = 3) -> list[Item]:
    """The source rows a roll-up counter of ``period`` counts (office "" and procedure "" as stored)."""
    from inkless.db.tables_delivery import inbox, messages
    from inkless.db.tables_fax import fax_calls
    from inkless.db.tables_metrics import metrics_paper_records
    from inkless.db.tables_seals import route_documents, routes

    if metric not in r.METRICS:
        raise ValidationError(f"metric: {metric!r} is not one of {', '.join(r.METRICS)}")
    start, end = period_bounds(period)
    offices = {row.id: row.code for row in conn.execute(select(t.offices.c.id, t.offices.c.code))}
    office_id = None
    if office:
        office_id = next((i for i, code in offices.items() if code == office), -1)
    out: list[Item] = []
    query: Any
    if metric == r.MESSAGES_OUT:
        m = messages.c
        query = select(m.id, m.created_at, m.office_id, m.procedure_code).where(
            m.created_at >= start, m.created_at < end, m.classification <= clearance)
        if office is not None:
            query = query.where(m.office_id == office_id)
        if (cond := _procedure_filter(m.procedure_code, procedure)) is not None:
            query = query.where(cond)
        for row in conn.execute(query.order_by(m.created_at).limit(MAX_ITEMS)):
            out.append(Item("message_out", row.id, row.created_at, offices.get(row.office_id), row.procedure_code,
                            None, 1))
    elif metric in (r.MESSAGES_IN, r.INTAKE):
        i = inbox.c
        source = "inkless" if metric == r.MESSAGES_IN else "intake"
        query = select(i.message_id, i.received_at, i.office_id, i.procedure_code, i.sender).where(
            i.received_at >= start, i.received_at < end, i.source == source, i.classification <= clearance)
        if office is not None:
            query = query.where(i.office_id == office_id)
        if (cond := _procedure_filter(i.procedure_code, procedure)) is not None:
            query = query.where(cond)
        for row in conn.execute(query.order_by(i.received_at).limit(MAX_ITEMS)):
            # An intake submission's sender is "intake:<receipt number>": the number, no personal data.
            out.append(Item("message_in" if source == "inkless" else "intake", row.message_id, row.received_at,
                            offices.get(row.office_id), row.procedure_code,
                            row.sender.removeprefix("intake:") if source == "intake" else row.sender, 1))
    elif metric in (r.FAX_IN, r.FAX_IN_PAGES, r.FAX_OUT, r.FAX_OUT_PAGES):
        f = fax_calls.c
        direction = "RECV" if metric in (r.FAX_IN, r.FAX_IN_PAGES) else "SEND"
        query = select(f.id, f.started_at, f.office_id, f.procedure_code, f.remote_number, f.remote_ident, f.pages,
                       f.success, f.status).where(f.started_at >= start, f.started_at < end, f.direction == direction)
        if office == "":
            query = query.where(f.office_id.is_(None))
        elif office is not None:
            query = query.where(f.office_id == office_id)
        if (cond := _procedure_filter(f.procedure_code, procedure)) is not None:
            query = query.where(cond)
        for row in conn.execute(query.order_by(f.started_at).limit(MAX_ITEMS)):
            counts = r.fax_call(direction, row.started_at, None, None, row.pages, bool(row.success), row.status)
            if counts.values.get(metric, 0):
                out.append(Item("fax_in" if direction == "RECV" else "fax_out", str(row.id), row.started_at,
                                offices.get(row.office_id), row.procedure_code,
                                row.remote_number or row.remote_ident, int(counts.values[metric])))
    elif metric == r.SEALS_DIGITAL:
        d, rt = route_documents.c, routes.c
        query = select(d.route_id, d.created_at, rt.office_id, rt.procedure_code).join(
            routes, rt.id == d.route_id).where(d.created_at >= start, d.created_at < end, d.kind.in_(r.SEAL_KINDS))
        if office is not None:
            query = query.where(rt.office_id == office_id)
        if (cond := _procedure_filter(rt.procedure_code, procedure)) is not None:
            query = query.where(cond)
        for row in conn.execute(query.order_by(d.created_at).limit(MAX_ITEMS)):
            out.append(Item("seal", str(row.route_id), row.created_at, offices.get(row.office_id),
                            row.procedure_code, None, 1))
    elif metric in (r.PAPER_RECEIVED, r.PAPER_SEALED):
        p = metrics_paper_records.c
        first_day, last_day = start.astimezone(TOKYO).date(), (end - timedelta(seconds=1)).astimezone(TOKYO).date()
        query = select(metrics_paper_records).where(p.day >= first_day, p.day <= last_day)
        if office is not None:
            query = query.where(p.office_code == office)
        if (cond := _procedure_filter(p.procedure_code, procedure)) is not None:
            query = query.where(cond)
        column = "received" if metric == r.PAPER_RECEIVED else "sealed"
        for row in conn.execute(query.order_by(p.day, p.id).limit(MAX_ITEMS)):
            if getattr(row, column):
                at = datetime.combine(row.day, time(12), TOKYO).astimezone(UTC)
                out.append(Item("paper", str(row.id), at, row.office_code, row.procedure_code, row.recorded_by,
                                int(getattr(row, column))))
    return out


@dataclass(frozen=True)
class Remote:
    """A remote fax number or station that still sends to us or receives from us."""

    direction: str
    number: str | None
    ident: str | None
    calls: int
    pages: int
    last_seen: datetime
    offices: tuple[str, ...]
    uptake: Uptake | None  # None: unknown (no number, or the node has no intake window)

    @property
    def invited(self) -> bool | None:
        return None if self.uptake is None else self.uptake.invited_at is not None

    @property
    def moved(self) -> bool | None:
        return None if self.uptake is None else self.uptake.moved_at is not None

    def to_json(self) -> dict[str, Any]:
        u = self.uptake
        return {"direction": self.direction, "direction_ja": "受信" if self.direction == "RECV" else "送信",
                "number": self.number, "ident": self.ident, "calls": self.calls, "pages": self.pages,
                "last_seen": self.last_seen.isoformat(), "offices": list(self.offices), "invited": self.invited,
                "invited_at": u.invited_at.isoformat() if u and u.invited_at else None,
                "moved": self.moved, "moved_at": u.moved_at.isoformat() if u and u.moved_at else None,
                "moved_via": u.moved_via if u else None,
                "moved_via_ja": VIA_JA.get(u.moved_via or "") if u else None}


VIA_JA = {"intake": "受付窓口", "pickup": "メール受取"}


def remotes(conn: Connection, start: datetime, end: datetime, office: str | None, limit: int = 50,
            status: RemoteStatus | None = None) -> list[Remote]:
    """The remote numbers and station ids of the period's fax calls, most pages first, with their uptake."""
    from inkless.db.tables_fax import fax_calls

    f = fax_calls.c
    offices = {row.id: row.code for row in conn.execute(select(t.offices.c.id, t.offices.c.code))}
    query = select(f.direction, f.remote_number, f.remote_ident, f.office_id, f.pages, f.started_at, f.status).where(
        f.started_at >= start, f.started_at < end, f.status.notin_(("blocked", "voice")))
    if office is not None:
        office_id = next((i for i, code in offices.items() if code == office), -1)
        query = query.where(f.office_id == office_id)
    groups: dict[tuple[str, str | None, str | None], dict[str, Any]] = defaultdict(
        lambda: {"calls": 0, "pages": 0, "last": None, "offices": set()})
    for row in conn.execute(query):
        ident = (row.remote_ident or "").strip() or None
        g = groups[(row.direction, row.remote_number, ident)]
        g["calls"] += 1
        g["pages"] += row.pages
        g["last"] = row.started_at if g["last"] is None or row.started_at > g["last"] else g["last"]
        if row.office_id is not None:
            g["offices"].add(offices.get(row.office_id, "?"))
    ranked = sorted(groups.items(), key=lambda kg: (-kg[1]["pages"], -kg[1]["calls"], kg[0][1] or "", kg[0][2] or ""))
    ranked = ranked[:limit]
    numbers = sorted({k[1] for k, _ in ranked if k[1]})
    found_status = status(conn, numbers, start) if status is not None and numbers else {}
    return [Remote(k[0], k[1], k[2], g["calls"], g["pages"], g["last"], tuple(sorted(g["offices"])),
                   found_status.get(k[1] or "")) for k, g in ranked]


def numbers_of(found: Iterable[Remote]) -> list[str]:
    return [x.number for x in found if x.number]
