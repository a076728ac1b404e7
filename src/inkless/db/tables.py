"""Every table of a node, as SQLAlchemy Core.

The schema is owned by the Alembic migrations in ``migrations/versions``; this
module must describe exactly what they create (a test compares the two on
SQLite and PostgreSQL).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from inkless.db.types import UTCDateTime

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

# Marks a column that holds a blob address (hex SHA-256): ``Column(..., info=BLOB)``. The blob
# garbage collector keeps every blob some marked column names, and deletes the rest after a grace period.
BLOB = {"blob": True}


# Small facts about the node itself: node id, when it was initialised, CA fingerprint.
node_meta = Table(
    "node_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

offices = Table(
    "offices",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("fax_number", String(32), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    # The reading of the name in katakana (ミンジキョク), for pickers that find offices by kana.
    Column("kana", String(200), nullable=True),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("login", String(64), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False),
    # The reading of the name in katakana (タナカ ハナコ), for pickers that find people by kana.
    Column("kana", String(200), nullable=True),
    Column("office_id", Integer, ForeignKey("offices.id"), nullable=False),
    Column("role", String(16), nullable=False),
    Column("clearance", Integer, nullable=False),
    Column("password_hash", String(255), nullable=False),
    # TOTP secret, AES-GCM encrypted under the node master key (see pki.keystore).
    Column("totp_secret_enc", LargeBinary, nullable=False),
    Column("totp_confirmed", Boolean, nullable=False, default=False),
    # Highest TOTP time step accepted so far: a code is never accepted twice.
    Column("totp_last_step", BigInteger, nullable=False, default=0),
    Column("must_change_password", Boolean, nullable=False, default=True),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", UTCDateTime, nullable=False),
    # The end of the user's last completed login (password and one-time code), for administrators.
    Column("last_login_at", UTCDateTime, nullable=True),
    # Set while an administrator has locked the account: no login, no API token, sessions ended.
    Column("locked_at", UTCDateTime, nullable=True),
    CheckConstraint(
        "role IN ('clerk', 'approver', 'admin', 'operator', 'integrator')", name="role"
    ),
    CheckConstraint("clearance BETWEEN 0 AND 3", name="clearance"),
)
Index("ix_users_office_id", users.c.office_id)

# An office's seal as scanned from paper (角印): shown in the admin console, validated by content.
office_seal_images = Table(
    "office_seal_images",
    metadata,
    Column("office_id", Integer, ForeignKey("offices.id", ondelete="CASCADE"), primary_key=True),
    Column("media_type", String(32), nullable=False),
    Column("image", LargeBinary, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("uploaded_at", UTCDateTime, nullable=False),
    Column("uploaded_by", String(64), nullable=False),
)

# Private keys, never in clear: AES-256-GCM under the node master key.
private_keys = Table(
    "private_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("purpose", String(32), nullable=False),
    Column("owner", String(128), nullable=False),
    Column("algorithm", String(32), nullable=False),
    Column("nonce", LargeBinary, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

certificates = Table(
    "certificates",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("serial", String(64), nullable=False, unique=True),
    Column("purpose", String(32), nullable=False),
    Column("owner", String(128), nullable=False),
    Column("key_id", Integer, ForeignKey("private_keys.id"), nullable=True),
    Column("subject", Text, nullable=False),
    Column("fingerprint", String(80), nullable=False, unique=True),
    Column("not_before", UTCDateTime, nullable=False),
    Column("not_after", UTCDateTime, nullable=False),
    Column("der", LargeBinary, nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("revocation_reason", String(32), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
)
Index("ix_certificates_purpose_owner", certificates.c.purpose, certificates.c.owner)

# The audit log: an append-only RFC 9162 Merkle tree.
audit_entries = Table(
    "audit_entries",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("object_type", String(32), nullable=True),
    Column("object_id", String(128), nullable=True),
    # The exact bytes hashed into the leaf (canonical JSON); the columns above are for searching.
    Column("entry", LargeBinary, nullable=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
)
Index("ix_audit_entries_action", audit_entries.c.action)
Index("ix_audit_entries_object", audit_entries.c.object_type, audit_entries.c.object_id)

# Hashes of the complete (perfect) subtrees: level L, index i covers leaves [i*2^L, (i+1)*2^L).
audit_nodes = Table(
    "audit_nodes",
    metadata,
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)

audit_tree_heads = Table(
    "audit_tree_heads",
    metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("signed_at", UTCDateTime, nullable=False),
    Column("signature", LargeBinary, nullable=False),
    Column("certificate_id", Integer, ForeignKey("certificates.id"), nullable=False),
)

# One row; locked while appending so that appends are serialised on every backend.
audit_state = Table(
    "audit_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("tree_size", BigInteger, nullable=False),
)

web_sessions = Table(
    "web_sessions",
    metadata,
    # SHA-256 of the cookie value: a stolen database does not yield live sessions.
    Column("id", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("stage", String(16), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_seen_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("client", String(64), nullable=True),
    # The browser's User-Agent, shortened: lets a user tell their sessions apart on the sessions page.
    Column("user_agent", String(200), nullable=True),
    CheckConstraint("stage IN ('totp', 'enrol', 'password', 'active')", name="stage"),
)
Index("ix_web_sessions_user_id", web_sessions.c.user_id)

login_attempts = Table(
    "login_attempts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("login", String(64), nullable=False),
    Column("client", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("success", Boolean, nullable=False),
)
Index("ix_login_attempts_login_at", login_attempts.c.login, login_attempts.c.at)
Index("ix_login_attempts_client_at", login_attempts.c.client, login_attempts.c.at)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("office_id", Integer, ForeignKey("offices.id"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("last_used_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    # NULL: the office API; "metrics": only /metrics on the main port (no office data).
    Column("scope", String(16), nullable=True),
    UniqueConstraint("user_id", "name", name="uq_api_tokens_user_name"),
)
