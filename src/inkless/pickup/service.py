"""Secure pickup: a clerk sends documents to an e-mail address; the recipient fetches them from this node.

The recipient gets a notice mail without the documents (sender office, subject, expiry, link). The
link carries a 256-bit token bound to that one recipient; only its SHA-256 is stored. Opening it asks
for a 6-digit code sent in a second mail (10 minutes; 5 wrong tries lock the link until the clerk
reopens it). A correct code gives the browser a pickup session (a second random secret, stored as a
hash, bound to the same recipient) with which the documents can be downloaded and files sent back.

Classification 0 and 1 may go to e-mail recipients (1 only with an explicit confirmation); 2 and 3
never leave the government: refused, and the refusal audited.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, insert, select, update

from inkless import timefmt
from inkless.audit.model import AuditEvent
from inkless.db import tables as t
from inkless.db.tables_delivery import messages
from inkless.db.tables_pickup import pickup_office_settings, pickup_replies, pickups
from inkless.delivery.model import SentMessage
from inkless.delivery.policy import Actor
from inkless.errors import ConfigurationError, NotFoundError, PolicyError, ValidationError
from inkless.mail.compose import MailContent
from inkless.mail.outbox import MailStatus
from inkless.pickup.files import ReplyFile
from inkless.pickup.model import NewPickup
from inkless.pickup.status import PickupReply, PickupStatus

if TYPE_CHECKING:
    from inkless.audit.model import AuditRecorder
    from inkless.blobs import BlobStore
    from inkless.clock import Clock
    from inkless.config import Settings
    from inkless.db.engine import Database
    from inkless.delivery.service import DeliveryService
    from inkless.directory.service import DirectoryService
    from inkless.mail.outbox import MailOutbox
    from inkless.pki.keystore import SecretBox

CODE_DIGITS = 6
CODE_MINUTES = 10
MAX_TRIES = 5
SESSION_MINUTES = 30


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _code_hash(token_hash: str, code: str) -> str:
    # Keyed by the link's token hash: a stolen table alone cannot even be brute-forced per code offline
    # without knowing which token belongs to which row.
    return hmac.new(token_hash.encode("ascii"), code.encode("utf-8"), hashlib.sha256).hexdigest()


class PickupCodeRefused(ValidationError):
    """A code that did not open the link: ``reason`` is ``wrong`` (also unknown/expired links) or ``locked``."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class CommentRefused(ValidationError):
    """The recipient's message with a reply is too long or not plain text."""


class PickupClosed(NotFoundError):
    """The link does not work (unknown, expired, revoked, or the session is not this recipient's)."""


@dataclass(frozen=True)
class PickupView:
    """What the recipient sees once the code was right."""

    office_name: str
    organisation: str
    subject: str
    expires_at: datetime
    documents: tuple[tuple[str, int], ...]  # (name, size)
    replies: int


class PickupService:
    """See the module docstring."""

    def __init__(self, settings: Settings, db: Database, clock: Clock, audit: AuditRecorder, box: SecretBox,
                 blobs: BlobStore, directory: DirectoryService, mail: MailOutbox | None,
                 delivery: Callable[[], DeliveryService | None]) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.audit = audit
        self.box = box
        self.blobs = blobs
        self.directory = directory
        self.mail = mail
        self._delivery = delivery  # read late: the delivery service is built before this one

    def _deliveries(self) -> DeliveryService:
        delivery = self._delivery()
        if delivery is None:
            raise ConfigurationError("this node has no delivery service")
        return delivery

    @property
    def enabled(self) -> bool:
        """Whether e-mail recipients can be given: the node sends mail."""
        return self.mail is not None and self.mail.enabled

    # --- sending --------------------------------------------------------------------------

    def check(self, actor: Actor, office_code: str, classification: int, recipients: Sequence[NewPickup],
              confirmed: bool) -> None:
        """PolicyError (audited) unless this message may go to these e-mail addresses."""
        if not recipients:
            return
        reason = None
        if classification >= 2:
            reason = (f"classification {classification} never leaves the government: it cannot be sent to an "
                      "e-mail address")
        elif classification == 1 and not confirmed:
            reason = "classification 1 (内部) to an e-mail address needs a confirmation (--confirm)"
        if reason is None:
            return
        with self.db.begin() as conn:
            self.audit.record(conn, AuditEvent(
                actor=actor.login, action="pickup.refused", object_type="office", object_id=office_code,
                details={"classification": classification, "recipients": len(recipients),
                         "domains": sorted({r.address.rpartition("@")[2] for r in recipients}),
                         "reason": "classification" if classification >= 2 else "not confirmed"}))
        raise PolicyError(reason)

    def expiry_days(self, office_id: int, conn: Connection) -> int:
        days = conn.execute(select(pickup_office_settings.c.expiry_days)
                            .where(pickup_office_settings.c.office_id == office_id)).scalar()
        return int(days) if days else self.settings.pickup_expiry_days

    def set_expiry_days(self, office_code: str, days: int, actor: str = "operator") -> None:
        """Set an office's link lifetime (1-90 days)."""
        if not 1 <= days <= 90:
            raise ValidationError("the pickup link lifetime must be 1-90 days")
        office = self.directory.office(office_code)
        with self.db.begin() as conn:
            conn.execute(pickup_office_settings.delete().where(pickup_office_settings.c.office_id == office.id))
            conn.execute(insert(pickup_office_settings).values(office_id=office.id, expiry_days=days))
            self.audit.record(conn, AuditEvent(actor=actor, action="pickup.expiry_set", object_type="office",
                                               object_id=office.code, details={"days": days}))

    def record(self, conn: Connection, *, message_id: str, office_id: int, office_code: str, sender_login: str,
               subject: str, recipients: Sequence[NewPickup], now: datetime) -> list[int]:
        """Create the pickups of a message being sent and queue their notices (in the send transaction)."""
        assert self.mail is not None
        office = conn.execute(select(t.offices.c.name).where(t.offices.c.id == office_id)).scalar_one()
        expires = now + timedelta(days=self.expiry_days(office_id, conn))
        ids = []
        for r in recipients:
            token = secrets.token_urlsafe(32)  # 256 bits
            pickup_id = int(conn.execute(insert(pickups).values(
                message_id=message_id, office_id=office_id, sender_login=sender_login, recipient=r.address,
                mobile=r.mobile, token_hash=_hash(token), created_at=now, expires_at=expires, code_tries=0,
            )).inserted_primary_key[0])  # type: ignore[index]
            self.mail.enqueue(conn, kind="pickup.notice", recipient=r.address, ref=f"pickup:{pickup_id}",
                                   content=self._notice(office, subject, expires, token))
            self.audit.record(conn, AuditEvent(
                actor=sender_login, action="pickup.created", object_type="pickup", object_id=str(pickup_id),
                details={"message": message_id, "office": office_code, "domain": r.address.rpartition("@")[2],
                         "expires_at": expires.isoformat(), "mobile": r.mobile is not None}), at=now)
            ids.append(pickup_id)
        return ids

    def link(self, token: str) -> str:
        return f"{self.settings.base_url.rstrip('/')}/p/{token}"

    def _org(self) -> str:
        return self.settings.organisation or self.settings.node_id

    def _notice(self, office: str, subject: str, expires: datetime, token: str) -> MailContent:
        tz = self.settings.tz
        ja_when = timefmt.format_datetime(expires, "ja", tz)
        en_when = timefmt.format_datetime(expires, "en", tz)
        sender = f"{self._org()} {office}"
        text = (
            f"{sender} から文書が届いています。\n"
            "このメールに文書は添付されていません。下のリンクから受け取ってください。\n\n"
            f"件名: {subject}\n"
            f"受け取り期限: {ja_when}\n\n"
            f"{self.link(token)}\n\n"
            "リンクを開くと、確認コードを別のメールでお送りします。\n"
            "お心当たりのない場合は、このメールを破棄してください。\n\n"
            "----\n"
            f"{sender} has sent you documents. Nothing is attached to this mail: collect them with the link "
            "above.\n"
            f"Subject: {subject}\nAvailable until: {en_when}\n"
            "When you open the link, a confirmation code is sent to you in a second mail.\n"
            "If you did not expect this, please delete this mail.\n"
        )
        return MailContent(subject=f"【{sender}】文書のお受け取りのご案内 / Documents for you", text=text)

    def notice_ended(self, conn: Connection, status: MailStatus) -> None:
        """The notice mail was sent (通知済み) or bounced / expired (不達).

        The node's mail outbox calls this for every ``pickup.notice`` mail that ends (the composition
        root listens for it when the outbox is built: the process sending the mail may never have
        built this service otherwise)."""
        if not status.ref or not status.ref.startswith("pickup:"):
            return
        pickup_id = int(status.ref.split(":", 1)[1])
        now = self.clock.now()
        if status.state == "sent":
            conn.execute(update(pickups).where(pickups.c.id == pickup_id).values(notified_at=status.sent_at or now))
            return
        conn.execute(update(pickups).where(pickups.c.id == pickup_id).values(
            bounced_at=now, bounce_detail=(status.last_error or status.state)[:500]))
        self.audit.record(conn, AuditEvent(
            actor="system", action="pickup.bounced", object_type="pickup", object_id=str(pickup_id),
            details={"mail": status.id, "state": status.state, "smtp_code": status.smtp_code}), at=now)

    # --- the recipient's side --------------------------------------------------------------

    def _row(self, conn: Connection, token: str) -> Row[Any] | None:
        if not token or len(token) > 100:
            return None
        return conn.execute(select(pickups).where(pickups.c.token_hash == _hash(token))).first()

    def _usable(self, row: Row[Any] | None, now: datetime) -> bool:
        return (row is not None and row.revoked_at is None and row.expires_at > now and row.bounced_at is None)

    def request_code(self, token: str, client: str, admit: Callable[[str], None] | None = None) -> str | None:
        """Mail a fresh code if the link works and is not locked; returns the recipient (None otherwise).

        ``admit(address)`` is called before anything is queued (the per-address rate limit; it raises to
        refuse). The caller answers the same way in every other case: the page never tells whether a
        link exists.
        """
        assert self.mail is not None
        now = self.clock.now()
        if admit is not None:
            # Outside the write transaction: the rate limiter writes its own counts.
            with self.db.read() as conn:
                found = self._row(conn, token)
            if not self._usable(found, now) or found is None or found.locked_at is not None:
                return None
            admit(str(found.recipient))
        with self.db.begin() as conn:
            row = self._row(conn, token)
            if not self._usable(row, now) or row is None or row.locked_at is not None:
                return None
            code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
            conn.execute(update(pickups).where(pickups.c.id == row.id).values(
                code_hash=_code_hash(row.token_hash, code), code_expires_at=now + timedelta(minutes=CODE_MINUTES),
                code_enc=self.box.seal(code.encode(), f"pickup-code:{row.id}") if row.mobile else None))
            office = conn.execute(select(t.offices.c.name).where(t.offices.c.id == row.office_id)).scalar_one()
            self.mail.enqueue(conn, kind="pickup.code", recipient=row.recipient, ref=f"pickup:{row.id}",
                                   content=self._code_mail(office, code))
            self.audit.record(conn, AuditEvent(
                actor="anonymous", action="pickup.code_sent", object_type="pickup", object_id=str(row.id),
                details={"client": client[:64]}), at=now)
            return str(row.recipient)

    def _code_mail(self, office: str, code: str) -> MailContent:
        sender = f"{self._org()} {office}"
        return MailContent(
            subject=f"【{sender}】確認コード / Confirmation code",
            text=(f"文書受け取りの確認コード: {code}\n"
                  f"{CODE_MINUTES}分間有効です。受け取りのページに入力してください。\n"
                  "このコードを他の人に伝えないでください。\n\n"
                  "----\n"
                  f"Confirmation code for collecting documents from {sender}: {code}\n"
                  f"It is valid for {CODE_MINUTES} minutes. Do not share it with anyone.\n"))

    def verify_code(self, token: str, code: str, client: str) -> str:
        """A new pickup session secret if ``code`` is right; PickupCodeRefused otherwise."""
        now = self.clock.now()
        clean = code.strip().replace(" ", "")
        with self.db.begin() as conn:
            row = self._row(conn, token)
            if not self._usable(row, now) or row is None:
                raise PickupCodeRefused("the code is not right or has expired", "wrong")
            if row.locked_at is not None:
                raise PickupCodeRefused("the link is locked after too many wrong codes", "locked")
            if row.code_hash is None:
                raise PickupCodeRefused("the code is not right or has expired", "wrong")
            good = (row.code_expires_at is not None and row.code_expires_at > now and len(clean) == CODE_DIGITS
                    and clean.isdigit() and hmac.compare_digest(_code_hash(row.token_hash, clean), row.code_hash))
            if not good:
                tries = row.code_tries + 1
                locked = tries >= MAX_TRIES
                conn.execute(update(pickups).where(pickups.c.id == row.id).values(
                    code_tries=tries, locked_at=now if locked else None,
                    code_hash=None if locked else row.code_hash, code_enc=None if locked else row.code_enc))
                self.audit.record(conn, AuditEvent(
                    actor="anonymous", action="pickup.locked" if locked else "pickup.code_failed",
                    object_type="pickup", object_id=str(row.id), details={"tries": tries, "client": client[:64]}),
                    at=now)
            else:
                session = secrets.token_urlsafe(32)
                conn.execute(update(pickups).where(pickups.c.id == row.id).values(
                    code_hash=None, code_enc=None, code_expires_at=None, code_tries=0,
                    session_hash=_hash(session), session_expires_at=now + timedelta(minutes=SESSION_MINUTES),
                    opened_at=row.opened_at or now))
                self.audit.record(conn, AuditEvent(
                    actor="anonymous", action="pickup.opened", object_type="pickup", object_id=str(row.id),
                    details={"client": client[:64]}), at=now)
                return session
        if locked:
            raise PickupCodeRefused("the link is locked after too many wrong codes", "locked")
        raise PickupCodeRefused("the code is not right or has expired", "wrong")

    def _session_row(self, conn: Connection, token: str, session: str | None) -> Row[Any]:
        now = self.clock.now()
        row = self._row(conn, token)
        if (not self._usable(row, now) or row is None or not session or row.session_hash is None
                or row.session_expires_at is None or row.session_expires_at <= now
                or not hmac.compare_digest(row.session_hash, _hash(session))):
            raise PickupClosed("this pickup link does not work (or the code must be entered again)")
        return row

    def has_session(self, token: str, session: str | None) -> bool:
        with self.db.read() as conn:
            try:
                self._session_row(conn, token, session)
            except PickupClosed:
                return False
        return True

    def _opened(self, row: Row[Any]) -> Any:
        return self._deliveries().open_message(str(row.message_id), None)

    def view(self, token: str, session: str | None) -> PickupView:
        with self.db.read() as conn:
            row = self._session_row(conn, token, session)
            office = conn.execute(select(t.offices.c.name).where(t.offices.c.id == row.office_id)).scalar_one()
            replies = len(conn.execute(select(pickup_replies.c.id)
                                       .where(pickup_replies.c.pickup_id == row.id)).all())
        opened = self._opened(row)
        return PickupView(office_name=office, organisation=self._org(), subject=opened.metadata.subject,
                          expires_at=row.expires_at, replies=replies,
                          documents=tuple((d.name, len(d.data)) for d in opened.documents))

    def document(self, token: str, session: str | None, number: int, client: str) -> tuple[str, str, bytes]:
        """Document ``number`` (from 1): name, content type, bytes; recorded as a download."""
        with self.db.read() as conn:
            row = self._session_row(conn, token, session)
        docs = self._opened(row).documents
        if not 1 <= number <= len(docs):
            raise NotFoundError(f"no document {number}")
        doc = docs[number - 1]
        now = self.clock.now()
        with self.db.begin() as conn:
            conn.execute(update(pickups).where(pickups.c.id == row.id, pickups.c.downloaded_at.is_(None))
                         .values(downloaded_at=now))
            self.audit.record(conn, AuditEvent(
                actor="anonymous", action="pickup.downloaded", object_type="pickup", object_id=str(row.id),
                digests={"document": hashlib.sha256(doc.data).hexdigest()},
                details={"document": number, "client": client[:64]}), at=now)
        return doc.name, doc.content_type, doc.data

    def reply(self, token: str, session: str | None, files: Sequence[ReplyFile], comment: str, client: str) -> int:
        """Store the checked files the recipient sent back; they thread into the message's conversation.

        The files land in the sending office's inbox as one item (source ``pickup``, marked external and
        e-mail verified, at the sent message's classification) whose ``reply_to`` is the sent message: the
        clerk finds it in the inbox and in the message's conversation, not as an unrelated item.
        """
        if not files:
            raise ValidationError("attach at least one file")
        comment = comment.strip()
        if len(comment) > 2000 or any(ord(c) < 32 and c not in "\n\r\t" for c in comment):
            raise CommentRefused("the comment must be at most 2,000 characters of text")
        with self.db.read() as conn:
            row = self._session_row(conn, token, session)
        delivery = self._deliveries()
        sent = delivery.message(str(row.message_id), None)  # the sender's copy, as the operator
        assert isinstance(sent, SentMessage) and sent.subject is not None
        reply_id = delivery.deposit_external(
            sent.office, [(f.name, f.data, f.content_type) for f in files], "pickup",
            {"from": row.recipient, "email": row.recipient, "email_verified": True, "pickup_id": row.id,
             "comment": comment}, f"Re: {sent.subject}", classification=sent.classification,
            procedure_code=sent.procedure_code, reply_to=str(row.message_id))
        digests = [(f, self.blobs.put(f.data)) for f in files]
        now = self.clock.now()
        with self.db.begin() as conn:
            for f, digest in digests:
                conn.execute(insert(pickup_replies).values(
                    pickup_id=row.id, name=f.name, content_type=f.content_type, sha256=digest, size=len(f.data),
                    comment_enc=self.box.seal(comment.encode(), f"pickup-reply:{row.id}:{digest}") if comment
                    else None, received_at=now, inbox_message_id=reply_id))
            conn.execute(update(pickups).where(pickups.c.id == row.id).values(replied_at=now))
            self.audit.record(conn, AuditEvent(
                actor="anonymous", action="pickup.replied", object_type="pickup", object_id=str(row.id),
                digests={f"file{i + 1}": d for i, (_, d) in enumerate(digests)},
                details={"files": len(files), "message": row.message_id, "reply": reply_id,
                         "client": client[:64]}), at=now)
        return len(files)

    # --- the sender's side -----------------------------------------------------------------

    def _sender_check(self, conn: Connection, message_id: str, viewer: str | None) -> Any:
        actor = self._deliveries().actor(viewer)
        sent = conn.execute(select(messages.c.id, t.offices.c.code)
                            .join(t.offices, t.offices.c.id == messages.c.office_id)
                            .where(messages.c.id == message_id)).first()
        if sent is None or not (actor.is_operator or actor.office == sent.code):
            raise NotFoundError(f"no sent message {message_id}")
        return sent

    def statuses(self, message_id: str, viewer: str | None) -> list[PickupStatus]:
        """Every e-mail recipient of a message the viewer's office sent."""
        now = self.clock.now()
        with self.db.read() as conn:
            self._sender_check(conn, message_id, viewer)
            rows = conn.execute(select(pickups).where(pickups.c.message_id == message_id).order_by(pickups.c.id)).all()
            out = []
            for r in rows:
                replies = conn.execute(select(pickup_replies).where(pickup_replies.c.pickup_id == r.id)
                                       .order_by(pickup_replies.c.id)).all()
                out.append(PickupStatus(
                    id=r.id, message_id=r.message_id, recipient=r.recipient, mobile=r.mobile,
                    created_at=r.created_at, expires_at=r.expires_at, notified_at=r.notified_at,
                    opened_at=r.opened_at, downloaded_at=r.downloaded_at, replied_at=r.replied_at,
                    bounced_at=r.bounced_at, bounce_detail=r.bounce_detail, revoked_at=r.revoked_at,
                    locked_at=r.locked_at, expired=r.revoked_at is None and r.expires_at <= now,
                    replies=tuple(PickupReply(
                        id=p.id, name=p.name, content_type=p.content_type, size=p.size, received_at=p.received_at,
                        comment=self.box.open(p.comment_enc, f"pickup-reply:{r.id}:{p.sha256}").decode()
                        if p.comment_enc else None, message_id=p.inbox_message_id) for p in replies)))
        return out

    def _sender_pickup(self, conn: Connection, pickup_id: int, viewer: str | None) -> Row[Any]:
        row = conn.execute(select(pickups).where(pickups.c.id == pickup_id)).first()
        if row is None:
            raise NotFoundError(f"no pickup {pickup_id}")
        self._sender_check(conn, row.message_id, viewer)
        return row

    def revoke(self, pickup_id: int, viewer: str | None) -> None:
        """The link stops working at once (also for an open session)."""
        now = self.clock.now()
        with self.db.begin() as conn:
            row = self._sender_pickup(conn, pickup_id, viewer)
            conn.execute(update(pickups).where(pickups.c.id == row.id).values(
                revoked_at=row.revoked_at or now, session_hash=None, code_hash=None, code_enc=None))
            self.audit.record(conn, AuditEvent(actor=viewer or "operator", action="pickup.revoked",
                                               object_type="pickup", object_id=str(row.id)), at=now)

    def reopen(self, pickup_id: int, viewer: str | None) -> None:
        """Unlock a link locked by wrong codes (the recipient asks for a fresh code)."""
        now = self.clock.now()
        with self.db.begin() as conn:
            row = self._sender_pickup(conn, pickup_id, viewer)
            conn.execute(update(pickups).where(pickups.c.id == row.id).values(
                locked_at=None, code_tries=0, code_hash=None, code_enc=None))
            self.audit.record(conn, AuditEvent(actor=viewer or "operator", action="pickup.reopened",
                                               object_type="pickup", object_id=str(row.id)), at=now)

    def current_code(self, pickup_id: int, viewer: str | None) -> str | None:
        """The code last mailed, while valid, when the clerk gave a mobile number (to read it out); audited."""
        now = self.clock.now()
        with self.db.begin() as conn:
            row = self._sender_pickup(conn, pickup_id, viewer)
            if (row.code_enc is None or row.code_expires_at is None or row.code_expires_at <= now
                    or row.locked_at is not None):
                return None
            self.audit.record(conn, AuditEvent(actor=viewer or "operator", action="pickup.code_shown",
                                               object_type="pickup", object_id=str(row.id)), at=now)
            return self.box.open(row.code_enc, f"pickup-code:{row.id}").decode()

    def reply_file(self, reply_id: int, viewer: str | None) -> tuple[str, str, bytes]:
        with self.db.read() as conn:
            rep = conn.execute(select(pickup_replies).where(pickup_replies.c.id == reply_id)).first()
            if rep is None:
                raise NotFoundError(f"no reply file {reply_id}")
            self._sender_pickup(conn, rep.pickup_id, viewer)
        return rep.name, rep.content_type, self.blobs.get(rep.sha256)
