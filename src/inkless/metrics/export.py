"""Every dashboard table as rows with Japanese headers, for CSV and JSON exports and the CLI."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from inkless.errors import NotFoundError
from inkless.metrics import rollup as r

Table = tuple[list[str], list[list[Any]]]

# (key in a report row, header)
WEEK_COLUMNS = [
    (r.FAX_IN, "FAX受信件数"), (r.FAX_IN_PAGES, "FAX受信枚数"), (r.FAX_OUT, "FAX送信件数"),
    (r.FAX_OUT_PAGES, "FAX送信枚数"), (r.MESSAGES_IN, "デジタル受信"), (r.MESSAGES_OUT, "デジタル送信"),
    (r.INTAKE, "窓口受付"), (r.PAPER_RECEIVED, "紙で受付"), ("digital_share", "デジタル比率(%)"),
    (r.SEALS_DIGITAL, "電子押印"), (r.PAPER_SEALED, "紙で押印"),
]
PROCEDURE_COLUMNS = [
    ("code", "手続コード"), ("name", "手続名"), ("office", "担当部署"), ("label_ja", "区分"),
    ("digital_items", "デジタル件数"), ("seals_digital", "電子押印"), ("fax", "FAX件数"), ("fax_pages", "FAX枚数"),
    ("paper_received", "紙で受付"), ("paper_sealed", "紙で押印"),
]
REMOTE_COLUMNS = [
    ("direction_ja", "方向"), ("number", "FAX番号"), ("ident", "発信元ID"), ("calls", "通数"), ("pages", "枚数"),
    ("last_seen", "最終"), ("offices", "相手部署"), ("invited", "案内済み"), ("invited_at", "案内日時"),
    ("moved", "移行済み"), ("moved_at", "移行日時"), ("moved_via_ja", "移行先"),
]
TABLES = ("weeks", "months", "offices", "procedures", "remotes")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "はい" if value else "いいえ"
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return value


def table(report: dict[str, Any], name: str) -> Table:
    """One table of a report (``weeks``, ``months``, ``offices``, ``procedures``) or of the remotes list."""
    if name == "weeks":
        return (["週"] + [h for _, h in WEEK_COLUMNS],
                [[w["week"]] + [_cell(w[k]) for k, _ in WEEK_COLUMNS] for w in report["weeks"]])
    if name == "months":
        return (["月"] + [h for _, h in WEEK_COLUMNS],
                [[m["month"]] + [_cell(m[k]) for k, _ in WEEK_COLUMNS] for m in report["months"]])
    if name == "offices":
        rows = report.get("offices") or []
        return (["部署コード", "部署"] + [h for _, h in WEEK_COLUMNS],
                [[o["office"], o["name"]] + [_cell(o[k]) for k, _ in WEEK_COLUMNS] for o in rows])
    if name == "procedures":
        rows = list(report["procedures"]) + ([report["unclassified"]] if report.get("unclassified") else [])
        return ([h for _, h in PROCEDURE_COLUMNS], [[_cell(p[k]) for k, _ in PROCEDURE_COLUMNS] for p in rows])
    if name == "remotes":
        return ([h for _, h in REMOTE_COLUMNS], [[_cell(x[k]) for k, _ in REMOTE_COLUMNS] for x in report["remotes"]])
    raise NotFoundError(f"no table {name!r} (tables: {', '.join(TABLES)})")


def to_csv(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """CSV text (CRLF, as spreadsheets write it); prefix with a BOM when serving it to Excel users."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(headers)
    writer.writerows(rows)
    return out.getvalue()
