"""The outbox arithmetic and the claim: backoff schedule and row claiming on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, case, select, update

from inkless.db.tables_delivery import inbox, outbox
from inkless.delivery.faxnote import FaxFirst, note

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

    The attempt is counted here, when it is claimed (not when it ends): a worker killed in the middle
    of a delivery has still made an attempt. Rows past their expiry are claimed only to be expired,
    which is not an attempt. The returned rows carry the counts after the claim.

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
    ids = [r.id for r in conn.execute(query).all()]
    if not ids:
        return []
    conn.execute(
        update(outbox).where(outbox.c.id.in_(ids)).values(
            next_attempt_at=now + lease,
            attempts=case((outbox.c.expires_at > now, outbox.c.attempts + 1), else_=outbox.c.attempts),
        )
    )
    claimed = {r.id: r for r in conn.execute(select(outbox).where(outbox.c.id.in_(ids))).all()}
    return [claimed[i] for i in ids]


def faxed_first(row: Row[Any]) -> FaxFirst | None:
    """What the disaster fallback faxed for this outbox row, if the fax went out (told to the recipient)."""
    outcome = note(row.fax_outcome, row.fax_outcome_params, row.fax_updated_at)
    if outcome is None or outcome.code != "sent":
        return None
    p = outcome.params
    try:
        sent_at = datetime.fromisoformat(str(p.get("sent_at")))
        return FaxFirst(str(p["number"]), p.get("from_number") or None, sent_at, int(p.get("pages") or 0),
                        int(p["job"]))
    except (KeyError, TypeError, ValueError):
        return None


# How far apart the sender's "sent by fax" time and our inbound fax's arrival may be to be the same fax.
FAX_COPY_WINDOW = timedelta(hours=2)


def find_fax_copy(conn: Connection, office_id: int, fax_first: FaxFirst) -> str | None:
    """The inbox copy of the fax the sender says it sent us first, if this node's fax line received it.

    A fax from the sending office's number (its caller id) to this office, near the time the sender says
    it was sent, the nearest one first. Without a sending number nothing can be matched.
    """
    if not fax_first.from_number:
        return None
    rows = conn.execute(select(inbox.c.message_id, inbox.c.received_at).where(
        inbox.c.office_id == office_id, inbox.c.source == "fax", inbox.c.sender == f"fax:{fax_first.from_number}",
        inbox.c.received_at >= fax_first.sent_at - FAX_COPY_WINDOW,
        inbox.c.received_at <= fax_first.sent_at + FAX_COPY_WINDOW)).all()
    if not rows:
        return None
    return str(min(rows, key=lambda r: abs(r.received_at - fax_first.sent_at)).message_id)
