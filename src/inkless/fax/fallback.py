"""Disaster fallback: urgent traffic to a peer that has been down too long goes out by fax instead.

An outbox row (delivery's table) falls back to fax only when *all* of these hold:

1. it is still pending (``queued`` or ``retrying``) and its recipient is an office of another node;
2. that peer node has been unreachable for at least ``fax_fallback_after_minutes``
   (federation's ``unreachable_since``);
3. the message is marked ``urgent``;
4. its classification is at most 1 (内部) — confidential material never goes by fax;
5. the recipient office publishes a fax number in the peer's directory;
6. the sending office has enabled the fallback (``inkless fax fallback enable OFFICE``);
7. the message carries at least one PDF to fax.

The row then moves to state ``fax`` with the reason in ``last_error``, which is what the sender
sees; the fax job's final outcome is written there too. A fax that finally fails sends the row
back to the electronic queue (never a dead end), and that row is not faxed again. The claim (``UPDATE … WHERE state IN
pending``) comes first, so two workers never fax the same row twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, cast, exists, select, update

from inkless.audit.model import AuditEvent, AuditRecorder
from inkless.clock import Clock
from inkless.db import tables as t
from inkless.db.engine import Database
from inkless.db.tables_delivery import messages, outbox
from inkless.db.tables_fax import fax_jobs, fax_settings
from inkless.db.tables_federation import federation_peers
from inkless.errors import InklessError
from inkless.fax.policy import fax_allowed

log = logging.getLogger("inkless.fax.fallback")

PENDING = ("queued", "retrying")
MAX_REASON = 1000


@dataclass(frozen=True)
class FallbackCandidate:
    """An outbox row and the facts the decision was made on."""

    outbox_id: int
    message_id: str
    recipient: str
    node_id: str
    priority: int
    classification: int
    office_id: int
    office_code: str
    sender_login: str
    unreachable_since: datetime | None


def decide(
    candidate: FallbackCandidate,
    *,
    now: datetime,
    after: timedelta,
    fallback_enabled: bool,
    fax_number: str | None,
    local_node: str,
) -> str | None:
    """None if the row should fall back to fax, else the first condition that does not hold."""
    if candidate.node_id == local_node:
        return "local recipient"
    if candidate.unreachable_since is None or now - candidate.unreachable_since < after:
        return "peer not unreachable long enough"
    if candidate.priority != 0:
        return "not urgent"
    if not fax_allowed(candidate.classification):
        return "classification too high for fax"
    if not fax_number:
        return "recipient office publishes no fax number"
    if not fallback_enabled:
        return "fallback disabled for the sending office"
    return None


def candidates(db: Database, now: datetime, after: timedelta, local_node: str) -> list[FallbackCandidate]:
    """Pending rows to peers that have been unreachable at least ``after`` (conditions 1-2)."""
    query = (
        select(outbox.c.id, outbox.c.message_id, outbox.c.recipient, outbox.c.node_id, outbox.c.priority,
               messages.c.classification, messages.c.office_id, messages.c.sender_login, t.offices.c.code,
               federation_peers.c.unreachable_since)
        .join(messages, messages.c.id == outbox.c.message_id)
        .join(t.offices, t.offices.c.id == messages.c.office_id)
        .join(federation_peers, federation_peers.c.node_id == outbox.c.node_id)
        .where(outbox.c.state.in_(PENDING), outbox.c.node_id != local_node,
               federation_peers.c.unreachable_since.is_not(None),
               federation_peers.c.unreachable_since <= now - after,
               # One fallback per row: a row whose fax failed stays with electronic delivery.
               ~exists().where(fax_jobs.c.outbox_ref == cast(outbox.c.id, String)))
        .order_by(outbox.c.priority, outbox.c.id)
        .limit(100)
    )
    with db.begin() as conn:
        rows = conn.execute(query).all()
    return [FallbackCandidate(r.id, r.message_id, r.recipient, r.node_id, r.priority, r.classification,
                              r.office_id, r.code, r.sender_login, r.unreachable_since) for r in rows]


class DisasterFallback:
    """Scans the outbox and hands qualifying rows to the fax service."""

    def __init__(
        self,
        db: Database,
        audit: AuditRecorder,
        clock: Clock,
        local_node: str,
        after_minutes: float,
        fax: Any,
        delivery: Callable[[], Any | None],
        peers: Callable[[], Any | None],
    ) -> None:
        self._db = db
        self._audit = audit
        self._clock = clock
        self._local_node = local_node
        self._after = timedelta(minutes=after_minutes)
        self._fax = fax
        self._delivery = delivery
        self._peers = peers

    def _enabled(self, office_id: int) -> bool:
        with self._db.begin() as conn:
            value = conn.execute(select(fax_settings.c.fallback_enabled).where(
                fax_settings.c.office_id == office_id)).scalar()
        return bool(value)

    def _fax_number(self, address: str) -> str | None:
        peers = self._peers()
        if peers is None:
            return None
        try:
            number = peers.office(address).fax_number
        except InklessError:
            return None
        return str(number) if number else None

    def scan(self) -> list[int]:
        """Fall back every qualifying row; returns the fax job ids queued."""
        delivery = self._delivery()
        if delivery is None:
            return []
        now = self._clock.now()
        queued: list[int] = []
        for candidate in candidates(self._db, now, self._after, self._local_node):
            number = self._fax_number(candidate.recipient)
            why_not = decide(candidate, now=now, after=self._after, fallback_enabled=self._enabled(candidate.office_id),
                             fax_number=number, local_node=self._local_node)
            if why_not is not None or number is None:
                continue
            try:
                job_id = self._fall_back(candidate, number, delivery, now)
            except Exception:  # one row must not stop the scan; it stays pending and visible
                log.exception("fax fallback of outbox row %s failed", candidate.outbox_id)
                continue
            if job_id is not None:
                queued.append(job_id)
        return queued

    def _fall_back(self, candidate: FallbackCandidate, number: str, delivery: Any, now: datetime) -> int | None:
        minutes = int((now - (candidate.unreachable_since or now)).total_seconds() // 60)
        opened = delivery.open_message(candidate.message_id, None)
        pdfs = [d.data for d in opened.documents if d.content_type == "application/pdf" or d.data.startswith(b"%PDF-")]
        if not pdfs:
            return None
        # Claim first: only the worker whose UPDATE matched a pending row goes on to fax it.
        reason = (f"送信先ノード {candidate.node_id} に{minutes}分以上接続できないため、FAX（{number}）で送信します。"
                  f" Peer {candidate.node_id} unreachable for {minutes} min: sending by fax to {number}.")
        with self._db.begin() as conn:
            claimed = conn.execute(update(outbox).where(outbox.c.id == candidate.outbox_id,
                                                        outbox.c.state.in_(PENDING)).values(
                state="fax", last_error=reason[:MAX_REASON], updated_at=now)).rowcount
            if not claimed:
                return None
            self._audit.record(conn, AuditEvent(
                actor="system", action="message.fax_fallback", object_type="message", object_id=candidate.message_id,
                details={"recipient": candidate.recipient, "number": number, "peer_down_minutes": minutes}), at=now)
        try:
            job_id: int = self._fax.send(
                candidate.sender_login, candidate.office_code, number, pdfs, cover_page=True,
                classification=candidate.classification, confirm_internal=True,
                subject=opened.metadata.subject if candidate.classification == 0 else None,
                origin="fallback", outbox_ref=str(candidate.outbox_id),
            )
        except InklessError as exc:
            # The fax could not even be queued: back to electronic delivery, with the reason shown.
            failed = f"FAXへの切替に失敗しました / fax fallback failed: {exc}"
            with self._db.begin() as conn:
                conn.execute(update(outbox).where(outbox.c.id == candidate.outbox_id, outbox.c.state == "fax").values(
                    state="retrying", last_error=failed[:MAX_REASON], updated_at=self._clock.now()))
            raise
        with self._db.begin() as conn:
            conn.execute(update(outbox).where(outbox.c.id == candidate.outbox_id).values(
                last_error=f"{reason} (FAXジョブ / fax job {job_id})"[:MAX_REASON]))
        return job_id


def record_fax_outcome(db: Database, audit: AuditRecorder, clock: Clock, outbox_ref: str, job_id: int,
                       success: bool, text: str) -> None:
    """Write a fallback fax's final outcome on its outbox row, where the sender looks."""
    try:
        outbox_id = int(outbox_ref)
    except ValueError:
        return
    now = clock.now()
    outcome = (f"FAXで送信しました（ジョブ {job_id}）/ sent by fax (job {job_id})" if success
               else f"FAX送信に失敗しました。通常の送信を続けます（ジョブ {job_id}）/ fax failed (job {job_id}), "
                    f"electronic delivery continues: {text}")
    with db.begin() as conn:
        row = conn.execute(select(outbox.c.message_id, outbox.c.last_error).where(outbox.c.id == outbox_id)).first()
        if row is None:
            return
        # A failed fax must not be a dead end: the row goes back to the electronic queue (until its expiry),
        # and the fallback never picks it again (it has a fallback job already).
        conn.execute(update(outbox).where(outbox.c.id == outbox_id, outbox.c.state == "fax").values(
            state="fax" if success else "retrying",
            last_error=f"{outcome}. {row.last_error or ''}"[:MAX_REASON], updated_at=now))
        audit.record(conn, AuditEvent(
            actor="system", action="message.fax_sent" if success else "message.fax_failed", object_type="message",
            object_id=row.message_id, details={"fax_job": job_id}), at=now)
