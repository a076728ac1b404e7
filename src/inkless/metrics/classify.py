"""Which procedure an inbound fax belongs to: rules by DID, TSI, CID, or a keyword on page 1.

Rules are tried lowest ``priority`` first (ties: oldest first); the first that matches names the
procedure. ``did`` compares the called number, ``tsi``/``cid`` match the sender's station id or
number as the fax routing rules do (a number, or a regular expression), ``keyword`` looks for the
text in the OCR text of page 1 (after NFKC, so 全角 and 半角 letters and digits compare equal).
A fax no rule matches stays 未分類 until a clerk classifies it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, select

from inkless.db.tables_metrics import procedure_rules
from inkless.errors import ValidationError
from inkless.fax.routing import _number_matches, _regex_matches, check_pattern, normalise_ident, normalise_number

RULE_KINDS = ("did", "tsi", "cid", "keyword")
CALL_KINDS = ("did", "tsi", "cid")


@dataclass(frozen=True)
class ProcedureRule:
    """Count faxes matching ``pattern`` (of ``kind``) against ``procedure_code``."""

    id: int
    kind: str
    pattern: str
    procedure_code: str
    priority: int


def check_rule(kind: str, pattern: str) -> str:
    if kind == "keyword":
        text = unicodedata.normalize("NFKC", pattern).strip()
        if not text or len(text) > 128 or any(ord(ch) < 32 for ch in text):
            raise ValidationError("keyword must be 1-128 characters without control characters")
        return text
    return check_pattern(kind, pattern, RULE_KINDS)


def rules(conn: Connection) -> list[ProcedureRule]:
    r = procedure_rules.c
    rows = conn.execute(select(r.id, r.kind, r.pattern, r.procedure_code, r.priority)
                        .order_by(r.priority, r.id)).all()
    return [ProcedureRule(row.id, row.kind, row.pattern, row.procedure_code, row.priority) for row in rows]


def match_call(found: Iterable[ProcedureRule], *, called_number: str | None, remote_ident: str | None,
               calling_number: str | None) -> ProcedureRule | None:
    """The first DID/TSI/CID rule that matches a call."""
    did = normalise_number(called_number)
    tsi = normalise_ident(remote_ident)
    cid = normalise_number(calling_number)
    for rule in found:
        if rule.kind == "did" and did and normalise_number(rule.pattern) == did:
            return rule
        if rule.kind == "tsi" and _regex_matches(rule.pattern, tsi):
            return rule
        if rule.kind == "cid" and _number_matches(rule.pattern, cid):
            return rule
    return None


def match_text(found: Sequence[ProcedureRule], text: str) -> ProcedureRule | None:
    """The first keyword rule whose keyword is in ``text`` (page 1's OCR text)."""
    haystack = "".join(unicodedata.normalize("NFKC", text).split())
    for rule in found:
        if rule.kind == "keyword" and "".join(rule.pattern.split()) in haystack:
            return rule
    return None


def page_one_text(pdf: bytes) -> str:
    """The text layer of page 1 of a (searchable) PDF; empty when it has none."""
    import pypdfium2 as pdfium  # type: ignore[import-untyped, unused-ignore]

    from inkless.pdfium_lock import PDFIUM_LOCK

    with PDFIUM_LOCK:
        try:
            document = pdfium.PdfDocument(pdf)
        except pdfium.PdfiumError:
            return ""
        try:
            if len(document) == 0:
                return ""
            page = document[0]
            textpage = page.get_textpage()
            try:
                return str(textpage.get_text_range())
            finally:
                textpage.close()
                page.close()
        finally:
            document.close()
