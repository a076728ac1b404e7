"""Tables of the picker: each office's fax address book (the kana of offices and users live on their rows)."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Integer, String, Table, UniqueConstraint

from inkless.db.tables import metadata
from inkless.db.types import UTCDateTime

# An office's fax address book (FAX電話帳): the businesses and people it still faxes, by name and kana.
fax_contacts = Table(
    "fax_contacts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("office_id", Integer, ForeignKey("offices.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("kana", String(200), nullable=True),
    Column("number", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("office_id", "number", name="uq_fax_contacts_office_number"),
)
