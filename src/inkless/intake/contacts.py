"""Keyed digests of a submitter's phone number and e-mail address, to recognise a remote fax number later.

The window keeps no contact data of the public in clear. To tell whether a number that still faxes
has since used the window, each submission stores an HMAC-SHA-256 (key derived from the node master
key) of the phone number as fax numbers are compared (digits only, +81 as 0) and of the e-mail
address (domain and local part in lower case). A digest matches only on the node that made it and
cannot be reversed by trying every phone number without the master key.
"""

from __future__ import annotations

import hashlib
import hmac

from inkless.fax.routing import normalise_number
from inkless.intake.model import normalise_email
from inkless.pki.keystore import SecretBox

PURPOSE = "inkless/intake-contact-digest"


class ContactDigests:
    """Digests of phone numbers and e-mail addresses under one node's key."""

    def __init__(self, box: SecretBox) -> None:
        self._key = box.derive_key(PURPOSE)

    def _digest(self, kind: str, value: str) -> str:
        return hmac.new(self._key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    def phone(self, number: str | None) -> str | None:
        """The digest of a phone or fax number (None when it has no digits)."""
        normalised = normalise_number(number)
        return self._digest("phone", normalised) if normalised.strip("+") else None

    def email(self, address: str | None) -> str | None:
        """The digest of an e-mail address (None when empty)."""
        text = (address or "").strip()
        return self._digest("email", normalise_email(text).lower()) if text else None
