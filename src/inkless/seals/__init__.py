"""Digital hanko: seal imprints (認印, 日付印, 角印); PAdES sealing and approval routes build on them."""

import logging

# What the package offers, imported on first use (PEP 562): the imprint and fonts modules load fontTools,
# which a command that only names a seal kind (every `inkless` start) must not pay for.
_EXPORTS = {
    "FontSource": "inkless.fonts",
    "GlyphOutline": "inkless.seals.fonts",
    "Glyphs": "inkless.seals.fonts",
    "find_cjk_font": "inkless.seals.fonts",
    **{name: "inkless.seals.imprint" for name in (
        "VERMILION", "SealImprint", "SealKind", "date_seal", "era_date_label", "is_vertical", "office_columns",
        "office_seal", "office_seal_text", "pdf_to_png", "personal_seal", "render_pdf", "render_png",
    )},
}


def __getattr__(name: str) -> object:
    import importlib

    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name == "fonts":
        return importlib.import_module("inkless.seals.fonts")
    raise AttributeError(f"module 'inkless.seals' has no attribute {name!r}")


# pyHanko logs advice meant for developers at WARNING ("Document does not have any document timestamps
# yet ..."). With no logging configured, Python prints such records on stderr, in the middle of a
# command's output. A handler on pyHanko's own loggers stops that; when `inkless serve` or `inkless worker`
# configure logging, the records still reach the node's log through the root logger.
for _name in ("pyhanko", "pyhanko_certvalidator"):
    logging.getLogger(_name).addHandler(logging.NullHandler())


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
