"""Domain types of delivery: what callers get back from the delivery service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from inkless.delivery.envelope import Document, MessageMetadata
from inkless.delivery.faxnote import FaxFirst, FaxNote

OUTBOX_STATES = ("queued", "retrying", "delivered", "expired", "rejected", "fax")
SOURCES = ("inkless", "fax")


@dataclass(frozen=True)
class InboxItem:
    """One message in an office's inbox; ``subject`` is None when the viewer is not cleared for it."""

    message_id: str
    office: str
    sender: str
    subject: str | None
    classification: int
    priority: str
    received_at: datetime
    document_count: int
    envelope_sha256: str
    source: str
    authenticated: bool
    opened: bool
    # The sender faxed this message before delivering it (disaster fallback), and our copy of that fax, if any.
    fax_first: FaxFirst | None = None
    fax_copy_message_id: str | None = None


@dataclass(frozen=True)
class RecipientStatus:
    """Where the delivery to one recipient stands (sender side)."""

    recipient: str
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    expires_at: datetime
    delivered_at: datetime | None
    received_at: datetime | None
    has_receipt: bool
    # The disaster fallback: why this recipient is (not) faxed, and how the fax went.
    fax_decision: FaxNote | None = None
    fax_outcome: FaxNote | None = None


@dataclass(frozen=True)
class SentMessage:
    """A message sent by an office of this node, with its per-recipient status."""

    message_id: str
    office: str
    sender_login: str
    subject: str | None
    classification: int
    priority: str
    procedure_code: str | None
    reply_to: str | None
    created_at: datetime
    envelope_sha256: str
    envelope_size: int
    document_count: int
    recipients: tuple[RecipientStatus, ...]


@dataclass(frozen=True)
class OpenedMessage:
    """A decrypted message, in memory only, for an authorised viewer."""

    metadata: MessageMetadata
    documents: list[Document]
    envelope_sha256: str
    signer_address: str
    authenticated: bool
    # "sent" when opened from the sender's copy, "received" from an inbox copy.
    copy: str
    office: str


@dataclass(frozen=True)
class ReceiptInfo:
    """A stored receipt and what its verification says, for reports and exports."""

    recipient: str
    receipt: bytes
    received_at: datetime | None
    signer_address: str | None
    status: str  # "valid" or the reason it is not


@dataclass(frozen=True)
class DistributionList:
    """A named set of addresses (the broadcast fax of disaster response)."""

    name: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class OutboxRow:
    """One outbox row, for operators (``inkless outbox``)."""

    message_id: str
    recipient: str
    state: str
    priority: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    expires_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True)
class PassResult:
    """What one outbox pass did."""

    delivered: int = 0
    retrying: int = 0
    expired: int = 0
    rejected: int = 0

    @property
    def total(self) -> int:
        return self.delivered + self.retrying + self.expired + self.rejected
