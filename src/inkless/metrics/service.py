"""The metrics service: weekly reports, paper records, targets, procedure rules and fax classification."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from inkless.audit.model import AuditEvent, AuditRecorder
from inkless.clock import Clock
from inkless.db import tables as t
from inkless.db.engine import Database
from inkless.db.tables_metrics import metrics_paper_records, metrics_targets, procedure_rules
from inkless.errors import NotFoundError, ValidationError
from inkless.metrics import classify, figures, memory
from inkless.metrics import items as fax_items
from inkless.metrics import rollup as r
from inkless.metrics.catalogue import ProcedureCatalogue
from inkless.metrics.model import Procedure
from inkless.metrics.periods import (
    fiscal_year_months,
    fiscal_year_of,
    month_of,
    months_back,
    parse_week,
    week_bounds,
    week_monday,
    week_of,
    weeks_back,
)

MAX_PAPER_COUNT = 100_000
# What a target reduces, and how it is computed from the weekly figures.
MEASURES = {
    "fax_pages": ("FAX枚数", (r.FAX_IN_PAGES, r.FAX_OUT_PAGES)),
    "paper_seals": ("紙の押印", (r.PAPER_SEALED,)),
    "fax_paper_items": ("FAX・紙の件数", r.ANALOGUE_ITEMS),
}
TREND_WEEKS = 12
TREND_MONTHS = 12
PROCEDURE_WEEKS = 13
TARGET_CURRENT_WEEKS = 4


@dataclass(frozen=True)
class Target:
    """An administrator's target, e.g. FAX枚数を2027年3月までに90%削減, with its progress."""

    id: int
    office: str | None
    measure: str
    reduction_percent: int
    baseline_from: date
    baseline_to: date
    deadline: date
    baseline_weekly: float
    current_weekly: float

    @property
    def title(self) -> str:
        return (f"{MEASURES[self.measure][0]}を{self.deadline.year}年{self.deadline.month}月までに"
                f"{self.reduction_percent}%削減")

    @property
    def achieved_percent(self) -> float:
        """How much the measure has come down from the baseline, in percent."""
        if self.baseline_weekly <= 0:
            return 0.0
        return round(100.0 * (self.baseline_weekly - self.current_weekly) / self.baseline_weekly, 1)

    @property
    def progress_percent(self) -> float:
        """How far along the way to the target, 0–100."""
        return max(0.0, min(100.0, round(100.0 * self.achieved_percent / self.reduction_percent, 1)))

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "office": self.office, "measure": self.measure, "title": self.title,
                "reduction_percent": self.reduction_percent, "baseline_from": self.baseline_from.isoformat(),
                "baseline_to": self.baseline_to.isoformat(), "deadline": self.deadline.isoformat(),
                "baseline_weekly": self.baseline_weekly, "current_weekly": self.current_weekly,
                "achieved_percent": self.achieved_percent, "progress_percent": self.progress_percent}


def _week_values(values: dict[str, int]) -> dict[str, Any]:
    out: dict[str, Any] = dict(values)
    out["digital_items"] = figures.digital_items(values)
    out["fax_paper_items"] = figures.analogue_items(values)
    out["digital_share"] = figures.digital_share(values)
    return out


class MetricsService:
    """Reads the roll-ups into reports; records what inkless does not see; classifies faxes."""

    def __init__(self, db: Database, catalogue: ProcedureCatalogue, audit: AuditRecorder, clock: Clock,
                 remote_status: fax_items.RemoteStatus | None = None) -> None:
        self._db = db
        self._remote_status = remote_status
        self._catalogue = catalogue
        self._audit = audit
        self._clock = clock

    @property
    def catalogue(self) -> ProcedureCatalogue:
        return self._catalogue

    def current_week(self) -> str:
        return week_of(self._clock.now())

    # --- reports ------------------------------------------------------------------------------------

    def report(self, week: str | None = None, office: str | None = None) -> dict[str, Any]:
        """Every dashboard figure of a week, for one office or the node (office None)."""
        week = parse_week(week) if week else self.current_week()
        if office is not None:
            self._office_exists(office)
        weeks = weeks_back(week, TREND_WEEKS)
        proc_weeks = weeks_back(week, PROCEDURE_WEEKS)
        months = months_back(month_of(week_monday(week) + timedelta(days=3)), TREND_MONTHS)
        fiscal_year = fiscal_year_of(week_monday(week) + timedelta(days=3))
        with self._db.read() as conn:
            weekly = figures.totals(conn, weeks, office)
            monthly = figures.totals(conn, months, office)
            fy = figures.totals(conn, fiscal_year_months(fiscal_year), office)
            per_procedure = figures.by_procedure(conn, proc_weeks, office)
            offices = figures.by_office(conn, [week]) if office is None else None
            catalogue = self._catalogue.procedures(office, conn=conn)
            targets = self._targets(conn, office, week)
            names = {row.code: row.name for row in conn.execute(select(t.offices.c.code, t.offices.c.name))}
        rows, unclassified, headline = figures.procedure_table(catalogue, per_procedure)
        fy_total = {m: sum(v[m] for v in fy.values()) for m in r.METRICS}
        this_week = weekly[week]
        return {
            "week": week,
            "office": office,
            "office_name": names.get(office) if office else None,
            "figures": _week_values(this_week),
            "seals": {"digital": this_week[r.SEALS_DIGITAL], "paper": this_week[r.PAPER_SEALED]},
            "weeks": [{"week": w, **_week_values(weekly[w])} for w in weeks],
            "months": [{"month": m, **_week_values(monthly[m])} for m in months],
            "fiscal_year": {"year": fiscal_year, **_week_values(fy_total)},
            "offices": None if offices is None else [
                {"office": code, "name": names.get(code, "（未配信）"), **_week_values(values)}
                for code, values in sorted(offices.items())],
            "procedure_weeks": [proc_weeks[0], proc_weeks[-1]],
            "headline": headline.to_json(),
            "procedures": [s.to_json() for s in rows],
            "unclassified": unclassified.to_json() if unclassified else None,
            "targets": [tg.to_json() for tg in targets],
        }

    def who_faxes(self, week: str | None = None, office: str | None = None,
                  weeks: int = TREND_WEEKS) -> dict[str, Any]:
        """The remote fax numbers and station ids of the ``weeks`` weeks ending with ``week``."""
        week = parse_week(week) if week else self.current_week()
        if office is not None:
            self._office_exists(office)
        first = weeks_back(week, weeks)[0]
        start, _ = week_bounds(first)
        _, end = week_bounds(week)
        with self._db.read() as conn:
            found = fax_items.remotes(conn, start, end, office, status=self._remote_status)
        return {"week": week, "from_week": first, "office": office, "remotes": [x.to_json() for x in found]}

    def items(self, metric: str, period: str, office: str | None, procedure: str | None,
              clearance: int = 3) -> list[fax_items.Item]:
        """The source rows behind one figure (see metrics.items)."""
        with self._db.read() as conn:
            return fax_items.items(conn, metric, period, office, procedure, clearance)

    # --- paper records ------------------------------------------------------------------------------

    def record_paper(self, office: str, procedure: str | None, day: date, received: int, sealed: int,
                     actor: str) -> int:
        """Record paper a clerk handled (紙で受付 / 紙で押印) for a procedure on a day; counted at once."""
        for name, value in (("received", received), ("sealed", sealed)):
            if not 0 <= value <= MAX_PAPER_COUNT:
                raise ValidationError(f"{name}: {value} must be 0–{MAX_PAPER_COUNT}")
        if received == 0 and sealed == 0:
            raise ValidationError("nothing to record: both counts are 0")
        now = self._clock.now()
        if day > now.date() + timedelta(days=1):
            raise ValidationError(f"day: {day.isoformat()} is in the future")
        with self._db.begin() as conn:
            self._office_exists(office, conn)
            if procedure:
                self._catalogue.get(procedure, conn)
            record_id = conn.execute(insert(metrics_paper_records).values(
                office_code=office, procedure_code=procedure or None, day=day, received=received, sealed=sealed,
                recorded_by=actor, recorded_at=now)).inserted_primary_key[0]  # type: ignore[index]
            r.add(conn, r.paper(day, office, procedure, received, sealed))
            self._audit.record(conn, AuditEvent(
                actor=actor, action="metrics.paper_recorded", object_type="paper_record", object_id=str(record_id),
                details={"office": office, "procedure": procedure, "day": day.isoformat(), "received": received,
                         "sealed": sealed}), at=now)
        return int(record_id)

    # --- targets -----------------------------------------------------------------------------------

    def set_target(self, office: str | None, measure: str, reduction_percent: int, baseline_from: date,
                   baseline_to: date, deadline: date, actor: str) -> int:
        if measure not in MEASURES:
            raise ValidationError(f"measure: {measure!r} is not one of {', '.join(MEASURES)}")
        if not 1 <= reduction_percent <= 100:
            raise ValidationError("reduction: must be 1–100 %")
        if baseline_to < baseline_from:
            raise ValidationError("baseline: the end is before the start")
        if deadline <= baseline_to:
            raise ValidationError("deadline: must be after the baseline")
        now = self._clock.now()
        with self._db.begin() as conn:
            if office is not None:
                self._office_exists(office, conn)
            target_id = conn.execute(insert(metrics_targets).values(
                office_code=office, measure=measure, reduction_percent=reduction_percent,
                baseline_from=baseline_from, baseline_to=baseline_to, deadline=deadline, created_by=actor,
                created_at=now)).inserted_primary_key[0]  # type: ignore[index]
            self._audit.record(conn, AuditEvent(
                actor=actor, action="metrics.target_set", object_type="target", object_id=str(target_id),
                details={"office": office, "measure": measure, "reduction_percent": reduction_percent,
                         "deadline": deadline.isoformat()}), at=now)
        return int(target_id)

    def remove_target(self, target_id: int, actor: str) -> None:
        with self._db.begin() as conn:
            if not conn.execute(delete(metrics_targets).where(metrics_targets.c.id == target_id)).rowcount:
                raise NotFoundError(f"no target {target_id}")
            self._audit.record(conn, AuditEvent(actor=actor, action="metrics.target_removed", object_type="target",
                                                object_id=str(target_id)), at=self._clock.now())

    def _targets(self, conn: Connection, office: str | None, week: str) -> list[Target]:
        c = metrics_targets.c
        query = select(metrics_targets).order_by(c.id)
        query = query.where(c.office_code.is_(None) if office is None else c.office_code == office)
        out = []
        current_weeks = weeks_back(week, TARGET_CURRENT_WEEKS)
        for row in conn.execute(query).all():
            metrics = MEASURES[row.measure][1]
            base_weeks = _weeks_between(row.baseline_from, row.baseline_to)
            base = figures.totals(conn, base_weeks, office)
            now = figures.totals(conn, current_weeks, office)
            base_avg = sum(v[m] for v in base.values() for m in metrics) / max(1, len(base_weeks))
            now_avg = sum(v[m] for v in now.values() for m in metrics) / len(current_weeks)
            out.append(Target(row.id, row.office_code, row.measure, row.reduction_percent, row.baseline_from,
                              row.baseline_to, row.deadline, round(base_avg, 1), round(now_avg, 1)))
        return out

    # --- procedure rules and classification ------------------------------------------------------------

    def add_rule(self, kind: str, pattern: str, procedure: str, actor: str, priority: int = 100) -> int:
        pattern = classify.check_rule(kind, pattern)
        now = self._clock.now()
        with self._db.begin() as conn:
            self._catalogue.get(procedure, conn)
            c = procedure_rules.c
            if conn.execute(select(c.id).where(c.kind == kind, c.pattern == pattern)).first():
                raise ValidationError(f"a {kind} rule for {pattern!r} already exists")
            rule_id = conn.execute(insert(procedure_rules).values(
                kind=kind, pattern=pattern, procedure_code=procedure, priority=priority, created_by=actor,
                created_at=now)).inserted_primary_key[0]  # type: ignore[index]
            self._audit.record(conn, AuditEvent(
                actor=actor, action="metrics.rule_added", object_type="procedure_rule", object_id=str(rule_id),
                details={"kind": kind, "procedure": procedure}), at=now)
        return int(rule_id)

    def rules(self) -> list[classify.ProcedureRule]:
        with self._db.read() as conn:
            return classify.rules(conn)

    def remove_rule(self, rule_id: int, actor: str) -> None:
        with self._db.begin() as conn:
            if not conn.execute(delete(procedure_rules).where(procedure_rules.c.id == rule_id)).rowcount:
                raise NotFoundError(f"no procedure rule {rule_id}")
            self._audit.record(conn, AuditEvent(actor=actor, action="metrics.rule_removed",
                                                object_type="procedure_rule", object_id=str(rule_id)),
                               at=self._clock.now())

    def classify_fax(self, call_id: int, procedure: str | None, actor: str, office: str | None = None) -> None:
        """Count a received fax against ``procedure`` (None: back to 未分類), moving its counts at once.

        With ``office``, only a fax that reached that office can be classified (a clerk's own office).
        """
        from inkless.db.tables_fax import fax_calls
        from inkless.fax.service import call_counts

        now = self._clock.now()
        with self._db.begin() as conn:
            if procedure:
                self._catalogue.get(procedure, conn)
            row = conn.execute(select(fax_calls, t.offices.c.code).outerjoin(
                t.offices, t.offices.c.id == fax_calls.c.office_id).where(
                fax_calls.c.id == call_id, fax_calls.c.direction == "RECV")).first()
            if row is None or (office is not None and row.code != office):
                raise NotFoundError(f"no received fax {call_id}")
            if row.procedure_code == (procedure or None):
                return
            conn.execute(update(fax_calls).where(fax_calls.c.id == call_id).values(procedure_code=procedure or None))
            before = call_counts(row, row.code)
            after = r.fax_call(row.direction, row.started_at, row.code, procedure or None, row.pages,
                               bool(row.success), row.status)
            r.move(conn, before, after)
            self._audit.record(conn, AuditEvent(
                actor=actor, action="fax.classified", object_type="fax_call", object_id=str(call_id),
                details={"procedure": procedure or None, "before": row.procedure_code}), at=now)

    # --- helpers ---------------------------------------------------------------------------------------

    # --- procedures remembered per counterpart ---------------------------------------------------

    def remembered(self, office: str, counterparts: Sequence[str | None]) -> Procedure | None:
        """The procedure the office last chose for one of ``counterparts`` (keys of metrics.memory), while the
        catalogue still offers it to the office; None otherwise."""
        with self._db.read() as conn:
            office_id = conn.execute(select(t.offices.c.id).where(t.offices.c.code == office)).scalar()
            if office_id is None:
                return None
            codes = memory.recall(conn, int(office_id), counterparts)
        if not codes:
            return None
        offered = {p.code: p for p in self._catalogue.procedures(office)}
        return next((offered[c] for c in codes if c in offered), None)

    def _office_exists(self, office: str, conn: Connection | None = None) -> None:
        query = select(t.offices.c.id).where(t.offices.c.code == office)
        if conn is not None:
            found = conn.execute(query).first()
        else:
            with self._db.read() as c:
                found = c.execute(query).first()
        if found is None:
            raise NotFoundError(f"no office {office!r}")


def _weeks_between(start: date, end: date) -> list[str]:
    weeks: list[str] = []
    day = start
    while day <= end:
        week = week_of(day)
        if week not in weeks:
            weeks.append(week)
        day += timedelta(days=7)
    if week_of(end) not in weeks:
        weeks.append(week_of(end))
    return weeks

