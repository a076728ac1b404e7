"""The delivery service: send, receive, inbox, open, status, export (implementation in progress)."""

from __future__ import annotations


class DeliveryService:
    """Sends and receives CMS envelopes between offices (local or on pinned peers)."""

    def receive(self, envelope: bytes, sender_address: str, recipient_address: str) -> bytes:
        """Store an envelope for a local office durably and return the signed receipt (CMS DER).

        Idempotent: the same message id with the same envelope returns the same receipt.
        Raises EnvelopeError (garbage, tampered, wrong recipient, bad signer) and ConflictError
        (same message id, different envelope).
        """
        raise NotImplementedError
