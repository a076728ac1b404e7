"""``/api/v1/routes``: approval routes for programs — start, status, queue, stamp, return, reject, office seal."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Request, Response, UploadFile
from pydantic import BaseModel, Field

from inkless.app import Node
from inkless.errors import SealError
from inkless.seals.route_service import MAX_PDF_BYTES, RouteService
from inkless.seals.routes import ResumeFrom, StepPlan
from inkless.web.deps import Caller, RowId, WebServices, api_caller, client_address, get_node, get_services
from inkless.web.downloads import document_response
from inkless.web.pages import check_fresh_totp
from inkless.web.pageview import page_response

router = APIRouter(tags=["routes"])

CallerDep = Annotated[Caller, Depends(api_caller)]
NodeDep = Annotated[Node, Depends(get_node)]
ServicesDep = Annotated[WebServices, Depends(get_services)]


class StepIn(BaseModel):
    """One step of a new route."""

    title: str = Field(examples=["係長"], max_length=10)
    approvers: list[str] = Field(examples=[["sato"]], description="one login, or several in parallel (合議)")
    deadline: date | None = None


class StampIn(BaseModel):
    """A stamp: the seal to use and an optional comment."""

    kind: str = Field(default="personal", description="personal (認印) or date (日付印)")
    comment: str | None = Field(default=None, max_length=1000)


class ReturnIn(BaseModel):
    """A return (差し戻し): why, and to whom (default: the starter, for a corrected version)."""

    comment: str = Field(max_length=1000, description="the reason (required)")
    to_step: int | None = Field(
        default=None, ge=1,
        description="1-based number of an earlier step to return to; omitted: to the starter, who uploads a "
                    "corrected version (POST /routes/{id}/resubmit)",
    )


class RejectIn(BaseModel):
    """A rejection (却下), with its reason."""

    comment: str = Field(max_length=1000)


class OfficeSealIn(BaseModel):
    """The office seal needs the caller's one-time code again, even with a live session or a token."""

    totp: str = Field(max_length=20)


def _routes(node: Node) -> RouteService:
    if node.routes is None:
        raise SealError("this node has no approval route service")
    return node.routes


def _status(node: Node, route_id: int, login: str) -> dict[str, Any]:
    return _routes(node).status(route_id, viewer=login).to_dict()


@router.post("/routes", status_code=201)
async def start_route(
    node: NodeDep,
    caller: CallerDep,
    document: Annotated[UploadFile, File(description="The PDF to route")],
    steps: Annotated[str, Form(description='JSON list of steps: [{"title": "担当", "approvers": ["tanaka"]}, …]')],
    name: Annotated[str, Form(max_length=200)] = "",
    comment: Annotated[str, Form(max_length=1000)] = "",
    deliver_to: Annotated[str, Form(max_length=200)] = "",
    resume_from: Annotated[str, Form(
        max_length=8, description="after a 差し戻し and a corrected version: 'step' (the step that returned it) "
                                  "or 'start' (step 1)")] = ResumeFrom.STEP.value,
    procedure_code: Annotated[str, Form(max_length=64, description="Procedure of the catalogue")] = "",
) -> dict[str, Any]:
    """Start a route as the caller: the approval strip is added and step 1's approvers see it in their queue."""
    try:
        parsed = [StepIn.model_validate(s) for s in json.loads(steps)]
    except (ValueError, TypeError) as exc:
        raise HTTPException(status_code=422, detail=f"steps must be a JSON list of steps: {exc}") from None
    pdf = await document.read(MAX_PDF_BYTES + 1)
    if len(pdf) > MAX_PDF_BYTES:
        raise HTTPException(status_code=413, detail=f"the PDF is larger than {MAX_PDF_BYTES // (1024 * 1024)} MiB")
    plans = [StepPlan(s.title, tuple(s.approvers), s.deadline) for s in parsed]
    doc_name = name.strip() or (document.filename or "document").rsplit(".", 1)[0]
    procedure = (node.procedures.check_choice(procedure_code, caller.office.code) if node.procedures
                 else procedure_code.strip() or None)
    route = await asyncio.to_thread(
        _routes(node).start, pdf, caller.user.login, plans, document_name=doc_name,
        comment=comment or None, deliver_to=deliver_to or None, resume_from=resume_from,
        procedure_code=procedure,
    )
    return await asyncio.to_thread(_status, node, route.id, caller.user.login)


@router.get("/routes/queue")
def queue(node: NodeDep, caller: CallerDep) -> list[dict[str, Any]]:
    """Routes waiting for the caller (承認待ち): a box to stamp or the office seal to press."""
    today = node.clock.now().date()
    return [
        {
            "id": i.route.id,
            "document_name": i.route.document_name,
            "starter": i.route.starter,
            "action": i.action,
            "step": i.step_title,
            "deadline": i.deadline.isoformat() if i.deadline else None,
            "overdue": i.overdue(today),
        }
        for i in _routes(node).queue(caller.user.login)
    ]


@router.get("/routes/{route_id}")
def status(route_id: RowId, node: NodeDep, caller: CallerDep) -> dict[str, Any]:
    """The route with its steps, timeline and revisions (for its starter, approvers and office)."""
    return _status(node, route_id, caller.user.login)


@router.get("/routes/{route_id}/document", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})
def document(route_id: RowId, node: NodeDep, caller: CallerDep, revision: RowId | None = None) -> Response:
    """The route's PDF: the current revision, or ``revision`` from its history."""
    pdf = _routes(node).document(route_id, viewer=caller.user.login, revision=revision)
    return Response(pdf, media_type="application/pdf")


@router.get("/routes/{route_id}/pages/{page}.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}})
def page(route_id: RowId, page: RowId, node: NodeDep, caller: CallerDep, zoom: bool = False) -> Response:
    """Page ``page`` (1-based) of the route's current document as PNG, seal imprints included."""
    pdf = _routes(node).document(route_id, viewer=caller.user.login)
    return page_response(node, pdf, page, zoom=zoom)


@router.get("/routes/{route_id}/versions/{version}/document", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})
def version_document(route_id: RowId, version: RowId, node: NodeDep, caller: CallerDep) -> Response:
    """Version ``version`` (1-based; v1 is the first upload) of the document as its starter uploaded it."""
    pdf = _routes(node).version_document(route_id, version, viewer=caller.user.login)
    name = f"route-{route_id}-v{version}.pdf"
    return document_response(pdf, "application/pdf", name, name)


@router.post("/routes/{route_id}/resubmit")
async def resubmit(
    route_id: RowId,
    node: NodeDep,
    caller: CallerDep,
    document: Annotated[UploadFile, File(description="The corrected PDF")],
    comment: Annotated[str, Form(max_length=1000, description="what was corrected")] = "",
) -> dict[str, Any]:
    """The starter uploads a corrected version of a returned route (差し戻し); the route resumes."""
    pdf = await document.read(MAX_PDF_BYTES + 1)
    if len(pdf) > MAX_PDF_BYTES:
        raise HTTPException(status_code=413, detail=f"the PDF is larger than {MAX_PDF_BYTES // (1024 * 1024)} MiB")
    await asyncio.to_thread(_routes(node).resubmit, route_id, caller.user.login, pdf, comment or None)
    return await asyncio.to_thread(_status, node, route_id, caller.user.login)


@router.post("/routes/{route_id}/stamp")
async def stamp(route_id: RowId, body: StampIn, node: NodeDep, caller: CallerDep) -> dict[str, Any]:
    """Stamp the caller's box of the current step."""
    await _routes(node).approve_async(route_id, caller.user.login, body.kind, body.comment)
    return await asyncio.to_thread(_status, node, route_id, caller.user.login)


@router.post("/routes/{route_id}/return")
def return_route(route_id: RowId, body: ReturnIn, node: NodeDep, caller: CallerDep) -> dict[str, Any]:
    """Return the route (差し戻し) to its starter for a corrected version, or to a chosen earlier step."""
    _routes(node).return_route(route_id, caller.user.login, body.comment,
                               None if body.to_step is None else body.to_step - 1)
    return _status(node, route_id, caller.user.login)


@router.post("/routes/{route_id}/reject")
def reject(route_id: RowId, body: RejectIn, node: NodeDep, caller: CallerDep) -> dict[str, Any]:
    """Reject the route (却下)."""
    _routes(node).reject(route_id, caller.user.login, body.comment)
    return _status(node, route_id, caller.user.login)


@router.post("/routes/{route_id}/office-seal")
async def office_seal(
    request: Request, route_id: RowId, body: OfficeSealIn, node: NodeDep, caller: CallerDep, services: ServicesDep
) -> dict[str, Any]:
    """Press the office seal (角印) that closes the route; extends the document to PAdES B-LTA."""
    # 404 for a route the caller may not see, before the code is even looked at (as on the page).
    await asyncio.to_thread(_status, node, route_id, caller.user.login)
    await asyncio.to_thread(
        check_fresh_totp, node, services, caller.user.login, body.totp, client_address(request)
    )
    await _routes(node).office_seal_async(route_id, caller.user.login)
    return await asyncio.to_thread(_status, node, route_id, caller.user.login)
