"""Witnessed audit heads: what this node cosigned for its peers, and the cosignatures peers gave it."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, String, Table, Text

from inkless.db.tables import metadata
from inkless.db.types import UTCDateTime

# As a witness: every tree head of a pinned peer that this node checked and cosigned. The newest
# one per peer is the point the peer's next head must extend (by a consistency proof).
witnessed_heads = Table(
    "witnessed_heads",
    metadata,
    Column("peer_node_id", String(64), primary_key=True),
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("head_timestamp", UTCDateTime, nullable=False),
    Column("head_signature", LargeBinary, nullable=False),
    Column("head_certificate", LargeBinary, nullable=False),
    Column("cosigned_at", UTCDateTime, nullable=False),
    Column("cosignature", LargeBinary, nullable=False),
    Column("cosignature_certificate", LargeBinary, nullable=False),  # this node's, when it cosigned
    # When the peer accepted our cosignature (None: not yet delivered).
    Column("delivered_at", UTCDateTime, nullable=True),
)

# As a witness: heads a peer offered that did not extend what this node had cosigned, or did not verify.
# One row per distinct offence; a peer repeating the same one only moves last_seen_at and count.
witness_refusals = Table(
    "witness_refusals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("peer_node_id", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("held_size", BigInteger, nullable=True),
    Column("held_root", LargeBinary(32), nullable=True),
    Column("offered_size", BigInteger, nullable=True),
    Column("offered_root", LargeBinary(32), nullable=True),
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("count", Integer, nullable=False),
)
Index("ix_witness_refusals_peer", witness_refusals.c.peer_node_id, witness_refusals.c.last_seen_at)

# As a witnessed log: cosignatures this node's peers returned for its own tree heads.
audit_cosignatures = Table(
    "audit_cosignatures",
    metadata,
    Column("witness_node_id", String(64), primary_key=True),
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("head_timestamp", UTCDateTime, nullable=False),
    Column("cosigned_at", UTCDateTime, nullable=False),
    Column("signature", LargeBinary, nullable=False),
    Column("certificate", LargeBinary, nullable=False),
    Column("received_at", UTCDateTime, nullable=False),
)
