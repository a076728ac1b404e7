"""Tables of the delivery feature: sent messages, the outbox, inboxes and distribution lists.

Metadata confidentiality: envelopes live in the blob store (CMS EnvelopedData, so encrypted at
rest by construction). The database keeps only what listing and routing need in clear: message
id, addresses, classification, priority, sizes, digests and times. The subject is needed for
listing but may itself be sensitive, so it is stored sealed under the node master key
(``subject_enc``, AES-256-GCM as for TOTP secrets): a stolen database or backup does not reveal
it, and it is shown only to viewers cleared for the message's classification.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from inkless.db.tables import BLOB, metadata
from inkless.db.types import UTCDateTime

# A message sent by an office of this node (the sender's copy); one row per message.
messages = Table(
    "messages",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("office_id", Integer, ForeignKey("offices.id"), nullable=False),
    Column("sender_login", String(64), nullable=False),
    Column("classification", Integer, nullable=False),
    Column("priority", String(8), nullable=False),
    Column("procedure_code", String(64), nullable=True),
    Column("reply_to", String(36), nullable=True),
    Column("subject_enc", LargeBinary, nullable=False),
    Column("envelope_sha256", String(64), nullable=False, info=BLOB),
    Column("envelope_size", Integer, nullable=False),
    Column("document_count", Integer, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("classification BETWEEN 0 AND 3", name="classification"),
    CheckConstraint("priority IN ('normal', 'urgent')", name="priority"),
)
Index("ix_messages_office_id_created_at", messages.c.office_id, messages.c.created_at)
Index("ix_messages_reply_to", messages.c.reply_to)

# One row per recipient of a sent message: the delivery state machine.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("message_id", String(36), ForeignKey("messages.id"), nullable=False),
    Column("recipient", String(200), nullable=False),
    Column("node_id", String(64), nullable=False),
    # 0 = urgent, 1 = normal: claimed in ascending order.
    Column("priority", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    # Also the claim lease: a claimed row's next attempt is pushed out while it is in flight.
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("receipt", LargeBinary, nullable=True),
    Column("received_at", UTCDateTime, nullable=True),
    Column("delivered_at", UTCDateTime, nullable=True),
    Column("updated_at", UTCDateTime, nullable=False),
    # The disaster fallback's decision for this row and the fax's outcome, kept apart from last_error so that
    # electronic retries never overwrite them: a reason code and its parameters (JSON), rendered per language.
    Column("fax_decision", String(32), nullable=True),
    Column("fax_decision_params", Text, nullable=True),
    Column("fax_outcome", String(16), nullable=True),
    Column("fax_outcome_params", Text, nullable=True),
    Column("fax_updated_at", UTCDateTime, nullable=True),
    UniqueConstraint("message_id", "recipient", name="uq_outbox_message_recipient"),
    CheckConstraint("state IN ('queued', 'retrying', 'delivered', 'expired', 'rejected', 'fax')", name="state"),
)
Index("ix_outbox_state_next_attempt_at", outbox.c.state, outbox.c.priority, outbox.c.next_attempt_at)

# A message received by an office of this node (from a peer, a local office or a bridge).
inbox = Table(
    "inbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("message_id", String(36), nullable=False),
    Column("office_id", Integer, ForeignKey("offices.id"), nullable=False),
    Column("sender", String(200), nullable=False),
    Column("classification", Integer, nullable=False),
    Column("priority", String(8), nullable=False),
    Column("subject_enc", LargeBinary, nullable=False),
    Column("envelope_sha256", String(64), nullable=False, info=BLOB),
    Column("envelope_size", Integer, nullable=False),
    Column("document_count", Integer, nullable=False),
    Column("source", String(16), nullable=False),
    # False for bridge deposits (fax): nobody signed them on the sender's side.
    Column("authenticated", Boolean, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    # The receipt we issued; NULL only between storing the envelope and signing the receipt.
    Column("receipt", LargeBinary, nullable=True),
    Column("opened_at", UTCDateTime, nullable=True),
    # The sender's node faxed this message before it could deliver it (disaster fallback): what it says it
    # faxed (JSON: number, sending number, time, pages, fax job), and our own inbox copy of that fax if we
    # received it on this node's fax line.
    Column("fax_first", Text, nullable=True),
    Column("fax_copy_message_id", String(36), nullable=True),
    # The procedure the sender named (metrics count the message against it).
    Column("procedure_code", String(64), nullable=True),
    # The message this one answers (from the signed envelope): the conversation of a message is the
    # sent and received rows whose reply_to is its id.
    Column("reply_to", String(36), nullable=True),
    UniqueConstraint("message_id", "office_id", name="uq_inbox_message_office"),
    # pickup: files an e-mail recipient sent back through a secure pickup link (a reply to a sent message).
    CheckConstraint("source IN ('inkless', 'fax', 'intake', 'pickup')", name="source"),
)
Index("ix_inbox_office_id_received_at", inbox.c.office_id, inbox.c.received_at)
Index("ix_inbox_reply_to", inbox.c.reply_to)
# Unread counts per office and folder (fax / digital) read only the unread rows.
Index("ix_inbox_unread", inbox.c.office_id, inbox.c.source,
      sqlite_where=inbox.c.opened_at.is_(None), postgresql_where=inbox.c.opened_at.is_(None))

distribution_lists = Table(
    "distribution_lists",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
)

distribution_list_members = Table(
    "distribution_list_members",
    metadata,
    Column("list_id", Integer, ForeignKey("distribution_lists.id", ondelete="CASCADE"), primary_key=True),
    Column("address", String(200), primary_key=True),
)
