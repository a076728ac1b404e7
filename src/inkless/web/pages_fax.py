"""HTML pages of the fax bridge: send a fax (clerks), the fax log, and the administrators' fax settings.

Administrators manage routing rules, the junk-fax block list, the queue of unroutable faxes
and each office's disaster fallback. Everyone else sees their own office's faxes only.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse

from inkless.app import Node
from inkless.delivery.envelope import Document
from inkless.delivery.report import page_count
from inkless.directory.model import check_fax_number
from inkless.errors import ConfigurationError, InklessError, ValidationError
from inkless.fax.policy import check_fax_allowed
from inkless.fax.routing import normalise_number
from inkless.fax.service import FaxService
from inkless.web.deps import Caller, RowId, get_node, page_caller
from inkless.web.drafts import DraftStore
from inkless.web.pages import RendererDep
from inkless.web.pickers import entry_error, options, picker_of, remembered_procedure
from inkless.web.render import N_, Renderer

router = APIRouter(include_in_schema=False)

NodeDep = Annotated[Node, Depends(get_node)]
CallerDep = Annotated[Caller, Depends(page_caller)]

QUEUED = N_("Fax job %(id)s queued: %(pages)s pages to %(number)s.")
ADMINS_ONLY = N_("administrators only")
NO_FILE = N_("Choose a PDF file to send.")
UNAUTHENTICATED = N_("Unauthenticated sender (fax)")
CLASSIFICATION_LABELS = {0: N_("0 Public"), 1: N_("1 Internal"), 2: N_("2 Confidential (never sent by fax)")}
STATE_LABELS = {
    "queued": N_("queued"),
    "sending": N_("sending"),
    "retrying": N_("retrying"),
    "done": N_("sent"),
    "failed": N_("failed"),
}
CALL_STATUS_LABELS = {
    "done": N_("sent"),
    "retry": N_("failed, will retry"),
    "failed": N_("failed"),
    "delivered": N_("delivered"),
    "routed": N_("being delivered"),
    "unroutable": N_("unroutable"),
    "blocked": N_("blocked"),
}


def fax_of(node: Node) -> FaxService:
    """The node's fax service (configuration error if the node has none)."""
    if node.fax is None:
        raise ConfigurationError("this node has no fax service")
    return node.fax


def _csrf(caller: Caller) -> str:
    return caller.session.csrf_token if caller.session else ""


def _admin(caller: Caller) -> None:
    if not caller.user.role.administers:
        raise HTTPException(status_code=403, detail=ADMINS_ONLY)


def _send_page(request: Request, node: Node, caller: Caller, render: Renderer, status_code: int = 200,
               **extra: Any) -> Response:
    fax = fax_of(node)
    settings = fax.office_settings(caller.office.code)
    return render.render(
        request, "fax_send.html", status_code=status_code, caller=caller, csrf_token=_csrf(caller),
        active="fax", jobs=fax.jobs(caller.office.code, limit=50), state_labels=STATE_LABELS,
        cover_default=settings.cover_page_default, schedule=fax.default_schedule,
        fax_options=options(picker_of(node).fax_numbers(caller.office.code)),
        procedures=_procedures(node, caller), **extra,
    )


def _procedures(node: Node, caller: Caller) -> list[Any]:
    """The procedures a clerk of the caller's office can choose (its own and the node-wide ones)."""
    return node.procedures.procedures(caller.office.code) if node.procedures else []


def _procedure_choice(node: Node, caller: Caller, code: str) -> str | None:
    """The chosen procedure code, checked against the office's catalogue (empty: none)."""
    if node.procedures is None:
        return code.strip() or None
    return node.procedures.check_choice(code, caller.office.code)


@router.get("/fax")
def fax_home(request: Request, node: NodeDep, caller: CallerDep, render: RendererDep, number: str = "") -> Response:
    """Send a fax, and the office's outbound fax jobs; ``?number=`` fills in the number ("FAXで返信")."""
    if number:
        number = number.strip()[:40]
        remembered = remembered_procedure(node, caller.office.code, number=number)
        form = {"number": number, "subject": "", "classification": 0,
                "procedure_code": remembered[0] if remembered else "", "procedure_remembered": bool(remembered)}
        return _send_page(request, node, caller, render, form=form)
    return _send_page(request, node, caller, render)


@router.post("/fax/send")
async def fax_send(
    request: Request,
    node: NodeDep,
    caller: CallerDep,
    render: RendererDep,
    number: Annotated[str, Form(max_length=40)] = "",
    subject: Annotated[str, Form(max_length=200)] = "",
    classification: Annotated[int, Form(ge=0, le=3)] = 0,
    cover: Annotated[str, Form(max_length=5)] = "",
    confirm: Annotated[str, Form(max_length=5)] = "",
    procedure_code: Annotated[str, Form(max_length=100)] = "",
    document: Annotated[UploadFile | None, File()] = None,
    draft: Annotated[str, Form(max_length=64)] = "",
    step: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Check the fax and ask for confirmation (number, recipient, pages, classification); queue it once confirmed.

    ``step`` is empty for the form, ``send`` from the confirmation page, ``edit`` to go back to the form;
    the uploaded PDF is kept as a draft in between, and when the form comes back with an error.
    """
    fax = fax_of(node)
    form: dict[str, Any] = {"number": number, "subject": subject, "classification": classification,
                            "cover": bool(cover), "confirm": bool(confirm), "procedure_code": procedure_code.strip()}
    drafts = DraftStore(node.db, node.blobs, node.clock)
    kept = await run_in_threadpool(drafts.files, caller.user.id, draft)
    data: bytes | None = None
    filename = ""
    limit = node.settings.max_message_bytes
    if document is not None and document.filename:
        data, filename = await document.read(limit + 1), document.filename
    elif kept:
        data, filename = await run_in_threadpool(drafts.read, kept[0]), kept[0].name

    async def keep() -> None:
        if data is not None and len(data) <= limit:
            if draft:
                await run_in_threadpool(drafts.drop, caller.user.id, draft)
            token = await run_in_threadpool(drafts.keep, caller.user.id, [(filename, "application/pdf", data)])
            form["draft"] = token
            form["kept"] = await run_in_threadpool(drafts.files, caller.user.id, token)

    if step == "edit":
        await keep()
        return _send_page(request, node, caller, render, form=form)
    try:
        if data is None:
            raise ValidationError(NO_FILE)
        if len(data) > limit:
            raise ValidationError("the file is larger than the limit of {limit} bytes", limit=limit)
        if not number.strip():
            raise ValidationError("a fax number is required")
        # A name or kana from the fax address book becomes its number; typed numbers stay.
        number = picker_of(node).resolve_fax(number, caller.office.code)
        form["number"] = number
        check_fax_number(number.strip())
        check_fax_allowed(classification, bool(confirm))
        procedure = _procedure_choice(node, caller, procedure_code)
        if procedure is None and step != "send":
            # Nothing chosen: the procedure the office chose for this number last time, shown before sending.
            remembered = remembered_procedure(node, caller.office.code, number=number)
            if remembered:
                form["procedure_code"], form["procedure_remembered"] = remembered[0], True
        if step != "send":
            pages = await run_in_threadpool(page_count, Document(filename, "application/pdf", data))
            if not pages:
                raise ValidationError("only PDF documents can be faxed")
            await keep()
            return _confirm_page(request, node, caller, render, form, filename, pages)
        job_id = fax.send(caller.user.login, caller.office.code, number, [data], cover_page=bool(cover),
                          classification=classification, confirm_internal=bool(confirm), subject=subject or None,
                          procedure_code=procedure)
    except InklessError as exc:
        await keep()
        message = entry_error(lambda m: render.gettext(request, m), exc) or render.error_text(request, exc)
        return _send_page(request, node, caller, render, status_code=exc.http_status, error=message, form=form)
    if draft:
        await run_in_threadpool(drafts.drop, caller.user.id, draft)
    job = fax.job(job_id)
    notice = render.gettext(request, QUEUED) % {"id": job.id, "pages": job.pages, "number": job.number}
    return _send_page(request, node, caller, render, notice=notice)


def _confirm_page(request: Request, node: Node, caller: Caller, render: Renderer, form: dict[str, Any],
                  filename: str, pages: int) -> Response:
    """What will be sent, before anything is queued: number, who has it, pages, classification."""
    wanted = normalise_number(str(form["number"]))
    offices = [o for o in node.directory.offices() if o.fax_number]
    recipients = [o for o in offices if normalise_number(o.fax_number) == wanted]
    code = form.get("procedure_code") or ""
    procedure = next((p for p in _procedures(node, caller) if p.code == code), None)
    return render.render(
        request, "fax_confirm.html", caller=caller, csrf_token=_csrf(caller), active="fax", form=form,
        procedure_name=procedure.name if procedure else "",
        filename=filename, pages=pages, recipients=recipients, known=[] if recipients else offices,
        classification_label=CLASSIFICATION_LABELS.get(int(form["classification"]), ""),
    )


@router.get("/fax/jobs/{job_id}/report")
def fax_job_report(job_id: RowId, node: NodeDep, caller: CallerDep) -> Response:
    """The transmission report PDF of a job of the caller's office."""
    fax = fax_of(node)
    job = fax.job(job_id)
    # Administrators too: a job's report shows the first page of another office's document.
    if job.office_code != caller.office.code:
        raise HTTPException(status_code=404, detail=N_("Not found"))
    return Response(fax.job_report(job_id), media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="fax-report-{job_id}.pdf"'})


@router.get("/fax/log")
def fax_log(request: Request, node: NodeDep, caller: CallerDep, render: RendererDep) -> Response:
    """The call log: every call for administrators, the caller's office's calls for everyone else."""
    from inkless.search.fax_log import FaxLogFilter, fax_log_page
    from inkless.web.pages_inbox import BAD_FILTER, DATE_ORDER, date_param

    fax_of(node)
    params = request.query_params
    raw = {name: params.get(name, "")[:100] for name in ("q", "dir", "from", "to")}
    error = None
    try:
        before = params.get("before", "")
        position = int(before) if before.isdigit() and len(before) <= 18 else None  # a call id, or the newest
        filt = FaxLogFilter(q=raw["q"].strip(), direction=raw["dir"] or None, date_from=date_param(raw["from"]),
                            date_to=date_param(raw["to"]), before=position)
        if filt.date_from and filt.date_to and filt.date_from > filt.date_to:
            raise ValidationError(DATE_ORDER)
    except ValidationError as exc:
        error = render.gettext(request, exc.message if exc.message == DATE_ORDER else BAD_FILTER)
        filt = FaxLogFilter()
    delivery = node.delivery
    calls: list[Any] = []
    older = None
    if error is None and delivery is not None:
        page = fax_log_page(
            node.db, delivery.search_index, node.settings.tz, filt,
            office_id=None if caller.user.role.administers else caller.office.id,
            viewer_office_id=caller.office.id, clearance=caller.user.clearance)
        calls, older = page.calls, page.older
    kept = {k: v for k, v in raw.items() if v}
    invitable = {code for code in {getattr(c, "office_code", None) for c in calls} if code
                 and node.intake is not None and node.intake.invitation_for(code) is not None}
    invited = params.get("invited", "")
    notice = render.gettext(request, N_("The invitation fax was queued (fax job %(job)s).")) % {
        "job": invited} if invited.isdigit() else None
    return render.render(request, "fax_log.html", status_code=422 if error else 200, caller=caller,
                         csrf_token=_csrf(caller), active="fax_log", calls=calls, status_labels=CALL_STATUS_LABELS,
                         unauthenticated=UNAUTHENTICATED, form=raw, search_error=error,
                         filtered=bool(kept) or error is not None,
                         older_link="?" + urlencode({**kept, "before": older}) if older else None,
                         newest_link="?" + urlencode(kept) if filt.before is not None else None,
                         invitable=invitable, notice=notice)


def _admin_page(request: Request, node: Node, caller: Caller, render: Renderer, status_code: int = 200,
                **extra: Any) -> Response:
    _admin(caller)
    fax = fax_of(node)
    offices = node.directory.offices()
    return render.render(
        request, "fax_admin.html", status_code=status_code, caller=caller, csrf_token=_csrf(caller),
        active="fax_admin", rules=fax.rules(), blocks=fax.blocks(), unroutable=fax.unroutable(), offices=offices,
        settings={o.code: fax.office_settings(o.code) for o in offices},
        fallback_after=f"{node.settings.fax_fallback_after_minutes:g}", line=_line_status(node), **extra,
    )


def _line_status(node: Node) -> dict[str, Any]:
    """What the FAX設定 page shows about the line: for sip, the status its process publishes.

    Its times are parsed here and formatted by the page's ``localtime`` filter (the node's zone).
    """
    from datetime import datetime

    from inkless.fax.sip.status import read_status

    settings = node.settings
    if settings.fax_line != "sip":
        return {"line": settings.fax_line}
    status = read_status(settings.data_dir)

    def jst(text: str | None) -> datetime | None:
        return datetime.fromisoformat(text) if text else None

    registration = dict(status.get("registration") or {})
    registration["expires_jst"] = jst(registration.get("expires_at"))
    calls = [dict(c, started_jst=jst(c.get("started_at"))) for c in status.get("calls") or []]
    return {"line": "sip", "running": bool(status.get("running")), "listen": status.get("listen"),
            "registration": registration, "calls": calls,
            "malformed": status.get("malformed_datagrams", 0), "refused": status.get("refused_invites", 0)}


@router.get("/fax/admin")
def fax_admin(request: Request, node: NodeDep, caller: CallerDep, render: RendererDep) -> Response:
    """Routing rules, block list, unroutable queue and fallback settings (administrators)."""
    return _admin_page(request, node, caller, render)


def _admin_action(request: Request, node: Node, caller: Caller, render: Renderer, action: Any) -> Response:
    _admin(caller)
    try:
        action(fax_of(node))
    except InklessError as exc:
        return _admin_page(request, node, caller, render, status_code=exc.http_status,
                           error=render.error_text(request, exc))
    return RedirectResponse("/fax/admin", status_code=303)


@router.post("/fax/admin/rules")
def fax_rule_add(
    request: Request, node: NodeDep, caller: CallerDep, render: RendererDep,
    kind: Annotated[str, Form(max_length=16)] = "", pattern: Annotated[str, Form(max_length=200)] = "",
    office: Annotated[str, Form(max_length=64)] = "", priority: Annotated[int, Form(ge=0, le=100000)] = 100,
) -> Response:
    """Add a routing rule."""
    return _admin_action(request, node, caller, render,
                         lambda fax: fax.add_rule(kind, pattern, office, priority, actor=caller.user.login))


@router.post("/fax/admin/rules/{rule_id}/delete")
def fax_rule_delete(request: Request, rule_id: RowId, node: NodeDep, caller: CallerDep,
                    render: RendererDep) -> Response:
    """Delete a routing rule."""
    return _admin_action(request, node, caller, render, lambda fax: fax.remove_rule(rule_id, actor=caller.user.login))


@router.post("/fax/admin/blocks")
def fax_block_add(
    request: Request, node: NodeDep, caller: CallerDep, render: RendererDep,
    kind: Annotated[str, Form(max_length=8)] = "", pattern: Annotated[str, Form(max_length=200)] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """Block a calling number or station id."""
    return _admin_action(request, node, caller, render,
                         lambda fax: fax.add_block(kind, pattern, reason or None, actor=caller.user.login))


@router.post("/fax/admin/blocks/{entry_id}/delete")
def fax_block_delete(request: Request, entry_id: RowId, node: NodeDep, caller: CallerDep,
                     render: RendererDep) -> Response:
    """Remove a block-list entry."""
    return _admin_action(request, node, caller, render,
                         lambda fax: fax.remove_block(entry_id, actor=caller.user.login))


@router.post("/fax/admin/unroutable/{call_id}/assign")
def fax_assign(request: Request, call_id: RowId, node: NodeDep, caller: CallerDep, render: RendererDep,
               office: Annotated[str, Form(max_length=64)] = "") -> Response:
    """Deliver an unroutable fax to the chosen office."""
    return _admin_action(request, node, caller, render, lambda fax: fax.assign(call_id, office, caller.user.login))


@router.get("/fax/admin/calls/{call_id}/image")
def fax_call_image(call_id: RowId, node: NodeDep, caller: CallerDep) -> Response:
    """The pages of an unroutable fax as PDF (administrators: to decide where it belongs); 404 for any other."""
    _admin(caller)
    return Response(fax_of(node).unroutable_image(call_id), media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="fax-{call_id}.pdf"'})


@router.post("/fax/admin/offices/{code}/fallback")
def fax_fallback(request: Request, code: str, node: NodeDep, caller: CallerDep, render: RendererDep,
                 enabled: Annotated[str, Form(max_length=5)] = "") -> Response:
    """Turn an office's disaster fallback to fax on or off."""
    return _admin_action(request, node, caller, render, lambda fax: fax.set_office_settings(
        code, fallback_enabled=enabled == "1", actor=caller.user.login))


@router.post("/fax/admin/offices/{code}/cover")
def fax_cover_default(request: Request, code: str, node: NodeDep, caller: CallerDep, render: RendererDep,
                      enabled: Annotated[str, Form(max_length=5)] = "") -> Response:
    """Whether an office's faxes get a cover page unless the sender says otherwise."""
    return _admin_action(request, node, caller, render, lambda fax: fax.set_office_settings(
        code, cover_page_default=enabled == "1", actor=caller.user.login))
