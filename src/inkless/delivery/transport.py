"""Seams between delivery and federation: how envelopes reach a peer node, and what we know of peers.

The delivery core codes against these Protocols; the federation package provides the real
implementations (HTTP transport with RFC 9421 signatures, the pinned-peer directory) and the
composition root puts them on ``Node.transport`` / ``Node.peers``. Unit tests use fakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cryptography import x509

from inkless.delivery.faxnote import FaxFirst
from inkless.streams import StoredBody


@dataclass(frozen=True)
class RemoteOffice:
    """An office of a peer node, as published in that node's signed office directory."""

    address: str
    name: str
    fax_number: str | None
    encryption_certificate: x509.Certificate
    signing_certificate: x509.Certificate
    # For pickers: the reading of the name, and the peer's organisation (法務省); absent from older peers.
    kana: str | None = None
    organisation: str | None = None


@runtime_checkable
class PeerTransport(Protocol):
    """Hands envelopes to peer nodes."""

    def deliver(
        self, peer_node_id: str, sender_address: str, recipient_address: str, message_id: str,
        envelope: StoredBody, fax_first: FaxFirst | None = None,
    ) -> bytes:
        """Hand the envelope (read from the blob store in chunks) to the peer; return the receipt (CMS DER).

        ``fax_first``: the disaster fallback already faxed it (the peer marks its inbox copy so).
        Raises PeerUnreachableError (retry later) or DeliveryRejectedError (final).
        """
        ...


@runtime_checkable
class PeerLookup(Protocol):
    """What this node knows about its pinned peers and their offices."""

    def is_pinned(self, node_id: str) -> bool:
        """True if an administrator pinned this node (by URL and CA fingerprint)."""
        ...

    def ca_certificate(self, node_id: str) -> x509.Certificate:
        """The pinned CA certificate of that node: the trust anchor for its envelopes and receipts."""
        ...

    def office(self, address: str) -> RemoteOffice:
        """The office ``code@node`` from the peer's directory; NotFoundError if unknown."""
        ...


def split_address(address: str) -> tuple[str, str]:
    """Split ``office@node`` into (office code, node id); ValidationError if malformed."""
    from inkless.errors import ValidationError

    code, sep, node = address.strip().partition("@")
    if not sep or not code or not node or "@" in node:
        raise ValidationError(f"address {address!r} must look like office-code@node-id")
    return code, node
