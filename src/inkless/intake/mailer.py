"""The seam through which the intake window sends e-mail: codes and receipts.

The intake service hands each mail to a :class:`Mailer`; the node's mailer puts it into the durable
mail outbox (retries, expiry, SMTP), never sends from the web request. A node without mail settings
has :class:`NoMailer`: the window then says it cannot take submissions rather than losing codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from inkless.errors import ConfigurationError


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


class NoMailer:
    """The mailer of a node without mail settings: every submission is refused with a clear reason."""

    def send(self, mail: OutgoingMail) -> None:
        raise ConfigurationError("this node sends no e-mail (smtp_url is not set): the intake window cannot "
                                 "send codes")
