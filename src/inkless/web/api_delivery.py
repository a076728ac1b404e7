"""``/api/v1`` for delivery: send (streamed multipart upload), inbox, message, documents, status, report, lists.

Routes parse input and call :class:`inkless.delivery.service.DeliveryService`; its errors carry their
HTTP status (PolicyError 403, NotFoundError 404 — also for messages of other offices, so ids cannot be
probed —, MessageTooLargeError 413, ValidationError 422).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from inkless.app import Node
from inkless.delivery.faxnote import FaxNote
from inkless.delivery.model import InboxItem, RecipientStatus, SentMessage
from inkless.delivery.service import DeliveryService, NewDocument
from inkless.errors import ConfigurationError, ValidationError
from inkless.pageview import NotAPdfError, page_count
from inkless.web.api_pickup import PickupRecipientOut, pickup_out
from inkless.web.deps import Caller, RowId, api_caller, get_node, require_own_office
from inkless.web.downloads import document_response
from inkless.web.pages import RendererDep
from inkless.web.pageview import page_response

router = APIRouter(tags=["delivery"])

CallerDep = Annotated[Caller, Depends(api_caller)]
NodeDep = Annotated[Node, Depends(get_node)]

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, invalid, expired or revoked credentials"},
    403: {"description": "Not allowed: another office, too low a clearance, or a missing CSRF token"},
    404: {"description": "No such message (also for messages of other offices)"},
}


def _svc(node: Node) -> DeliveryService:
    if node.delivery is None:
        raise ConfigurationError("this node has no delivery service")
    return node.delivery


class FaxNoteOut(BaseModel):
    """A fallback decision or fax outcome: a reason code with its parameters, and the sentence in the
    caller's language (``?lang=ja|en``, else the lang cookie, else the node's default)."""

    code: str = Field(examples=["faxing", "not_urgent", "sent", "failed"])
    params: dict[str, Any]
    at: datetime | None
    text: str
    detail: str | None = Field(default=None, description="the line's or the service's own words, untranslated")


class RecipientStatusOut(BaseModel):
    """Delivery state for one recipient office."""

    kind: Literal["office"] = "office"
    recipient: str = Field(examples=["criminal-affairs@moj"])
    state: str = Field(description="queued, retrying, delivered, expired, rejected or fax")
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None = Field(description="why the last attempt failed, or why it was rejected/expired")
    expires_at: datetime
    delivered_at: datetime | None
    received_at: datetime | None = Field(description="when the recipient stored it, from its signed receipt")
    receipt: bool = Field(description="a signed receipt is stored")
    fax_decision: FaxNoteOut | None = Field(
        default=None, description="the disaster fallback's decision for this recipient (why it is or is not faxed)")
    fax_outcome: FaxNoteOut | None = Field(
        default=None, description="how the fallback fax went: queued, sent, failed or not_queued")


StatusOut = Annotated[RecipientStatusOut | PickupRecipientOut, Field(discriminator="kind")]


class InboxMessageOut(BaseModel):
    """A message in an office's inbox; ``subject`` is null when the caller is not cleared for it."""

    message_id: str
    sender: str = Field(examples=["civil-affairs@moj"], description="office@node, or fax:<number> for faxes")
    subject: str | None
    classification: int = Field(ge=0, le=3)
    priority: str
    received_at: datetime
    documents: int
    source: str = Field(description="inkless, fax, intake (the public intake window) or pickup (files an e-mail "
                                    "recipient sent back through a pickup link; the message's reply_to names the "
                                    "sent message)")
    authenticated: bool = Field(description="false for faxes: nobody signed them")
    opened: bool
    envelope_sha256: str
    fax_first: dict[str, Any] | None = Field(
        default=None, description="the sender faxed this message before delivering it: number, from_number, "
                                  "sent_at, pages, job (disaster fallback)")
    fax_copy_message_id: str | None = Field(
        default=None, description="this office's inbox copy of that fax, when this node's fax line received it")


class SentMessageOut(BaseModel):
    """A message sent by the caller's office, with per-recipient status."""

    message_id: str
    office: str
    sender: str
    subject: str | None
    classification: int
    priority: str
    procedure_code: str | None
    reply_to: str | None
    created_at: datetime
    envelope_sha256: str
    envelope_size: int
    documents: int
    recipients: list[RecipientStatusOut]


class DocumentOut(BaseModel):
    """A document of an opened message."""

    number: int = Field(description="1-based: use with /messages/{id}/documents/{number}", ge=1)
    pages: int | None = Field(default=None, description="pages of a PDF (numbered from 1); null for other files")
    name: str
    content_type: str
    size: int
    sha256: str


class MessageOut(BaseModel):
    """An opened message's metadata (from the verified envelope)."""

    message_id: str
    sender: str
    recipients: list[str]
    subject: str
    classification: int
    priority: str
    procedure_code: str | None
    reply_to: str | None
    created_at: datetime
    signed_by: str
    authenticated: bool
    copy_: str = Field(alias="copy", description="sent (the sender's copy) or received")
    office: str
    envelope_sha256: str
    documents: list[DocumentOut]
    facts: dict[str, Any] = Field(default_factory=dict)

    model_config = {"populate_by_name": True}


class SentOut(BaseModel):
    """The message id of a message just queued."""

    message_id: str
    recipients: list[RecipientStatusOut]


class ListIn(BaseModel):
    """A distribution list to create or replace."""

    name: str = Field(min_length=1, max_length=100, examples=["all-police"])
    addresses: list[str] = Field(min_length=1, examples=[["security@npa", "criminal-affairs@moj"]])


class ListOut(BaseModel):
    name: str
    addresses: list[str]


class ForwardIn(BaseModel):
    """Where to forward a message; the classification can only go up (unless an admin lowers it)."""

    to: list[str] = Field(default_factory=list)
    lists: list[str] = Field(default_factory=list)
    classification: int | None = Field(default=None, ge=0, le=3)
    subject: str | None = None


def _note_out(n: FaxNote | None, gettext: Callable[[str], str]) -> FaxNoteOut | None:
    if n is None:
        return None
    return FaxNoteOut(code=n.code, params=dict(n.params), at=n.at, text=n.render(gettext), detail=n.detail)


def _status_out(s: RecipientStatus, gettext: Callable[[str], str]) -> RecipientStatusOut:
    return RecipientStatusOut(
        recipient=s.recipient, state=s.state, attempts=s.attempts, next_attempt_at=s.next_attempt_at,
        last_error=s.last_error, expires_at=s.expires_at, delivered_at=s.delivered_at, received_at=s.received_at,
        receipt=s.has_receipt, fax_decision=_note_out(s.fax_decision, gettext),
        fax_outcome=_note_out(s.fax_outcome, gettext),
    )


def note_language(request: Request, render: RendererDep) -> Callable[[str], str]:
    """Translate into the caller's language (``?lang=``, the lang cookie, the node's default)."""
    return lambda message: render.gettext(request, message)


GettextDep = Annotated[Callable[[str], str], Depends(note_language)]


def inbox_message_out(i: InboxItem) -> InboxMessageOut:
    return InboxMessageOut(
        message_id=i.message_id, sender=i.sender, subject=i.subject, classification=i.classification,
        priority=i.priority, received_at=i.received_at, documents=i.document_count, source=i.source,
        authenticated=i.authenticated, opened=i.opened, envelope_sha256=i.envelope_sha256,
        fax_first=i.fax_first.as_dict() if i.fax_first else None, fax_copy_message_id=i.fax_copy_message_id,
    )


def _sent_out(m: SentMessage, gettext: Callable[[str], str]) -> SentMessageOut:
    return SentMessageOut(
        message_id=m.message_id, office=m.office, sender=m.sender_login, subject=m.subject,
        classification=m.classification, priority=m.priority, procedure_code=m.procedure_code,
        reply_to=m.reply_to, created_at=m.created_at, envelope_sha256=m.envelope_sha256,
        envelope_size=m.envelope_size, documents=m.document_count,
        recipients=[_status_out(s, gettext) for s in m.recipients],
    )


def inbox_messages(node: Node, caller: Caller, code: str) -> list[InboxMessageOut]:
    """The caller's own office's inbox (used by GET /offices/{code}/inbox)."""
    require_own_office(caller, code)
    return [inbox_message_out(i) for i in _svc(node).inbox(code, caller.user.login)]


_FORM_SCHEMA = {
    "type": "object",
    "required": ["files", "subject"],
    "properties": {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "to": {"type": "string", "description": "office@node or e-mail addresses (secure pickup), comma-separated "
                                                "(or repeat the field)"},
        "confirm_external": {"type": "boolean", "default": False,
                             "description": "confirm that a classification 1 document may go to e-mail addresses"},
        "mobile": {"type": "string", "description": "ADDRESS=NUMBER, repeatable: an e-mail recipient's mobile number"},
        "list": {"type": "array", "items": {"type": "string"}, "description": "distribution list names"},
        "subject": {"type": "string", "maxLength": 200},
        "classification": {"type": "integer", "minimum": 0, "maximum": 3, "default": 0},
        "priority": {"type": "string", "enum": ["normal", "urgent"], "default": "normal"},
        "procedure_code": {"type": "string"},
        "reply_to": {"type": "string", "description": "the message id this answers"},
    },
}
_UPLOAD = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": _FORM_SCHEMA}}}}
_UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS, 413: {"description": "Larger than max_message_bytes (the limit is named)"}}


async def _read_upload(request: Request, svc: DeliveryService) -> tuple[dict[str, str], list[str], list[str],
                                                                         int, list[NewDocument]]:
    """The fields, recipients, lists, classification and documents of a multipart message upload."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ValidationError("send the message as multipart/form-data")
    form = await request.form(max_files=1000, max_fields=1000)
    try:
        files = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
        fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        to = [a.strip() for v in form.getlist("to") if isinstance(v, str) for a in v.split(",") if a.strip()]
        lists = [v for v in form.getlist("list") if isinstance(v, str) and v]
        try:
            classification = int(fields.get("classification", "0"))
        except ValueError:
            raise ValidationError("classification must be a number 0-3") from None
        docs = []
        total = 0
        for f in files:
            data = await f.read()
            total += len(data)
            svc.check_size(total)
            docs.append(NewDocument(f.filename or "document", data, f.content_type or "application/octet-stream"))
    finally:
        # The spooled upload files are ours to close, whoever parsed the form first.
        await form.close()
    return fields, to, lists, classification, docs


@router.post("/messages", response_model=SentOut, status_code=201, responses=_UPLOAD_ERRORS, openapi_extra=_UPLOAD)
async def send_message(
    request: Request, caller: CallerDep, node: NodeDep, gettext: GettextDep,
) -> SentOut:
    """Send documents from the caller's office: multipart/form-data with ``files`` (one or more), ``to``
    (comma-separated or repeated office@node, or e-mail addresses for secure pickup, with ``confirm_external``
    for classification 1 and optional ``mobile``), ``list`` (repeatable), ``subject``, ``classification`` (0-3),
    ``priority`` (normal/urgent), optional ``procedure_code`` and ``reply_to``.

    The body is streamed to temporary files and refused with 413 as soon as it passes the size limit.
    """
    svc = _svc(node)
    fields, to, lists, classification, docs = await _read_upload(request, svc)
    mobiles = dict(m.split("=", 1) for m in fields.get("mobile", "").split(",") if "=" in m)
    procedure = fields.get("procedure_code") or None
    if procedure and node.procedures is not None:
        procedure = node.procedures.check_choice(procedure, caller.office.code)
    message_id = await run_in_threadpool(functools.partial(
        svc.send, caller.user.login, caller.office.code, to, lists, fields.get("subject", ""), docs,
        classification, fields.get("priority", "normal"), procedure,
        fields.get("reply_to") or None, confirm=fields.get("confirm_external", "").lower() in ("1", "true", "yes"),
        mobiles={k.strip(): v.strip() for k, v in mobiles.items()},
    ))
    statuses = await run_in_threadpool(svc.status, message_id, caller.user.login)
    return SentOut(message_id=message_id, recipients=[_status_out(s, gettext) for s in statuses])


@router.post("/messages/{message_id}/reply", response_model=SentOut, status_code=201, responses=_UPLOAD_ERRORS,
             openapi_extra=_UPLOAD)
async def reply_message(
    message_id: str, request: Request, caller: CallerDep, node: NodeDep, gettext: GettextDep,
) -> SentOut:
    """Answer the sender of a received message from the caller's office (same multipart form as POST
    /messages; ``to`` and ``list`` are ignored; ``subject`` defaults to "Re: …"; the classification
    defaults to the original's and can only go up unless an administrator lowers it)."""
    svc = _svc(node)
    # The message is looked up before the body is read: a message the caller may not see costs no upload.
    await run_in_threadpool(svc.message, message_id, caller.user.login)
    fields, _to, _lists, classification, docs = await _read_upload(request, svc)
    requested = classification if "classification" in fields else None
    new_id = await run_in_threadpool(
        svc.reply, message_id, caller.user.login, fields.get("subject") or None, docs, requested,
        fields.get("priority", "normal"), caller.office.code,
    )
    statuses = await run_in_threadpool(svc.status, new_id, caller.user.login)
    return SentOut(message_id=new_id, recipients=[_status_out(s, gettext) for s in statuses])


@router.get("/offices/{code}/sent", response_model=list[SentMessageOut], responses=ERRORS)
def sent_messages(code: str, caller: CallerDep, node: NodeDep, gettext: GettextDep) -> list[SentMessageOut]:
    """Messages sent by the caller's own office, newest first, with per-recipient status."""
    require_own_office(caller, code)
    return [_sent_out(m, gettext) for m in _svc(node).sent(code, caller.user.login)]


@router.get("/messages/{message_id}", response_model=MessageOut, responses=ERRORS)
def get_message(message_id: str, caller: CallerDep, node: NodeDep) -> MessageOut:
    """Open a message (decrypted in memory, signature re-checked, audited) and return its metadata."""
    opened = _svc(node).open_message(message_id, caller.user.login)
    m = opened.metadata
    return MessageOut(
        message_id=m.message_id, sender=m.sender, recipients=list(m.recipients), subject=m.subject,
        classification=m.classification, priority=m.priority, procedure_code=m.procedure_code,
        reply_to=m.reply_to, created_at=m.created_at, signed_by=opened.signer_address,
        authenticated=opened.authenticated, copy=opened.copy, office=opened.office,
        envelope_sha256=opened.envelope_sha256, facts=m.facts,
        documents=[DocumentOut(number=i, name=d.name, content_type=d.content_type, size=len(d.data), sha256=d.sha256,
                               pages=_pages(d.content_type, d.data))
                   for i, d in enumerate(opened.documents, start=1)],
    )


class ThreadReplyOut(BaseModel):
    """A message answering another (its ``reply_to``), as the caller's office sent or received it."""

    message_id: str
    direction: str = Field(description="sent (by the caller's office) or received")
    sender: str = Field(examples=["criminal-affairs@moj", "pickup:taro@example.co.jp"])
    subject: str | None = Field(description="null when the caller is not cleared for it")
    classification: int = Field(ge=0, le=3)
    at: datetime = Field(description="when it was sent or received")
    source: str = Field(description="inkless, or pickup for files an e-mail recipient sent back")


@router.get("/messages/{message_id}/replies", response_model=list[ThreadReplyOut], responses=ERRORS)
def get_replies(message_id: str, caller: CallerDep, node: NodeDep) -> list[ThreadReplyOut]:
    """The conversation below a message: the replies the caller's office sent or received to it, oldest first
    (answers from other offices, and files an e-mail recipient sent back through a pickup link)."""
    from inkless.delivery.conversation import replies

    svc = _svc(node)
    svc.message(message_id, caller.user.login)  # the same refusal (404) as for the message itself
    return [ThreadReplyOut(message_id=r.message_id, direction=r.direction, sender=r.sender, subject=r.subject,
                           classification=r.classification, at=r.at, source=r.source)
            for r in replies(node.db, svc, message_id, caller.user.login)]


def _pages(content_type: str, data: bytes) -> int | None:
    if content_type != "application/pdf" and not data[:1024].lstrip().startswith(b"%PDF-"):
        return None
    try:
        return page_count(data)
    except NotAPdfError:
        return None


def _opened_document(node: Node, caller: Caller, message_id: str, number: int) -> Any:
    opened = _svc(node).open_message(message_id, caller.user.login)
    if not 1 <= number <= len(opened.documents):
        raise HTTPException(
            status_code=404,
            detail=f"message has {len(opened.documents)} documents, numbered from 1; there is no document {number}",
        )
    return opened.documents[number - 1]


@router.get("/messages/{message_id}/documents/{number}", responses=ERRORS,
            response_class=Response)
def get_document(message_id: str, number: RowId, caller: CallerDep, node: NodeDep) -> Response:
    """Download document ``number`` (1-based) of a message (audited as an opening)."""
    doc = _opened_document(node, caller, message_id, number)
    return document_response(doc.data, doc.content_type, doc.name, f"document-{number}")


@router.get("/messages/{message_id}/documents/{number}/pages/{page}.png", responses={
    **ERRORS, 200: {"content": {"image/png": {}}}}, response_class=Response)
def get_page(message_id: str, number: RowId, page: RowId, caller: CallerDep, node: NodeDep,
             zoom: bool = False) -> Response:
    """Page ``page`` of document ``number`` (both 1-based) as PNG (audited as an opening); ``zoom`` enlarges it."""
    doc = _opened_document(node, caller, message_id, number)
    if _pages(doc.content_type, doc.data) is None:
        raise HTTPException(status_code=404, detail=f"document {number} is not a PDF: it has no pages to show")
    return page_response(node, doc.data, page, zoom=zoom)


@router.get("/messages/{message_id}/status", response_model=list[StatusOut], responses=ERRORS)
def get_status(message_id: str, caller: CallerDep, node: NodeDep, gettext: GettextDep) -> list[StatusOut]:
    """Per-recipient delivery state of a message the caller's office sent: offices with the disaster fallback's
    decision and fax outcome (reason codes, and their text in the caller's language), then e-mail recipients
    (``kind`` email) with each step — notified, opened, downloaded, replied, bounced, expired — and its time."""
    offices: list[StatusOut] = [_status_out(s, gettext) for s in _svc(node).status(message_id, caller.user.login)]
    pickups = node.pickup.statuses(message_id, caller.user.login) if node.pickup is not None else []
    return offices + [pickup_out(p, gettext) for p in pickups]


@router.get("/messages/{message_id}/report", responses=ERRORS, response_class=Response)
def get_report(message_id: str, caller: CallerDep, node: NodeDep) -> Response:
    """The transmission report (送信証明) PDF of a message the caller's office sent."""
    from inkless.delivery.report import transmission_report

    pdf = transmission_report(_svc(node), message_id, caller.user.login, node.settings.tz)
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="report-{message_id}.pdf"'})


@router.post("/messages/{message_id}/forward", response_model=SentOut, status_code=201, responses=ERRORS)
def forward_message(message_id: str, body: ForwardIn, caller: CallerDep, node: NodeDep,
                    gettext: GettextDep) -> SentOut:
    """Forward a message the caller may open to other offices, re-encrypted to them."""
    svc = _svc(node)
    new_id = svc.forward(message_id, caller.user.login, body.to, body.lists, body.classification, body.subject,
                         from_office=caller.office.code)
    return SentOut(message_id=new_id,
                   recipients=[_status_out(s, gettext) for s in svc.status(new_id, caller.user.login)])


@router.get("/lists", response_model=list[ListOut], responses=ERRORS)
def get_lists(caller: CallerDep, node: NodeDep) -> list[ListOut]:
    """Every distribution list of this node."""
    return [ListOut(name=d.name, addresses=list(d.addresses)) for d in _svc(node).distribution_lists()]


@router.post("/lists", response_model=ListOut, status_code=201, responses=ERRORS)
def post_list(body: ListIn, caller: CallerDep, node: NodeDep) -> ListOut:
    """Create or replace a distribution list (administrators only)."""
    if not caller.user.role.administers:
        raise HTTPException(status_code=403, detail="only administrators manage distribution lists")
    saved = _svc(node).set_list(body.name, body.addresses, actor=caller.user.login)
    return ListOut(name=saved.name, addresses=list(saved.addresses))
