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

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import func, insert, or_, select, update
from sqlalchemy import text as sql

from inkless.audit.model import AuditEvent
from inkless.db import tables as t
from inkless.db.tables_fax import fax_calls, fax_jobs
from inkless.directory.model import Office, check_fax_number
from inkless.errors import FaxError, NotFoundError, PolicyError, ValidationError
from inkless.fax import line as fax_line
from inkless.fax.base import (
    LINE_CLAIM_LOCK,
    MAX_TEXT,
    ReceivedFax,
    call_counts,
    call_entry,
    call_entry_of,
    call_values,
    job_of,
    join_pdfs,
    log,
    no_session,
    row_id,
    transmission_report,
)
from inkless.fax.inbound import FaxInbound
from inkless.fax.jobs import CLAIM_SECONDS, JobSchedule, JobState, after_attempt
from inkless.fax.log import FaxCallEntry, FaxJob
from inkless.fax.model import CallResult, CoverPage
from inkless.fax.policy import check_fax_allowed
from inkless.metrics import memory, rollup
from inkless.metrics.model import check_procedure_code
from inkless.text import check_text

__all__ = ["FaxService", "ReceivedFax", "build_fax", "call_counts", "call_entry"]


class FaxService(FaxInbound):
    """Receives faxes into office inboxes, sends documents as faxes, keeps the call log."""

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
        document_blob = self._blobs.put(documents[0] if len(documents) == 1 else join_pdfs(documents))
        tiff_blob = self._blobs.put(rendered.tiff)
        with self._db.begin() as conn:
            job_id = row_id(conn.execute(insert(fax_jobs).values(
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
        return job_of(row)

    def jobs(self, office_code: str | None = None, limit: int = 200) -> list[FaxJob]:
        """Outbound jobs, newest first."""
        query = select(fax_jobs, t.offices.c.code).join(t.offices, t.offices.c.id == fax_jobs.c.office_id)
        if office_code is not None:
            query = query.where(t.offices.c.code == office_code)
        with self._db.read() as conn:
            rows = conn.execute(query.order_by(fax_jobs.c.id.desc()).limit(limit)).all()
        return [job_of(r) for r in rows]

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
        return [call_entry_of(r) for r in rows]

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
        call_result = result or no_session(started, ident, row.number, outcome.code, outcome.text)
        report = transmission_report(row, call_result, outcome.call_status, outcome.text, tiff, now, self._tz)
        report_blob = self._blobs.put(report)
        with self._db.begin() as conn:
            values = call_values(call_result, "SEND", line.name)
            values.update(remote_number=row.number, called_number=None, status=outcome.call_status,
                          office_id=row.office_id, job_id=job_id, attempt=row.tries, report_blob=report_blob,
                          t30_code=outcome.code, t30_text=outcome.text[:MAX_TEXT], procedure_code=row.procedure_code)
            call_id = row_id(conn.execute(insert(fax_calls).values(**values)))
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
