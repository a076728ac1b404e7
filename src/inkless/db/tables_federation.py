"""Tables of federation: pinned peer nodes and the request nonces already seen (replay protection)."""

from __future__ import annotations

from sqlalchemy import Column, Index, LargeBinary, String, Table, Text

from inkless.db.tables import metadata
from inkless.db.types import UTCDateTime

# One row per pinned peer node; the CA certificate is the trust anchor for everything that peer signs.
federation_peers = Table(
    "federation_peers",
    metadata,
    Column("node_id", String(32), primary_key=True),
    Column("url", Text, nullable=False),
    Column("ca_der", LargeBinary, nullable=False),
    Column("fingerprint", String(80), nullable=False),
    Column("added_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=True),
    Column("last_error", Text, nullable=True),
    # Set at the first failure after a success, cleared by the next success (the fax fallback reads it).
    Column("unreachable_since", UTCDateTime, nullable=True),
    # The peer's signed office directory (the JWS as received) and when we fetched it.
    Column("directory_jws", Text, nullable=True),
    Column("directory_fetched_at", UTCDateTime, nullable=True),
)

# Nonces of accepted signed requests, kept until their signatures could no longer pass the clock check.
federation_nonces = Table(
    "federation_nonces",
    metadata,
    Column("node_id", String(32), primary_key=True),
    Column("nonce", String(128), primary_key=True),
    Column("expires_at", UTCDateTime, nullable=False),
)
Index("ix_federation_nonces_expires_at", federation_nonces.c.expires_at)
