"""``/api/v1/fax``: send faxes, follow jobs and the call log; routing rules, block list and queue for admins."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, HTTPException, Response, UploadFile
from pydantic import BaseModel, Field

from inkless.app import Node
from inkless.errors import ValidationError
from inkless.fax.jobs import JobSchedule, parse_duration
from inkless.fax.log import FaxCallEntry, FaxJob
from inkless.web.deps import Caller, RowId, api_caller, get_node, require_admin
from inkless.web.pages_fax import fax_of

router = APIRouter(prefix="/fax", tags=["fax"])

CallerDep = Annotated[Caller, Depends(api_caller)]
AdminDep = Annotated[Caller, Depends(require_admin)]
NodeDep = Annotated[Node, Depends(get_node)]


class FaxJobOut(BaseModel):
    """An outbound fax job and how far it got."""

    id: int
    office: str
    created_by: str
    number: str
    pages: int
    cover_page: bool
    classification: int
    state: str = Field(description="queued, sending, retrying, done or failed")
    tries: int
    max_tries: int
    interval_s: int
    kill_at: datetime
    next_attempt_at: datetime
    last_code: int | None = Field(description="T.30 result code of the last attempt (0 = OK, -1 = no session)")
    last_text: str | None
    origin: str = Field(description="clerk, or fallback (disaster fallback of a delivery)")
    has_report: bool
    procedure_code: str | None = Field(default=None, description="The procedure the fax is counted against")


class FaxCallOut(BaseModel):
    """One call of the log (SEND attempt or RECV)."""

    id: int
    direction: str
    line: str
    started_at: datetime
    duration_s: float
    remote_number: str | None
    called_number: str | None
    sub_address: str | None
    remote_ident: str | None
    pages: int
    bit_rate: int
    ecm: bool
    compression: str
    bad_rows: int
    t30_code: int
    t30_text: str
    status: str
    office: str | None
    job_id: int | None
    authenticated: bool = Field(description="always false for received faxes: nobody vouches for the sender")


class RuleIn(BaseModel):
    """A routing rule to add."""

    kind: str = Field(description="did, subaddress, tsi or cid")
    pattern: str = Field(min_length=1, max_length=128)
    office: str
    priority: int = Field(default=100, ge=0, le=100000)


class BlockIn(BaseModel):
    """A block-list entry to add."""

    kind: str = Field(description="cid or tsi")
    pattern: str = Field(min_length=1, max_length=128)
    reason: str | None = Field(default=None, max_length=500)


class AssignIn(BaseModel):
    """Where an unroutable fax goes."""

    office: str


class FallbackIn(BaseModel):
    """An office's disaster fallback switch."""

    enabled: bool


def _job(job: FaxJob) -> FaxJobOut:
    return FaxJobOut(
        id=job.id, office=job.office_code, created_by=job.created_by, number=job.number, pages=job.pages,
        cover_page=job.cover_page, classification=job.classification, state=job.state, tries=job.tries,
        max_tries=job.max_tries, interval_s=job.interval_s, kill_at=job.kill_at, next_attempt_at=job.next_attempt_at,
        last_code=job.last_code, last_text=job.last_text, origin=job.origin, has_report=job.has_report,
        procedure_code=job.procedure_code,
    )


def _call(call: FaxCallEntry) -> FaxCallOut:
    return FaxCallOut(
        id=call.id, direction=call.direction, line=call.line, started_at=call.started_at, duration_s=call.duration_s,
        remote_number=call.remote_number, called_number=call.called_number, sub_address=call.sub_address,
        remote_ident=(call.remote_ident or "").strip() or None, pages=call.pages, bit_rate=call.bit_rate,
        ecm=call.ecm, compression=call.compression, bad_rows=call.bad_rows, t30_code=call.t30_code,
        t30_text=call.t30_text, status=call.status, office=call.office_code, job_id=call.job_id,
        authenticated=False if call.direction == "RECV" else True,
    )


def _own_job(node: Node, caller: Caller, job_id: int) -> FaxJob:
    job = fax_of(node).job(job_id)
    if job.office_code != caller.office.code:
        raise HTTPException(status_code=404, detail=f"no fax job {job_id}")
    return job


@router.post("/jobs", status_code=201, response_model=FaxJobOut)
async def send_fax(
    node: NodeDep,
    caller: CallerDep,
    number: Annotated[str, Form(max_length=40)],
    document: Annotated[UploadFile, File(description="The PDF to fax")],
    classification: Annotated[int, Form(ge=0, le=3)] = 0,
    confirm_internal: Annotated[bool, Form()] = False,
    cover_page: Annotated[bool | None, Form()] = None,
    subject: Annotated[str | None, Form(max_length=200)] = None,
    tries: Annotated[int | None, Form(ge=1, le=50)] = None,
    interval: Annotated[str | None, Form(max_length=10)] = None,
    kill_time: Annotated[str | None, Form(max_length=10)] = None,
    procedure_code: Annotated[str | None, Form(max_length=64, description="Procedure of the catalogue")] = None,
) -> FaxJobOut:
    """Queue a PDF as a fax from the caller's office (classification ≥ 2 is refused with 403)."""
    fax = fax_of(node)
    procedure = (node.procedures.check_choice(procedure_code, caller.office.code) if node.procedures
                 else procedure_code or None)
    limit = node.settings.max_message_bytes
    data = await document.read(limit + 1)
    if len(data) > limit:
        raise ValidationError(f"the document is larger than the limit of {limit} bytes")
    base = fax.default_schedule
    schedule = JobSchedule(
        tries or base.max_tries,
        parse_duration(interval, "interval") if interval else base.interval_s,
        parse_duration(kill_time, "kill time") if kill_time else base.kill_after_s,
    )
    job_id = fax.send(caller.user.login, caller.office.code, number, [data], cover_page=cover_page,
                      classification=classification, confirm_internal=confirm_internal, subject=subject,
                      schedule=schedule, procedure_code=procedure)
    return _job(fax.job(job_id))


@router.get("/jobs", response_model=list[FaxJobOut])
def list_jobs(node: NodeDep, caller: CallerDep) -> list[FaxJobOut]:
    """The caller's office's outbound fax jobs, newest first."""
    return [_job(j) for j in fax_of(node).jobs(caller.office.code)]


@router.get("/jobs/{job_id}", response_model=FaxJobOut)
def get_job(job_id: RowId, node: NodeDep, caller: CallerDep) -> FaxJobOut:
    """One job of the caller's office."""
    return _job(_own_job(node, caller, job_id))


@router.get("/jobs/{job_id}/attempts", response_model=list[FaxCallOut])
def job_attempts(job_id: RowId, node: NodeDep, caller: CallerDep) -> list[FaxCallOut]:
    """Every call made for a job, with its T.30 result."""
    _own_job(node, caller, job_id)
    return [_call(c) for c in fax_of(node).attempts(job_id)]


@router.get("/jobs/{job_id}/report", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})
def job_report(job_id: RowId, node: NodeDep, caller: CallerDep) -> Response:
    """The transmission report (PDF) of the job's last attempt."""
    _own_job(node, caller, job_id)
    return Response(fax_of(node).job_report(job_id), media_type="application/pdf")


@router.get("/calls", response_model=list[FaxCallOut])
def list_calls(node: NodeDep, caller: CallerDep, limit: int = 200) -> list[FaxCallOut]:
    """The call log, newest last: administrators see every call, others their office's."""
    if not 1 <= limit <= 5000:
        raise ValidationError("limit must be 1-5000")
    office = None if caller.user.role.administers else caller.office.code
    return [_call(c) for c in fax_of(node).calls(office_code=office, limit=limit)]


@router.get("/unroutable", response_model=list[FaxCallOut])
def unroutable(node: NodeDep, _admin: AdminDep) -> list[FaxCallOut]:
    """Received faxes that no rule or office number matched (administrators)."""
    return [_call(c) for c in fax_of(node).unroutable()]


@router.post("/unroutable/{call_id}/assign", response_model=FaxCallOut)
def assign(call_id: RowId, body: AssignIn, node: NodeDep, admin: AdminDep) -> FaxCallOut:
    """Deliver an unroutable fax to an office (administrators)."""
    fax = fax_of(node)
    fax.assign(call_id, body.office, admin.user.login)
    return _call(fax.call(call_id))


@router.get("/rules")
def list_rules(node: NodeDep, _admin: AdminDep) -> list[dict[str, Any]]:
    """Routing rules in the order they are tried (administrators)."""
    return [{"id": r.id, "kind": r.kind, "pattern": r.pattern, "office": r.office_code, "priority": r.priority}
            for r in fax_of(node).rules()]


@router.post("/rules", status_code=201)
def add_rule(body: RuleIn, node: NodeDep, admin: AdminDep) -> dict[str, Any]:
    """Add a routing rule (administrators)."""
    rule = fax_of(node).add_rule(body.kind, body.pattern, body.office, body.priority, actor=admin.user.login)
    return {"id": rule.id, "kind": rule.kind, "pattern": rule.pattern, "office": rule.office_code,
            "priority": rule.priority}


@router.delete("/rules/{rule_id}", status_code=204)
def delete_rule(rule_id: RowId, node: NodeDep, admin: AdminDep) -> Response:
    """Delete a routing rule (administrators)."""
    fax_of(node).remove_rule(rule_id, actor=admin.user.login)
    return Response(status_code=204)


@router.get("/blocks")
def list_blocks(node: NodeDep, _admin: AdminDep) -> list[dict[str, Any]]:
    """The junk-fax block list (administrators)."""
    return [{"id": b.id, "kind": b.kind, "pattern": b.pattern, "reason": b.reason} for b in fax_of(node).blocks()]


@router.post("/blocks", status_code=201)
def add_block(body: BlockIn, node: NodeDep, admin: AdminDep) -> dict[str, Any]:
    """Block a calling number or station id (administrators)."""
    entry = fax_of(node).add_block(body.kind, body.pattern, body.reason, actor=admin.user.login)
    return {"id": entry.id, "kind": entry.kind, "pattern": entry.pattern, "reason": entry.reason}


@router.delete("/blocks/{entry_id}", status_code=204)
def delete_block(entry_id: RowId, node: NodeDep, admin: AdminDep) -> Response:
    """Remove a block-list entry (administrators)."""
    fax_of(node).remove_block(entry_id, actor=admin.user.login)
    return Response(status_code=204)


@router.put("/offices/{code}/fallback")
def set_fallback(code: str, body: FallbackIn, node: NodeDep, admin: AdminDep) -> dict[str, Any]:
    """Turn an office's disaster fallback to fax on or off (administrators)."""
    settings = fax_of(node).set_office_settings(code, fallback_enabled=body.enabled, actor=admin.user.login)
    return {"office": settings.office_code, "fallback_enabled": settings.fallback_enabled}
