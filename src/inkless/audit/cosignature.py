"""Cosignatures of audit tree heads, and tree heads as peers publish them: the wire formats of witnessing.

Cosignature bytes (ECDSA P-256 with SHA-256 by the witness's node key)::

    b"inkless-audit-cosignature-v1\\0" || u8 len(witness id) || witness id (ASCII)
    || u64 cosigned_at_ms || the tree head's signed bytes (docs/audit.md)

Split from :mod:`inkless.audit.witness` (the service that fetches, checks, cosigns and compares heads):
what the bytes are and how they are read, with nothing of the database or the network.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from inkless.audit import merkle
from inkless.audit.log import TreeHead, tree_head_bytes
from inkless.errors import ValidationError
from inkless.federation.httpsig import SignatureError

COSIGNATURE_CONTEXT = b"inkless-audit-cosignature-v1\x00"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _millis(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(milliseconds=1)


def _from_millis(value: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=value)


def cosignature_bytes(witness_id: str, cosigned_at: datetime, head: bytes) -> bytes:
    """The bytes a cosignature covers: context, witness id, time, and the cosigned head's signed bytes."""
    witness = witness_id.encode("ascii")
    if not 0 < len(witness) < 256:
        raise ValidationError("malformed witness id")
    return (COSIGNATURE_CONTEXT + len(witness).to_bytes(1, "big") + witness
            + _millis(cosigned_at).to_bytes(8, "big") + head)


@dataclass(frozen=True)
class Cosignature:
    """A witness's signature over one tree head of ``log_id``'s audit log."""

    witness_id: str
    log_id: str
    tree_size: int
    root_hash: bytes
    head_timestamp: datetime
    cosigned_at: datetime
    signature: bytes
    certificate_der: bytes

    def signed_bytes(self) -> bytes:
        head = tree_head_bytes(self.log_id, self.tree_size, self.root_hash, self.head_timestamp)
        return cosignature_bytes(self.witness_id, self.cosigned_at, head)

    def verify(self, ca: x509.Certificate, now: datetime) -> None:
        """Raise SignatureError unless the signature verifies with a node certificate of the witness under ``ca``."""
        from inkless.federation.documents import check_node_certificate

        try:
            cert = x509.load_der_x509_certificate(self.certificate_der)
        except (ValueError, x509.InvalidVersion):
            raise SignatureError("the cosignature's certificate is not a DER certificate") from None
        check_node_certificate(cert, ca, now)
        key = cert.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)  # checked by check_node_certificate
        try:
            key.verify(self.signature, self.signed_bytes(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise SignatureError(f"the cosignature of {self.witness_id} does not verify") from None

    def to_json(self) -> dict[str, Any]:
        return {
            "witness": self.witness_id,
            "log": self.log_id,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "head_timestamp_ms": _millis(self.head_timestamp),
            "cosigned_at": self.cosigned_at.isoformat(),
            "cosigned_at_ms": _millis(self.cosigned_at),
            "signature": base64.b64encode(self.signature).decode("ascii"),
            "signature_algorithm": "ecdsa-p256-sha256",
            "certificate": base64.b64encode(self.certificate_der).decode("ascii"),
        }

    @classmethod
    def from_json(cls, value: Any) -> Cosignature:
        """Parse what :meth:`to_json` wrote; ValidationError for anything else."""
        try:
            if not isinstance(value, Mapping):
                raise TypeError
            tree_size = value["tree_size"]
            head_ms = value["head_timestamp_ms"]
            cosigned_ms = value["cosigned_at_ms"]
            if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                       for v in (tree_size, head_ms, cosigned_ms)):
                raise TypeError
            root = bytes.fromhex(str(value["root_hash"]))
            if len(root) != merkle.HASH_SIZE:
                raise ValueError
            return cls(
                witness_id=str(value["witness"]), log_id=str(value["log"]), tree_size=tree_size,
                root_hash=root, head_timestamp=_from_millis(head_ms), cosigned_at=_from_millis(cosigned_ms),
                signature=base64.b64decode(str(value["signature"]), validate=True),
                certificate_der=base64.b64decode(str(value["certificate"]), validate=True),
            )
        except (KeyError, TypeError, ValueError, binascii.Error, OverflowError):
            raise ValidationError("malformed cosignature") from None


def parse_tree_head(value: Any) -> TreeHead:
    """A tree head as ``GET /api/v1/audit/tree-head`` answers it; ValidationError if malformed."""
    try:
        if not isinstance(value, Mapping):
            raise TypeError
        size, stamp = value["tree_size"], value["timestamp_ms"]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (size, stamp)):
            raise TypeError
        root = bytes.fromhex(str(value["root_hash"]))
        if len(root) != merkle.HASH_SIZE:
            raise ValueError
        cert = x509.load_pem_x509_certificate(str(value["certificate"]).encode("ascii"))
        return TreeHead(
            node_id=str(value["node_id"]), tree_size=size, root_hash=root, timestamp=_from_millis(stamp),
            signature=base64.b64decode(str(value["signature"]), validate=True),
            certificate_der=cert.public_bytes(serialization.Encoding.DER),
        )
    except (KeyError, TypeError, ValueError, binascii.Error, OverflowError, UnicodeEncodeError):
        raise ValidationError("malformed tree head") from None
