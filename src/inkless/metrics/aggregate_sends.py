"""Sending the weekly aggregate to the targets (peers or a hub), on a schedule and by hand.

The worker checks every few minutes (:func:`send_due`). Once a week is over (in Tokyo), its signed
aggregate goes to every target, once: a target that accepted a week's counts is not sent them
again. When the counts of an already sent week change later (paper recorded afterwards, a fax
classified late), the corrected aggregate goes again — the hub replaces the earlier one and audits
it. Failures are kept with their reason and retried with a growing pause. Several worker processes
may run this at once: each (target, week) is claimed before it is sent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from inkless.audit.model import AuditEvent
from inkless.db.tables_metrics import metrics_aggregate_sends
from inkless.errors import InklessError
from inkless.metrics.aggregates import AGGREGATE_PATH, aggregate_counts, build_aggregate, targets
from inkless.metrics.periods import parse_week, week_of, weeks_back

if TYPE_CHECKING:
    from inkless.app import Node

# (url, body) -> (HTTP status, response text); the real one is httpx, tests post into a hub in-process.
AggregatePost = Callable[[str, bytes], tuple[int, str]]
CHECK_SECONDS = 300.0
# Weeks before last week whose aggregate is sent again when their counts changed.
CORRECTION_WEEKS = 4
RETRY_SECONDS = (300, 900, 3600, 3 * 3600, 6 * 3600)
CLAIM_SECONDS = 120


def http_post(url: str, body: bytes) -> tuple[int, str]:
    """POST an aggregate (JWS) with httpx."""
    import httpx

    try:
        response = httpx.post(url, content=body, headers={"Content-Type": "application/jose"}, timeout=30)
    except httpx.HTTPError as exc:
        return 0, str(exc) or type(exc).__name__
    return response.status_code, response.text


@dataclass(frozen=True)
class AggregateSend:
    """Where one week's aggregate stands with one target."""

    target: str
    week: str
    state: str  # pending, sent, failed
    sent_at: datetime | None
    attempts: int
    next_attempt_at: datetime | None
    last_result: str | None

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "week": self.week, "state": self.state,
                "sent_at": self.sent_at.isoformat() if self.sent_at else None, "attempts": self.attempts,
                "next_attempt_at": self.next_attempt_at.isoformat() if self.next_attempt_at else None,
                "last_result": self.last_result}


def digest_of(counts: dict[str, int]) -> str:
    return hashlib.sha256(json.dumps(counts, sort_keys=True).encode()).hexdigest()


def last_week(now: datetime) -> str:
    """The last complete ISO week (Tokyo) at ``now``."""
    return weeks_back(week_of(now), 2)[0]


def _claim(node: Node, target: str, week: str, now: datetime) -> Any | None:
    """Claim (target, week) for sending (its row, made if missing); None when another process holds it."""
    s = metrics_aggregate_sends.c
    row = {"target": target, "week": week, "state": "pending", "attempts": 0}
    with node.db.begin() as conn:
        stmt: Any = (postgresql.insert(metrics_aggregate_sends) if conn.dialect.name == "postgresql"
                     else sqlite.insert(metrics_aggregate_sends))
        conn.execute(stmt.on_conflict_do_nothing(index_elements=[s.target, s.week]).values(**row))
        claimed = conn.execute(update(metrics_aggregate_sends).where(
            s.target == target, s.week == week, or_(s.claimed_until.is_(None), s.claimed_until < now),
        ).values(claimed_until=now + timedelta(seconds=CLAIM_SECONDS))).rowcount
        if claimed != 1:
            return None
        return conn.execute(select(metrics_aggregate_sends).where(s.target == target, s.week == week)).one()


def _send_one(node: Node, target: str, week: str, counts: dict[str, int], post: AggregatePost,
              now: datetime) -> str:
    """Sign and POST the week's aggregate to one target; record the outcome; returns it (or "error ...")."""
    assert node.peers is not None
    try:
        peer = node.peers.get(target)  # type: ignore[attr-defined]
        status, text = post(peer.url.rstrip("/") + AGGREGATE_PATH,
                            build_aggregate(node, week, counts).encode("ascii"))
    except InklessError as exc:  # the peer was removed since, or the node key cannot sign: kept as a failure
        status, text = 0, str(exc)
    outcome = None
    if status == 200:
        try:
            outcome = str(json.loads(text).get("outcome"))
        except (ValueError, AttributeError):
            outcome = None
    s = metrics_aggregate_sends.c
    with node.db.begin() as conn:
        attempts = int(conn.execute(select(s.attempts).where(s.target == target, s.week == week)).scalar() or 0) + 1
        if outcome in ("stored", "replaced", "unchanged"):
            values: dict[str, Any] = {"state": "sent", "sent_digest": digest_of(counts), "sent_at": now,
                                      "attempts": attempts, "next_attempt_at": None, "last_result": outcome}
            result = outcome
        else:
            result = f"error {status}: {text[:200]}" if status else f"error: {text[:200]}"
            pause = RETRY_SECONDS[min(attempts, len(RETRY_SECONDS)) - 1]
            values = {"state": "failed", "attempts": attempts,
                      "next_attempt_at": now + timedelta(seconds=pause), "last_result": result}
        conn.execute(update(metrics_aggregate_sends).where(s.target == target, s.week == week)
                     .values(claimed_until=None, **values))
        node.audit.record(conn, AuditEvent(
            actor="system", action="metrics.aggregate_sent", object_type="aggregate",
            object_id=f"{node.node_id}/{week}", details={"target": target, "result": result}), at=now)
    return result


def send_due(node: Node, post: AggregatePost | None = None) -> dict[tuple[str, str], str]:
    """Send what is due: last week's aggregate to every target that has not accepted it, and the corrected
    aggregate of an earlier week a target accepted with other counts; failures wait their pause.
    Returns (target, week) -> outcome for what was tried."""
    post = post or http_post
    chosen = targets(node)
    if not chosen:
        return {}
    now = node.clock.now()
    newest = last_week(now)
    weeks = weeks_back(newest, CORRECTION_WEEKS + 1)
    s = metrics_aggregate_sends.c
    with node.db.read() as conn:
        kept = {(row.target, row.week): row for row in conn.execute(select(metrics_aggregate_sends).where(
            s.target.in_(chosen), s.week.in_(weeks)))}
    results: dict[tuple[str, str], str] = {}
    for week in weeks:
        # Earlier weeks only go again to targets that have them (corrections), never for the first time.
        due_targets = [t for t in chosen if week == newest or (t, week) in kept]
        if not due_targets:
            continue
        counts = aggregate_counts(node, week)
        digest = digest_of(counts)
        for target in due_targets:
            row = kept.get((target, week))
            if row is not None and row.sent_digest == digest:
                continue  # the target has exactly these counts
            if row is not None and row.next_attempt_at is not None and row.next_attempt_at > now:
                continue  # failed recently: waits its pause
            if _claim(node, target, week, now) is None:
                continue  # another process is sending it
            results[(target, week)] = _send_one(node, target, week, counts, post, now)
    return results


def send_now(node: Node, week: str | None = None, post: AggregatePost | None = None) -> dict[str, str]:
    """Sign ``week``'s aggregate (default: last week) and send it to every target now (``inkless metrics
    aggregate send``); recorded like the scheduled sends. Returns target -> outcome."""
    post = post or http_post
    now = node.clock.now()
    week = parse_week(week) if week else last_week(now)
    counts = aggregate_counts(node, week)
    results: dict[str, str] = {}
    for target in targets(node):
        if _claim(node, target, week, now) is None:
            results[target] = "error: being sent by another process"
            continue
        results[target] = _send_one(node, target, week, counts, post, now)
    return results


def sends(node: Node, week: str | None = None) -> list[AggregateSend]:
    """The aggregates sent or being sent, newest week first (one week with ``week``)."""
    s = metrics_aggregate_sends.c
    query = select(metrics_aggregate_sends).order_by(s.week.desc(), s.target)
    if week:
        query = query.where(s.week == parse_week(week))
    with node.db.read() as conn:
        rows = conn.execute(query).all()
    return [AggregateSend(r.target, r.week, r.state, r.sent_at, r.attempts, r.next_attempt_at, r.last_result)
            for r in rows]


__all__ = ["AggregateSend", "send_due", "send_now", "sends"]
