"""What the audit log is made of and hands out: entries in their canonical encoding, signed tree heads,
inclusion and consistency proofs, and the report of a verification (RFC 9162, with the node key)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from inkless.audit import merkle
from inkless.audit.merkle import leaf_hash
from inkless.audit.model import AuditEvent
from inkless.errors import ValidationError
from inkless.pki.ca import fingerprint

# Domain separation: a node key signs other things too (federation, directory documents).
TREE_HEAD_CONTEXT = b"inkless-audit-tree-head-v1\x00"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- encodings ------------------------------------------------------------------------------


def canonical_entry(index: int, at: datetime, event: AuditEvent) -> bytes:
    """The exact bytes of an entry: canonical JSON (sorted keys, no spaces, UTF-8)."""
    if at.tzinfo is None:
        raise ValidationError("an audit entry's time must be timezone-aware")
    body: dict[str, Any] = {
        "index": index,
        "at": at.astimezone(UTC).isoformat(),
        "actor": event.actor,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "digests": dict(sorted(event.digests.items())),
        "details": event.details,
    }
    try:
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            f"audit event {event.action!r}: details must be plain JSON values ({exc})"
        ) from None
    return text.encode("utf-8")


def _to_millis(value: datetime) -> int:
    return (value - _EPOCH) // timedelta(milliseconds=1)


def tree_head_bytes(node_id: str, tree_size: int, root_hash: bytes, timestamp: datetime) -> bytes:
    """The bytes a tree head signature covers (documented in docs/audit.md).

    ``context || u8 len(node_id) || node_id (ASCII) || u64 tree_size || u64 timestamp_ms || root_hash``,
    integers big-endian, timestamp in milliseconds since the Unix epoch (UTC).
    """
    node = node_id.encode("ascii")
    if not 0 < len(node) < 256 or len(root_hash) != merkle.HASH_SIZE or tree_size < 0:
        raise ValidationError("malformed tree head")
    return (
        TREE_HEAD_CONTEXT
        + len(node).to_bytes(1, "big")
        + node
        + tree_size.to_bytes(8, "big")
        + _to_millis(timestamp).to_bytes(8, "big")
        + root_hash
    )


# --- what the log hands out -------------------------------------------------------------------


@dataclass(frozen=True)
class TreeHead:
    """A signed tree head: the node vouches that its log had ``tree_size`` entries with ``root_hash``."""

    node_id: str
    tree_size: int
    root_hash: bytes
    timestamp: datetime
    signature: bytes
    certificate_der: bytes

    def signed_bytes(self) -> bytes:
        """The exact bytes the signature covers."""
        return tree_head_bytes(self.node_id, self.tree_size, self.root_hash, self.timestamp)

    @property
    def certificate_pem(self) -> str:
        cert = x509.load_der_x509_certificate(self.certificate_der)
        return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def to_json(self) -> dict[str, Any]:
        """The head as the CLI and the API show it."""
        return {
            "node_id": self.node_id,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "root_hash_base64": base64.b64encode(self.root_hash).decode("ascii"),
            "timestamp": self.timestamp.isoformat(),
            "timestamp_ms": _to_millis(self.timestamp),
            "signature": base64.b64encode(self.signature).decode("ascii"),
            "signature_algorithm": "ecdsa-p256-sha256",
            "certificate": self.certificate_pem,
            "certificate_fingerprint": fingerprint(self.certificate_der),
        }


def verify_tree_head_signature(head: TreeHead) -> bool:
    """True if the head's signature verifies with the public key of its certificate."""
    try:
        key = x509.load_der_x509_certificate(head.certificate_der).public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            return False
        key.verify(head.signature, head.signed_bytes(), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, ValidationError):
        return False
    return True


@dataclass(frozen=True)
class AuditEntry:
    """One stored entry, read back from its hashed bytes (not from the searchable columns)."""

    index: int
    at: datetime
    actor: str
    action: str
    object_type: str | None
    object_id: str | None
    digests: dict[str, str]
    details: dict[str, Any]
    leaf_hash: bytes
    entry: bytes = field(repr=False)

    @classmethod
    def from_bytes(cls, entry: bytes) -> AuditEntry:
        """Parse canonical entry bytes."""
        body = json.loads(entry)
        return cls(
            index=int(body["index"]), at=datetime.fromisoformat(body["at"]), actor=body["actor"],
            action=body["action"], object_type=body["object_type"], object_id=body["object_id"],
            digests=dict(body["digests"]), details=dict(body["details"]), leaf_hash=leaf_hash(entry),
            entry=entry,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index, "at": self.at.isoformat(), "actor": self.actor, "action": self.action,
            "object_type": self.object_type, "object_id": self.object_id, "digests": self.digests,
            "details": self.details, "leaf_hash": self.leaf_hash.hex(),
        }


@dataclass(frozen=True)
class InclusionProof:
    """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``tree_size``."""

    index: int
    tree_size: int
    leaf_hash: bytes
    path: list[bytes]
    root_hash: bytes

    def verify(self) -> bool:
        return merkle.verify_inclusion(self.index, self.tree_size, self.leaf_hash, self.path, self.root_hash)

    def to_json(self) -> dict[str, Any]:
        return {
            "leaf_index": self.index, "tree_size": self.tree_size, "leaf_hash": self.leaf_hash.hex(),
            "audit_path": [h.hex() for h in self.path], "root_hash": self.root_hash.hex(),
        }


@dataclass(frozen=True)
class ConsistencyProof:
    """RFC 9162 consistency proof between the trees of ``first`` and ``second`` entries."""

    first: int
    second: int
    first_root: bytes
    second_root: bytes
    path: list[bytes]

    def verify(self) -> bool:
        return merkle.verify_consistency(
            self.first, self.second, self.first_root, self.second_root, self.path
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "first": self.first, "second": self.second, "first_root_hash": self.first_root.hex(),
            "second_root_hash": self.second_root.hex(), "consistency_path": [h.hex() for h in self.path],
        }


@dataclass(frozen=True)
class VerificationReport:
    """What ``verify()`` checked."""

    entries: int
    tree_heads: int
    subtrees: int
    root_hash: bytes
    latest_head_size: int | None
