"""The one durable mail outbox of a node.

A feature queues a mail with :meth:`MailOutbox.enqueue` inside its own transaction, so the mail
exists exactly when the change that caused it does (a pickup notice with its pickup link, a code with
its code). Worker processes send queued mails (:meth:`MailOutbox.deliver_due`), never a web request:
a slow or unreachable SMTP server delays mail, not pages. A mail the server refuses for good (5xx)
is ``failed``; one it cannot hand over before ``mail_expiry_hours`` is ``expired``. Features read
a mail's state by the reference they gave (``ref``), and may register a listener that is called in
the transaction that ends a mail, to record 不達 on their own objects.

States: queued → sent | retrying → … → sent | failed | expired.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, Row, case, func, insert, select, update

from inkless.audit.model import AuditEvent
from inkless.db.tables_mail import mail_outbox
from inkless.delivery.outbox import backoff_delay
from inkless.errors import NotFoundError
from inkless.mail.address import normalise_email
from inkless.mail.compose import MailContent, compose, new_message_id
from inkless.mail.options import SmtpOptions
from inkless.mail.smtp import MailTransport, OutgoingMail, SendOutcome

if TYPE_CHECKING:
    from inkless.audit.model import AuditRecorder
    from inkless.clock import Clock
    from inkless.db.engine import Database
    from inkless.pki.keystore import SecretBox

log = logging.getLogger("inkless.mail")

PENDING = ("queued", "retrying")
FINAL = ("sent", "failed", "expired")


@dataclass(frozen=True)
class MailStatus:
    """One queued mail as its sender sees it (never its body)."""

    id: int
    kind: str
    ref: str | None
    recipient: str
    message_id: str
    state: str
    attempts: int
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    expires_at: datetime
    smtp_code: int | None
    last_error: str | None

    @property
    def bounced(self) -> bool:
        """The server refused the recipient or the mail for good (不達)."""
        return self.state == "failed"


@dataclass(frozen=True)
class MailPass:
    """What one outbox pass did."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0
    expired: int = 0

    @property
    def total(self) -> int:
        return self.sent + self.retrying + self.failed + self.expired

    def __add__(self, other: MailPass) -> MailPass:
        return MailPass(self.sent + other.sent, self.retrying + other.retrying,
                        self.failed + other.failed, self.expired + other.expired)


# Called in the transaction that ends a mail (sent, failed or expired).
MailListener = Callable[[Connection, MailStatus], None]


def _status(row: Row[Any]) -> MailStatus:
    return MailStatus(
        id=row.id, kind=row.kind, ref=row.ref, recipient=row.recipient, message_id=row.message_id,
        state=row.state, attempts=row.attempts, created_at=row.created_at, updated_at=row.updated_at,
        sent_at=row.sent_at, expires_at=row.expires_at, smtp_code=row.smtp_code, last_error=row.last_error,
    )


def _body_context(message_id: str) -> str:
    return f"mail-body:{message_id}"


class MailOutbox:
    """Queue, send and report e-mails; see the module docstring."""

    def __init__(self, db: Database, box: SecretBox, clock: Clock, audit: AuditRecorder, options: SmtpOptions,
                 transport: MailTransport | None, *, expiry: timedelta, backoff_base: float, backoff_cap: float,
                 lease: timedelta) -> None:
        self.db = db
        self.box = box
        self.clock = clock
        self.audit = audit
        self.options = options
        self.transport = transport
        self.expiry = expiry
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.lease = lease
        self._listeners: list[tuple[str, MailListener]] = []

    @property
    def enabled(self) -> bool:
        """True when the node has an SMTP server to send through (``smtp_url``)."""
        return self.options.enabled and self.transport is not None

    def listen(self, kind_prefix: str, listener: MailListener) -> None:
        """Call ``listener`` when a mail whose kind starts with ``kind_prefix`` ends (sent, failed, expired)."""
        self._listeners.append((kind_prefix, listener))

    def enqueue(self, conn: Connection, *, kind: str, recipient: str, content: MailContent,
                ref: str | None = None, headers: dict[str, str] | None = None) -> MailStatus:
        """Queue one mail in the caller's transaction; it is sent by a worker after the commit."""
        address = normalise_email(recipient)
        now = self.clock.now()
        message_id = new_message_id(self.options.sender_domain)
        msg = compose(sender=self.options.sender or f"inkless <no-reply@{self.options.sender_domain}>",
                      recipient=address, content=content, at=now, message_id=message_id,
                      reply_to=self.options.reply_to, extra_headers=headers)
        body = self.box.seal(msg.as_bytes(), _body_context(message_id))
        mail_id = conn.execute(insert(mail_outbox).values(
            kind=kind, ref=ref, recipient=address, message_id=message_id, body_enc=body, state="queued",
            attempts=0, next_attempt_at=now, expires_at=now + self.expiry, created_at=now, updated_at=now,
        )).inserted_primary_key[0]  # type: ignore[index]
        return self.status(conn, int(mail_id))

    def status(self, conn: Connection, mail_id: int) -> MailStatus:
        row = conn.execute(select(mail_outbox).where(mail_outbox.c.id == mail_id)).first()
        if row is None:
            raise NotFoundError(f"no mail {mail_id}")
        return _status(row)

    def for_ref(self, conn: Connection, ref: str) -> list[MailStatus]:
        """Every mail queued for the domain object ``ref``, oldest first."""
        rows = conn.execute(select(mail_outbox).where(mail_outbox.c.ref == ref).order_by(mail_outbox.c.id)).all()
        return [_status(r) for r in rows]

    def recent(self, limit: int = 50, state: str | None = None) -> list[MailStatus]:
        """The newest mails (``inkless mail list``)."""
        query = select(mail_outbox).order_by(mail_outbox.c.id.desc()).limit(limit)
        if state:
            query = query.where(mail_outbox.c.state == state)
        with self.db.read() as conn:
            return [_status(r) for r in conn.execute(query).all()]

    def message_bytes(self, mail_id: int) -> bytes | None:
        """The composed mail while it is still queued (None once it has ended and its body is erased)."""
        with self.db.read() as conn:
            row = conn.execute(select(mail_outbox.c.body_enc, mail_outbox.c.message_id)
                               .where(mail_outbox.c.id == mail_id)).first()
        if row is None or row.body_enc is None:
            return None
        return self.box.open(row.body_enc, _body_context(row.message_id))

    # --- the worker side ---------------------------------------------------------------------------

    def _claim(self, now: datetime, limit: int) -> list[Row[Any]]:
        """Claim due mails (``SKIP LOCKED`` on PostgreSQL, the write lock on SQLite) for one lease."""
        with self.db.begin() as conn:
            query = (select(mail_outbox.c.id)
                     .where(mail_outbox.c.state.in_(PENDING), mail_outbox.c.next_attempt_at <= now)
                     .order_by(mail_outbox.c.next_attempt_at, mail_outbox.c.id).limit(limit))
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = [r.id for r in conn.execute(query).all()]
            if not ids:
                return []
            conn.execute(update(mail_outbox).where(mail_outbox.c.id.in_(ids)).values(
                next_attempt_at=now + self.lease,
                attempts=case((mail_outbox.c.expires_at > now, mail_outbox.c.attempts + 1),
                              else_=mail_outbox.c.attempts),
            ))
            return list(conn.execute(select(mail_outbox).where(mail_outbox.c.id.in_(ids))
                                     .order_by(mail_outbox.c.id)).all())

    def deliver_due(self, limit: int = 20) -> MailPass:
        """One pass: expire overdue mails, send due ones, record each outcome."""
        now = self.clock.now()
        rows = self._claim(now, limit)
        if not rows:
            return MailPass()
        overdue = [r for r in rows if r.expires_at <= now]
        due = [r for r in rows if r.expires_at > now]
        result = MailPass()
        for row in overdue:
            self._finish(row, "expired", None, row.last_error or "not handed over before it expired")
            result += MailPass(expired=1)
        if not due:
            return result
        if not self.enabled or self.transport is None:
            for row in due:
                self._retry(row, None, "smtp_url is not set: the node sends no mail")
            return result + MailPass(retrying=len(due))
        mails = [OutgoingMail(self.options.envelope_from, row.recipient,
                              self.box.open(row.body_enc, _body_context(row.message_id))) for row in due]
        outcomes = self.transport.send(mails)
        for row, outcome in zip(due, outcomes, strict=True):
            result += self._record(row, outcome)
        return result

    def _record(self, row: Row[Any], outcome: SendOutcome) -> MailPass:
        if outcome.accepted:
            self._finish(row, "sent", outcome.code, None)
            return MailPass(sent=1)
        if outcome.permanent:
            log.info("mail %s to %s refused for good: %s", row.id, row.recipient, outcome.detail)
            self._finish(row, "failed", outcome.code, outcome.detail)
            return MailPass(failed=1)
        log.info("mail %s to %s not handed over, will retry: %s", row.id, row.recipient, outcome.detail)
        self._retry(row, outcome.code, outcome.detail)
        return MailPass(retrying=1)

    def _retry(self, row: Row[Any], code: int | None, detail: str) -> None:
        now = self.clock.now()
        delay = backoff_delay(max(1, row.attempts), self.backoff_base, self.backoff_cap)
        with self.db.begin() as conn:
            conn.execute(update(mail_outbox).where(mail_outbox.c.id == row.id).values(
                state="retrying", next_attempt_at=min(now + timedelta(seconds=delay), row.expires_at),
                smtp_code=code, last_error=detail[:2000], updated_at=now))

    def _finish(self, row: Row[Any], state: str, code: int | None, detail: str | None) -> None:
        """End a mail: erase its body, record the outcome, audit it, tell the listeners of its kind."""
        now = self.clock.now()
        with self.db.begin() as conn:
            changed = conn.execute(update(mail_outbox).where(
                mail_outbox.c.id == row.id, mail_outbox.c.state.in_(PENDING)).values(
                state=state, body_enc=None, smtp_code=code, last_error=(detail or None) and detail[:2000],
                sent_at=now if state == "sent" else None, updated_at=now)).rowcount
            if not changed:  # another worker ended it after its lease ran out
                return
            status = self.status(conn, row.id)
            self.audit.record(conn, AuditEvent(
                actor="system", action=f"mail.{state}", object_type="mail", object_id=str(row.id),
                details={"kind": row.kind, "ref": row.ref, "attempts": row.attempts,
                         **({"smtp_code": code} if code else {})}), at=now)
            for prefix, listener in self._listeners:
                if row.kind.startswith(prefix):
                    listener(conn, status)


def helo_name(base_url: str) -> str | None:
    """The name this node gives in EHLO: the host of its base URL (an address literal in brackets)."""
    host = urlsplit(base_url).hostname
    if not host:
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host
    return f"[{host}]"


def pending_count(conn: Connection) -> int:
    """Mails still waiting to be handed over (for status pages and tests)."""
    return int(conn.execute(select(func.count()).select_from(mail_outbox)
                            .where(mail_outbox.c.state.in_(PENDING))).scalar_one())
