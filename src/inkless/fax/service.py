"""The fax service: inbound calls to office inboxes, outbound jobs on a schedule, routing and block lists.

Inbound, in this order, so that a fax is never lost: junk on the block list is logged and dropped;
the TIFF is stored as received (blob); the call is logged with its facts and a routing decision in
one transaction (unroutable calls end there, in the administrators' queue); only then is the page
image turned into a searchable PDF and deposited in the office's inbox, marked as from an
unauthenticated sender.
A process that dies in between leaves the call ``routed``; the worker finishes it later.

Outbound: :meth:`FaxService.send` checks the policy, renders the document to TIFF-F and queues a
job; :meth:`FaxService.run_due_jobs` dials due jobs on a line and keeps a transmission report
per attempt.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, or_, select, update
from sqlalchemy import text as sql

from inkless import timefmt
from inkless.audit.model import AuditEvent, AuditRecorder
from inkless.blobs import BlobStore
from inkless.clock import Clock
from inkless.db import tables as t
from inkless.db.engine import Database
from inkless.db.tables_fax import fax_block_list, fax_calls, fax_jobs, fax_routing_rules, fax_settings
from inkless.directory.model import Office, check_fax_number
from inkless.directory.service import DirectoryService
from inkless.errors import ConflictError, FaxError, InklessError, NotFoundError, PolicyError, ValidationError
from inkless.fax import line as fax_line
from inkless.fax.jobs import CLAIM_SECONDS, JobSchedule, JobState, after_attempt
from inkless.fax.log import FaxCallEntry, FaxJob, OfficeFaxSettings
from inkless.fax.model import CallResult, CoverPage, Ocr, PdfMaker, RenderedFax, Renderer
from inkless.fax.policy import check_fax_allowed
from inkless.fax.routing import (
    BLOCK_KINDS,
    RULE_KINDS,
    BlockEntry,
    RoutingRule,
    blocked_by,
    check_pattern,
    route,
)
from inkless.metrics import classify, memory, rollup
from inkless.metrics.model import check_procedure_code
from inkless.text import check_text

log = logging.getLogger("inkless.fax")

MAX_TEXT = 500
# Converting, OCRing and depositing a received fax takes seconds to minutes; a claim older than this was abandoned.
DELIVERY_CLAIM_SECONDS = 15 * 60
# The advisory lock (PostgreSQL) under which processes count the line's calls and claim jobs for it.
LINE_CLAIM_LOCK = 0x696E6B6C_66617831  # "inkl" "fax1"
# Received faxes are at most internal (内部): they came over an open telephone line.
INBOUND_CLASSIFICATION = 1
UNAUTHENTICATED_LABEL = "送信元未認証（FAX）"


@dataclass(frozen=True)
class ReceivedFax:
    """What became of one inbound call."""

    call_id: int
    status: str
    office_code: str | None
    message_id: str | None


class FaxService:
    """Receives faxes into office inboxes, sends documents as faxes, keeps the call log."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        clock: Clock,
        audit: AuditRecorder,
        directory: DirectoryService,
        node_id: str,
        delivery: Callable[[], Any | None],
        *,
        render: Renderer | None = None,
        to_pdf: PdfMaker | None = None,
        ocr: Ocr | None = None,
        schedule: JobSchedule | None = None,
        timezone: tzinfo = timefmt.TOKYO,
    ) -> None:
        self._db = db
        self._tz = timezone  # cover pages, reports and file names are read by people: the office's zone
        self._blobs = blobs
        self._clock = clock
        self._audit = audit
        self._directory = directory
        self.node_id = node_id
        self._delivery = delivery
        self._render = render or _engine_render
        self._to_pdf = to_pdf or _engine_tiff_to_pdf
        self._ocr = ocr or _default_ocr
        self.default_schedule = schedule or JobSchedule()
        self._stopping = threading.Event()
        # The intake window's URL for an office (None while closed): every cover page invites to it.
        self.invitation_for: Callable[[str], str | None] | None = None

    # --- routing rules and block list (administrators) ------------------------------------

    def add_rule(
        self, kind: str, pattern: str, office_code: str, priority: int = 100, actor: str = "operator"
    ) -> RoutingRule:
        """Add an inbound routing rule; ValidationError for a bad pattern, ConflictError if it exists."""
        pattern = check_pattern(kind, pattern, RULE_KINDS)
        office = self._directory.office(office_code)
        now = self._clock.now()
        with self._db.begin() as conn:
            exists = conn.execute(select(fax_routing_rules.c.id).where(
                fax_routing_rules.c.kind == kind, fax_routing_rules.c.pattern == pattern)).scalar()
            if exists is not None:
                raise ConflictError(
                    "a {kind} rule for {pattern!r} exists already (rule {exists})",
                    kind=kind, pattern=pattern, exists=exists)
            rule_id = _pk(conn.execute(insert(fax_routing_rules).values(
                kind=kind, pattern=pattern, office_id=office.id, priority=priority, created_by=actor, created_at=now,
            )))
            self._audit.record(conn, AuditEvent(
                actor=actor, action="fax.route_added", object_type="fax_rule", object_id=str(rule_id),
                details={"kind": kind, "pattern": pattern, "office": office.code, "priority": priority}), at=now)
        return RoutingRule(int(rule_id), kind, pattern, office.code, priority)

    def remove_rule(self, rule_id: int, actor: str = "operator") -> None:
        """Delete a routing rule; NotFoundError if there is none with this id."""
        now = self._clock.now()
        with self._db.begin() as conn:
            if not conn.execute(delete(fax_routing_rules).where(fax_routing_rules.c.id == rule_id)).rowcount:
                raise NotFoundError("no routing rule {rule_id}", rule_id=rule_id)
            self._audit.record(conn, AuditEvent(actor=actor, action="fax.route_removed", object_type="fax_rule",
                                                object_id=str(rule_id)), at=now)

    def rules(self, conn: Connection | None = None) -> list[RoutingRule]:
        """Every routing rule, in the order they are tried."""
        query = (select(fax_routing_rules, t.offices.c.code)
                 .join(t.offices, t.offices.c.id == fax_routing_rules.c.office_id)
                 .order_by(fax_routing_rules.c.priority, fax_routing_rules.c.id))
        if conn is None:
            with self._db.read() as own:
                rows = own.execute(query).all()
        else:
            rows = conn.execute(query).all()
        return [RoutingRule(r.id, r.kind, r.pattern, r.code, r.priority) for r in rows]

    def add_block(self, kind: str, pattern: str, reason: str | None = None, actor: str = "operator") -> BlockEntry:
        """Block calls by calling number (cid) or station id (tsi)."""
        pattern = check_pattern(kind, pattern, BLOCK_KINDS)
        reason = check_text(reason or "", "reason").strip()[:MAX_TEXT] or None
        now = self._clock.now()
        with self._db.begin() as conn:
            exists = conn.execute(select(fax_block_list.c.id).where(
                fax_block_list.c.kind == kind, fax_block_list.c.pattern == pattern)).scalar()
            if exists is not None:
                raise ConflictError(
                    "{kind} {pattern!r} is blocked already (entry {exists})",
                    kind=kind, pattern=pattern, exists=exists)
            entry_id = _pk(conn.execute(insert(fax_block_list).values(
                kind=kind, pattern=pattern, reason=reason, created_by=actor, created_at=now,
            )))
            self._audit.record(conn, AuditEvent(
                actor=actor, action="fax.block_added", object_type="fax_block", object_id=str(entry_id),
                details={"kind": kind, "pattern": pattern}), at=now)
        return BlockEntry(int(entry_id), kind, pattern, reason)

    def remove_block(self, entry_id: int, actor: str = "operator") -> None:
        """Unblock; NotFoundError if there is no such entry."""
        now = self._clock.now()
        with self._db.begin() as conn:
            if not conn.execute(delete(fax_block_list).where(fax_block_list.c.id == entry_id)).rowcount:
                raise NotFoundError("no block-list entry {entry_id}", entry_id=entry_id)
            self._audit.record(conn, AuditEvent(actor=actor, action="fax.block_removed", object_type="fax_block",
                                                object_id=str(entry_id)), at=now)

    def blocks(self, conn: Connection | None = None) -> list[BlockEntry]:
        """The block list, oldest entry first."""
        query = select(fax_block_list).order_by(fax_block_list.c.id)
        if conn is None:
            with self._db.read() as own:
                rows = own.execute(query).all()
        else:
            rows = conn.execute(query).all()
        return [BlockEntry(r.id, r.kind, r.pattern, r.reason) for r in rows]

    # --- per-office settings ---------------------------------------------------------------

    def office_settings(self, office_code: str) -> OfficeFaxSettings:
        """An office's fax settings (defaults when never set)."""
        office = self._directory.office(office_code)
        with self._db.read() as conn:
            row = conn.execute(select(fax_settings).where(fax_settings.c.office_id == office.id)).first()
        if row is None:
            return OfficeFaxSettings(office.code)
        return OfficeFaxSettings(office.code, row.fallback_enabled, row.cover_page_default)

    def set_office_settings(
        self, office_code: str, *, fallback_enabled: bool | None = None, cover_page_default: bool | None = None,
        actor: str = "operator",
    ) -> OfficeFaxSettings:
        """Change an office's fax settings; audited."""
        current = self.office_settings(office_code)
        office = self._directory.office(office_code)
        new = OfficeFaxSettings(
            office.code,
            current.fallback_enabled if fallback_enabled is None else fallback_enabled,
            current.cover_page_default if cover_page_default is None else cover_page_default,
        )
        now = self._clock.now()
        values = {"fallback_enabled": new.fallback_enabled, "cover_page_default": new.cover_page_default,
                  "updated_by": actor, "updated_at": now}
        with self._db.begin() as conn:
            changed = conn.execute(
                update(fax_settings).where(fax_settings.c.office_id == office.id).values(**values)).rowcount
            if not changed:
                conn.execute(insert(fax_settings).values(office_id=office.id, **values))
            self._audit.record(conn, AuditEvent(
                actor=actor, action="fax.settings_changed", object_type="office", object_id=office.code,
                details={"fallback_enabled": new.fallback_enabled, "cover_page_default": new.cover_page_default}),
                at=now)
        return new

    # --- inbound ---------------------------------------------------------------------------

    def handler(self, line_name: str) -> fax_line.IncomingCallHandler:
        """The IncomingCallHandler to give to a line: every finished call goes to :meth:`receive`."""

        def handle(result: CallResult) -> None:
            try:
                self.receive(result, line_name)
            except Exception:  # a line thread must survive; the TIFF is in the blob store if we got that far
                log.exception("could not process an inbound fax on line %s", line_name)

        return handle

    def receive(self, result: CallResult, line_name: str) -> ReceivedFax:
        """Log an inbound call, apply the block list and routing, and deliver the fax to an inbox."""
        tiff = result.received_tiff if result.received_tiff and result.pages_transferred > 0 else None
        # Junk is dropped before anything of it is stored.
        block = blocked_by(self.blocks(), result.calling_number, result.remote_ident)
        # Then the image: whatever happens next, the pages are on disk (content-addressed, idempotent).
        tiff_blob = self._blobs.put(tiff) if tiff is not None and block is None else None
        now = self._clock.now()
        with self._db.begin() as conn:
            decision = None
            if block is not None:
                status = "blocked"
            elif result.voice and tiff_blob is None:
                status = "voice"  # a person called the fax number: logged, not an error
            elif tiff_blob is None:
                status = "failed"
            else:
                listed = conn.execute(select(t.offices.c.code, t.offices.c.fax_number))
                offices = [(r.code, r.fax_number) for r in listed]
                decision = route(offices, self.rules(conn), called_number=result.called_number,
                                 sub_address=result.sub_address, remote_ident=result.remote_ident,
                                 calling_number=result.calling_number)
                status = "routed" if decision.routed else "unroutable"
            procedure = None
            if block is None:
                rule = classify.match_call(classify.rules(conn), called_number=result.called_number,
                                           remote_ident=result.remote_ident, calling_number=result.calling_number)
                procedure = rule.procedure_code if rule else None
            office_id = None
            if decision is not None and decision.office_code is not None:
                office_id = self._directory.office(decision.office_code, conn).id
            call_id = _pk(conn.execute(insert(fax_calls).values(
                **_call_values(result, "RECV", line_name), status=status, office_id=office_id,
                tiff_blob=tiff_blob if block is None else None,
                routed_by=decision.routed_by if decision else None, procedure_code=procedure,
            )))
            rollup.add(conn, rollup.fax_call("RECV", result.started_at, decision.office_code if decision else None,
                                             procedure, result.pages_transferred, result.success, status))
            details: dict[str, Any] = {
                "line": line_name, "cid": result.calling_number, "tsi": (result.remote_ident or "").strip(),
                "did": result.called_number, "pages": result.pages_transferred, "t30_code": result.t30_code,
            }
            action = {"blocked": "fax.blocked", "failed": "fax.receive_failed", "routed": "fax.received",
                      "unroutable": "fax.unroutable", "voice": "fax.voice_call"}[status]
            if result.call_id:
                details.update(media=result.media, call_id=result.call_id)
            if block is not None:
                details["block_entry"] = block.id
            if decision is not None and decision.office_code:
                details["office"] = decision.office_code
                details["routed_by"] = decision.routed_by
            self._audit.record(conn, AuditEvent(
                actor="system", action=action, object_type="fax_call", object_id=str(call_id),
                digests={"tiff": tiff_blob} if tiff_blob and block is None else {}, details=details), at=now)
        if status != "routed":
            return ReceivedFax(int(call_id), status, None, None)
        return self.deliver_call(int(call_id))

    def deliver_call(self, call_id: int, actor: str = "system") -> ReceivedFax:
        """Turn a routed call's TIFF into a searchable PDF and deposit it in its office's inbox."""
        with self._db.begin() as conn:
            row = conn.execute(select(fax_calls, t.offices.c.code).outerjoin(
                t.offices, t.offices.c.id == fax_calls.c.office_id).where(fax_calls.c.id == call_id)).first()
        if row is None or row.direction != "RECV":
            raise NotFoundError("no received fax {call_id}", call_id=call_id)
        if row.status != "routed" or row.code is None or row.tiff_blob is None:
            return ReceivedFax(call_id, row.status, row.code, row.message_id)
        delivery = self._delivery()
        if delivery is None or not hasattr(delivery, "deposit_external"):
            log.warning("fax %s waits: this node has no delivery service to deposit it", call_id)
            return ReceivedFax(call_id, "routed", row.code, None)
        # Claim the call: the line thread and a worker finishing interrupted calls never deposit it twice.
        now = self._clock.now()
        with self._db.begin() as conn:
            claimed = conn.execute(update(fax_calls).where(
                fax_calls.c.id == call_id, fax_calls.c.status == "routed",
                or_(fax_calls.c.claimed_until.is_(None), fax_calls.c.claimed_until < now),
            ).values(claimed_until=now + timedelta(seconds=DELIVERY_CLAIM_SECONDS))).rowcount
        if not claimed:
            return ReceivedFax(call_id, "routed", row.code, None)
        try:
            pdf = row.pdf_blob and self._blobs.get(row.pdf_blob)
            if not pdf:
                pdf, _searchable = self._ocr(self._to_pdf(self._blobs.get(row.tiff_blob)))
        except InklessError as exc:
            return self._fail_call(call_id, f"the received image could not be converted: {exc}")
        pdf_blob = self._blobs.put(pdf)
        if row.procedure_code is None:
            self._classify_by_text(call_id, row.code, pdf)
        facts = _facts(row)
        subject = _inbound_subject(row)
        when = f"{timefmt.to_local(row.started_at, self._tz):%Y%m%d-%H%M%S}"
        message_id = delivery.deposit_external(
            row.code, [(f"fax-{when}.pdf", pdf, "application/pdf")], "fax", facts, subject,
            classification=INBOUND_CLASSIFICATION,
        )
        now = self._clock.now()
        with self._db.begin() as conn:
            conn.execute(update(fax_calls).where(fax_calls.c.id == call_id).values(
                status="delivered", pdf_blob=pdf_blob, message_id=message_id, claimed_until=None))
            self._audit.record(conn, AuditEvent(
                actor=actor, action="fax.delivered", object_type="fax_call", object_id=str(call_id),
                digests={"pdf": pdf_blob}, details={"office": row.code, "message_id": message_id}), at=now)
        return ReceivedFax(call_id, "delivered", row.code, message_id)

    def _classify_by_text(self, call_id: int, office_code: str, pdf: bytes) -> None:
        """Count a fax against the procedure whose keyword rule matches the OCR text of page 1."""
        with self._db.read() as conn:
            keyword_rules = [r for r in classify.rules(conn) if r.kind == "keyword"]
        if not keyword_rules:
            return
        rule = classify.match_text(keyword_rules, classify.page_one_text(pdf))
        if rule is None:
            return
        with self._db.begin() as conn:
            row = conn.execute(select(fax_calls).where(fax_calls.c.id == call_id)).first()
            if row is None or row.procedure_code is not None:
                return
            conn.execute(update(fax_calls).where(fax_calls.c.id == call_id).values(procedure_code=rule.procedure_code))
            rollup.move(conn, call_counts(row, office_code), call_counts(row, office_code, rule.procedure_code))
            self._audit.record(conn, AuditEvent(
                actor="system", action="fax.classified", object_type="fax_call", object_id=str(call_id),
                details={"procedure": rule.procedure_code, "rule": rule.id}), at=self._clock.now())

    def _fail_call(self, call_id: int, reason: str) -> ReceivedFax:
        now = self._clock.now()
        with self._db.begin() as conn:
            conn.execute(update(fax_calls).where(fax_calls.c.id == call_id).values(
                status="failed", t30_text=reason[:MAX_TEXT], claimed_until=None))
            self._audit.record(conn, AuditEvent(
                actor="system", action="fax.receive_failed", object_type="fax_call", object_id=str(call_id),
                details={"reason": reason[:MAX_TEXT]}), at=now)
        return ReceivedFax(call_id, "failed", None, None)

    def deliver_pending(self, older_than_s: float = 60.0) -> int:
        """Finish calls left ``routed`` (a crash between logging and depositing); returns how many."""
        now = self._clock.now()
        with self._db.begin() as conn:
            ids = conn.execute(select(fax_calls.c.id).where(
                fax_calls.c.direction == "RECV", fax_calls.c.status == "routed",
                fax_calls.c.started_at <= now - timedelta(seconds=older_than_s),
                or_(fax_calls.c.claimed_until.is_(None), fax_calls.c.claimed_until < now),
            ).order_by(fax_calls.c.id).limit(20)).scalars().all()
        done = 0
        for call_id in ids:
            if self.deliver_call(call_id).status == "delivered":
                done += 1
        return done

    def unroutable(self) -> list[FaxCallEntry]:
        """The administrators' queue: received faxes that no rule or office number matched."""
        return self.calls(status="unroutable")

    def assign(self, call_id: int, office_code: str, actor: str) -> ReceivedFax:
        """Route an unroutable fax to an office by hand, then deliver it."""
        office = self._directory.office(office_code)
        now = self._clock.now()
        with self._db.begin() as conn:
            before = conn.execute(select(fax_calls).where(fax_calls.c.id == call_id)).first()
            changed = conn.execute(update(fax_calls).where(
                fax_calls.c.id == call_id, fax_calls.c.direction == "RECV", fax_calls.c.status == "unroutable",
            ).values(status="routed", office_id=office.id, routed_by=f"admin:{actor}"[:80], resolved_at=now,
                     resolved_by=actor)).rowcount
            if not changed or before is None:
                raise NotFoundError("no unroutable fax {call_id}", call_id=call_id)
            rollup.move(conn, call_counts(before, None), call_counts(before, office.code))
            self._audit.record(conn, AuditEvent(
                actor=actor, action="fax.assigned", object_type="fax_call", object_id=str(call_id),
                details={"office": office.code}), at=now)
        return self.deliver_call(call_id, actor)

    def received_image(self, call_id: int) -> bytes:
        """The page images of any received fax as a PDF (the node operator's view, from the CLI)."""
        return self._received_image(call_id, unroutable_only=False)

    def unroutable_image(self, call_id: int) -> bytes:
        """The page images of a fax waiting in the unroutable queue (administrators' view).

        An administrator must see an unroutable fax to decide where it belongs, but a fax that
        reached an office is that office's mail: NotFoundError, as if it did not exist.
        """
        return self._received_image(call_id, unroutable_only=True)

    def _received_image(self, call_id: int, *, unroutable_only: bool) -> bytes:
        query = select(fax_calls.c.tiff_blob, fax_calls.c.pdf_blob).where(
            fax_calls.c.id == call_id, fax_calls.c.direction == "RECV")
        if unroutable_only:
            query = query.where(fax_calls.c.status == "unroutable")
        with self._db.read() as conn:
            row = conn.execute(query).first()
        if row is None or row.tiff_blob is None:
            raise NotFoundError("no received fax image {call_id}", call_id=call_id)
        if row.pdf_blob:
            return self._blobs.get(row.pdf_blob)
        return self._to_pdf(self._blobs.get(row.tiff_blob))

    # --- the call log ----------------------------------------------------------------------

    def calls(self, *, status: str | None = None, direction: str | None = None, office_code: str | None = None,
              limit: int = 1000) -> list[FaxCallEntry]:
        """The call log, oldest first (the last ``limit`` calls)."""
        query = select(fax_calls, t.offices.c.code).outerjoin(t.offices, t.offices.c.id == fax_calls.c.office_id)
        if status is not None:
            query = query.where(fax_calls.c.status == status)
        if direction is not None:
            query = query.where(fax_calls.c.direction == direction)
        if office_code is not None:
            query = query.where(t.offices.c.code == office_code)
        query = query.order_by(fax_calls.c.id.desc()).limit(limit)
        with self._db.read() as conn:
            rows = conn.execute(query).all()
        return [_entry(r) for r in reversed(rows)]

    def call(self, call_id: int) -> FaxCallEntry:
        """One call of the log."""
        with self._db.read() as conn:
            row = conn.execute(select(fax_calls, t.offices.c.code).outerjoin(
                t.offices, t.offices.c.id == fax_calls.c.office_id).where(fax_calls.c.id == call_id)).first()
        if row is None:
            raise NotFoundError("no fax call {call_id}", call_id=call_id)
        return _entry(row)

    def call_report(self, call_id: int) -> bytes:
        """The transmission report PDF of one outbound attempt."""
        with self._db.read() as conn:
            digest = conn.execute(select(fax_calls.c.report_blob).where(fax_calls.c.id == call_id)).scalar()
        if not digest:
            raise NotFoundError("no transmission report for call {call_id}", call_id=call_id)
        return self._blobs.get(digest)

    # --- outbound --------------------------------------------------------------------------

    def send(
        self,
        sender_login: str,
        from_office: str,
        number: str,
        documents: Sequence[bytes],
        *,
        cover_page: bool | None = None,
        classification: int = 0,
        confirm_internal: bool = False,
        subject: str | None = None,
        schedule: JobSchedule | None = None,
        origin: str = "clerk",
        outbox_ref: str | None = None,
        reference: str | None = None,
        procedure_code: str | None = None,
    ) -> int:
        """Queue documents (PDF) to be faxed to ``number``; returns the job id.

        Classification ≥ 2 is refused (PolicyError, audited as ``fax.refused``); classification 1
        needs ``confirm_internal``. Nothing is queued unless every check passes and the document
        renders. ``reference`` is printed on the cover page (the fallback prints the message id).

        A clerk's fax is checked against the clerk (active, member of the office, cleared). A
        fallback fax (``origin="fallback"``) is the office's: its message was checked against its
        sender when it was sent, and that sender may be the node operator, who has no user account.
        """
        office = self._directory.office(from_office)
        procedure_code = check_procedure_code(procedure_code) if procedure_code else None
        if origin == "fallback":
            return self._queue_fallback(sender_login, office, number, documents, classification, subject,
                                        schedule, outbox_ref, reference, procedure_code)
        user = self._directory.user(sender_login)
        try:
            check_fax_allowed(classification, confirm_internal)
            if not user.active:
                raise PolicyError("user {sender_login} is deactivated", sender_login=sender_login)
            if user.office_code != office.code and origin == "clerk":
                raise PolicyError(
                    "{sender_login} does not belong to office {office_code}",
                    sender_login=sender_login, office_code=office.code)
            if classification > user.clearance:
                raise PolicyError(
                    f"{sender_login} has clearance {user.clearance}; the document is classified {classification}")
        except PolicyError as exc:
            with self._db.begin() as conn:
                self._audit.record(conn, AuditEvent(
                    actor=sender_login, action="fax.refused", object_type="office", object_id=office.code,
                    details={"classification": classification, "reason": exc.message[:MAX_TEXT]}))
            raise
        return self._queue(sender_login, user.display_name, office, number, documents, cover_page=cover_page,
                           classification=classification, subject=subject, schedule=schedule, origin=origin,
                           outbox_ref=outbox_ref, reference=reference, procedure_code=procedure_code)

    def _queue_fallback(self, sender_login: str, office: Office, number: str, documents: Sequence[bytes],
                        classification: int, subject: str | None, schedule: JobSchedule | None,
                        outbox_ref: str | None, reference: str | None, procedure_code: str | None) -> int:
        try:
            check_fax_allowed(classification, True)  # still never above 内部, whoever asks
        except PolicyError as exc:
            with self._db.begin() as conn:
                self._audit.record(conn, AuditEvent(
                    actor=sender_login, action="fax.refused", object_type="office", object_id=office.code,
                    details={"classification": classification, "reason": exc.message[:MAX_TEXT]}))
            raise
        try:
            sender_name = self._directory.user(sender_login).display_name
        except NotFoundError:
            sender_name = office.name  # the operator (or a since deleted user): the office sends it
        return self._queue(sender_login, sender_name, office, number, documents, cover_page=True,
                           classification=classification, subject=subject, schedule=schedule, origin="fallback",
                           outbox_ref=outbox_ref, reference=reference, procedure_code=procedure_code)

    def _queue(self, sender_login: str, sender_name: str, office: Office, number: str, documents: Sequence[bytes], *,
               cover_page: bool | None, classification: int, subject: str | None, schedule: JobSchedule | None,
               origin: str, outbox_ref: str | None, reference: str | None,
               procedure_code: str | None = None) -> int:
        """Render and queue a checked fax."""
        checked_number = check_fax_number(number.strip())
        if checked_number is None:
            raise ValidationError("a fax number is required")
        if not documents:
            raise ValidationError("nothing to send: give at least one PDF")
        for doc in documents:
            if not doc.startswith(b"%PDF-"):
                raise ValidationError("only PDF documents can be faxed")
        schedule = (schedule or self.default_schedule).checked()
        if cover_page is None:
            cover_page = self.office_settings(office.code).cover_page_default
        subject = check_text(subject or "", "subject").strip()[:200] or None
        now = self._clock.now()
        invitation = self.invitation_for(office.code) if self.invitation_for is not None and cover_page else None
        cover = CoverPage(office.name, office.fax_number, sender_name, checked_number, 0, subject, now,
                          reference, self._tz, invitation) \
            if cover_page else None
        rendered = self._render(list(documents), cover)
        document_blob = self._blobs.put(documents[0] if len(documents) == 1 else _join_pdfs(documents))
        tiff_blob = self._blobs.put(rendered.tiff)
        with self._db.begin() as conn:
            job_id = _pk(conn.execute(insert(fax_jobs).values(
                office_id=office.id, created_by=sender_login, number=checked_number, document_blob=document_blob,
                tiff_blob=tiff_blob, pages=rendered.pages, cover_page=bool(cover_page), classification=classification,
                state=JobState.QUEUED.value, tries=0, max_tries=schedule.max_tries, interval_s=schedule.interval_s,
                kill_at=now + timedelta(seconds=schedule.kill_after_s), next_attempt_at=now, claimed_until=None,
                origin=origin, outbox_ref=outbox_ref, procedure_code=procedure_code, created_at=now, updated_at=now,
            )))
            if procedure_code and origin == "clerk":
                # The next fax of the office to this number starts with the same procedure chosen.
                memory.remember(conn, office.id, [memory.fax_counterpart(checked_number)], procedure_code,
                                sender_login, now)
            # No subject in the audit log: only who, to which number, how many pages, and the digests.
            self._audit.record(conn, AuditEvent(
                actor=sender_login, action="fax.queued", object_type="fax_job", object_id=str(job_id),
                digests={"document": document_blob, "tiff": tiff_blob},
                details={"office": office.code, "number": checked_number, "pages": rendered.pages,
                         "classification": classification, "origin": origin, "max_tries": schedule.max_tries}),
                at=now)
        return int(job_id)

    def job(self, job_id: int) -> FaxJob:
        """One outbound job."""
        with self._db.read() as conn:
            row = conn.execute(select(fax_jobs, t.offices.c.code).join(
                t.offices, t.offices.c.id == fax_jobs.c.office_id).where(fax_jobs.c.id == job_id)).first()
        if row is None:
            raise NotFoundError("no fax job {job_id}", job_id=job_id)
        return _job(row)

    def jobs(self, office_code: str | None = None, limit: int = 200) -> list[FaxJob]:
        """Outbound jobs, newest first."""
        query = select(fax_jobs, t.offices.c.code).join(t.offices, t.offices.c.id == fax_jobs.c.office_id)
        if office_code is not None:
            query = query.where(t.offices.c.code == office_code)
        with self._db.read() as conn:
            rows = conn.execute(query.order_by(fax_jobs.c.id.desc()).limit(limit)).all()
        return [_job(r) for r in rows]

    def job_report(self, job_id: int) -> bytes:
        """The transmission report of a job's last attempt."""
        job = self.job(job_id)
        if not job.has_report:
            raise NotFoundError("fax job {job_id} has no transmission report yet", job_id=job_id)
        with self._db.read() as conn:
            digest = conn.execute(select(fax_jobs.c.report_blob).where(fax_jobs.c.id == job_id)).scalar_one()
        return self._blobs.get(digest)

    def attempts(self, job_id: int) -> list[FaxCallEntry]:
        """Every call made for a job, first attempt first."""
        with self._db.read() as conn:
            rows = conn.execute(select(fax_calls, t.offices.c.code).outerjoin(
                t.offices, t.offices.c.id == fax_calls.c.office_id).where(
                fax_calls.c.job_id == job_id).order_by(fax_calls.c.id)).all()
        return [_entry(r) for r in rows]

    def expire_jobs(self) -> list[int]:
        """Fail waiting jobs whose kill time has passed (e.g. no line was available); returns their ids."""
        now = self._clock.now()
        query = select(fax_jobs.c.id, fax_jobs.c.tries).where(
            fax_jobs.c.state.in_((JobState.QUEUED.value, JobState.RETRYING.value)), fax_jobs.c.kill_at <= now)
        reason = "kill time reached before the fax could be sent"
        with self._db.begin() as conn:
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = conn.execute(query).all()
            for row in rows:
                conn.execute(update(fax_jobs).where(fax_jobs.c.id == row.id).values(
                    state=JobState.FAILED.value, last_text=reason, updated_at=now))
                self._audit.record(conn, AuditEvent(
                    actor="system", action="fax.failed", object_type="fax_job", object_id=str(row.id),
                    details={"reason": reason, "tries": row.tries}), at=now)
        return [r.id for r in rows]

    def claim_due_jobs(self, limit: int = 4, max_calls: int | None = None) -> list[int]:
        """Claim due jobs (queued/retrying whose time has come, or abandoned by a dead worker).

        ``max_calls``: the line's simultaneous calls for the whole node. The jobs being dialled by any
        process (claimed, claim not run out) take their slots, so several worker processes together never
        dial more calls than the line carries.
        """
        now = self._clock.now()
        with self._db.begin() as conn:
            if max_calls is not None:
                if conn.dialect.name == "postgresql":
                    # Claimers of the line take turns (SQLite's BEGIN IMMEDIATE already serialises them).
                    conn.execute(sql("SELECT pg_advisory_xact_lock(:key)"), {"key": LINE_CLAIM_LOCK})
                busy = conn.execute(select(func.count()).select_from(fax_jobs).where(
                    fax_jobs.c.state == JobState.SENDING.value, fax_jobs.c.claimed_until >= now)).scalar_one()
                limit = min(limit, max_calls - int(busy))
                if limit <= 0:
                    return []
            query = (select(fax_jobs.c.id).where(
                or_(
                    fax_jobs.c.state.in_((JobState.QUEUED.value, JobState.RETRYING.value))
                    & (fax_jobs.c.next_attempt_at <= now),
                    (fax_jobs.c.state == JobState.SENDING.value) & (fax_jobs.c.claimed_until < now),
                )).order_by(fax_jobs.c.next_attempt_at, fax_jobs.c.id).limit(limit))
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = list(conn.execute(query).scalars().all())
            if ids:
                conn.execute(update(fax_jobs).where(fax_jobs.c.id.in_(ids)).values(
                    state=JobState.SENDING.value, claimed_until=now + timedelta(seconds=CLAIM_SECONDS),
                    tries=fax_jobs.c.tries + 1, updated_at=now))
        return ids

    def run_due_jobs(self, line: fax_line.FaxLine, limit: int = 4) -> int:
        """Dial every due job once on ``line``; returns how many attempts were made."""
        ids = self.claim_due_jobs(limit)
        for job_id in ids:
            try:
                self.attempt(job_id, line)
            except Exception:  # one job must not stop the others; its claim runs out and it is retried
                log.exception("fax job %s: attempt failed unexpectedly", job_id)
        return len(ids)

    def hang_up(self, line: fax_line.FaxLine) -> None:
        """The process is stopping: drop the calls in progress on ``line``; their jobs go back to the queue."""
        self._stopping.set()
        line.hang_up()

    def _hand_back(self, job_id: int, attempt: int, reason: str) -> FaxJob:
        """Put a job whose call we dropped back in the queue, due at once (another worker may take it)."""
        now = self._clock.now()
        text = f"call interrupted: this worker stopped during attempt {attempt}; back in the queue"
        with self._db.begin() as conn:
            conn.execute(update(fax_jobs).where(fax_jobs.c.id == job_id, fax_jobs.c.state == JobState.SENDING.value)
                         .values(state=JobState.RETRYING.value, claimed_until=None, next_attempt_at=now,
                                 last_text=text[:MAX_TEXT], updated_at=now))
            self._audit.record(conn, AuditEvent(
                actor="system", action="fax.attempt_interrupted", object_type="fax_job", object_id=str(job_id),
                details={"attempt": attempt, "reason": reason[:MAX_TEXT]}), at=now)
        log.info("fax job %s: %s", job_id, text)
        return self.job(job_id)

    def attempt(self, job_id: int, line: fax_line.FaxLine) -> FaxJob:
        """Make one call for a claimed job and record its outcome, report and next state."""
        with self._db.begin() as conn:
            row = conn.execute(select(fax_jobs, t.offices.c.code, t.offices.c.name.label("office_name"),
                                      t.offices.c.fax_number.label("office_number")).join(
                t.offices, t.offices.c.id == fax_jobs.c.office_id).where(fax_jobs.c.id == job_id)).one()
        tiff = self._blobs.get(row.tiff_blob)
        ident = (row.office_number or self.node_id)[:20]
        header = f"{row.office_name} {row.office_number or ''}".strip()
        started = self._clock.now()
        result: CallResult | None = None
        error_text: str | None = None
        error_code: int | None = None
        try:
            result = line.dial(row.number, tiff, ident=ident, header=header, ecm=True)
        except FaxError as exc:
            error_text, error_code = exc.message, exc.t30_code
        except Exception as exc:  # a line driver bug is a failed attempt, retried, never a lost job
            log.exception("fax line %s failed", line.name)
            error_text = f"line failure: {type(exc).__name__}: {exc}"
        if self._stopping.is_set() and not (result is not None and result.success):
            # We hung up, not the remote: the attempt says nothing about the number; try it again soon.
            return self._hand_back(job_id, row.tries, error_text or (result.t30_text if result else ""))
        now = self._clock.now()
        outcome = after_attempt(now=now, tries=row.tries, max_tries=row.max_tries, interval_s=row.interval_s,
                                kill_at=row.kill_at, pages=row.pages, result=result, error_text=error_text,
                                error_code=error_code)
        call_result = result or _no_session(started, ident, row.number, outcome.code, outcome.text)
        report = _report(row, call_result, outcome.call_status, outcome.text, tiff, now, self._tz)
        report_blob = self._blobs.put(report)
        with self._db.begin() as conn:
            values = _call_values(call_result, "SEND", line.name)
            values.update(remote_number=row.number, called_number=None, status=outcome.call_status,
                          office_id=row.office_id, job_id=job_id, attempt=row.tries, report_blob=report_blob,
                          t30_code=outcome.code, t30_text=outcome.text[:MAX_TEXT], procedure_code=row.procedure_code)
            call_id = _pk(conn.execute(insert(fax_calls).values(**values)))
            rollup.add(conn, rollup.fax_call("SEND", values["started_at"], row.code, row.procedure_code,
                                             values["pages"], bool(values["success"]), outcome.call_status))
            conn.execute(update(fax_jobs).where(fax_jobs.c.id == job_id).values(
                state=outcome.state.value, claimed_until=None, last_code=outcome.code,
                last_text=outcome.text[:MAX_TEXT], report_blob=report_blob, updated_at=now,
                next_attempt_at=outcome.next_attempt_at or row.next_attempt_at))
            action = {JobState.DONE: "fax.sent", JobState.RETRYING: "fax.attempt_failed",
                      JobState.FAILED: "fax.failed"}[outcome.state]
            self._audit.record(conn, AuditEvent(
                actor="system", action=action, object_type="fax_job", object_id=str(job_id),
                digests={"report": report_blob},
                details={"call": int(call_id), "attempt": row.tries, "number": row.number,
                         "pages": call_result.pages_transferred, "t30_code": outcome.code,
                         "reason": outcome.text[:MAX_TEXT]}), at=now)
        if row.outbox_ref and outcome.state in (JobState.DONE, JobState.FAILED):
            from inkless.fax.fallback import record_fax_outcome

            record_fax_outcome(self._db, self._audit, self._clock, row.outbox_ref, job_id,
                               outcome.state == JobState.DONE, outcome.text, number=row.number,
                               pages=row.pages, from_number=row.office_number, t30_code=outcome.code)
        return self.job(job_id)


# --- helpers -------------------------------------------------------------------------------


def _pk(result: Any) -> int:
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def call_counts(row: Row[Any], office_code: str | None, procedure_code: str | None = None) -> rollup.Counts:
    """What a logged call counts in the metrics, for the given office (and procedure, else its own)."""
    return rollup.fax_call(row.direction, row.started_at, office_code, procedure_code or row.procedure_code,
                           row.pages, bool(row.success), row.status)


def _call_values(result: CallResult, direction: str, line_name: str) -> dict[str, Any]:
    return {
        "direction": direction, "line": line_name[:64], "started_at": result.started_at,
        "duration_s": float(result.duration_s), "remote_number": (result.calling_number or None),
        "called_number": result.called_number, "sub_address": result.sub_address,
        "remote_ident": (result.remote_ident or "").strip()[:64] or None, "local_ident": result.local_ident[:64],
        "pages": result.pages_transferred, "pages_expected": result.pages_expected, "bit_rate": result.bit_rate,
        "ecm": result.ecm, "compression": result.compression[:16], "bad_rows": result.bad_rows,
        "t30_code": result.t30_code, "t30_text": result.t30_text[:MAX_TEXT], "success": result.success,
        "media": result.media, "call_id": (result.call_id or None) and result.call_id[:128],
        "gateway": (result.gateway or None) and result.gateway[:128],
    }


def _no_session(started: datetime, ident: str, number: str, code: int, text: str) -> CallResult:
    return CallResult(
        success=False, t30_code=code, t30_text=text, pages_transferred=0, pages_expected=None,
        remote_ident=None, local_ident=ident, calling_number=None, called_number=number, sub_address=None,
        bit_rate=0, ecm=False, compression="", bad_rows=0, duration_s=0.0, started_at=started,
    )


def _facts(row: Row[Any]) -> dict[str, Any]:
    """The fax facts that travel with the inbox copy (shown beside the document)."""
    return {
        "from": row.remote_number or (row.remote_ident or "").strip() or "unknown",
        "authenticated": False,
        "sender_status": UNAUTHENTICATED_LABEL,
        "cid": row.remote_number,
        "tsi": (row.remote_ident or "").strip() or None,
        "did": row.called_number,
        "sub_address": row.sub_address,
        "pages": row.pages,
        "received_at": row.started_at.isoformat(),
        "duration_s": round(row.duration_s, 1),
        "bad_rows": row.bad_rows,
        "bit_rate": row.bit_rate,
        "ecm": row.ecm,
        "compression": row.compression,
        "t30_code": row.t30_code,
        "t30_text": row.t30_text,
        "fax_call_id": row.id,
    }


def _inbound_subject(row: Row[Any]) -> str:
    who = row.remote_number or (row.remote_ident or "").strip() or "番号通知なし"
    return f"FAX受信 {who}（{row.pages}枚）"


def _entry(r: Row[Any]) -> FaxCallEntry:
    return FaxCallEntry(
        id=r.id, direction=r.direction, line=r.line, started_at=r.started_at, duration_s=r.duration_s,
        remote_number=r.remote_number, called_number=r.called_number, sub_address=r.sub_address,
        remote_ident=r.remote_ident, local_ident=r.local_ident, pages=r.pages, pages_expected=r.pages_expected,
        bit_rate=r.bit_rate, ecm=r.ecm, compression=r.compression, bad_rows=r.bad_rows, t30_code=r.t30_code,
        t30_text=r.t30_text, success=r.success, status=r.status, office_code=r.code, job_id=r.job_id,
        attempt=r.attempt, routed_by=r.routed_by, message_id=r.message_id, has_pdf=bool(r.pdf_blob or r.tiff_blob),
        has_report=bool(r.report_blob), resolved_by=r.resolved_by, media=r.media, call_id=r.call_id,
        gateway=r.gateway,
    )


def _job(r: Row[Any]) -> FaxJob:
    return FaxJob(
        id=r.id, office_code=r.code, created_by=r.created_by, number=r.number, pages=r.pages,
        cover_page=r.cover_page, classification=r.classification, state=r.state, tries=r.tries,
        max_tries=r.max_tries, interval_s=r.interval_s, kill_at=r.kill_at, next_attempt_at=r.next_attempt_at,
        last_code=r.last_code, last_text=r.last_text, origin=r.origin, outbox_ref=r.outbox_ref,
        created_at=r.created_at, updated_at=r.updated_at, has_report=bool(r.report_blob),
        procedure_code=r.procedure_code,
    )


def _report(row: Row[Any], result: CallResult, status: str, text: str, tiff: bytes, now: datetime,
            tz: tzinfo) -> bytes:
    from inkless.fax.report import TransmissionReport, render_report

    return render_report(TransmissionReport(
        job_id=row.id, attempt=row.tries, office_name=row.office_name, office_number=row.office_number,
        number=row.number, status=status, pages_sent=result.pages_transferred, pages_total=row.pages,
        duration_s=result.duration_s, bit_rate=result.bit_rate, ecm=result.ecm, compression=result.compression,
        remote_ident=(result.remote_ident or "").strip() or None, t30_code=result.t30_code, t30_text=text,
        started_at=result.started_at, finished_at=now,
    ), tiff, tz)


def _join_pdfs(documents: Sequence[bytes]) -> bytes:
    import pikepdf

    out = pikepdf.Pdf.new()
    for doc in documents:
        with pikepdf.open(io.BytesIO(doc)) as src:
            out.pages.extend(src.pages)
    buf = io.BytesIO()
    out.save(buf)
    return buf.getvalue()


def _engine_render(documents: Sequence[bytes], cover: CoverPage | None) -> RenderedFax:
    from inkless.fax.render import render_for_fax

    return render_for_fax(documents, cover)


def _engine_tiff_to_pdf(tiff: bytes) -> bytes:
    from inkless.fax.imaging import tiff_to_pdf

    return tiff_to_pdf(tiff)


def _default_ocr(pdf: bytes) -> tuple[bytes, bool]:
    from inkless.fax.ocr import searchable_pdf

    return searchable_pdf(pdf)


def build_fax(node: Any) -> FaxService:
    """The fax service of ``node`` (a :class:`inkless.app.Node`); delivery is read late, when a fax arrives."""
    from inkless.fax.ocr import searchable_pdf

    settings = node.settings
    languages = settings.fax_ocr_languages
    return FaxService(
        node.db, node.blobs, node.clock, node.audit, node.directory, settings.node_id,
        delivery=lambda: node.delivery,
        ocr=lambda pdf: searchable_pdf(pdf, languages),
        schedule=JobSchedule(settings.fax_tries, settings.fax_retry_interval_seconds,
                             settings.fax_kill_time_minutes * 60),
        timezone=settings.tz,
    )


def call_entry(row: Row[Any]) -> FaxCallEntry:
    """A ``fax_calls`` row (joined with its office code) as a log entry."""
    return _entry(row)
