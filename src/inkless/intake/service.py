"""The intake window service: windows, submissions with e-mail codes, receipts, status checks, invitations.

Anonymous traffic is tallied, not logged one by one (:mod:`inkless.audit.traffic`): every code sent,
wrong code, refused file and rate-limited request is counted per endpoint, client and outcome and
becomes one audit entry per endpoint and tally period. An accepted submission, a locked code, a
status shown, a window opened or closed and an invitation are audit entries of their own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update

from inkless import timefmt
from inkless.audit.model import AuditEvent, AuditRecorder
from inkless.audit.traffic import AnonymousTraffic
from inkless.blobs import BlobStore
from inkless.clock import Clock
from inkless.db import tables as t
from inkless.db.engine import Database
from inkless.db.tables_delivery import inbox
from inkless.db.tables_intake import fax_invitations, intake_codes, intake_submissions, intake_windows
from inkless.directory.model import Office
from inkless.directory.service import DirectoryService
from inkless.errors import (
    InklessError,
    NotFoundError,
    PolicyError,
    UntrustedFileError,
    ValidationError,
)
from inkless.intake import codes
from inkless.intake.codes import CodeOutcome, CodeState
from inkless.intake.contacts import ContactDigests
from inkless.intake.documents import CertificateFacts, ListedFile, certificate_pdf, invitation_pdf, seal_placement
from inkless.intake.mailer import Mailer, OutgoingMail
from inkless.intake.model import (
    NEED_FILES,
    TOO_MANY_FILES,
    AcceptedSubmission,
    IntakeForm,
    IntakeWindow,
    Invitation,
    PendingCode,
    SubmissionStatus,
    checked_via,
    email_context,
    mask_email,
    normalise_email,
)
from inkless.pki.keystore import SecretBox
from inkless.untrusted.clamd import VirusScanner
from inkless.untrusted.files import CheckedFile, FileLimits, check_file

if TYPE_CHECKING:
    from inkless.delivery.service import DeliveryService
    from inkless.fax.service import FaxService
    from inkless.seals.sealing import SealingService

log = logging.getLogger(__name__)

# Messages people see (translated by the web UI).
WRONG_CODE = "The code is not right. Check the latest mail and try again."
CODE_LOCKED = "The code was entered wrongly too many times and no longer works. Please start again."
CODE_EXPIRED = "The code has expired or was already used. Please start again."
WINDOW_CLOSED = "This intake window is closed."
# How long after the code the 受付証明 can still be downloaded from the receipt page.
CERTIFICATE_HOURS = 1
INBOUND_CLASSIFICATION = 1  # 内部, as for received faxes: personal data of the public
CLASSIFICATION_OF_INVITATION = 0
# Tally endpoints of the outcomes (the web layer counts the requests themselves under intake.form & co).
EP_SUBMIT, EP_CODE, EP_STATUS, EP_STATUS_CODE, EP_ADDRESS = (
    "intake.submissions", "intake.codes", "intake.status_requests", "intake.status_codes", "intake.address")


def _address_key(email: str) -> str:
    # The tally keeps no address: a hash that is stable per address counts it.
    return "mail:" + hashlib.sha256(normalise_email(email).lower().encode()).hexdigest()[:40]


class IntakeService:
    """See the module docstring."""

    def __init__(
        self, db: Database, blobs: BlobStore, box: SecretBox, clock: Clock, audit: AuditRecorder,
        directory: DirectoryService, traffic: AnonymousTraffic, address_traffic: AnonymousTraffic,
        *, base_url: str, organisation: str, timezone: tzinfo,
        delivery: Callable[[], DeliveryService | None], sealing: Callable[[], SealingService | None],
        fax: Callable[[], FaxService | None], mailer: Mailer, scanner: VirusScanner | None = None,
        procedures: Callable[[str], Sequence[tuple[str, str]]] | None = None,
    ) -> None:
        self._db = db
        self._blobs = blobs
        self._box = box
        self._clock = clock
        self._audit = audit
        self._directory = directory
        self.traffic = traffic
        self.address_traffic = address_traffic
        self.base_url = base_url.rstrip("/")
        self.organisation = organisation
        self._tz = timezone
        self._delivery = delivery
        self._sealing = sealing
        self._fax = fax
        self.mailer = mailer
        self.scanner = scanner
        self._procedures = procedures
        self.contacts = ContactDigests(box)

    # --- windows -------------------------------------------------------------------------

    def intake_url(self, office_code: str) -> str:
        """The window's short URL, printed on faxes and in QR codes."""
        return f"{self.base_url}/i/{office_code}"

    def window(self, office_code: str) -> IntakeWindow:
        """An office's window (closed, with default limits, if it was never opened); NotFoundError for no office."""
        office = self._directory.office(office_code)
        with self._db.read() as conn:
            row = conn.execute(select(intake_windows).where(intake_windows.c.office_id == office.id)).first()
        # The node's procedure catalogue first (the office's own and the node-wide procedures), by name.
        listed = tuple(name for _code, name in self._procedures(office.code)) if self._procedures is not None else ()
        if row is None:
            return IntakeWindow(office.code, office.name, False, procedures=listed)
        own = tuple(p for p in row.procedures.splitlines() if p.strip())
        return IntakeWindow(office.code, office.name, bool(row.is_open), row.max_files, row.max_file_bytes,
                            row.max_pages, row.max_pixels, listed or own)

    def invitation_for(self, office_code: str) -> str | None:
        """The URL a fax of ``office_code`` invites its reader to, or None while the window is closed."""
        try:
            return self.intake_url(office_code) if self.window(office_code).is_open else None
        except NotFoundError:
            return None

    def set_window(self, office_code: str, is_open: bool, actor: str, *, max_files: int | None = None,
                   max_file_mb: int | None = None, max_pages: int | None = None, max_pixels: int | None = None,
                   procedures: Sequence[str] | None = None) -> IntakeWindow:
        """Open or close an office's window, optionally changing its limits and procedures; audited."""
        office = self._directory.office(office_code)
        current = self.window(office.code)
        values: dict[str, Any] = {
            "is_open": is_open,
            "max_files": max_files if max_files is not None else current.max_files,
            "max_file_bytes": max_file_mb * 1024 * 1024 if max_file_mb is not None else current.max_file_bytes,
            "max_pages": max_pages if max_pages is not None else current.max_pages,
            "max_pixels": max_pixels if max_pixels is not None else current.max_pixels,
            "procedures": "\n".join(p.strip() for p in procedures if p.strip()) if procedures is not None else
            self._own_procedures(office.id),
            "updated_at": self._clock.now(), "updated_by": actor[:64],
        }
        for name in ("max_files", "max_file_bytes", "max_pages", "max_pixels"):
            if values[name] <= 0:
                raise ValidationError(f"{name} must be positive")
        for p in values["procedures"].splitlines():
            from inkless.text import check_text

            check_text(p, "procedure")
        with self._db.begin() as conn:
            exists = conn.execute(select(intake_windows.c.office_id).where(
                intake_windows.c.office_id == office.id)).first()
            if exists:
                conn.execute(update(intake_windows).where(intake_windows.c.office_id == office.id).values(**values))
            else:
                conn.execute(insert(intake_windows).values(office_id=office.id, **values))
            self._audit.record(conn, AuditEvent(
                actor=actor, action="intake.opened" if is_open else "intake.closed", object_type="office",
                object_id=office.code, details={k: v for k, v in values.items()
                                                if k in ("max_files", "max_file_bytes", "max_pages", "max_pixels")},
            ))
        return self.window(office.code)

    def _own_procedures(self, office_id: int) -> str:
        """The window's own procedure list as stored (kept when the window is reopened without one)."""
        with self._db.read() as conn:
            stored = conn.execute(select(intake_windows.c.procedures).where(
                intake_windows.c.office_id == office_id)).scalar()
        return str(stored or "")

    # --- submitting ----------------------------------------------------------------------

    def _open_window(self, office_code: str) -> IntakeWindow:
        window = self.window(office_code)
        if not window.is_open:
            raise PolicyError(WINDOW_CLOSED)
        return window

    def _note(self, endpoint: str, client: str, outcome: str) -> None:
        with self._db.begin() as conn:
            self.traffic.note(conn, endpoint, client, outcome)

    def start_submission(self, office_code: str, form: IntakeForm, files: Sequence[tuple[str, bytes]],
                         client: str, via: str = "") -> PendingCode:
        """Check the form and files, keep them (encrypted) and mail a code to the address; nothing is
        accepted until the code comes back."""
        window = self._open_window(office_code)
        try:
            checked_form = form.checked(window)
        except ValidationError:
            self._note(EP_SUBMIT, client, "refused_form")
            raise
        if not files:
            self._note(EP_SUBMIT, client, "refused_form")
            raise ValidationError(NEED_FILES)
        if len(files) > window.max_files:
            self._note(EP_SUBMIT, client, "refused_count")
            raise ValidationError(TOO_MANY_FILES)
        limits = FileLimits(window.max_file_bytes, window.max_pages, window.max_pixels)
        checked: list[CheckedFile] = []
        for name, data in files:
            try:
                checked.append(check_file(name, data, limits, self.scanner))
            except UntrustedFileError as exc:
                self._note(EP_SUBMIT, client, f"refused_{exc.reason}")
                raise
        # Codes per address: counted only for submissions that would mail one.
        self.address_traffic.admit(EP_ADDRESS, _address_key(checked_form.email))
        stored = [{"name": f.name, "kind": f.kind, "pages": f.pages, "size": f.original_size,
                   "sha256": hashlib.sha256(f.pdf).hexdigest(), "blob": self._blobs.put(f.pdf)} for f in checked]
        payload = {"form": checked_form.__dict__, "files": stored, "via": checked_via(via)}
        payload_blob = self._blobs.put(json.dumps(payload, ensure_ascii=False).encode("utf-8"))
        office = self._directory.office(window.office_code)
        pending = self._new_code(office, "submit", checked_form.email, payload_blob=payload_blob)
        self._mail_code(checked_form.email, pending[1], office, purpose="intake.code")
        self._note(EP_SUBMIT, client, "code_sent")
        return pending[0]

    def _new_code(self, office: Office, purpose: str, email: str, *, payload_blob: str | None = None,
                  receipt_number: str | None = None, void: bool = False) -> tuple[PendingCode, str]:
        token, code = codes.new_token(), codes.new_code()
        hashed = codes.token_hash(token)
        now = self._clock.now()
        expires = codes.code_expiry(now)
        with self._db.begin() as conn:
            conn.execute(insert(intake_codes).values(
                token_hash=hashed, purpose=purpose, office_id=office.id,
                email_enc=None if void else self._box.seal(email.encode(), email_context(hashed)),
                code_hash=codes.code_hash(hashed, code), tries=0, state="void" if void else "pending",
                payload_blob=payload_blob, receipt_number=receipt_number, created_at=now, expires_at=expires))
        return PendingCode(token, mask_email(email), expires), code

    def _code_state(self, conn: Connection, token: str, purpose: str) -> tuple[CodeState | None, Any]:
        row = conn.execute(select(intake_codes).where(
            intake_codes.c.token_hash == codes.token_hash(token[:200]), intake_codes.c.purpose == purpose)).first()
        if row is None:
            return None, None
        return CodeState(row.token_hash, row.code_hash, row.tries, row.state, row.expires_at), row

    def _use_code(self, token: str, code: str, purpose: str, endpoint: str, client: str) -> Any:
        """Check a code; the code row once accepted (and marked so), else the refusal, counted and raised."""
        now = self._clock.now()
        with self._db.begin() as conn:
            state, row = self._code_state(conn, token, purpose)
            outcome, tries = codes.check_code(state, code, now)
            if state is not None and row is not None and outcome in (CodeOutcome.WRONG, CodeOutcome.LOCKED):
                newly_locked = outcome == CodeOutcome.LOCKED and row.state != "locked"
                conn.execute(update(intake_codes).where(intake_codes.c.token_hash == row.token_hash).values(
                    tries=tries, state="locked" if outcome == CodeOutcome.LOCKED else row.state))
                if newly_locked:
                    office = self._directory.office_by_id(row.office_id)
                    self._audit.record(conn, AuditEvent(
                        actor="anonymous", action="intake.code_locked", object_type="office", object_id=office.code,
                        details={"purpose": purpose, "tries": tries, "client": client[:64]}), at=now)
            if outcome == CodeOutcome.ACCEPTED:
                claimed = conn.execute(update(intake_codes).where(
                    intake_codes.c.token_hash == row.token_hash, intake_codes.c.state == "pending",
                ).values(state="accepted")).rowcount
                if not claimed:
                    outcome = CodeOutcome.EXPIRED
            self.traffic.note(conn, endpoint, client, f"code_{outcome.value}")
        if outcome == CodeOutcome.ACCEPTED:
            return row
        if outcome == CodeOutcome.WRONG:
            raise ValidationError(WRONG_CODE)
        if outcome == CodeOutcome.LOCKED:
            raise PolicyError(CODE_LOCKED)
        raise ValidationError(CODE_EXPIRED)

    def confirm_submission(self, token: str, code: str, client: str) -> AcceptedSubmission:
        """Accept the submission of ``token`` if ``code`` is right: inbox, receipt number, sealed 受付証明, mail."""
        row = self._use_code(token, code, "submit", EP_CODE, client)
        office = self._directory.office_by_id(row.office_id)
        email = self._box.open(row.email_enc, email_context(row.token_hash)).decode()
        payload = json.loads(self._blobs.get(row.payload_blob))
        form = IntakeForm(**payload["form"])
        files = payload["files"]
        via = checked_via(payload.get("via"))
        now = self._clock.now()
        receipt_number = self._unique_receipt_number(now)
        listed = [ListedFile(f["name"], f["pages"], f["size"], f["sha256"]) for f in files]
        facts = CertificateFacts(
            receipt_number=receipt_number, office_name=office.name, organisation=self.organisation,
            received_at=now, subject=form.subject, procedure=form.procedure, submitter_name=form.name,
            submitter_organisation=form.organisation, email=email, phone=form.phone, message=form.message,
            files=listed, status_url=f"{self.base_url}/intake/{office.code}/status")
        certificate = self._seal(certificate_pdf(facts, self._tz), office.code, receipt_number)
        delivery = self._delivery()
        if delivery is None:
            raise InklessError("this node has no delivery service")
        documents = [(f"受付証明-{receipt_number}.pdf", certificate, "application/pdf")] + [
            (f["name"], self._blobs.get(f["blob"]), "application/pdf") for f in files]
        codes_by_name = {name: code for code, name in self._procedures(office.code)} if self._procedures else {}
        message_id = delivery.deposit_external(
            office.code, documents, "intake",
            {"receipt_number": receipt_number, "from": receipt_number, "name": form.name,
             "organisation": form.organisation, "email": email, "email_verified": True, "phone": form.phone,
             "procedure": form.procedure, "message": form.message},
            f"{form.subject}（{form.name}）", classification=INBOUND_CLASSIFICATION,
            procedure_code=codes_by_name.get(form.procedure))
        certificate_blob = self._blobs.put(certificate)
        with self._db.begin() as conn:
            # The invitation link the submitter came by (an invitation of this office; any other code is ignored).
            invitation_id = conn.execute(select(fax_invitations.c.id).where(
                fax_invitations.c.code == via, fax_invitations.c.office_id == office.id)).scalar() if via else None
            conn.execute(insert(intake_submissions).values(
                receipt_number=receipt_number, office_id=office.id, message_id=message_id,
                email_enc=self._box.seal(email.encode(), email_context(receipt_number)),
                certificate_blob=certificate_blob, file_count=len(files), received_at=now,
                phone_digest=self.contacts.phone(form.phone), email_digest=self.contacts.email(email),
                invitation_id=invitation_id))
            # The form now lives in the office's envelope: the waiting copy is dropped (the blob collector deletes it).
            conn.execute(update(intake_codes).where(intake_codes.c.token_hash == row.token_hash).values(
                receipt_number=receipt_number, payload_blob=None))
            # No name or address in the audit log: the receipt number, the office, the message and the digests.
            self._audit.record(conn, AuditEvent(
                actor="anonymous", action="intake.submitted", object_type="intake_receipt", object_id=receipt_number,
                digests={"certificate": certificate_blob, **{f"file{i + 1}": f["sha256"] for i, f in enumerate(files)}},
                details={"office": office.code, "message_id": message_id, "files": len(files),
                         "procedure": form.procedure, "email_verified": True}), at=now)
        self._mail_receipt(email, office, receipt_number, now)
        return AcceptedSubmission(receipt_number, office.code, office.name, now, message_id, len(files), certificate)

    def _unique_receipt_number(self, now: datetime) -> str:
        day = f"{timefmt.to_local(now, self._tz):%Y%m%d}"
        with self._db.read() as conn:
            for _ in range(20):
                number = codes.new_receipt_number(day)
                if conn.execute(select(intake_submissions.c.receipt_number).where(
                        intake_submissions.c.receipt_number == number)).first() is None:
                    return number
        raise InklessError("no free receipt number")  # 26^6 per day: never in practice

    def _seal(self, pdf: bytes, office_code: str, receipt_number: str) -> bytes:
        from inkless.seals.sealing import run_sync

        sealing = self._sealing()
        if sealing is None:
            raise InklessError("this node has no sealing service")
        return run_sync(sealing.seal_as_office_async(pdf, office_code, seal_placement(), actor="system",
                                                     reason=f"受付証明 {receipt_number}"))

    def certificate(self, token: str) -> tuple[str, bytes]:
        """The 受付証明 of the receipt a browser's code accepted (submission or status check), for an hour after;
        NotFoundError otherwise."""
        now = self._clock.now()
        with self._db.read() as conn:
            row = conn.execute(select(intake_codes.c.receipt_number, intake_codes.c.expires_at).where(
                intake_codes.c.token_hash == codes.token_hash(token[:200]), intake_codes.c.state == "accepted")).first()
            if row is None or row.receipt_number is None or \
                    row.expires_at + timedelta(hours=CERTIFICATE_HOURS) < now:
                raise NotFoundError("no such certificate")
            blob = conn.execute(select(intake_submissions.c.certificate_blob).where(
                intake_submissions.c.receipt_number == row.receipt_number)).scalar_one()
        return row.receipt_number, self._blobs.get(blob)

    # --- status --------------------------------------------------------------------------

    def start_status(self, office_code: str, receipt_number: str, email: str, client: str) -> PendingCode:
        """Mail a code if ``receipt_number`` was submitted to this office from ``email``.

        The answer is the same whether or not they match (a code row that accepts nothing is made
        when they do not), so that nobody can find out which numbers or addresses exist.
        """
        office = self._directory.office(office_code)
        from inkless.intake.model import EMAIL_RE, NEED_EMAIL

        email = email.strip()
        if len(email) > 254 or not EMAIL_RE.match(email):
            raise ValidationError(NEED_EMAIL)
        self.address_traffic.admit(EP_ADDRESS, _address_key(email))
        number = receipt_number.strip().upper()[:32]
        with self._db.read() as conn:
            row = conn.execute(select(intake_submissions).where(
                intake_submissions.c.receipt_number == number, intake_submissions.c.office_id == office.id)).first()
        matches = False
        if row is not None:
            stored = self._box.open(row.email_enc, email_context(row.receipt_number)).decode()
            matches = normalise_email(stored).lower() == normalise_email(email).lower()
        pending, code = self._new_code(office, "status", email, receipt_number=number if matches else None,
                                       void=not matches)
        if matches:
            self._mail_status_code(email, code, office, number)
        self._note(EP_STATUS, client, "code_requested")
        return pending

    def confirm_status(self, token: str, code: str, client: str) -> SubmissionStatus:
        """The status of the receipt the code was mailed for."""
        row = self._use_code(token, code, "status", EP_STATUS_CODE, client)
        with self._db.read() as conn:
            sub = conn.execute(select(intake_submissions, t.offices.c.name.label("office_name")).join(
                t.offices, t.offices.c.id == intake_submissions.c.office_id).where(
                intake_submissions.c.receipt_number == row.receipt_number)).one()
            opened = conn.execute(select(inbox.c.opened_at).where(
                inbox.c.message_id == sub.message_id, inbox.c.office_id == sub.office_id)).scalar()
        with self._db.begin() as conn:
            self._audit.record(conn, AuditEvent(
                actor="anonymous", action="intake.status_shown", object_type="intake_receipt",
                object_id=sub.receipt_number, details={"opened": opened is not None}))
        return SubmissionStatus(sub.receipt_number, sub.office_name, sub.received_at, opened, sub.file_count)

    # --- mail ----------------------------------------------------------------------------

    def _mail_code(self, email: str, code: str, office: Office, *, purpose: str) -> None:
        text = (f"{self.organisation} {office.name} 受付窓口です。\n\n"
                f"確認コード: {code}\n\n"
                "このコードを受付窓口の画面に入力してください（10分間有効）。\n"
                "心当たりがない場合は、このメールを破棄してください。\n\n"
                "---\n"
                f"This is the intake window of {office.name}.\n"
                f"Your confirmation code: {code}\n"
                "Enter it on the intake page within 10 minutes. If you did not ask for it, ignore this mail.\n")
        self.mailer.send(OutgoingMail(email, f"確認コード {code} / Confirmation code", text, purpose=purpose))

    def _mail_status_code(self, email: str, code: str, office: Office, number: str) -> None:
        text = (f"{self.organisation} {office.name} 受付窓口です。\n\n"
                f"受付番号 {number} の状況確認のための確認コード: {code}\n"
                "10分間有効です。心当たりがない場合は、このメールを破棄してください。\n\n"
                "---\n"
                f"Confirmation code to see the status of receipt {number}: {code} (valid for 10 minutes).\n")
        self.mailer.send(OutgoingMail(email, f"確認コード {code} / Confirmation code", text, purpose="intake.status"))

    def _mail_receipt(self, email: str, office: Office, number: str, at: datetime) -> None:
        when_ja = timefmt.format_datetime(at, "ja", self._tz)
        when_en = timefmt.format_datetime(at, "en", self._tz)
        status = f"{self.base_url}/intake/{office.code}/status"
        text = (f"{self.organisation} {office.name} 受付窓口です。次のとおり受け付けました。\n\n"
                f"受付番号: {number}\n受付日時: {when_ja}\n\n"
                "受付状況の確認と受付証明（PDF、電子印つき）のダウンロードは、次のページからできます\n"
                f"（受付番号とこのメールアドレスを入力してください）:\n{status}\n\n"
                "書類はこのメールには添付していません。\n\n"
                "---\n"
                f"{office.name} has received your submission.\nReceipt number: {number}\nReceived: {when_en}\n"
                "Check the status and download the sealed certificate of receipt (PDF) with the receipt number\n"
                f"and this address at:\n{status}\n")
        try:
            self.mailer.send(OutgoingMail(email, f"受付番号 {number} / Receipt number", text, purpose="intake.receipt",
                                          ref=number))
        except InklessError as exc:
            # The submission is in the office's inbox and the receipt is on screen: a mail problem is logged.
            log.error("receipt mail for %s could not be queued: %s", number, exc)

    # --- invitations ---------------------------------------------------------------------

    def invite_by_fax(self, office_code: str, number: str, actor: str, source: str,
                      source_ref: str | None = None) -> Invitation:
        """Fax an invitation to the window (cover page with the URL and QR code, one letter page); recorded."""
        window = self.window(office_code)
        if not window.is_open:
            raise ValidationError("Open the intake window of this office before inviting fax senders to it.")
        fax = self._fax()
        if fax is None:
            raise InklessError("this node has no fax service")
        # The letter's link names this invitation, so that a submission that comes by it is known to be its answer.
        code = secrets.token_urlsafe(9)[:12]
        url = f"{self.intake_url(window.office_code)}?via={code}"
        now = self._clock.now()
        letter = invitation_pdf(window.office_name, self.organisation, url, now, self._tz)
        job = fax.send(actor, window.office_code, number, [letter], cover_page=True,
                       classification=CLASSIFICATION_OF_INVITATION, subject="オンライン受付のご案内", origin="clerk")
        office = self._directory.office(window.office_code)
        with self._db.begin() as conn:
            checked = conn.execute(select(t.offices.c.id).where(t.offices.c.id == office.id)).scalar_one()
            invitation_id = conn.execute(insert(fax_invitations).values(
                office_id=checked, number=number.strip()[:32], invited_at=now, invited_by=actor[:64],
                fax_job_id=job, source=source, source_ref=(source_ref or "")[:64] or None, code=code,
            )).inserted_primary_key
            assert invitation_id is not None
            self._audit.record(conn, AuditEvent(
                actor=actor, action="intake.invited", object_type="office", object_id=office.code,
                details={"number": number.strip()[:32], "fax_job": job, "source": source}), at=now)
        return Invitation(int(invitation_id[0]), office.code, number.strip(), now, actor, job, source, code)

    def invitations(self, office_code: str | None = None) -> list[Invitation]:
        """Invitations sent, newest first."""
        query = select(fax_invitations, t.offices.c.code.label("office_code")).join(
            t.offices, t.offices.c.id == fax_invitations.c.office_id)
        if office_code is not None:
            query = query.where(t.offices.c.code == office_code)
        with self._db.read() as conn:
            rows = conn.execute(query.order_by(fax_invitations.c.id.desc())).all()
        return [Invitation(r.id, r.office_code, r.number, r.invited_at, r.invited_by, r.fax_job_id, r.source,
                           r.code) for r in rows]
