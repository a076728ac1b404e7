"""The procedure catalogue as CSV, the way Japanese ministries publish it: UTF-8 or Shift_JIS (CP932).

Columns (the header row names them, in Japanese or in English; order is free)::

    手続コード  code                  the code messages carry (``procedure_code``)
    手続名      name
    府省        ministry              the ministry or agency, e.g. 法務省
    担当部署    office                an office of this node (its code or its name); empty: node-wide
    根拠法令    legal_basis
    押印        seal                  なし / 認印 / 実印 / 公印
    FAX・紙     fax_or_paper_allowed  可 / 不可

Export writes the Japanese header. Reading checks every row first and reports every bad line
with its number; nothing is imported from a file with a bad line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from inkless.errors import ValidationError
from inkless.metrics.model import Procedure, ProcedureFields, SealRequirement, parse_allowed

ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "cp932": "cp932", "shift_jis": "cp932", "sjis": "cp932",
             "shift-jis": "cp932"}

# column key -> (Japanese header, English header)
COLUMNS: dict[str, tuple[str, str]] = {
    "code": ("手続コード", "code"),
    "name": ("手続名", "name"),
    "ministry": ("府省", "ministry"),
    "office": ("担当部署", "office"),
    "legal_basis": ("根拠法令", "legal_basis"),
    "seal": ("押印", "seal"),
    "fax_or_paper_allowed": ("FAX・紙", "fax_or_paper_allowed"),
}
REQUIRED = ("code", "name")
_ALIASES = {
    "府省庁": "ministry", "府省名": "ministry", "所管": "ministry", "ministry/office": "ministry",
    "部署": "office", "担当課": "office", "法令": "legal_basis", "根拠": "legal_basis",
    "押印の要否": "seal", "seal_required": "seal", "fax_paper": "fax_or_paper_allowed",
    "fax/紙": "fax_or_paper_allowed", "fax・紙の可否": "fax_or_paper_allowed", "コード": "code",
}
MAX_ROWS = 20000


class CatalogueFileError(ValidationError):
    """A catalogue file with bad lines; ``problems`` lists (line number, what is wrong)."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        self.problems = problems
        shown = "; ".join(f"line {line}: {text}" for line, text in problems[:20])
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        super().__init__(f"the catalogue file has {len(problems)} bad line(s), nothing imported: {shown}{more}")


def encoding_name(encoding: str) -> str:
    """The Python codec for a user's encoding name (utf-8, cp932, shift_jis, sjis)."""
    codec = ENCODINGS.get(encoding.strip().lower())
    if codec is None:
        raise ValidationError(f"encoding: {encoding!r} is not utf-8 or cp932 (shift_jis)")
    return codec


def decode(data: bytes, encoding: str | None = None) -> str:
    """The file's text: the given encoding, or UTF-8 (with or without BOM), else CP932."""
    if encoding:
        codec = encoding_name(encoding)
        try:
            return data.decode("utf-8-sig" if codec == "utf-8" else codec)
        except UnicodeDecodeError as exc:
            raise ValidationError(f"the file is not valid {encoding} (byte {exc.start})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp932")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"the file is neither UTF-8 nor Shift_JIS/CP932 (byte {exc.start})") from None


def _column_key(header: str) -> str | None:
    text = header.strip().lstrip("\ufeff")
    for key, (ja, en) in COLUMNS.items():
        if text == ja or text.lower() == en:
            return key
    return _ALIASES.get(text.lower()) or _ALIASES.get(text)


@dataclass(frozen=True)
class CatalogueRow:
    """One checked row; ``office`` as written (a code or a name), resolved by the catalogue service."""

    line: int
    fields: ProcedureFields
    office: str


def parse_catalogue(
    data: bytes, encoding: str | None = None, resolve_office: Callable[[str], str | None] | None = None,
) -> list[CatalogueRow]:
    """Read and check every row; CatalogueFileError lists every bad line.

    ``resolve_office`` turns the office column (code or name) into an office code, or None when
    the node has no such office (reported as a bad line).
    """
    text = decode(data, encoding)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ValidationError("the catalogue file is empty") from None
    keys = [_column_key(h) for h in header]
    missing = [COLUMNS[k][0] + f" ({COLUMNS[k][1]})" for k in REQUIRED if k not in keys]
    if missing:
        raise ValidationError(f"line 1: the header has no column {', '.join(missing)}")
    unknown = [h for h, k in zip(header, keys, strict=True) if k is None and h.strip()]
    if unknown:
        raise ValidationError(f"line 1: unknown column(s) {', '.join(unknown)}")
    rows: list[CatalogueRow] = []
    problems: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    for number, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(rows) + len(problems) >= MAX_ROWS:
            raise ValidationError(f"the catalogue file has more than {MAX_ROWS} rows")
        if len(cells) > len(keys):
            problems.append((number, f"{len(cells)} cells, the header has {len(keys)}"))
            continue
        values = {k: c for k, c in zip(keys, cells, strict=False) if k is not None}
        try:
            office_text = values.get("office", "").strip()
            office_code = None
            if office_text:
                office_code = resolve_office(office_text) if resolve_office else office_text
                if office_code is None:
                    raise ValidationError(f"office: this node has no office {office_text!r}")
            row_fields = ProcedureFields.checked(
                code=values.get("code", ""), name=values.get("name", ""), ministry=values.get("ministry", ""),
                office_code=office_code, legal_basis=values.get("legal_basis", ""),
                seal_required=SealRequirement.parse(values.get("seal", "")),
                fax_or_paper_allowed=parse_allowed(values.get("fax_or_paper_allowed", "")),
            )
        except ValidationError as exc:
            problems.append((number, str(exc)))
            continue
        if row_fields.code in seen:
            problems.append((number, f"code {row_fields.code} already on line {seen[row_fields.code]}"))
            continue
        seen[row_fields.code] = number
        rows.append(CatalogueRow(line=number, fields=row_fields, office=office_text))
    if problems:
        raise CatalogueFileError(problems)
    return rows


def format_catalogue(procedures: Iterable[Procedure], encoding: str = "utf-8") -> bytes:
    """The catalogue as CSV bytes with the Japanese header (CRLF line ends, as spreadsheets write)."""
    codec = encoding_name(encoding)
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([ja for ja, _en in COLUMNS.values()])
    for p in procedures:
        f = p.fields
        writer.writerow([f.code, f.name, f.ministry, f.office_code or "", f.legal_basis,
                         f.seal_required.label, "可" if f.fax_or_paper_allowed else "不可"])
    try:
        return out.getvalue().encode(codec)
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"a procedure holds {exc.object[exc.start]!r}, which {encoding} cannot encode: export as utf-8"
        ) from None
