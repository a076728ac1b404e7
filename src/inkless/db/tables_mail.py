"""The mail outbox: every e-mail a node sends (notices, one-time codes), queued durably and sent by workers.

The composed message (headers and body) is stored sealed under the node master key, as subjects are
(see tables_delivery): a code mail must not be readable from a stolen database or backup. Once a mail
has been sent, has failed for good or has expired, its body is erased; the row keeps only what the
sender's status pages need (recipient, kind, reference, state, times, the server's answer).
"""

from __future__ import annotations

from sqlalchemy import Boolean, CheckConstraint, Column, ForeignKey, Index, Integer, LargeBinary, String, Table, Text

from inkless.db.tables import metadata
from inkless.db.types import UTCDateTime

mail_outbox = Table(
    "mail_outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    # What the mail is for (``pickup.notice``, ``pickup.code``, ``inbox.notice`` …) and the domain object
    # it belongs to (``pickup:42``): the caller reads the mail's state by this reference.
    Column("kind", String(32), nullable=False),
    Column("ref", String(100), nullable=True),
    Column("recipient", String(254), nullable=False),
    Column("message_id", String(200), nullable=False, unique=True),
    Column("body_enc", LargeBinary, nullable=True),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    # Also the claim lease: a claimed row's next attempt is pushed out while it is in flight.
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    # The SMTP server's last reply code and text (or the connection error) for the sender to read.
    Column("smtp_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    CheckConstraint("state IN ('queued', 'retrying', 'sent', 'failed', 'expired')", name="state"),
)
Index("ix_mail_outbox_state_next_attempt_at", mail_outbox.c.state, mail_outbox.c.next_attempt_at)
Index("ix_mail_outbox_ref", mail_outbox.c.ref)

# A user's optional e-mail notice of new inbox items (issue: 新着文書があります + a link, no content).
user_mail_notices = Table(
    "user_mail_notices",
    metadata,
    Column("user_id", Integer, ForeignKey("users.id"), primary_key=True),
    Column("address", String(254), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
