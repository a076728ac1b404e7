"""Pages of the inbox and the sent items: search, filters, keyset pagination, unread counts.

A page is read with one query (plus one for the recipients of the sent messages on it), newest
first, by ``(time, id)`` keyset: the next page starts below the last row shown, so page 200 costs
what page 1 does, and a message arriving meanwhile never shifts what the clerk is reading.

Access is decided in the query: only the caller's own office, and a search (or a classification
filter) matches only messages the caller is cleared for — a match on a withheld subject would
tell what the subject says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, select, tuple_

from inkless.db.tables_delivery import inbox, messages, outbox
from inkless.delivery.model import InboxItem, SentMessage
from inkless.delivery.policy import Actor
from inkless.delivery.service import DeliveryService
from inkless.errors import PolicyError, ValidationError

PAGE_SIZE = 50
# A search term matching more index rows than this is "common" (see MessageListing._matching).
COMMON_MATCHES = 500
MAX_QUERY_CHARS = 100
SOURCES = ("fax", "inkless")
_CURSOR = re.compile(r"^(\d{1,20})\.([0-9a-f-]{1,36})$")

T = TypeVar("T")


@dataclass(frozen=True)
class Cursor:
    """A position in a list ordered newest first: the time and id of a row."""

    at: datetime
    id: str

    def encode(self) -> str:
        micros = int(self.at.timestamp() * 1_000_000)
        return f"{micros}.{self.id}"

    @staticmethod
    def decode(value: str) -> Cursor:
        """ValidationError for anything :meth:`encode` did not make."""
        match = _CURSOR.match(value)
        if match is None:
            raise ValidationError("invalid page position")
        micros = int(match.group(1))
        try:
            at = datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC")) + timedelta(microseconds=micros)
        except OverflowError:
            raise ValidationError("invalid page position") from None
        return Cursor(at, match.group(2))


@dataclass(frozen=True)
class ListFilter:
    """What the clerk asked for: words, unread only, fax or digital, a date range (local days), a level."""

    q: str = ""
    unread: bool = False
    source: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    classification: int | None = None
    # Rows older than ``before`` (the next page), or newer than ``after`` (the previous page).
    before: Cursor | None = None
    after: Cursor | None = None

    def __post_init__(self) -> None:
        if len(self.q) > MAX_QUERY_CHARS:
            raise ValidationError(f"the search is longer than {MAX_QUERY_CHARS} characters")
        if self.source is not None and self.source not in SOURCES:
            raise ValidationError("unknown kind of message")
        if self.classification is not None and not 0 <= self.classification <= 3:
            raise ValidationError("classification must be 0-3")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValidationError("the start date is after the end date")

    @property
    def narrowed(self) -> bool:
        """True when anything but the position is set (the page is a search result)."""
        return bool(self.q.strip() or self.unread or self.source or self.date_from or self.date_to
                    or self.classification is not None)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list and the positions of its neighbours (None: there is none)."""

    items: list[T]
    older: Cursor | None = None
    newer: Cursor | None = None


@dataclass(frozen=True)
class UnreadCounts:
    """Unread messages of an office: all, by fax, digital; ``latest`` changes whenever one arrives."""

    total: int
    fax: int
    digital: int
    latest: int = 0
    by_folder: dict[str, int] = field(default_factory=dict)


class MessageListing:
    """Reads pages of an office's inbox and sent items for a viewer, and its unread counts."""

    def __init__(self, delivery: DeliveryService, tz: ZoneInfo) -> None:
        self._delivery = delivery
        self._db = delivery.database
        self._directory = delivery.directory
        self._tz = tz

    def _office(self, office_code: str, viewer: str | None) -> tuple[Actor, int, str]:
        actor = self._delivery.actor(viewer)
        office = self._directory.office(office_code)
        if not actor.is_operator and actor.office != office.code:
            raise PolicyError(f"{actor.login} does not belong to office {office.code}")
        return actor, office.id, office.code

    def _day_bounds(self, filt: ListFilter) -> tuple[datetime | None, datetime | None]:
        start = datetime.combine(filt.date_from, time(), self._tz) if filt.date_from else None
        end = datetime.combine(filt.date_to + timedelta(days=1), time(), self._tz) if filt.date_to else None
        return start, end

    def inbox(self, office_code: str, viewer: str | None, filt: ListFilter, limit: int = PAGE_SIZE) -> Page[InboxItem]:
        """A page of the office's inbox, newest first."""
        actor, office_id, code = self._office(office_code, viewer)
        conds: list[ColumnElement[bool]] = [inbox.c.office_id == office_id]
        if filt.q.strip() or filt.classification is not None:
            conds.append(inbox.c.classification <= actor.clearance)
        if filt.q.strip():
            matches = self._delivery.search_index.inbox_ids(self._db.backend, filt.q)
            if matches is not None:
                conds.append(self._matching(inbox.c.id, inbox.c.id + 0, matches, filt.q))
        if filt.unread:
            conds.append(inbox.c.opened_at.is_(None))
        if filt.source:
            conds.append(inbox.c.source == filt.source)
        if filt.classification is not None:
            conds.append(inbox.c.classification == filt.classification)
        start, end = self._day_bounds(filt)
        if start:
            conds.append(inbox.c.received_at >= start)
        if end:
            conds.append(inbox.c.received_at < end)
        rows, older, newer = self._keyset(select(inbox), inbox.c.received_at, inbox.c.id, conds, filt, limit,
                                          int_ids=True)
        items = [self._delivery.inbox_item(r, code, actor) for r in rows]
        return Page(items, older, newer)

    def sent(self, office_code: str, viewer: str | None, filt: ListFilter, limit: int = PAGE_SIZE) -> Page[SentMessage]:
        """A page of the office's sent items, newest first, with every recipient's state."""
        actor, office_id, code = self._office(office_code, viewer)
        conds: list[ColumnElement[bool]] = [messages.c.office_id == office_id]
        if filt.q.strip() or filt.classification is not None:
            conds.append(messages.c.classification <= actor.clearance)
        if filt.q.strip():
            matches = self._delivery.search_index.sent_ids(self._db.backend, filt.q)
            if matches is not None:
                conds.append(self._matching(messages.c.id, messages.c.id, matches, filt.q, sent=True))
        if filt.classification is not None:
            conds.append(messages.c.classification == filt.classification)
        start, end = self._day_bounds(filt)
        if start:
            conds.append(messages.c.created_at >= start)
        if end:
            conds.append(messages.c.created_at < end)
        rows, older, newer = self._keyset(select(messages), messages.c.created_at, messages.c.id, conds, filt, limit,
                                          int_ids=False)
        statuses: dict[str, list[Any]] = {r.id: [] for r in rows}
        if rows:
            with self._db.read() as conn:
                # One query for every recipient on the page, not one per message.
                for s in conn.execute(select(outbox).where(outbox.c.message_id.in_(list(statuses)))
                                      .order_by(outbox.c.id)).all():
                    statuses[s.message_id].append(s)
        items = [self._delivery.sent_message(r, code, actor, statuses[r.id]) for r in rows]
        return Page(items, older, newer)

    def _matching(self, key: Any, key_unindexed: Any, matches: Any, query: str, *, sent: bool = False
                  ) -> ColumnElement[bool]:
        """``key IN matches``, written so that SQLite walks the list in order when the term is common.

        A rare term: fetch its few rows by primary key and sort them. A common one (登記 in every tenth
        subject): thousands of rows to fetch and sort for a page of 50; walking the (office, time) index
        newest first and keeping the rows in the match set stops after a few hundred. ``key + 0`` keeps
        SQLite from using the primary key for the IN; PostgreSQL's planner weighs the two by itself.
        """
        if self._db.backend != "sqlite" or sent:
            return key.in_(matches)  # type: ignore[no-any-return]
        with self._db.read() as conn:
            common = self._delivery.search_index.count_inbox(conn, query) > COMMON_MATCHES
        return (key_unindexed if common else key).in_(matches)  # type: ignore[no-any-return]

    def _keyset(self, query: Any, at: Any, ident: Any, conds: list[ColumnElement[bool]], filt: ListFilter,
                limit: int, *, int_ids: bool) -> tuple[list[Any], Cursor | None, Cursor | None]:
        def key(c: Cursor) -> Any:
            if int_ids and not c.id.isdigit():
                raise ValidationError("invalid page position")
            return int(c.id) if int_ids else c.id

        if filt.after is not None:
            # The previous page: the rows just above the position, read upwards, shown newest first.
            # The plain bound on the time lets the (office, time) index start at the position.
            page_conds = [*conds, at >= filt.after.at, tuple_(at, ident) > tuple_(filt.after.at, key(filt.after))]
            order = (at.asc(), ident.asc())
        else:
            page_conds = list(conds)
            if filt.before is not None:
                page_conds += [at <= filt.before.at, tuple_(at, ident) < tuple_(filt.before.at, key(filt.before))]
            order = (at.desc(), ident.desc())
        with self._db.read() as conn:
            rows = list(conn.execute(query.where(and_(*page_conds)).order_by(*order).limit(limit + 1)).all())
        more = len(rows) > limit
        rows = rows[:limit]
        if filt.after is not None:
            rows.reverse()
        if not rows:
            return rows, None, None

        def cursor(r: Any) -> Cursor:
            return Cursor(r._mapping[at.name], str(r._mapping[ident.name]))

        older: Cursor | None
        newer: Cursor | None
        if filt.after is not None:
            older, newer = cursor(rows[-1]), (cursor(rows[0]) if more else None)
        else:
            older = cursor(rows[-1]) if more else None
            newer = cursor(rows[0]) if filt.before is not None else None
        return rows, older, newer

    def unread(self, office_code: str, viewer: str | None) -> UnreadCounts:
        """Unread messages of the office, by folder (read from the partial index of unread rows)."""
        _actor, office_id, _code = self._office(office_code, viewer)
        with self._db.read() as conn:
            counts = {str(source): int(n) for source, n in conn.execute(
                select(inbox.c.source, func.count()).where(inbox.c.office_id == office_id, inbox.c.opened_at.is_(None))
                .group_by(inbox.c.source)).all()}
            latest = conn.execute(select(func.max(inbox.c.id)).where(inbox.c.office_id == office_id)).scalar() or 0
        fax, digital = int(counts.get("fax", 0)), int(counts.get("inkless", 0))
        return UnreadCounts(total=fax + digital, fax=fax, digital=digital, latest=int(latest),
                            by_folder={"inbox": fax + digital})

