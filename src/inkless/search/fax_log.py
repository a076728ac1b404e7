"""Pages of the fax call log: search by number, station id or the text of a received fax; filters; pages.

Numbers and station ids are stored in clear (they are routing facts, like a fax machine's journal)
and matched with LIKE, also as digits only. The text of a received fax is matched through the
search index of the inbox copy, and only in the caller's own office and clearance: an administrator
sees every office's calls, but not what another office's faxes say.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, or_, select

from inkless.db import tables as t
from inkless.db.engine import Database
from inkless.db.tables_delivery import inbox
from inkless.db.tables_fax import fax_calls
from inkless.errors import ValidationError
from inkless.fax.log import FaxCallEntry
from inkless.fax.service import call_entry
from inkless.search.index import SearchIndex

PAGE_SIZE = 50
_NOT_DIGIT = re.compile(r"\D")


@dataclass(frozen=True)
class FaxLogFilter:
    """Words (number, station id, fax text), direction, a date range in local days, and the page position."""

    q: str = ""
    direction: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    before: int | None = None

    def __post_init__(self) -> None:
        if self.direction not in (None, "SEND", "RECV"):
            raise ValidationError("unknown direction")
        if len(self.q) > 100:
            raise ValidationError("the search is longer than 100 characters")


@dataclass(frozen=True)
class FaxLogPage:
    """Calls newest first, and the position of the next (older) page."""

    calls: list[FaxCallEntry]
    older: int | None


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def fax_log_page(db: Database, index: SearchIndex, tz: ZoneInfo, filt: FaxLogFilter, *, office_id: int | None,
                 viewer_office_id: int, clearance: int, limit: int = PAGE_SIZE) -> FaxLogPage:
    """One page of calls; ``office_id`` None: every office's (administrators)."""
    conds: list[ColumnElement[bool]] = []
    if office_id is not None:
        conds.append(fax_calls.c.office_id == office_id)
    if filt.direction:
        conds.append(fax_calls.c.direction == filt.direction)
    if filt.date_from:
        conds.append(fax_calls.c.started_at >= datetime.combine(filt.date_from, time(), tz))
    if filt.date_to:
        conds.append(fax_calls.c.started_at < datetime.combine(filt.date_to + timedelta(days=1), time(), tz))
    if filt.before is not None:
        conds.append(fax_calls.c.id < filt.before)
    q = filt.q.strip()
    if q:
        words: list[ColumnElement[bool]] = []
        for form in {q, _NOT_DIGIT.sub("", q)} - {""}:
            pattern = _like(form)
            words += [fax_calls.c.remote_number.like(pattern, escape="\\"),
                      fax_calls.c.called_number.like(pattern, escape="\\"),
                      fax_calls.c.remote_ident.like(pattern, escape="\\")]
        matches = index.inbox_ids(db.backend, q)
        if matches is not None:
            words.append(fax_calls.c.message_id.in_(select(inbox.c.message_id).where(
                inbox.c.id.in_(matches), inbox.c.office_id == viewer_office_id, inbox.c.classification <= clearance)))
        conds.append(or_(*words))
    query = (select(fax_calls, t.offices.c.code).outerjoin(t.offices, t.offices.c.id == fax_calls.c.office_id)
             .where(and_(True, *conds)).order_by(fax_calls.c.id.desc()).limit(limit + 1))
    with db.read() as conn:
        rows = conn.execute(query).all()
    more = len(rows) > limit
    calls = [call_entry(r) for r in rows[:limit]]
    return FaxLogPage(calls, calls[-1].id if more and calls else None)
