"""Anonymous traffic: a rate limit per client address, and periodic tallies instead of one entry each.

Strangers may verify a PDF, ask the TSA for a time stamp, knock at the federation API
unsigned and fail to log in. Recording each of those as a permanent Merkle entry lets
anyone grow the audit log without bound, so they are counted instead, per endpoint, client
address and minute in ``anonymous_requests``. The counts serve twice:

- **rate limit**: a client that made ``limit_per_minute`` requests to an endpoint in the
  current minute is refused (RateLimitedError with the seconds to the next minute);
- **audit tally**: once a tally period (``tally_seconds``) is over, its rows become one audit
  entry per endpoint (``traffic.anonymous``: requests per outcome, distinct clients, the
  period) and are deleted.

Authenticated actions keep one audit entry per event. The counts live in the database, so
every process of a node agrees on them.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, select, text
from sqlalchemy.dialects import postgresql, sqlite

from inkless.audit.model import AuditEvent, AuditRecorder
from inkless.clock import Clock
from inkless.db.engine import Database
from inkless.db.tables_traffic import anonymous_requests as requests
from inkless.errors import RateLimitedError

RATE_LIMITED = "rate_limited"
# The first key of the PostgreSQL advisory locks that serialise one client's admissions ("anon").
ADVISORY_SPACE = 0x616E6F6E
TALLY_ACTION = "traffic.anonymous"


def minute_of(at: datetime) -> datetime:
    """The start of the minute ``at`` falls in."""
    return at.replace(second=0, microsecond=0)


def period_of(at: datetime, seconds: int) -> datetime:
    """The start of the tally period ``at`` falls in (periods are aligned to the Unix epoch)."""
    stamp = int(at.timestamp())
    return datetime.fromtimestamp(stamp - stamp % seconds, tz=UTC)


class AnonymousTraffic:
    """Counts anonymous requests: refuses a client over the limit, and tallies them into the audit log."""

    def __init__(
        self, db: Database, clock: Clock, audit: AuditRecorder, limit_per_minute: int, tally_seconds: int
    ) -> None:
        self._db = db
        self._clock = clock
        self._audit = audit
        self.limit_per_minute = limit_per_minute
        self.tally_seconds = tally_seconds

    def admit(self, endpoint: str, client: str, outcome: str = "request") -> None:
        """Count one request; RateLimitedError (counted as ``rate_limited``) if the client is over the limit."""
        now = self._clock.now()
        minute = minute_of(now)
        with self._db.begin() as conn:
            used = self._used(conn, endpoint, client, minute)
            if used >= self.limit_per_minute:
                self._count(conn, endpoint, client, minute, RATE_LIMITED)
                wait = max(1, int((minute + timedelta(minutes=1) - now).total_seconds() + 0.999))
                refusal = RateLimitedError(f"too many requests; try again in {wait} seconds", retry_after=wait)
            else:
                self._count(conn, endpoint, client, minute, outcome)
                return
        raise refusal

    def refused_too_often(self, endpoint: str, client: str) -> int | None:
        """Seconds to wait if ``client`` already reached the limit of ``endpoint`` this minute, else None."""
        now = self._clock.now()
        minute = minute_of(now)
        with self._db.begin() as conn:
            if self._used(conn, endpoint, client, minute) < self.limit_per_minute:
                return None
            self._count(conn, endpoint, client, minute, RATE_LIMITED)
        return max(1, int((minute + timedelta(minutes=1) - now).total_seconds() + 0.999))

    def note(self, conn: Connection, endpoint: str, client: str, outcome: str) -> None:
        """Count one anonymous event inside the caller's transaction (no limit checked here)."""
        count_anonymous(conn, endpoint, client, minute_of(self._clock.now()), outcome)

    def flush(self) -> int:
        """Turn every finished tally period into one audit entry per endpoint; returns how many entries."""
        current = period_of(self._clock.now(), self.tally_seconds)
        with self._db.begin() as conn:
            rows = conn.execute(
                select(requests).where(requests.c.minute < current).order_by(requests.c.minute)
            ).all()
            if not rows:
                return 0
            tallies: dict[tuple[datetime, str], dict[str, Any]] = defaultdict(
                lambda: {"outcomes": defaultdict(int), "clients": set()}
            )
            for row in rows:
                tally = tallies[(period_of(row.minute, self.tally_seconds), row.endpoint)]
                tally["outcomes"][row.outcome] += row.count
                tally["clients"].add(row.client)
            for (start, endpoint), tally in sorted(tallies.items()):
                end = start + timedelta(seconds=self.tally_seconds)
                self._audit.record(
                    conn,
                    AuditEvent(
                        actor="anonymous",
                        action=TALLY_ACTION,
                        object_type="endpoint",
                        object_id=endpoint,
                        details={
                            "from": start.isoformat(),
                            "to": end.isoformat(),
                            "requests": sum(tally["outcomes"].values()),
                            "outcomes": dict(sorted(tally["outcomes"].items())),
                            "clients": len(tally["clients"]),
                        },
                    ),
                    at=end,
                )
            conn.execute(delete(requests).where(requests.c.minute < current))
        return len(tallies)

    def _used(self, conn: Connection, endpoint: str, client: str, minute: datetime) -> int:
        if conn.dialect.name == "postgresql":
            # Two web processes admitting the same client at once must not both see "one left": the
            # check and the count of one (endpoint, client) take turns (SQLite's BEGIN IMMEDIATE does this).
            conn.execute(text("SELECT pg_advisory_xact_lock(:space, hashtext(:key))"),
                         {"space": ADVISORY_SPACE, "key": f"{endpoint[:32]}|{client[:64]}"})
        used = conn.execute(
            select(func.coalesce(func.sum(requests.c.count), 0)).where(
                requests.c.endpoint == endpoint,
                requests.c.client == client[:64],
                requests.c.minute == minute,
                requests.c.outcome != RATE_LIMITED,
            )
        ).scalar_one()
        return int(used)

    def _count(self, conn: Connection, endpoint: str, client: str, minute: datetime, outcome: str) -> None:
        count_anonymous(conn, endpoint, client, minute, outcome)


def count_anonymous(conn: Connection, endpoint: str, client: str | None, at: datetime, outcome: str) -> None:
    """Add one to the anonymous request count of (endpoint, client, minute of ``at``, outcome)."""
    key = {"endpoint": endpoint[:32], "client": (client or "unknown")[:64], "minute": minute_of(at),
           "outcome": outcome[:32]}
    # An upsert: two processes counting the same key at once both count.
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(requests).values(**key, count=1)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[requests.c.endpoint, requests.c.client, requests.c.minute, requests.c.outcome],
            set_={"count": requests.c.count + 1},
        )
    )


__all__ = ["RATE_LIMITED", "TALLY_ACTION", "AnonymousTraffic", "count_anonymous", "minute_of", "period_of"]
