"""E-mail addresses typed by clerks and the public: one plain ``local@domain``, checked before anything is queued."""

from __future__ import annotations

import re

from inkless.errors import ValidationError

# Deliberately narrower than RFC 5321: ASCII only (the outbox does not use SMTPUTF8), no quoted local
# parts, no IP literals, a domain with at least one dot. What a municipal form would accept.
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"{_LOCAL}@{_LABEL}(?:\.{_LABEL})+")


def looks_like_email(text: str) -> bool:
    """True for text shaped like an e-mail address (to tell ``taro@example.co.jp`` from ``office@node``)."""
    try:
        normalise_email(text)
    except ValidationError:
        return False
    return True


def normalise_email(text: str) -> str:
    """The address with surrounding blanks removed and the domain lower-cased; ValidationError if malformed."""
    address = text.strip()
    if len(address) > 254 or not _ADDRESS.fullmatch(address):
        raise ValidationError(f"not a valid e-mail address: {address[:80]!r} (expected name@example.jp)")
    local, _, domain = address.rpartition("@")
    if len(local) > 64:
        raise ValidationError(f"not a valid e-mail address: {address[:80]!r} (the part before @ is too long)")
    return f"{local}@{domain.lower()}"
