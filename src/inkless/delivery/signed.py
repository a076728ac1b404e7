"""What a verified CMS SignedData tells: its content, who signed it (an ``office@node`` address) and when.

Shared by :mod:`inkless.delivery.envelope` (building and reading envelopes) and
:mod:`inkless.delivery.cms_verify` (checking their signatures with pyHanko), so that neither
imports the other at module level.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509

OFFICE_URN_PREFIX = "urn:inkless:office:"
# Clock skew we tolerate between nodes when checking a signing time against the certificate.
CLOCK_SKEW = timedelta(minutes=10)


@dataclass(frozen=True)
class SignedContent:
    """What a verified CMS SignedData carried, and who signed it when."""

    content: bytes
    signer: x509.Certificate
    signer_address: str
    signing_time: datetime | None


def office_address(certificate: x509.Certificate) -> str | None:
    """The ``office@node`` address in a certificate's SAN (urn:inkless:office:…), if any."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
        if uri.startswith(OFFICE_URN_PREFIX):
            return str(uri[len(OFFICE_URN_PREFIX):])
    return None
