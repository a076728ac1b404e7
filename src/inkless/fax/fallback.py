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

Right before faxing, the peer is probed with a signed request: a peer that answers is not faxed
to (its unreachable flag was stale) and the row is delivered electronically at once.

The decision (why a row is or is not faxed) and the fax's outcome are kept on the outbox row as
reason codes with parameters (``fax_decision``, ``fax_outcome``; see :mod:`inkless.delivery.faxnote`),
apart from ``last_error``, so electronic retries never overwrite them. While the fax job runs the
row is in state ``fax``; when it ends (sent or failed) the row goes back to the electronic queue,
so the envelope is still delivered once the peer returns and the sender gets a signed receipt.
A row is faxed at most once, and a fax that could not even be queued is recorded once, with its
reason. The claim (``UPDATE … WHERE state IN pending``) comes first, so two workers never fax the
same row twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, cast, exists, or_, select, update

from inkless.audit.model import AuditEvent, AuditRecorder
from inkless.clock import Clock
from inkless.db import tables as t
from inkless.db.engine import Database
from inkless.db.tables_delivery import messages, outbox
from inkless.db.tables_fax import fax_jobs, fax_settings
from inkless.db.tables_federation import federation_peers
from inkless.delivery.faxnote import dump_params
from inkless.errors import InklessError
from inkless.fax.policy import fax_allowed

log = logging.getLogger("inkless.fax.fallback")

PENDING = ("queued", "retrying")
# Decisions that cannot change while the row waits: the row is not looked at again.
FINAL_DECISIONS = ("no_pdf",)


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
    decision: str | None = None


def decide(
    candidate: FallbackCandidate,
    *,
    now: datetime,
    after: timedelta,
    fallback_enabled: bool,
    fax_number: str | None,
    local_node: str,
) -> str | None:
    """None if the row should fall back to fax, else the reason code of the first condition that does not hold."""
    if candidate.node_id == local_node:
        return "local_recipient"
    if candidate.unreachable_since is None or now - candidate.unreachable_since < after:
        return "peer_not_down_long_enough"
    if candidate.priority != 0:
        return "not_urgent"
    if not fax_allowed(candidate.classification):
        return "classification"
    if not fax_number:
        return "no_fax_number"
    if not fallback_enabled:
        return "fallback_disabled"
    return None


def candidates(db: Database, now: datetime, after: timedelta, local_node: str) -> list[FallbackCandidate]:
    """Pending rows to peers that have been unreachable at least ``after`` (conditions 1-2), not faxed before."""
    query = (
        select(outbox.c.id, outbox.c.message_id, outbox.c.recipient, outbox.c.node_id, outbox.c.priority,
               outbox.c.fax_decision, messages.c.classification, messages.c.office_id, messages.c.sender_login,
               t.offices.c.code, federation_peers.c.unreachable_since)
        .join(messages, messages.c.id == outbox.c.message_id)
        .join(t.offices, t.offices.c.id == messages.c.office_id)
        .join(federation_peers, federation_peers.c.node_id == outbox.c.node_id)
        .where(outbox.c.state.in_(PENDING), outbox.c.node_id != local_node,
               federation_peers.c.unreachable_since.is_not(None),
               federation_peers.c.unreachable_since <= now - after,
               # One fallback per row: a row whose fax was tried (queued, sent, failed, or could not be
               # queued) stays with electronic delivery.
               outbox.c.fax_outcome.is_(None),
               or_(outbox.c.fax_decision.is_(None), outbox.c.fax_decision.not_in(FINAL_DECISIONS)),
               ~exists().where(fax_jobs.c.outbox_ref == cast(outbox.c.id, String)))
        .order_by(outbox.c.priority, outbox.c.id)
        .limit(100)
    )
    with db.begin() as conn:
        rows = conn.execute(query).all()
    return [FallbackCandidate(r.id, r.message_id, r.recipient, r.node_id, r.priority, r.classification,
                              r.office_id, r.code, r.sender_login, r.unreachable_since, r.fax_decision) for r in rows]


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

    def _peer_answers(self, node_id: str) -> bool:
        """Probe the peer now (a signed request); the flag that made it a candidate may be stale."""
        peers = self._peers()
        if peers is None:
            return False
        try:
            return bool(peers.probe(node_id))
        except InklessError:
            return False

    def scan(self) -> list[int]:
        """Fall back every qualifying row; returns the fax job ids queued."""
        delivery = self._delivery()
        if delivery is None:
            return []
        now = self._clock.now()
        queued: list[int] = []
        probed: dict[str, bool] = {}
        for candidate in candidates(self._db, now, self._after, self._local_node):
            number = self._fax_number(candidate.recipient)
            why_not = decide(candidate, now=now, after=self._after, fallback_enabled=self._enabled(candidate.office_id),
                             fax_number=number, local_node=self._local_node)
            if why_not in ("local_recipient", "peer_not_down_long_enough"):
                continue  # not a fallback case at all (the query already leaves these out)
            if why_not is not None or number is None:
                self._note_decision(candidate, why_not or "no_fax_number",
                                    {"classification": candidate.classification, "node": candidate.node_id})
                continue
            if candidate.node_id not in probed:
                probed[candidate.node_id] = self._peer_answers(candidate.node_id)
            if probed[candidate.node_id]:
                self._peer_is_back(candidate)
                continue
            try:
                job_id = self._fall_back(candidate, number, delivery, now)
            except Exception:  # one row must not stop the scan; it stays pending and visible
                log.exception("fax fallback of outbox row %s failed", candidate.outbox_id)
                continue
            if job_id is not None:
                queued.append(job_id)
        return queued

    def _note_decision(self, candidate: FallbackCandidate, code: str, params: dict[str, Any]) -> None:
        """Keep why a row is not faxed where the sender looks (only when the reason changes: no churn)."""
        if candidate.decision == code:
            return
        now = self._clock.now()
        with self._db.begin() as conn:
            conn.execute(update(outbox).where(outbox.c.id == candidate.outbox_id, outbox.c.fax_outcome.is_(None))
                         .values(fax_decision=code, fax_decision_params=dump_params(params), fax_updated_at=now))

    def _peer_is_back(self, candidate: FallbackCandidate) -> None:
        """The peer answered the probe: no fax; the row is due for electronic delivery now."""
        now = self._clock.now()
        with self._db.begin() as conn:
            conn.execute(update(outbox).where(outbox.c.id == candidate.outbox_id, outbox.c.state.in_(PENDING),
                                              outbox.c.fax_outcome.is_(None)).values(
                fax_decision="peer_answered", fax_decision_params=dump_params({"node": candidate.node_id}),
                fax_updated_at=now, next_attempt_at=now))

    def _fall_back(self, candidate: FallbackCandidate, number: str, delivery: Any, now: datetime) -> int | None:
        minutes = int((now - (candidate.unreachable_since or now)).total_seconds() // 60)
        opened = delivery.open_message(candidate.message_id, None)
        pdfs = [d.data for d in opened.documents if d.content_type == "application/pdf" or d.data.startswith(b"%PDF-")]
        if not pdfs:
            self._note_decision(candidate, "no_pdf", {})
            return None
        # Claim first: only the worker whose UPDATE matched a pending row goes on to fax it.
        decision = {"node": candidate.node_id, "minutes": minutes, "number": number}
        with self._db.begin() as conn:
            claimed = conn.execute(update(outbox).where(outbox.c.id == candidate.outbox_id,
                                                        outbox.c.state.in_(PENDING),
                                                        outbox.c.fax_outcome.is_(None)).values(
                state="fax", fax_decision="faxing", fax_decision_params=dump_params(decision),
                fax_updated_at=now, updated_at=now)).rowcount
        if not claimed:
            return None
        try:
            job_id: int = self._fax.send(
                candidate.sender_login, candidate.office_code, number, pdfs, cover_page=True,
                classification=candidate.classification, confirm_internal=True,
                subject=opened.metadata.subject if candidate.classification == 0 else None,
                origin="fallback", outbox_ref=str(candidate.outbox_id), reference=candidate.message_id,
            )
        except Exception as exc:
            # The fax could not even be queued: back to electronic delivery, recorded once with the reason
            # (the row is never picked again, so this is not repeated every minute).
            reason = exc.message if isinstance(exc, InklessError) else f"{type(exc).__name__}: {exc}"
            done = self._clock.now()
            with self._db.begin() as conn:
                conn.execute(update(outbox).where(outbox.c.id == candidate.outbox_id, outbox.c.state == "fax").values(
                    state="retrying", next_attempt_at=done, fax_outcome="not_queued",
                    fax_outcome_params=dump_params({"number": number, "reason": reason}), fax_updated_at=done,
                    updated_at=done))
                self._audit.record(conn, AuditEvent(
                    actor="system", action="message.fax_fallback_failed", object_type="message",
                    object_id=candidate.message_id,
                    details={"recipient": candidate.recipient, "number": number, "reason": reason[:500]}), at=done)
            raise
        done = self._clock.now()
        with self._db.begin() as conn:
            conn.execute(update(outbox).where(outbox.c.id == candidate.outbox_id).values(
                fax_outcome="queued", fax_outcome_params=dump_params({"job": job_id, "number": number}),
                fax_updated_at=done))
            # Audited only now that a fax job really exists.
            self._audit.record(conn, AuditEvent(
                actor="system", action="message.fax_fallback", object_type="message", object_id=candidate.message_id,
                details={"recipient": candidate.recipient, "number": number, "peer_down_minutes": minutes,
                         "fax_job": job_id}), at=done)
        return job_id


def record_fax_outcome(db: Database, audit: AuditRecorder, clock: Clock, outbox_ref: str, job_id: int,
                       success: bool, text: str, *, number: str = "", pages: int = 0,
                       from_number: str | None = None, t30_code: int | None = None) -> None:
    """Write a fallback fax's final outcome on its outbox row, where the sender looks.

    Either way the row goes back to the electronic queue, due now: a failed fax must not be a dead end,
    and a sent one is still delivered electronically once the peer is back (the recipient then holds the
    signed original, and the sender its signed receipt). The fallback never picks the row again.
    """
    try:
        outbox_id = int(outbox_ref)
    except ValueError:
        return
    now = clock.now()
    params: dict[str, Any] = {"job": job_id, "number": number, "pages": pages, "sent_at": now.isoformat(),
                              "from_number": from_number}
    if not success:
        params = {"job": job_id, "number": number, "code": t30_code, "reason": text}
    with db.begin() as conn:
        row = conn.execute(select(outbox.c.message_id).where(outbox.c.id == outbox_id)).first()
        if row is None:
            return
        conn.execute(update(outbox).where(outbox.c.id == outbox_id).values(
            fax_outcome="sent" if success else "failed", fax_outcome_params=dump_params(params), fax_updated_at=now))
        conn.execute(update(outbox).where(outbox.c.id == outbox_id, outbox.c.state == "fax").values(
            state="retrying", next_attempt_at=now, updated_at=now))
        audit.record(conn, AuditEvent(
            actor="system", action="message.fax_sent" if success else "message.fax_failed", object_type="message",
            object_id=row.message_id, details={"fax_job": job_id}), at=now)
