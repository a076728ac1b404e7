"""Dashboard figures, read from the roll-ups only (never by scanning messages or calls).

A scope is one office (its code) or the whole node (None). Derived figures:

- digital items = messages out + messages in + intake submissions;
- fax or paper items = faxes received + faxes sent + paper received (紙で受付);
- digital share % = digital items / (digital items + fax or paper items);
- a procedure is *fully digital* in a window when it had digital items or digital seals and no fax,
  no fax page and no paper record; *still fax or paper* when it had only those; *mixed* when both;
  *no traffic* otherwise. The headline counts the fully digital ones among the catalogue's active
  procedures of the scope.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, func, select

from inkless.db.tables_metrics import metrics_rollup
from inkless.metrics import rollup as r
from inkless.metrics.model import Procedure

DIGITAL = "digital"
MIXED = "mixed"
ANALOGUE = "analogue"
NO_TRAFFIC = "none"
LABELS_JA = {DIGITAL: "完全デジタル", MIXED: "混在", ANALOGUE: "FAX・紙のみ", NO_TRAFFIC: "実績なし"}


def digital_items(values: dict[str, int]) -> int:
    return sum(values.get(m, 0) for m in r.DIGITAL_ITEMS)


def analogue_items(values: dict[str, int]) -> int:
    return sum(values.get(m, 0) for m in r.ANALOGUE_ITEMS)


def digital_share(values: dict[str, int]) -> float | None:
    """Percent of items that went the digital way (None when there were none)."""
    digital, analogue = digital_items(values), analogue_items(values)
    if digital + analogue == 0:
        return None
    return round(100.0 * digital / (digital + analogue), 1)


def totals(conn: Connection, periods: Sequence[str], office: str | None) -> dict[str, dict[str, int]]:
    """period -> metric -> value, for an office or the node (missing counters are 0)."""
    c = metrics_rollup.c
    query = (select(c.period, c.metric, func.sum(c.value).label("value"))
             .where(c.period.in_(list(periods))).group_by(c.period, c.metric))
    if office is not None:
        query = query.where(c.office_code == office)
    out: dict[str, dict[str, int]] = {p: dict.fromkeys(r.METRICS, 0) for p in periods}
    for row in conn.execute(query):
        out[row.period][row.metric] = int(row.value)
    return out


def by_procedure(conn: Connection, periods: Sequence[str], office: str | None) -> dict[str, dict[str, int]]:
    """procedure code ("" for 未分類) -> metric -> value, summed over ``periods``."""
    c = metrics_rollup.c
    query = (select(c.procedure_code, c.metric, func.sum(c.value).label("value"))
             .where(c.period.in_(list(periods))).group_by(c.procedure_code, c.metric))
    if office is not None:
        query = query.where(c.office_code == office)
    out: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(r.METRICS, 0))
    for row in conn.execute(query):
        out[row.procedure_code][row.metric] = int(row.value)
    return dict(out)


def by_office(conn: Connection, periods: Sequence[str]) -> dict[str, dict[str, int]]:
    """office code ("" for faxes no office was found for) -> metric -> value."""
    c = metrics_rollup.c
    query = (select(c.office_code, c.metric, func.sum(c.value).label("value"))
             .where(c.period.in_(list(periods))).group_by(c.office_code, c.metric))
    out: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(r.METRICS, 0))
    for row in conn.execute(query):
        out[row.office_code][row.metric] = int(row.value)
    return dict(out)


@dataclass(frozen=True)
class ProcedureStatus:
    """One procedure's label in a window and the counts behind it."""

    code: str
    name: str
    office: str | None
    label: str
    digital: int
    seals_digital: int
    fax: int
    fax_pages: int
    paper_received: int
    paper_sealed: int

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "name": self.name, "office": self.office, "label": self.label,
                "label_ja": LABELS_JA[self.label], "digital_items": self.digital, "seals_digital": self.seals_digital,
                "fax": self.fax, "fax_pages": self.fax_pages, "paper_received": self.paper_received,
                "paper_sealed": self.paper_sealed}


def status_of(code: str, name: str, office: str | None, values: dict[str, int]) -> ProcedureStatus:
    digital = digital_items(values)
    fax = values.get(r.FAX_IN, 0) + values.get(r.FAX_OUT, 0)
    pages = values.get(r.FAX_IN_PAGES, 0) + values.get(r.FAX_OUT_PAGES, 0)
    paper_in, paper_sealed = values.get(r.PAPER_RECEIVED, 0), values.get(r.PAPER_SEALED, 0)
    sealed = values.get(r.SEALS_DIGITAL, 0)
    any_digital = digital + sealed > 0
    any_analogue = fax + pages + paper_in + paper_sealed > 0
    label = (MIXED if any_digital and any_analogue else DIGITAL if any_digital
             else ANALOGUE if any_analogue else NO_TRAFFIC)
    return ProcedureStatus(code, name, office, label, digital, sealed, fax, pages, paper_in, paper_sealed)


@dataclass(frozen=True)
class Headline:
    """N of M procedures fully digital (x %)."""

    fully_digital: int
    procedures: int
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def percent(self) -> float:
        return round(100.0 * self.fully_digital / self.procedures, 1) if self.procedures else 0.0

    def text_ja(self) -> str:
        return f"{self.procedures}手続中{self.fully_digital}手続が完全デジタル（{self.percent:.1f}%）"

    def to_json(self) -> dict[str, Any]:
        return {"fully_digital": self.fully_digital, "procedures": self.procedures, "percent": self.percent,
                "by_label": self.counts, "text": self.text_ja()}


def procedure_table(catalogue: Iterable[Procedure], counts: dict[str, dict[str, int]]
                    ) -> tuple[list[ProcedureStatus], ProcedureStatus | None, Headline]:
    """Each catalogue procedure's status, the 未分類 row (if it had traffic), and the headline."""
    rows = [status_of(p.code, p.name, p.fields.office_code, counts.get(p.code, {})) for p in catalogue]
    unknown = counts.get("")
    unclassified = status_of("", "未分類", None, unknown) if unknown else None
    by_label = {label: sum(1 for s in rows if s.label == label) for label in LABELS_JA}
    return rows, unclassified, Headline(by_label[DIGITAL], len(rows), by_label)
