"""HTML pages of the migration metrics (Japanese by default): dashboards, procedures, who still faxes.

Administrators see the whole node and any office; everyone else sees their own office only, and the
items behind a figure only for their office and up to their clearance. Charts are SVG drawn on the
server (see inkless.metrics.charts): no JavaScript, and the pages print as they show.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Query, Request, Response
from fastapi.responses import RedirectResponse

from inkless.app import Node
from inkless.errors import ConfigurationError, InklessError, ValidationError
from inkless.metrics import charts, export
from inkless.metrics import rollup as r
from inkless.metrics.periods import parse_week, week_monday, week_of
from inkless.metrics.service import MetricsService
from inkless.web.deps import Caller, RowId, get_node, page_caller
from inkless.web.pages import RendererDep
from inkless.web.render import N_, Renderer

router = APIRouter(include_in_schema=False)

NodeDep = Annotated[Node, Depends(get_node)]
CallerDep = Annotated[Caller, Depends(page_caller)]
WeekQuery = Annotated[str | None, Query(max_length=10)]
OfficeQuery = Annotated[str | None, Query(max_length=64)]

METRIC_LABELS = {
    r.FAX_IN: N_("Faxes received"), r.FAX_IN_PAGES: N_("Fax pages received"), r.FAX_OUT: N_("Faxes sent"),
    r.FAX_OUT_PAGES: N_("Fax pages sent"), r.MESSAGES_IN: N_("Digital messages received"),
    r.MESSAGES_OUT: N_("Digital messages sent"), r.INTAKE: N_("Intake submissions"),
    r.PAPER_RECEIVED: N_("Received on paper"), r.SEALS_DIGITAL: N_("Digital seals"),
    r.PAPER_SEALED: N_("Sealed on paper"),
}
LABELS = {"digital": N_("Fully digital"), "mixed": N_("Mixed"), "analogue": N_("Still fax or paper"),
          "none": N_("No traffic")}
NOT_FOUND = N_("Not found")


def metrics_of(node: Node) -> MetricsService:
    if node.metrics is None:
        raise ConfigurationError("this node has no metrics service")
    return node.metrics


def _csrf(caller: Caller) -> str:
    return caller.session.csrf_token if caller.session else ""


def scope_of(caller: Caller, office: str | None) -> str | None:
    """The office a caller may look at: administrators any (None: the node), others only their own."""
    if caller.user.role.administers:
        return office or None
    if office and office != caller.office.code:
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    return caller.office.code


def _week(node: Node, week: str | None) -> str:
    return parse_week(week) if week else metrics_of(node).current_week()


def _link(path: str, **params: Any) -> str:
    return path + "?" + urlencode({k: v for k, v in params.items() if v is not None})


# The services' messages name values in English; the pages say what to fix in the reader's language.
ERRORS = (
    ("ISO week", N_("The week must be an ISO week such as 2026-W49.")),
    ("YYYY-MM-DD", N_("Give the day as YYYY-MM-DD.")),
    ("both counts are 0", N_("Nothing to record: both counts are 0.")),
    ("is in the future", N_("The day is in the future.")),
    ("no procedure", N_("There is no such procedure in the catalogue.")),
    ("metric:", N_("There is no such figure.")),
    ("period:", N_("The period must be a week such as 2026-W49 or a month such as 2026-12.")),
)
INVALID = N_("The input is not valid.")


def _error(request: Request, render: Renderer, caller: Caller, exc: InklessError) -> Response:
    message = next((text for key, text in ERRORS if key in exc.message),
                   NOT_FOUND if exc.http_status == 404 else INVALID)
    return render.render(request, "error.html", status_code=exc.http_status, caller=caller,
                         csrf_token=_csrf(caller), title=render.gettext(request, N_("Cannot show this")),
                         status=exc.http_status, message=render.gettext(request, message))


@router.get("/dashboard")
def dashboard(request: Request, node: NodeDep, caller: CallerDep, render: RendererDep, week: WeekQuery = None,
              office: OfficeQuery = None) -> Response:
    """The weekly dashboard of an office or of the node."""
    scope = scope_of(caller, office)
    try:
        week = _week(node, week)
        report = metrics_of(node).report(week, scope)
    except InklessError as exc:
        return _error(request, render, caller, exc)
    gettext = render.gettext
    weeks = [w["week"] for w in report["weeks"]]
    months = [m["month"] for m in report["months"]]
    fax_chart = charts.bar_chart(gettext(request, N_("Fax pages and digital items per week")), weeks, [
        charts.Series(gettext(request, N_("Fax pages")), charts.PALETTE["fax"],
                      [w[r.FAX_IN_PAGES] + w[r.FAX_OUT_PAGES] for w in report["weeks"]]),
        charts.Series(gettext(request, N_("Digital items")), charts.PALETTE["digital"],
                      [w["digital_items"] for w in report["weeks"]]),
    ], chart_id="weekly")
    share_chart = charts.share_line(gettext(request, N_("Digital share per week")), weeks,
                                    [w["digital_share"] for w in report["weeks"]], chart_id="share")
    trend_chart = charts.bar_chart(gettext(request, N_("12-month trend")), months, [
        charts.Series(gettext(request, N_("Fax pages")), charts.PALETTE["fax"],
                      [m[r.FAX_IN_PAGES] + m[r.FAX_OUT_PAGES] for m in report["months"]]),
        charts.Series(gettext(request, N_("Digital items")), charts.PALETTE["digital"],
                      [m["digital_items"] for m in report["months"]]),
        charts.Series(gettext(request, N_("Sealed on paper")), charts.PALETTE["paper"],
                      [m[r.PAPER_SEALED] for m in report["months"]]),
    ], chart_id="trend")
    seal_chart = charts.bar_chart(gettext(request, N_("Digital seals and paper seals per week")), weeks, [
        charts.Series(gettext(request, N_("Digital seals")), charts.PALETTE["seal"],
                      [w[r.SEALS_DIGITAL] for w in report["weeks"]]),
        charts.Series(gettext(request, N_("Sealed on paper")), charts.PALETTE["paper"],
                      [w[r.PAPER_SEALED] for w in report["weeks"]]),
    ], chart_id="seals", height=200)
    targets = [dict(t, bar=charts.progress_bar(t["title"], t["progress_percent"])) for t in report["targets"]]
    monday = week_monday(week)
    return render.render(
        request, "metrics_dashboard.html", caller=caller, csrf_token=_csrf(caller), active="dashboard",
        report=report, scope=scope, labels=METRIC_LABELS, fax_chart=fax_chart, share_chart=share_chart,
        trend_chart=trend_chart, seal_chart=seal_chart, targets=targets,
        previous=week_of(monday - timedelta(weeks=1)), following=week_of(monday + timedelta(weeks=1)),
        offices=node.directory.offices() if caller.user.role.administers else [],
        procedures=metrics_of(node).catalogue.procedures(scope), link=_link, today=date.today().isoformat(),
        is_admin=caller.user.role.administers,
    )


@router.get("/dashboard/procedures")
def procedures(request: Request, node: NodeDep, caller: CallerDep, render: RendererDep, week: WeekQuery = None,
               office: OfficeQuery = None) -> Response:
    """Each procedure: fully digital, mixed or still fax or paper, with the counts behind the label."""
    scope = scope_of(caller, office)
    try:
        report = metrics_of(node).report(_week(node, week), scope)
    except InklessError as exc:
        return _error(request, render, caller, exc)
    return render.render(request, "metrics_procedures.html", caller=caller, csrf_token=_csrf(caller),
                         active="dashboard", report=report, scope=scope, labels=LABELS, link=_link,
                         is_admin=caller.user.role.administers)


@router.get("/dashboard/who-faxes")
def who_faxes(request: Request, node: NodeDep, caller: CallerDep, render: RendererDep, week: WeekQuery = None,
              office: OfficeQuery = None) -> Response:
    """The remote numbers and station ids that still fax us, or that we still fax."""
    scope = scope_of(caller, office)
    try:
        found = metrics_of(node).who_faxes(_week(node, week), scope)
    except InklessError as exc:
        return _error(request, render, caller, exc)
    for remote in found["remotes"]:
        remote["last_seen_at"] = datetime.fromisoformat(remote["last_seen"])
        for key in ("invited_at", "moved_at"):
            remote[key + "_dt"] = datetime.fromisoformat(remote[key]) if remote[key] else None
    return render.render(request, "metrics_remotes.html", caller=caller, csrf_token=_csrf(caller),
                         active="dashboard", found=found, scope=scope, link=_link,
                         is_admin=caller.user.role.administers)


@router.get("/dashboard/items")
def items(request: Request, node: NodeDep, caller: CallerDep, render: RendererDep,
          metric: Annotated[str, Query(max_length=24)] = "", period: Annotated[str, Query(max_length=10)] = "",
          office: OfficeQuery = None, procedure: Annotated[str | None, Query(max_length=64)] = None) -> Response:
    """The items behind one figure: only the viewer's office (administrators: any) and clearance."""
    scope = scope_of(caller, office)
    if scope is None and office == "":
        scope = ""  # administrators: faxes no office was found for
    service = metrics_of(node)
    try:
        found = service.items(metric, period, scope, procedure, clearance=caller.user.clearance)
    except InklessError as exc:
        return _error(request, render, caller, exc)
    return render.render(request, "metrics_items.html", caller=caller, csrf_token=_csrf(caller),
                         active="dashboard", items=found, metric=metric, metric_label=METRIC_LABELS.get(metric, ""),
                         period=period, scope=scope, procedure=procedure, back=request.url.path + "?" +
                         request.url.query, procedures=service.catalogue.procedures(scope or None))


@router.get("/dashboard/export/{table}")
def export_table(node: NodeDep, caller: CallerDep, table: Annotated[str, Path(max_length=16)],
                 week: WeekQuery = None, office: OfficeQuery = None,
                 format: Annotated[str, Query(max_length=4, pattern="^(csv|json)$")] = "csv") -> Response:
    """A dashboard table as CSV (UTF-8 with BOM, Japanese headers) or JSON."""
    if table not in export.TABLES:
        raise HTTPException(status_code=404, detail=NOT_FOUND)
    scope = scope_of(caller, office)
    service = metrics_of(node)
    try:
        week = _week(node, week)
        source = service.who_faxes(week, scope) if table == "remotes" else service.report(week, scope)
    except InklessError as exc:
        raise HTTPException(status_code=exc.http_status, detail=exc.message) from None
    headers, rows = export.table(source, table)
    name = f"{table}-{week}{'-' + scope if scope else ''}"
    if format == "json":
        body = json.dumps([dict(zip(headers, row, strict=True)) for row in rows], ensure_ascii=False, indent=1)
        return Response(body, media_type="application/json",
                        headers={"Content-Disposition": f'attachment; filename="{name}.json"'})
    return Response("\ufeff" + export.to_csv(headers, rows), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


@router.post("/dashboard/paper")
def record_paper(
    request: Request, node: NodeDep, caller: CallerDep, render: RendererDep,
    day: Annotated[str, Form(max_length=10)] = "", procedure: Annotated[str, Form(max_length=64)] = "",
    received: Annotated[int, Form(ge=0, le=100000)] = 0, sealed: Annotated[int, Form(ge=0, le=100000)] = 0,
    office: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Record paper handled by the caller's office (administrators: any office)."""
    target = office if caller.user.role.administers and office else caller.office.code
    try:
        try:
            when = date.fromisoformat(day)
        except ValueError:
            raise ValidationError("day: give the day as YYYY-MM-DD") from None
        metrics_of(node).record_paper(target, procedure or None, when, received, sealed, caller.user.login)
    except InklessError as exc:
        return _error(request, render, caller, exc)
    return RedirectResponse(_link("/dashboard", week=week_of(when), office=target), status_code=303)


@router.post("/dashboard/classify")
def classify(
    request: Request, node: NodeDep, caller: CallerDep, render: RendererDep, call: Annotated[RowId, Form()],
    procedure: Annotated[str, Form(max_length=64)] = "", back: Annotated[str, Form(max_length=400)] = "/dashboard",
) -> Response:
    """One-click classification of a received fax (a fax of the caller's office; administrators: any)."""
    office = None if caller.user.role.administers else caller.office.code
    try:
        metrics_of(node).classify_fax(call, procedure or None, caller.user.login, office=office)
    except InklessError as exc:
        return _error(request, render, caller, exc)
    # Only back to a dashboard page of this site.
    return RedirectResponse(back if back.startswith("/dashboard") else "/dashboard", status_code=303)


@router.get("/dashboard/government")
def government(request: Request, node: NodeDep, caller: CallerDep, render: RendererDep,
               week: WeekQuery = None) -> Response:
    """The hub's government-wide table (administrators): nodes × weeks, verified aggregates, late nodes."""
    from inkless.metrics.aggregates import government_table

    if not caller.user.role.administers:
        raise HTTPException(status_code=403, detail=N_("administrators only"))
    try:
        table = government_table(node, _week(node, week))
    except InklessError as exc:
        return _error(request, render, caller, exc)
    return render.render(request, "metrics_government.html", caller=caller, csrf_token=_csrf(caller),
                         active="dashboard", table=table, link=_link)
