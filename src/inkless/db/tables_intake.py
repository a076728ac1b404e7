"""Tables of the public intake window (受付窓口) and of fax invitations.

Personal data from the public (name, e-mail address, phone, message) never sits in clear in the
database: the form travels in an encrypted blob and into the office's encrypted envelope; the
e-mail address a code or receipt belongs to is sealed under the node master key (``email_enc``).
Codes and browser tokens are stored only as hashes.
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
)

from inkless.db.tables import BLOB, metadata
from inkless.db.types import UTCDateTime

# One row per office that has (or had) a window: open or closed, and its limits.
intake_windows = Table(
    "intake_windows",
    metadata,
    Column("office_id", Integer, ForeignKey("offices.id"), primary_key=True),
    Column("is_open", Boolean, nullable=False),
    Column("max_files", Integer, nullable=False),
    Column("max_file_bytes", Integer, nullable=False),
    Column("max_pages", Integer, nullable=False),
    Column("max_pixels", Integer, nullable=False),
    # The office's procedures offered in the form, one per line (used when the node has no catalogue).
    Column("procedures", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(64), nullable=False),
)

# A one-time e-mail code: to accept a submission ("submit") or to show a receipt's status ("status").
intake_codes = Table(
    "intake_codes",
    metadata,
    # SHA-256 of the browser's token (the hidden field of the code page).
    Column("token_hash", String(64), primary_key=True),
    Column("purpose", String(8), nullable=False),
    Column("office_id", Integer, ForeignKey("offices.id"), nullable=False),
    Column("email_enc", LargeBinary, nullable=True),
    Column("code_hash", String(64), nullable=False),
    Column("tries", Integer, nullable=False),
    Column("state", String(10), nullable=False),
    # The form and its checked files (encrypted blob); only for "submit".
    Column("payload_blob", String(64), nullable=True, info=BLOB),
    Column("receipt_number", String(32), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    CheckConstraint("purpose IN ('submit', 'status')", name="purpose"),
    CheckConstraint("state IN ('pending', 'accepted', 'locked', 'void')", name="state"),
)
Index("ix_intake_codes_expires_at", intake_codes.c.expires_at)

# An accepted submission: its receipt number, where it went, and the sealed 受付証明.
intake_submissions = Table(
    "intake_submissions",
    metadata,
    Column("receipt_number", String(32), primary_key=True),
    Column("office_id", Integer, ForeignKey("offices.id"), nullable=False),
    Column("message_id", String(36), nullable=False),
    Column("email_enc", LargeBinary, nullable=False),
    Column("certificate_blob", String(64), nullable=False, info=BLOB),
    Column("file_count", Integer, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
    # Keyed digests of the phone number and e-mail address (inkless.intake.contacts), to tell whether a
    # remote fax number has since used the window; NULL for submissions made before they were kept.
    Column("phone_digest", String(64), nullable=True),
    Column("email_digest", String(64), nullable=True),
    # The invitation whose link (printed on the invitation fax) the submitter came by, if any.
    Column("invitation_id", Integer, nullable=True),
)
Index("ix_intake_submissions_office_id_received_at", intake_submissions.c.office_id,
      intake_submissions.c.received_at)
Index("ix_intake_submissions_phone_digest", intake_submissions.c.phone_digest)
Index("ix_intake_submissions_email_digest", intake_submissions.c.email_digest)
Index("ix_intake_submissions_invitation_id", intake_submissions.c.invitation_id)

# Who was invited to the intake window by fax: the number, the office, when, by whom, and the fax job.
fax_invitations = Table(
    "fax_invitations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("office_id", Integer, ForeignKey("offices.id"), nullable=False),
    Column("number", String(32), nullable=False),
    Column("invited_at", UTCDateTime, nullable=False),
    Column("invited_by", String(64), nullable=False),
    Column("fax_job_id", Integer, nullable=True),
    # Where the clerk pressed the button: a received fax call or an inbox message.
    Column("source", String(16), nullable=False),
    Column("source_ref", String(64), nullable=True),
    # The code in the invitation's link (/i/OFFICE?via=CODE): a submission that came by it names the invitation.
    Column("code", String(16), nullable=True),
    CheckConstraint("source IN ('fax_call', 'message', 'cli')", name="source"),
)
Index("ix_fax_invitations_number", fax_invitations.c.number)
Index("ix_fax_invitations_code", fax_invitations.c.code, unique=True)
Index("ix_fax_invitations_office_id_invited_at", fax_invitations.c.office_id, fax_invitations.c.invited_at)
