"""The seam through which the intake window sends e-mail: codes and receipts.

The intake service hands each mail to a :class:`Mailer`; the node's mailer (:class:`OutboxMailer`)
puts it into the durable mail outbox (retries, expiry, SMTP), never sends from the web request. A
node without mail settings (no ``smtp_url``) refuses submissions with a clear reason rather than
losing codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from inkless.errors import MailUnavailableError

if TYPE_CHECKING:
    from inkless.mail.outbox import MailOutbox


@dataclass(frozen=True)
class OutgoingMail:
    """One mail to one address: Japanese and English in one body. Nothing is attached (脱PPAP): the
    受付証明 is downloaded from the status page after a fresh code."""

    to: str
    subject: str
    text: str
    purpose: str = "intake"  # the outbox's kind: intake.code, intake.receipt, intake.status
    ref: str | None = None  # the receipt number, once there is one


class Mailer(Protocol):
    """Queues a mail for delivery (durably: it survives a restart before it is sent)."""

    def send(self, mail: OutgoingMail) -> None: ...


NO_MAIL = "This window cannot send e-mail at the moment. Please try again later or contact the office."


class OutboxMailer:
    """Queues intake mails in the node's mail outbox, in a transaction of their own (kind = purpose)."""

    def __init__(self, outbox: MailOutbox) -> None:
        self.outbox = outbox

    def send(self, mail: OutgoingMail) -> None:
        from inkless.mail.compose import MailContent, text_to_html

        if not self.outbox.enabled:
            raise MailUnavailableError(NO_MAIL)
        with self.outbox.db.begin() as conn:
            self.outbox.enqueue(conn, kind=mail.purpose[:32], recipient=mail.to,
                                content=MailContent(mail.subject, mail.text, text_to_html(mail.text)), ref=mail.ref)


class NoMailer:
    """The mailer of a node without a mail outbox: every submission is refused with a clear reason."""

    def send(self, mail: OutgoingMail) -> None:
        raise MailUnavailableError(NO_MAIL)
