"""Delivery receipts: CMS SignedData by the receiving office over what it stored and when."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509

from inkless.delivery import envelope as env
from inkless.errors import EnvelopeError


@dataclass(frozen=True)
class ReceiptFacts:
    """What a receipt proves: this recipient stored this exact envelope at this time."""

    message_id: str
    envelope_sha256: str
    recipient: str
    received_at: datetime

    def canonical_json(self) -> bytes:
        """Sorted keys, no whitespace, UTF-8: the same facts always give the same bytes."""
        return json.dumps(
            {
                "message_id": self.message_id,
                "envelope_sha256": self.envelope_sha256,
                "recipient": self.recipient,
                "received_at": self.received_at.isoformat(),
            },
            sort_keys=True, separators=(",", ":"), ensure_ascii=False,
        ).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> ReceiptFacts:
        try:
            raw: dict[str, Any] = json.loads(data)
            facts = cls(
                message_id=str(raw["message_id"]),
                envelope_sha256=str(raw["envelope_sha256"]),
                recipient=str(raw["recipient"]),
                received_at=datetime.fromisoformat(str(raw["received_at"])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EnvelopeError(f"the receipt content is not the expected JSON ({exc})") from None
        if facts.canonical_json() != data:
            raise EnvelopeError("the receipt content is not in canonical form")
        return facts


@dataclass(frozen=True)
class VerifiedReceipt:
    """A receipt whose signature checked out, with its signer."""

    facts: ReceiptFacts
    signer_address: str


def make_receipt(facts: ReceiptFacts, key: Any, certificate: x509.Certificate,
                 chain: Sequence[x509.Certificate]) -> bytes:
    """Sign the receipt facts with the receiving office's signing key."""
    return env.sign(facts.canonical_json(), key, certificate, chain)


def verify_receipt(
    receipt: bytes,
    trust_anchor: x509.Certificate,
    now: datetime,
    *,
    message_id: str,
    envelope_sha256: str,
    recipient: str,
    is_revoked: Callable[[x509.Certificate], bool] | None = None,
) -> VerifiedReceipt:
    """Check a receipt's signature (by ``recipient``, under its node CA) and that it is for this envelope."""
    signed = env.verify(receipt, trust_anchor, now, expected_signer=recipient, is_revoked=is_revoked)
    facts = ReceiptFacts.from_json(signed.content)
    if facts.message_id != message_id:
        raise EnvelopeError(f"the receipt is for message {facts.message_id}, not {message_id}")
    if facts.envelope_sha256 != envelope_sha256:
        raise EnvelopeError("the receipt names a different envelope digest: the peer stored other bytes")
    if facts.recipient != recipient:
        raise EnvelopeError(f"the receipt is for {facts.recipient}, not {recipient}")
    return VerifiedReceipt(facts=facts, signer_address=signed.signer_address)
