"""The approval route pages: my queue (承認待ち), start a route, the route with its stamp dialog and timeline."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, Response, UploadFile
from fastapi.responses import RedirectResponse

from inkless.app import Node
from inkless.errors import AuthenticationError, InklessError, NotFoundError, PolicyError, RateLimitedError, SealError
from inkless.pageview import NotAPdfError, page_count
from inkless.seals.route_service import MAX_PDF_BYTES, RouteService, RouteStatus
from inkless.seals.routes import MAX_STEPS, OFFICE_SEAL_FIELD, ResumeFrom, RouteState, StepPlan, check_office_sealer
from inkless.seals.strip import field_boxes, render_page_png
from inkless.web.deps import Caller, RowId, WebServices, client_address, get_node, get_services, page_caller
from inkless.web.downloads import document_response
from inkless.web.drafts import DraftStore
from inkless.web.pages import WRONG_CODE, check_fresh_totp, renderer
from inkless.web.pageview import page_response
from inkless.web.pickers import entry_error, options, picker_of
from inkless.web.render import N_, Renderer

router = APIRouter(include_in_schema=False)

NodeDep = Annotated[Node, Depends(get_node)]
CallerDep = Annotated[Caller, Depends(page_caller)]
RendererDep = Annotated[Renderer, Depends(renderer)]
ServicesDep = Annotated[WebServices, Depends(get_services)]

PREVIEW_DPI = 110  # shown 560 px wide: sharp on high-density screens too
FORM_ROWS = 6
STATE_LABELS = {
    RouteState.IN_PROGRESS: N_("In progress"),
    RouteState.RETURNED: N_("Returned"),
    RouteState.AWAITING_OFFICE_SEAL: N_("Awaiting the office seal"),
    RouteState.COMPLETED: N_("Completed"),
    RouteState.REJECTED: N_("Rejected"),
}
ACTION_LABELS = {
    "started": N_("Started"),
    "stamped": N_("Stamped"),
    "returned": N_("Returned"),
    "resubmitted": N_("Corrected version submitted"),
    "rejected": N_("Rejected"),
    "office_sealed": N_("Office seal"),
}
DONE_MESSAGES = {
    "started": N_("The route has started."),
    "stamped": N_("Your seal was applied."),
    "returned": N_("The route was returned."),
    "resubmitted": N_("The corrected version was submitted: the route resumes."),
    "rejected": N_("The route was rejected."),
    "sealed": N_("The office seal was applied: the document is complete."),
}
NO_FILE = N_("Choose a PDF file.")
NO_APPROVER = N_("Enter the approvers of step %(n)s (%(title)s), or clear its title.")
TOO_LARGE = N_("The file is too large.")
NO_REASON = N_("Enter the reason. Nothing was changed.")
NOT_CONFIRMED = N_("Tick the confirmation box. Nothing was changed.")
NOT_A_PDF = N_("The file is not a readable PDF. Nothing was changed.")
RESUME_LABELS = {
    ResumeFrom.STEP: N_("From the step that returned it"),
    ResumeFrom.START: N_("From the first step"),
}


def _routes(node: Node) -> RouteService:
    if node.routes is None:
        raise SealError("this node has no approval route service")
    return node.routes


def _csrf(caller: Caller) -> str:
    return caller.session.csrf_token if caller.session else ""


def _redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303)


@router.get("/routes")
def queue_page(request: Request, node: NodeDep, caller: CallerDep, render: RendererDep) -> Response:
    """The caller's queue (承認待ち) and the latest routes of their office."""
    routes = _routes(node)
    today = node.clock.now().date()
    items = [
        {"item": item, "overdue": item.overdue(today), "state": STATE_LABELS[item.route.state]}
        for item in routes.queue(caller.user.login)
    ]
    office = [{"route": r, "state": STATE_LABELS[r.state]} for r in routes.routes_of_office(caller.office.code)]
    returned = []
    for route in routes.returned_to(caller.user.login):
        back = routes.status(route.id).return_comment
        returned.append({"route": route, "event": back,
                         "step": route.steps[route.returned_step or 0].title})
    return render.render(
        request, "routes_queue.html", caller=caller, csrf_token=_csrf(caller), active="routes",
        items=items, office_routes=office, returned=returned,
    )


@router.get("/routes/new")
def new_page(request: Request, node: NodeDep, caller: CallerDep, render: RendererDep) -> Response:
    """The form to start a route: the PDF, its name, and the steps."""
    return _new_form(request, node, caller, render)


def _new_form(
    request: Request, node: Node, caller: Caller, render: Renderer, status_code: int = 200, error: str | None = None,
    form: Mapping[str, Any] | None = None,
) -> Response:
    values = form or {"titles": ["担当", "係長", "課長", "部長"], "approvers": [caller.user.login]}
    titles = list(values.get("titles", [])) + [""] * FORM_ROWS
    approvers = list(values.get("approvers", [])) + [""] * FORM_ROWS
    deadlines = list(values.get("deadlines", [])) + [""] * FORM_ROWS
    invalid = values.get("invalid")
    rows = [{"n": i + 1, "title": titles[i], "approvers": approvers[i], "deadline": deadlines[i],
             "invalid": invalid == i} for i in range(FORM_ROWS)]
    return render.render(
        request, "routes_new.html", status_code=status_code, caller=caller, csrf_token=_csrf(caller),
        active="routes", rows=rows, error=error, name=values.get("name", ""), comment=values.get("comment", ""),
        deliver_to=values.get("deliver_to", ""), resume_labels=RESUME_LABELS,
        resume_from=values.get("resume_from", ResumeFrom.STEP.value),
        people=options(sorted(picker_of(node).people(), key=lambda m: m.kana or m.label)),
        offices=options(sorted(picker_of(node).offices(caller.office.code), key=lambda m: (-m.recent, m.value))),
        draft=values.get("draft", ""), kept=values.get("kept", []), field_error=invalid is not None,
        procedure_code=values.get("procedure_code", ""),
        procedures=node.procedures.procedures(caller.office.code) if node.procedures else [],
    )


@router.post("/routes")
async def start_route(
    request: Request,
    node: NodeDep,
    caller: CallerDep,
    render: RendererDep,
    document: Annotated[UploadFile | None, File()] = None,
    name: Annotated[str, Form(max_length=200)] = "",
    title: Annotated[list[str] | None, Form()] = None,
    approvers: Annotated[list[str] | None, Form()] = None,
    deadline: Annotated[list[str] | None, Form()] = None,
    comment: Annotated[str, Form(max_length=1000)] = "",
    deliver_to: Annotated[str, Form(max_length=200)] = "",
    resume_from: Annotated[str, Form(max_length=8)] = ResumeFrom.STEP.value,
    procedure_code: Annotated[str, Form(max_length=100)] = "",
    draft: Annotated[str, Form(max_length=64)] = "",
    drop_draft: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    """Start a route on the uploaded PDF; the caller is its starter."""
    titles, logins, dates = title or [], approvers or [], deadline or []
    form: dict[str, Any] = {"titles": titles, "approvers": logins, "deadlines": dates, "name": name, "comment": comment,
            "deliver_to": deliver_to, "resume_from": resume_from, "procedure_code": procedure_code.strip()}
    drafts = DraftStore(node.db, node.blobs, node.clock)
    kept = [] if drop_draft else await asyncio.to_thread(drafts.files, caller.user.id, draft)
    if document is not None and document.filename:
        pdf = await document.read(MAX_PDF_BYTES + 1)
        if len(pdf) > MAX_PDF_BYTES:
            return _new_form(request, node, caller, render, 413, render.gettext(request, TOO_LARGE), form)
        filename = document.filename
    elif kept:
        # The PDF sent with the form the last time, when it came back with an error.
        pdf, filename = await asyncio.to_thread(drafts.read, kept[0]), kept[0].name
    else:
        return _new_form(request, node, caller, render, 422, render.gettext(request, NO_FILE), form)

    async def refused(status: int, error: str, invalid: int | None = None) -> Response:
        # The PDF stays attached for the corrected form; an approver field left empty is pointed at.
        await asyncio.to_thread(drafts.drop, caller.user.id, draft)
        form["draft"] = await asyncio.to_thread(drafts.keep, caller.user.id, [(filename, "application/pdf", pdf)])
        form["kept"] = await asyncio.to_thread(drafts.files, caller.user.id, form["draft"])
        form["invalid"] = invalid
        return _new_form(request, node, caller, render, status, error, form)

    plans: list[StepPlan] = []
    try:
        for i in range(min(MAX_STEPS + 1, max(len(titles), len(logins)))):
            t = titles[i].strip() if i < len(titles) else ""
            a = logins[i].strip() if i < len(logins) else ""
            d = dates[i].strip() if i < len(dates) else ""
            if not t and not a:
                continue
            if not a:
                return await refused(422, render.gettext(request, NO_APPROVER) % {"n": i + 1, "title": t}, i)
            typed = [x.strip() for x in a.replace("、", ",").split(",") if x.strip()]
            # A typed name or kana (佐藤, サトウ) becomes the login it names; logins stay as they are.
            try:
                logins_of_step = picker_of(node).resolve_people(typed)
            except InklessError as exc:
                message = entry_error(lambda m: render.gettext(request, m), exc)
                if message is None:
                    raise
                return await refused(exc.http_status, message, i)
            plans.append(StepPlan(t, tuple(logins_of_step), date.fromisoformat(d) if d else None))
        doc_name = name.strip() or (filename.rsplit(".", 1)[0] if filename else "")
        procedure = (node.procedures.check_choice(procedure_code, caller.office.code) if node.procedures
                     else procedure_code.strip() or None)
        route = await asyncio.to_thread(
            _routes(node).start, pdf, caller.user.login, plans, document_name=doc_name,
            comment=comment or None, deliver_to=deliver_to or None, resume_from=resume_from,
            procedure_code=procedure,
        )
    except ValueError:
        return await refused(422, render.gettext(request, N_("A deadline is not a date.")))
    except InklessError as exc:
        message = entry_error(lambda m: render.gettext(request, m), exc) or render.error_text(request, exc)
        return await refused(exc.http_status, message)
    await asyncio.to_thread(drafts.drop, caller.user.id, draft)
    return _redirect(f"/routes/{route.id}?done=started")


@router.get("/routes/{route_id}")
def route_page(request: Request, route_id: RowId, node: NodeDep, caller: CallerDep, render: RendererDep) -> Response:
    """The route: its document's strip page, the steps, the stamp dialog if it is the caller's turn, the timeline."""
    done = request.query_params.get("done", "")
    notice = render.gettext(request, DONE_MESSAGES[done]) if done in DONE_MESSAGES else None
    return _route_page(request, node, caller, render, route_id, notice=notice)


def _route_page(
    request: Request, node: Node, caller: Caller, render: Renderer, route_id: int,
    status_code: int = 200, error: str | None = None, notice: str | None = None,
) -> Response:
    status = _routes(node).status(route_id, viewer=caller.user.login)
    route = status.route
    login = caller.user.login
    my_turn = login in route.waiting_for()
    can_office_seal = False
    if route.state is RouteState.AWAITING_OFFICE_SEAL:
        try:
            check_office_sealer(route, login, caller.user.role.value, caller.user.office_code)
            can_office_seal = True
        except PolicyError:
            pass
    step = route.current
    earlier = [] if step is None else [s for s in route.steps if s.index < step.index]
    pdf = _routes(node).document(route_id, viewer=login)
    pages = page_count(pdf)
    return render.render(
        request, "routes_detail.html", status_code=status_code, caller=caller, csrf_token=_csrf(caller),
        active="routes", route=route, status=status, state_label=STATE_LABELS[route.state],
        action_labels=ACTION_LABELS, my_turn=my_turn, can_office_seal=can_office_seal, earlier=earlier,
        error=error, notice=notice, timeline=_timeline(status), pages=list(range(1, pages + 1)), page_count=pages,
        returned=status.return_comment, can_resubmit=route.state is RouteState.RETURNED and login == route.starter,
        versions=_versions(status), resume_label=RESUME_LABELS[route.resume_from],
        returned_step=route.steps[route.returned_step].title if route.returned_step is not None else None,
        names=_names(node, [route.starter] + ([status.return_comment.actor] if status.return_comment else [])),
        procedure_name=_procedure_name(node, route.procedure_code),
    )


def _procedure_name(node: Node, code: str | None) -> str:
    """The catalogue's name of a procedure (empty when unknown)."""
    if not code or node.procedures is None:
        return ""
    try:
        return node.procedures.get(code).name
    except InklessError:
        return ""


def _names(node: Node, logins: list[str]) -> dict[str, str]:
    """Display names of people a page mentions (the login where there is none)."""
    names = {}
    for login in logins:
        try:
            names[login] = node.directory.user(login).display_name
        except InklessError:
            names[login] = login
    return names


def _versions(status: RouteStatus) -> list[dict[str, object]]:
    """Every uploaded version, with what changed from the one before: page count and SHA-256."""
    rows: list[dict[str, object]] = []
    previous = None
    for v in status.versions:
        rows.append({
            "v": v, "pages_before": previous.pages if previous else None,
            "same_file": previous is not None and previous.sha256 == v.sha256,
            "sha_before": previous.sha256 if previous else None,
        })
        previous = v
    return rows


def _timeline(status: RouteStatus) -> list[dict[str, object]]:
    titles = {s.index: s.title for s in status.route.steps}
    return [
        {
            "at": e.at,
            "actor": e.actor,
            "action": ACTION_LABELS.get(e.action, e.action),
            "step": titles.get(e.step) if e.step is not None else None,
            "to_step": titles.get(e.to_step) if e.to_step is not None else None,
            "kind": e.seal_kind,
            "comment": e.comment,
        }
        for e in status.events
    ]


@router.get("/routes/{route_id}/preview.png")
def preview(route_id: RowId, node: NodeDep, caller: CallerDep) -> Response:
    """The strip page of the current revision as PNG; the caller's own empty box outlined in blue."""
    routes = _routes(node)
    route = routes.route(route_id)
    pdf = routes.document(route_id, viewer=caller.user.login)
    highlight = None
    field = None
    if caller.user.login in route.waiting_for():
        found = route.approver(caller.user.login)
        field = found[1].field_name if found else None
    elif route.state is RouteState.AWAITING_OFFICE_SEAL:
        field = OFFICE_SEAL_FIELD
    if field is not None:
        highlight = field_boxes(pdf).get(field)
    png = render_page_png(pdf, route.strip_page, PREVIEW_DPI, highlight)
    return Response(png, media_type="image/png")


@router.get("/routes/{route_id}/document.pdf")
def download(route_id: RowId, node: NodeDep, caller: CallerDep, view: str = "") -> Response:
    """The current revision of the route's PDF; ``?view=inline`` opens it in the browser's own viewer."""
    pdf = _routes(node).document(route_id, viewer=caller.user.login)
    return document_response(pdf, "application/pdf", f"route-{route_id}.pdf", f"route-{route_id}.pdf",
                             inline=view == "inline")


@router.get("/routes/{route_id}/pages/{page}.png")
def page_image(route_id: RowId, page: RowId, node: NodeDep, caller: CallerDep, zoom: bool = False) -> Response:
    """Page ``page`` (1-based) of the route's current document, for those who may see the route."""
    pdf = _routes(node).document(route_id, viewer=caller.user.login)
    return page_response(node, pdf, page, zoom=zoom)


@router.get("/routes/{route_id}/versions/{version}.pdf")
def version_download(route_id: RowId, version: RowId, node: NodeDep, caller: CallerDep) -> Response:
    """Version ``version`` (1-based) of the document as its starter uploaded it, in the browser's viewer."""
    pdf = _routes(node).version_document(route_id, version, viewer=caller.user.login)
    name = f"route-{route_id}-v{version}.pdf"
    return document_response(pdf, "application/pdf", name, name, inline=True)


@router.get("/routes/{route_id}/versions/{version}/pages/{page}.png")
def version_page_image(route_id: RowId, version: RowId, page: RowId, node: NodeDep, caller: CallerDep,
                       zoom: bool = False) -> Response:
    """Page ``page`` of version ``version`` (both 1-based) of the route's document."""
    pdf = _routes(node).version_document(route_id, version, viewer=caller.user.login)
    return page_response(node, pdf, page, zoom=zoom)


@router.get("/routes/{route_id}/versions/{version}")
def version_page(request: Request, route_id: RowId, version: RowId, node: NodeDep, caller: CallerDep,
                 render: RendererDep) -> Response:
    """Every page of one uploaded version of the route's document."""
    routes = _routes(node)
    status = routes.status(route_id, viewer=caller.user.login)
    found = next((v for v in status.versions if v.version == version), None)
    if found is None:
        raise NotFoundError(f"route {route_id} has no version {version}")
    return render.render(
        request, "routes_version.html", caller=caller, csrf_token=_csrf(caller), active="routes",
        route=status.route, version=found, pages=list(range(1, found.pages + 1)),
    )


@router.post("/routes/{route_id}/resubmit")
async def resubmit(
    request: Request,
    route_id: RowId,
    node: NodeDep,
    caller: CallerDep,
    render: RendererDep,
    document: Annotated[UploadFile | None, File()] = None,
    comment: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """The starter uploads a corrected version of a returned route (v2, v3 …); the route resumes."""
    if document is None or not document.filename:
        return await _message_page(request, node, caller, render, route_id, 422, NO_FILE)
    pdf = await document.read(MAX_PDF_BYTES + 1)
    if len(pdf) > MAX_PDF_BYTES:
        return await _message_page(request, node, caller, render, route_id, 413, TOO_LARGE)
    try:
        await asyncio.to_thread(page_count, pdf)
    except NotAPdfError:
        return await _message_page(request, node, caller, render, route_id, 422, NOT_A_PDF)
    try:
        await asyncio.to_thread(_routes(node).resubmit, route_id, caller.user.login, pdf, comment or None)
    except InklessError as exc:
        return await _error_page(request, node, caller, render, route_id, exc)
    return _redirect(f"/routes/{route_id}?done=resubmitted")


@router.post("/routes/{route_id}/stamp")
async def stamp(
    request: Request,
    route_id: RowId,
    node: NodeDep,
    caller: CallerDep,
    render: RendererDep,
    kind: Annotated[str, Form(max_length=16)] = "personal",
    comment: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Stamp the caller's box with their personal or date seal (sealed with pyHanko's async API)."""
    try:
        await _routes(node).approve_async(route_id, caller.user.login, kind, comment or None)
    except InklessError as exc:
        return await _error_page(request, node, caller, render, route_id, exc)
    return _redirect(f"/routes/{route_id}?done=stamped")


@router.post("/routes/{route_id}/return")
async def return_route(
    request: Request,
    route_id: RowId,
    node: NodeDep,
    caller: CallerDep,
    render: RendererDep,
    comment: Annotated[str, Form(max_length=1000)] = "",
    to_step: Annotated[str, Form(max_length=8)] = "",
    confirm: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Return the route (差し戻し) with a reason: to its starter (``to_step`` ``starter``) or an earlier step."""
    refused = _refuse_without_reason(comment, confirm)
    if refused is not None:
        return await _message_page(request, node, caller, render, route_id, 422, refused)
    try:
        target = int(to_step) - 1 if to_step.strip() and to_step != "starter" else None
        await asyncio.to_thread(_routes(node).return_route, route_id, caller.user.login, comment, target)
    except ValueError:
        return await _error_page(request, node, caller, render, route_id, None)
    except InklessError as exc:
        return await _error_page(request, node, caller, render, route_id, exc)
    return _redirect(f"/routes/{route_id}?done=returned")


@router.post("/routes/{route_id}/reject")
async def reject(
    request: Request,
    route_id: RowId,
    node: NodeDep,
    caller: CallerDep,
    render: RendererDep,
    comment: Annotated[str, Form(max_length=1000)] = "",
    confirm: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Reject the route (却下) with a reason; it ends."""
    refused = _refuse_without_reason(comment, confirm)
    if refused is not None:
        return await _message_page(request, node, caller, render, route_id, 422, refused)
    try:
        await asyncio.to_thread(_routes(node).reject, route_id, caller.user.login, comment)
    except InklessError as exc:
        return await _error_page(request, node, caller, render, route_id, exc)
    return _redirect(f"/routes/{route_id}?done=rejected")


@router.post("/routes/{route_id}/office-seal")
async def office_seal(
    request: Request,
    route_id: RowId,
    node: NodeDep,
    caller: CallerDep,
    render: RendererDep,
    services: ServicesDep,
    code: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Press the office seal (角印) after the last step; asks for the one-time code again."""
    login = caller.user.login
    client = client_address(request)
    try:
        await asyncio.to_thread(check_fresh_totp, node, services, login, code, client)
        await _routes(node).office_seal_async(route_id, login)
    except AuthenticationError as exc:
        text = render.error_text(request, exc) if isinstance(exc, RateLimitedError) else render.gettext(
            request, WRONG_CODE)
        return await asyncio.to_thread(
            _route_page, request, node, caller, render, route_id, exc.http_status, text
        )
    except InklessError as exc:
        return await _error_page(request, node, caller, render, route_id, exc)
    return _redirect(f"/routes/{route_id}?done=sealed")


def _refuse_without_reason(comment: str, confirm: str) -> str | None:
    """The message for a return or rejection sent without its reason or its confirmation, if so."""
    if not comment.strip():
        return NO_REASON
    if confirm != "yes":
        return NOT_CONFIRMED
    return None


async def _message_page(
    request: Request, node: Node, caller: Caller, render: Renderer, route_id: int, status: int, message: str
) -> Response:
    return await asyncio.to_thread(
        _route_page, request, node, caller, render, route_id, status, render.gettext(request, message)
    )


async def _error_page(
    request: Request, node: Node, caller: Caller, render: Renderer, route_id: int, exc: InklessError | None
) -> Response:
    if isinstance(exc, NotFoundError):
        raise exc
    text = (render.error_text(request, exc) if exc is not None
            else render.gettext(request, N_("The form was not filled in correctly.")))
    status = exc.http_status if exc is not None else 422
    return await asyncio.to_thread(_route_page, request, node, caller, render, route_id, status, text)
