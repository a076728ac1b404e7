"""The outbox arithmetic and the claim: backoff schedule and row claiming on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, select, update

from inkless.db.tables_delivery import outbox

PENDING = ("queued", "retrying")
PRIORITY_RANK = {"urgent": 0, "normal": 1}
RANK_PRIORITY = {v: k for k, v in PRIORITY_RANK.items()}


def backoff_delay(attempts: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds before retry number ``attempts`` (1 = after the first failure).

    Exponential (base · 2^(n-1), capped) with "equal jitter": half the delay is fixed, half random,
    so retries of many rows after an outage spread out but never come back sooner than half the step.
    """
    step = min(cap, base * 2 ** max(0, attempts - 1))
    # Jitter only spreads retries; it needs no cryptographic randomness.
    rng = rng or random.Random()  # noqa: S311
    return float(step / 2 + rng.uniform(0, step / 2))


def claim_due(conn: Connection, now: datetime, limit: int, lease: timedelta) -> Sequence[Row[Any]]:
    """Claim up to ``limit`` due rows, urgent first, and push their next attempt out by ``lease``.

    PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so concurrent workers take disjoint rows. SQLite: the
    transaction is BEGIN IMMEDIATE (see db/engine.py), so claims are serialised. Either way a claimed
    row is invisible to other claimers until the lease runs out; a worker killed mid-delivery leaves
    the row to be retried after the lease, and the receiver's idempotence makes the retry harmless.
    """
    query = (
        select(outbox)
        .where(outbox.c.state.in_(PENDING), outbox.c.next_attempt_at <= now)
        .order_by(outbox.c.priority, outbox.c.next_attempt_at, outbox.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = conn.execute(query).all()
    if rows:
        conn.execute(
            update(outbox).where(outbox.c.id.in_([r.id for r in rows])).values(next_attempt_at=now + lease)
        )
    return rows
