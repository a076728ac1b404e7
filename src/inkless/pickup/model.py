"""What a sender gives for an e-mail recipient (secure pickup), and how addresses are told apart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from inkless.errors import ValidationError
from inkless.mail.address import normalise_email

MAX_MOBILE = 32


@dataclass(frozen=True)
class NewPickup:
    """An e-mail recipient given when sending."""

    address: str
    mobile: str | None = None


def split_recipients(addresses: Sequence[str]) -> tuple[list[str], list[str]]:
    """Office addresses (``code@node``) and e-mail addresses (a domain with a dot) apart, order kept."""
    offices, emails = [], []
    for a in addresses:
        a = a.strip()
        if not a:
            continue
        if "@" in a and "." in a.rpartition("@")[2]:
            emails.append(normalise_email(a))
        else:
            offices.append(a)
    return offices, emails


def check_mobile(text: str | None) -> str | None:
    """A mobile number as typed (digits, spaces, hyphens, brackets, a leading +), or None."""
    if text is None or not text.strip():
        return None
    clean = text.strip()
    if len(clean) > MAX_MOBILE or not all(c.isdigit() or c in " -()+" for c in clean):
        raise ValidationError("the mobile number may contain only digits, spaces, hyphens and brackets")
    return clean
