"""Digital hanko: seal imprints (認印, 日付印, 角印); PAdES sealing and approval routes build on them."""

from inkless.fonts import FontSource
from inkless.seals.fonts import GlyphOutline, Glyphs, find_cjk_font
from inkless.seals.imprint import (
    VERMILION,
    SealImprint,
    SealKind,
    date_seal,
    era_date_label,
    is_vertical,
    office_columns,
    office_seal,
    office_seal_text,
    pdf_to_png,
    personal_seal,
    render_pdf,
    render_png,
)

__all__ = [
    "VERMILION",
    "FontSource",
    "GlyphOutline",
    "Glyphs",
    "SealImprint",
    "SealKind",
    "date_seal",
    "era_date_label",
    "find_cjk_font",
    "is_vertical",
    "office_columns",
    "office_seal",
    "office_seal_text",
    "pdf_to_png",
    "personal_seal",
    "render_pdf",
    "render_png",
]
