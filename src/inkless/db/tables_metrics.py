"""Migration metrics: the procedure catalogue (手続一覧) and its version history."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String, Table, Text

from inkless.db.tables import metadata
from inkless.db.types import UTCDateTime

# The current state of each procedure; every change also writes a row to procedure_versions.
procedures = Table(
    "procedures",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("name", String(300), nullable=False),
    Column("ministry", String(200), nullable=False),
    # The office of this node that handles the procedure (NULL: node-wide).
    Column("office_code", String(64), nullable=True),
    Column("legal_basis", Text, nullable=False),
    # none / mitome / jitsuin / official (なし / 認印 / 実印 / 公印)
    Column("seal_required", String(16), nullable=False),
    Column("fax_or_paper_allowed", Boolean, nullable=False),
    Column("retired", Boolean, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(128), nullable=False),
)
Index("ix_procedures_office_code", procedures.c.office_code)

# Every version of every procedure: who changed what, when (the audit log holds the same facts, signed).
procedure_versions = Table(
    "procedure_versions",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String(300), nullable=False),
    Column("ministry", String(200), nullable=False),
    Column("office_code", String(64), nullable=True),
    Column("legal_basis", Text, nullable=False),
    Column("seal_required", String(16), nullable=False),
    Column("fax_or_paper_allowed", Boolean, nullable=False),
    Column("retired", Boolean, nullable=False),
    # created / changed / retired / restored
    Column("change", String(16), nullable=False),
    # The field names that differ from the previous version, comma-separated.
    Column("changed_fields", Text, nullable=False),
    Column("changed_at", UTCDateTime, nullable=False),
    Column("changed_by", String(128), nullable=False),
    Column("audit_index", BigInteger, nullable=True),
)
