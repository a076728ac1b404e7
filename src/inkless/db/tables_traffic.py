"""Anonymous traffic: requests per endpoint, client address and minute (rate limits and audit tallies)."""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table

from inkless.db.tables import metadata
from inkless.db.types import UTCDateTime

# One row per (endpoint, client, minute, outcome): the rate limiter sums a client's current minute,
# the audit tally folds closed periods into one audit entry per endpoint and deletes them.
anonymous_requests = Table(
    "anonymous_requests",
    metadata,
    Column("endpoint", String(32), primary_key=True),
    Column("client", String(64), primary_key=True),
    Column("minute", UTCDateTime, primary_key=True),
    Column("outcome", String(32), primary_key=True),
    Column("count", Integer, nullable=False),
)
Index("ix_anonymous_requests_minute", anonymous_requests.c.minute)
