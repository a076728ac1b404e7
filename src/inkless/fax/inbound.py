"""Inbound faxes: a call is logged with its facts and routing decision, then turned into a searchable PDF
and deposited in the office's inbox (see :mod:`inkless.fax.service`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import insert, or_, select, update

from inkless import timefmt
from inkless.audit.model import AuditEvent
from inkless.db import tables as t
from inkless.db.tables_fax import fax_calls
from inkless.errors import InklessError, NotFoundError
from inkless.fax import line as fax_line
from inkless.fax.base import (
    DELIVERY_CLAIM_SECONDS,
    INBOUND_CLASSIFICATION,
    MAX_TEXT,
    FaxBase,
    ReceivedFax,
    call_counts,
    call_facts,
    call_values,
    inbound_subject,
    log,
    row_id,
)
from inkless.fax.log import FaxCallEntry
from inkless.fax.model import CallResult
from inkless.fax.routing import (
    blocked_by,
    route,
)
from inkless.metrics import classify, rollup


class FaxInbound(FaxBase):
    """Received calls into office inboxes; the unroutable ones to the administrators."""

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
                decision = route(
                    offices,
                    self.rules(conn),
                    called_number=result.called_number,
                    sub_address=result.sub_address,
                    remote_ident=result.remote_ident,
                    calling_number=result.calling_number,
                )
                status = "routed" if decision.routed else "unroutable"
            procedure = None
            if block is None:
                rule = classify.match_call(
                    classify.rules(conn),
                    called_number=result.called_number,
                    remote_ident=result.remote_ident,
                    calling_number=result.calling_number,
                )
                procedure = rule.procedure_code if rule else None
            office_id = None
            if decision is not None and decision.office_code is not None:
                office_id = self._directory.office(decision.office_code, conn).id
            call_id = row_id(
                conn.execute(
                    insert(fax_calls).values(
                        **call_values(result, "RECV", line_name),
                        status=status,
                        office_id=office_id,
                        tiff_blob=tiff_blob if block is None else None,
                        routed_by=decision.routed_by if decision else None,
                        procedure_code=procedure,
                    )
                )
            )
            rollup.add(
                conn,
                rollup.fax_call(
                    "RECV",
                    result.started_at,
                    decision.office_code if decision else None,
                    procedure,
                    result.pages_transferred,
                    result.success,
                    status,
                ),
            )
            details: dict[str, Any] = {
                "line": line_name,
                "cid": result.calling_number,
                "tsi": (result.remote_ident or "").strip(),
                "did": result.called_number,
                "pages": result.pages_transferred,
                "t30_code": result.t30_code,
            }
            action = {
                "blocked": "fax.blocked",
                "failed": "fax.receive_failed",
                "routed": "fax.received",
                "unroutable": "fax.unroutable",
                "voice": "fax.voice_call",
            }[status]
            if result.call_id:
                details.update(media=result.media, call_id=result.call_id)
            if block is not None:
                details["block_entry"] = block.id
            if decision is not None and decision.office_code:
                details["office"] = decision.office_code
                details["routed_by"] = decision.routed_by
            self._audit.record(
                conn,
                AuditEvent(
                    actor="system",
                    action=action,
                    object_type="fax_call",
                    object_id=str(call_id),
                    digests={"tiff": tiff_blob} if tiff_blob and block is None else {},
                    details=details,
                ),
                at=now,
            )
        if status != "routed":
            return ReceivedFax(int(call_id), status, None, None)
        return self.deliver_call(int(call_id))

    def deliver_call(self, call_id: int, actor: str = "system") -> ReceivedFax:
        """Turn a routed call's TIFF into a searchable PDF and deposit it in its office's inbox."""
        with self._db.begin() as conn:
            row = conn.execute(
                select(fax_calls, t.offices.c.code)
                .outerjoin(t.offices, t.offices.c.id == fax_calls.c.office_id)
                .where(fax_calls.c.id == call_id)
            ).first()
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
            claimed = conn.execute(
                update(fax_calls)
                .where(
                    fax_calls.c.id == call_id,
                    fax_calls.c.status == "routed",
                    or_(fax_calls.c.claimed_until.is_(None), fax_calls.c.claimed_until < now),
                )
                .values(claimed_until=now + timedelta(seconds=DELIVERY_CLAIM_SECONDS))
            ).rowcount
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
        facts = call_facts(row)
        subject = inbound_subject(row)
        when = f"{timefmt.to_local(row.started_at, self._tz):%Y%m%d-%H%M%S}"
        message_id = delivery.deposit_external(
            row.code,
            [(f"fax-{when}.pdf", pdf, "application/pdf")],
            "fax",
            facts,
            subject,
            classification=INBOUND_CLASSIFICATION,
        )
        now = self._clock.now()
        with self._db.begin() as conn:
            conn.execute(
                update(fax_calls)
                .where(fax_calls.c.id == call_id)
                .values(status="delivered", pdf_blob=pdf_blob, message_id=message_id, claimed_until=None)
            )
            self._audit.record(
                conn,
                AuditEvent(
                    actor=actor,
                    action="fax.delivered",
                    object_type="fax_call",
                    object_id=str(call_id),
                    digests={"pdf": pdf_blob},
                    details={"office": row.code, "message_id": message_id},
                ),
                at=now,
            )
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
            self._audit.record(
                conn,
                AuditEvent(
                    actor="system",
                    action="fax.classified",
                    object_type="fax_call",
                    object_id=str(call_id),
                    details={"procedure": rule.procedure_code, "rule": rule.id},
                ),
                at=self._clock.now(),
            )

    def _fail_call(self, call_id: int, reason: str) -> ReceivedFax:
        now = self._clock.now()
        with self._db.begin() as conn:
            conn.execute(
                update(fax_calls)
                .where(fax_calls.c.id == call_id)
                .values(status="failed", t30_text=reason[:MAX_TEXT], claimed_until=None)
            )
            self._audit.record(
                conn,
                AuditEvent(
                    actor="system",
                    action="fax.receive_failed",
                    object_type="fax_call",
                    object_id=str(call_id),
                    details={"reason": reason[:MAX_TEXT]},
                ),
                at=now,
            )
        return ReceivedFax(call_id, "failed", None, None)

    def deliver_pending(self, older_than_s: float = 60.0) -> int:
        """Finish calls left ``routed`` (a crash between logging and depositing); returns how many."""
        now = self._clock.now()
        with self._db.begin() as conn:
            ids = (
                conn.execute(
                    select(fax_calls.c.id)
                    .where(
                        fax_calls.c.direction == "RECV",
                        fax_calls.c.status == "routed",
                        fax_calls.c.started_at <= now - timedelta(seconds=older_than_s),
                        or_(fax_calls.c.claimed_until.is_(None), fax_calls.c.claimed_until < now),
                    )
                    .order_by(fax_calls.c.id)
                    .limit(20)
                )
                .scalars()
                .all()
            )
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
            changed = conn.execute(
                update(fax_calls)
                .where(
                    fax_calls.c.id == call_id,
                    fax_calls.c.direction == "RECV",
                    fax_calls.c.status == "unroutable",
                )
                .values(
                    status="routed",
                    office_id=office.id,
                    routed_by=f"admin:{actor}"[:80],
                    resolved_at=now,
                    resolved_by=actor,
                )
            ).rowcount
            if not changed or before is None:
                raise NotFoundError("no unroutable fax {call_id}", call_id=call_id)
            rollup.move(conn, call_counts(before, None), call_counts(before, office.code))
            self._audit.record(
                conn,
                AuditEvent(
                    actor=actor,
                    action="fax.assigned",
                    object_type="fax_call",
                    object_id=str(call_id),
                    details={"office": office.code},
                ),
                at=now,
            )
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
            fax_calls.c.id == call_id, fax_calls.c.direction == "RECV"
        )
        if unroutable_only:
            query = query.where(fax_calls.c.status == "unroutable")
        with self._db.read() as conn:
            row = conn.execute(query).first()
        if row is None or row.tiff_blob is None:
            raise NotFoundError("no received fax image {call_id}", call_id=call_id)
        if row.pdf_blob:
            return self._blobs.get(row.pdf_blob)
        return self._to_pdf(self._blobs.get(row.tiff_blob))
