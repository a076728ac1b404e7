"""E-mail notices of new inbox items: a user may ask for a short mail, 新着文書があります and a link, when a
document arrives in their office's inbox. No subject, sender or content: the mail only says to look.

A notice is queued in the transaction that stores the inbox item (so it exists exactly when the item
does), through the one mail outbox. At most one notice per user per ``NOTICE_QUIET_MINUTES``: a burst
of arrivals gives one mail, not a flood.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection, and_, delete, insert, select

from inkless.audit.model import AuditEvent
from inkless.db import tables as t
from inkless.db.tables_mail import mail_outbox, user_mail_notices
from inkless.errors import ValidationError
from inkless.mail.address import normalise_email
from inkless.mail.compose import MailContent

if TYPE_CHECKING:
    from inkless.audit.model import AuditRecorder
    from inkless.clock import Clock
    from inkless.config import Settings
    from inkless.db.engine import Database
    from inkless.directory.service import DirectoryService
    from inkless.mail.outbox import MailOutbox

NOTICE_QUIET_MINUTES = 10


@dataclass(frozen=True)
class NoticeSetting:
    """A user's choice: the address notices go to, and whether they want them."""

    login: str
    address: str
    enabled: bool


class InboxNotices:
    """Per-user e-mail notices of new inbox items (see the module docstring)."""

    def __init__(self, settings: Settings, db: Database, clock: Clock, audit: AuditRecorder,
                 directory: DirectoryService, mail: MailOutbox | None) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.audit = audit
        self.directory = directory
        self.mail = mail

    def setting(self, login: str) -> NoticeSetting | None:
        user = self.directory.user(login)
        with self.db.read() as conn:
            row = conn.execute(select(user_mail_notices).where(user_mail_notices.c.user_id == user.id)).first()
        return NoticeSetting(login, row.address, bool(row.enabled)) if row is not None else None

    def set(self, login: str, address: str | None, enabled: bool, actor: str) -> NoticeSetting | None:
        """Turn a user's notices on (to ``address``) or off; None address removes the setting."""
        user = self.directory.user(login)
        now = self.clock.now()
        clean = normalise_email(address) if address else None
        if enabled and clean is None:
            raise ValidationError("give the e-mail address the notices should go to")
        with self.db.begin() as conn:
            conn.execute(delete(user_mail_notices).where(user_mail_notices.c.user_id == user.id))
            if clean is not None:
                conn.execute(insert(user_mail_notices).values(user_id=user.id, address=clean, enabled=enabled,
                                                              updated_at=now))
            self.audit.record(conn, AuditEvent(
                actor=actor, action="user.mail_notice_set", object_type="user", object_id=login,
                details={"enabled": enabled, "domain": clean.rpartition("@")[2] if clean else None}), at=now)
        return NoticeSetting(login, clean, enabled) if clean is not None else None

    def on_received(self, conn: Connection, office_id: int, office_code: str, now: datetime) -> None:
        """Queue a notice for every user of the office who wants one and had none in the quiet period."""
        mail = self.mail
        if mail is None or not mail.enabled:
            return
        rows = conn.execute(select(t.users.c.id, t.users.c.login, user_mail_notices.c.address)
                            .join(user_mail_notices, user_mail_notices.c.user_id == t.users.c.id)
                            .where(t.users.c.office_id == office_id, user_mail_notices.c.enabled.is_(True))).all()
        quiet = now - timedelta(minutes=NOTICE_QUIET_MINUTES)
        link = f"{self.settings.base_url.rstrip('/')}/offices/{office_code}/inbox"
        org = self.settings.organisation or self.settings.node_id
        for row in rows:
            ref = f"inbox-notice:{row.login}"
            recent = conn.execute(select(mail_outbox.c.id).where(and_(
                mail_outbox.c.ref == ref, mail_outbox.c.created_at > quiet))).first()
            if recent is not None:
                continue
            mail.enqueue(conn, kind="inbox.notice", recipient=row.address, ref=ref, content=MailContent(
                subject=f"【{org}】新着文書があります / New document",
                text=(f"新着文書があります。\n\n{link}\n\n"
                      "内容はinklessにログインしてご覧ください。このメールに文書の内容は含まれていません。\n"
                      "通知が不要な場合は、inklessの「メール通知」で止められます。\n\n"
                      "----\nA new document has arrived. Log in to inkless to read it; this mail contains "
                      "nothing of it.\n")))

