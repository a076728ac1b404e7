"""Digital hanko: seal imprints (認印, 日付印, 角印); PAdES sealing and approval routes build on them."""

from inkless.seals.imprint import (
    VERMILION,
    SealImprint,
    SealKind,
    date_seal,
    era_date_label,
    office_columns,
    office_seal,
    office_seal_text,
    personal_seal,
    render_pdf,
    render_png,
)

__all__ = [
    "VERMILION",
    "SealImprint",
    "SealKind",
    "date_seal",
    "era_date_label",
    "office_columns",
    "office_seal",
    "office_seal_text",
    "personal_seal",
    "render_pdf",
    "render_png",
]
