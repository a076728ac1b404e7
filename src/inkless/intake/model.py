"""Domain types of the intake window: the window, a submitter's form, codes, receipts, status."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from inkless.errors import ValidationError
from inkless.text import check_text

OTHER_PROCEDURE = "その他"
EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
PHONE_RE = re.compile(r"^\+?[0-9][0-9 ()-]{5,24}$")
# The code of an invitation's link, as the invitation fax prints it (/i/OFFICE?via=CODE).
VIA_RE = re.compile(r"^[A-Za-z0-9_-]{8,16}$")


def checked_via(text: str | None) -> str:
    """The invitation code of a link, or "" for none or anything else."""
    text = (text or "").strip()
    return text if VIA_RE.match(text) else ""

# Messages people see (the web UI translates them; English msgids).
NEED_NAME = "Please enter your name."
NEED_EMAIL = "Please enter a valid e-mail address."
BAD_PHONE = "The phone number may contain only digits, spaces, hyphens and brackets."
NEED_SUBJECT = "Please enter a subject."
BAD_PROCEDURE = "Please choose a procedure from the list."
TOO_LONG = "One of the fields is too long."
NEED_FILES = "Please attach at least one file."
TOO_MANY_FILES = "Too many files for this window."


@dataclass(frozen=True)
class IntakeWindow:
    """An office's public window: open or closed, its limits and its procedures."""

    office_code: str
    office_name: str
    is_open: bool
    max_files: int = 5
    max_file_bytes: int = 10 * 1024 * 1024
    max_pages: int = 100
    max_pixels: int = 40_000_000
    procedures: tuple[str, ...] = ()

    @property
    def choices(self) -> tuple[str, ...]:
        """The procedures offered in the form: the office's list, then その他."""
        return (*(p for p in self.procedures if p != OTHER_PROCEDURE), OTHER_PROCEDURE)


@dataclass(frozen=True)
class IntakeForm:
    """What a submitter typed."""

    name: str
    email: str
    subject: str
    procedure: str
    message: str = ""
    organisation: str = ""
    phone: str = ""

    def checked(self, window: IntakeWindow) -> IntakeForm:
        """The form normalised (NFC, trimmed); ValidationError for a missing, malformed or unsafe field."""
        name = check_text(self.name, "name").strip()
        organisation = check_text(self.organisation, "organisation").strip()
        email = self.email.strip()
        phone = self.phone.strip()
        subject = check_text(self.subject, "subject").strip()
        procedure = check_text(self.procedure, "procedure").strip() or OTHER_PROCEDURE
        message = check_text(self.message, "message", multiline=True).strip()
        if not name:
            raise ValidationError(NEED_NAME)
        if len(email) > 254 or not EMAIL_RE.match(email):
            raise ValidationError(NEED_EMAIL)
        if phone and not PHONE_RE.match(phone):
            raise ValidationError(BAD_PHONE)
        if not subject:
            raise ValidationError(NEED_SUBJECT)
        if procedure not in window.choices:
            raise ValidationError(BAD_PROCEDURE)
        if len(name) > 100 or len(organisation) > 200 or len(subject) > 200 or len(message) > 4000:
            raise ValidationError(TOO_LONG)
        return IntakeForm(name, email, subject, procedure, message, organisation, phone)


def normalise_email(address: str) -> str:
    """The form of an address that is compared and counted (domain in lower case, local part as typed)."""
    local, _, domain = address.strip().rpartition("@")
    return f"{local}@{domain.lower()}"


def mask_email(address: str) -> str:
    """``ta***@example.jp``: enough for the submitter to recognise, not to read out."""
    local, _, domain = address.rpartition("@")
    return f"{local[:2]}***@{domain}"


@dataclass(frozen=True)
class PendingCode:
    """A code was mailed (or, for a status check that matched nothing, seems to have been)."""

    token: str
    masked_email: str
    expires_at: datetime


@dataclass(frozen=True)
class AcceptedSubmission:
    """A submission the office now has: its receipt number and the sealed 受付証明."""

    receipt_number: str
    office_code: str
    office_name: str
    received_at: datetime
    message_id: str
    file_count: int
    certificate: bytes


@dataclass(frozen=True)
class SubmissionStatus:
    """What the submitter may know about a receipt: when it arrived and whether a clerk has opened it."""

    receipt_number: str
    office_name: str
    received_at: datetime
    opened_at: datetime | None
    file_count: int


@dataclass(frozen=True)
class Invitation:
    """A fax sender invited to the intake window."""

    id: int
    office_code: str
    number: str
    invited_at: datetime
    invited_by: str
    fax_job_id: int | None
    source: str
    code: str | None = None  # the code of its link (/i/OFFICE?via=CODE)


def email_context(key: str) -> str:
    """The SecretBox context of a stored e-mail address (bound to its code token or receipt number)."""
    return f"intake-email:{key}"
