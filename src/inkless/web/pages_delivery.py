"""HTML pages of delivery: a message with server-rendered page previews, and compose (send, reply,
forward). The inbox and sent items lists are in :mod:`inkless.web.pages_inbox`.

Routes parse the form and call :class:`inkless.delivery.service.DeliveryService`, which enforces the
policy (office membership, clearance, pinned peers) and audits every opening; errors of a send are
shown on the compose form, which keeps what the user typed.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse
from starlette.datastructures import UploadFile

from inkless.app import Node
from inkless.delivery.conversation import replies
from inkless.delivery.faxnote import FaxNote
from inkless.delivery.model import InboxItem, OpenedMessage, SentMessage
from inkless.delivery.service import DeliveryService, NewDocument
from inkless.errors import (
    ConfigurationError,
    InklessError,
    MessageTooLargeError,
    NotFoundError,
    PolicyError,
    ValidationError,
)
from inkless.pageview import NotAPdfError, page_count
from inkless.text import UnsafeTextError
from inkless.web.deps import Caller, RowId, get_node, page_caller
from inkless.web.downloads import document_response
from inkless.web.drafts import DraftFile, DraftStore
from inkless.web.pages import RendererDep
from inkless.web.pageview import page_response
from inkless.web.pickers import entry_error, options, picker_of
from inkless.web.render import N_, Renderer

router = APIRouter(include_in_schema=False)

NodeDep = Annotated[Node, Depends(get_node)]
CallerDep = Annotated[Caller, Depends(page_caller)]

CLASSIFICATION_LABELS = {0: N_("Public"), 1: N_("Internal"), 2: N_("Confidential"), 3: N_("Strictly confidential")}
STATE_LABELS = {
    "queued": N_("Waiting to be sent"),
    "retrying": N_("Retrying"),
    "delivered": N_("Delivered"),
    "expired": N_("Expired"),
    "rejected": N_("Refused by the recipient"),
    "fax": N_("Sent by fax"),
}
UNAUTHENTICATED = N_("Unauthenticated sender (fax)")
NO_RECIPIENT = N_("Enter at least one address or choose a distribution list.")
NO_DOCUMENT = N_("Attach at least one document.")
NO_SUBJECT = N_("Enter a subject.")
BAD_CLASSIFICATION = N_("Choose a classification from the list.")
BAD_PRIORITY = N_("Choose a priority from the list.")
TOO_LARGE = N_("The documents are too large: this node accepts at most %(limit)s per message.")
UNKNOWN_RECIPIENT = N_("A recipient or distribution list is unknown.")
NOT_PINNED = N_(
    "Confidential messages (classification 2 and above) may only go to offices of this node or of pinned peer nodes."
)
NOT_ALLOWED = N_("The delivery policy does not allow this message.")
INVALID = N_("The message cannot be sent as it is.")
NO_SUCH_DOCUMENT = N_("No such document or page.")


@dataclass
class ComposeForm:
    """What the user typed on the compose form (kept when the form is shown again with an error)."""

    to: str = ""
    lists: list[str] = field(default_factory=list)
    subject: str = ""
    classification: int = 0
    priority: str = "normal"
    procedure_code: str = ""
    reply_to: str = ""
    forward: str = ""
    mobile: str = ""
    confirm_external: bool = False
    # Files sent with a form that came back with an error: kept server-side, shown as attached.
    draft: str = ""
    kept: list[DraftFile] = field(default_factory=list)
    # The field the error is about (to, subject, files): marked and focused when the form is shown again.
    invalid: str = ""


def delivery_of(node: Node) -> DeliveryService:
    """The node's delivery service (configuration error if the node has none)."""
    if node.delivery is None:
        raise ConfigurationError("this node has no delivery service")
    return node.delivery


def _csrf(caller: Caller) -> str:
    return caller.session.csrf_token if caller.session else ""


def _size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} B"


class AddressBook:
    """Names of the offices behind addresses: this node's directory and pinned peers' directories."""

    def __init__(self, node: Node) -> None:
        self.names: dict[str, str] = {f"{o.code}@{node.node_id}": o.name for o in node.directory.offices()}
        listing = getattr(node.peers, "remote_offices", None)
        if callable(listing):
            # Peers' directories are signed and cached; an unreadable one just leaves names out.
            try:
                for office in listing():
                    self.names.setdefault(office.address, office.name)
            except InklessError:
                pass

    def name(self, address: str) -> str | None:
        """The office name of ``address``, if known."""
        return self.names.get(address)


def common_context(caller: Caller, active: str) -> dict[str, Any]:
    """What every delivery page shows: the caller, the CSRF token, the labels of levels and states."""
    return {
        "caller": caller, "csrf_token": _csrf(caller), "active": active,
        "classification_labels": CLASSIFICATION_LABELS, "state_labels": STATE_LABELS,
        "unauthenticated": UNAUTHENTICATED,
    }


def fax_note_of(request: Request, render: Renderer) -> Callable[[FaxNote], str]:
    """The fallback's decisions and fax outcomes in the request's language."""
    return lambda fax_note: fax_note.render(lambda message: render.gettext(request, message))


# --- one message ---------------------------------------------------------------------------


def fax_reply_number(info: SentMessage | InboxItem) -> str | None:
    """The number to answer a received fax on, if the calling line gave one."""
    if not isinstance(info, InboxItem) or info.source != "fax" or not info.sender.startswith("fax:"):
        return None
    number = info.sender.removeprefix("fax:")
    return number if number and number != "unknown" else None


def _is_pdf(content_type: str, data: bytes) -> bool:
    return content_type == "application/pdf" or data[:1024].lstrip().startswith(b"%PDF-")


@router.get("/messages/{message_id}")
async def message_page(request: Request, message_id: str, node: NodeDep, caller: CallerDep,
                       render: RendererDep) -> Response:
    """Open a message (audited): metadata, documents with downloads and page previews, reply and forward."""
    svc = delivery_of(node)
    opened: OpenedMessage = await run_in_threadpool(svc.open_message, message_id, caller.user.login)
    info = await run_in_threadpool(svc.message, message_id, caller.user.login)
    documents = []
    for index, doc in enumerate(opened.documents, start=1):
        pages = await run_in_threadpool(_pdf_pages, doc.content_type, doc.data)
        documents.append({
            "number": index, "name": doc.name, "content_type": doc.content_type, "size": _size(len(doc.data)),
            "sha256": doc.sha256, "pages": pages, "previews": list(range(1, (pages or 0) + 1)),
        })
    meta = opened.metadata
    book = AddressBook(node)
    from inkless.web.pages_pickup import STATE_LABELS as PICKUP_LABELS
    from inkless.web.pages_pickup import sender_view

    pickups = (await run_in_threadpool(sender_view, node, message_id, caller.user.login)
               if opened.copy == "sent" else [])
    thread = await run_in_threadpool(replies, node.db, svc, message_id, caller.user.login)
    return render.render(
        request, "delivery_message.html", message=meta, opened=opened, documents=documents, book=book,
        received_at=info.received_at if isinstance(info, InboxItem) else None,
        statuses=info.recipients if isinstance(info, SentMessage) else (), fax_note=fax_note_of(request, render),
        fax_first=info.fax_first if isinstance(info, InboxItem) else None,
        fax_copy=info.fax_copy_message_id if isinstance(info, InboxItem) else None,
        can_reply=opened.copy == "received" and opened.authenticated,
        pickups=pickups, pickup_labels=PICKUP_LABELS, thread=thread, fax_reply_number=fax_reply_number(info),
        notice=render.gettext(request, N_("The message was queued for delivery.")) if "sent" in request.query_params
        else render.gettext(request, N_("The invitation fax was queued (fax job %(job)s).")) % {
            "job": request.query_params["invited"]} if request.query_params.get("invited", "").isdigit() else None,
        can_invite=meta.source == "fax" and opened.copy == "received" and bool((meta.facts or {}).get("cid"))
        and node.intake is not None and node.intake.invitation_for(opened.office) is not None,
        **common_context(caller, "sent" if opened.copy == "sent" else "inbox"),
    )


def _pdf_pages(content_type: str, data: bytes) -> int | None:
    """Number of pages of a PDF document, or None if it is not a readable PDF."""
    if not _is_pdf(content_type, data):
        return None
    try:
        return page_count(data)
    except NotAPdfError:
        return None


def _document(node: Node, caller: Caller, message_id: str, number: int) -> tuple[str, str, bytes]:
    """Document ``number`` (1-based) of a message, opened (and audited) for the caller."""
    opened = delivery_of(node).open_message(message_id, caller.user.login)
    if not 1 <= number <= len(opened.documents):
        raise HTTPException(status_code=404, detail=NO_SUCH_DOCUMENT)
    doc = opened.documents[number - 1]
    return doc.name, doc.content_type, doc.data


@router.get("/messages/{message_id}/documents/{number}")
def document_download(message_id: str, number: RowId, node: NodeDep, caller: CallerDep, view: str = "") -> Response:
    """Download document ``number`` (1-based) of a message (audited as an opening); ``?view=inline`` opens a PDF
    in the browser's own viewer."""
    name, content_type, data = _document(node, caller, message_id, number)
    return document_response(data, content_type, name, f"document-{number}", inline=view == "inline")


@router.get("/messages/{message_id}/documents/{number}/pages/{page}.png")
def page_preview(message_id: str, number: RowId, page: RowId, node: NodeDep, caller: CallerDep,
                 zoom: bool = False) -> Response:
    """Page ``page`` of document ``number`` (both 1-based) as PNG, authorised (and audited) like opening the
    message; ``?zoom=1`` renders it enlarged."""
    _name, content_type, data = _document(node, caller, message_id, number)
    if not _is_pdf(content_type, data):
        raise HTTPException(status_code=404, detail=NO_SUCH_DOCUMENT)
    return page_response(node, data, page, zoom=zoom)


@router.get("/messages/{message_id}/report")
def report_download(message_id: str, node: NodeDep, caller: CallerDep) -> Response:
    """The transmission report (送信証明) PDF of a message the caller's office sent."""
    from inkless.delivery.report import transmission_report

    pdf = transmission_report(delivery_of(node), message_id, caller.user.login, node.settings.tz)
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="report-{message_id}.pdf"'})


# --- compose -------------------------------------------------------------------------------


def _compose_page(request: Request, node: Node, caller: Caller, render: Renderer, form: ComposeForm,
                  status_code: int = 200, error: str | None = None, detail: str | None = None) -> Response:
    svc = delivery_of(node)
    original: SentMessage | InboxItem | None = None
    source = form.forward or form.reply_to
    if source:
        # Only metadata (no decryption): the compose form needs the original's subject and sender.
        original = svc.message(source, caller.user.login)
    return render.render(
        request, "delivery_compose.html", status_code=status_code, form=form, form_error=error,
        error_detail=detail,
        lists=svc.distribution_lists(), original=original,
        office_options=options(sorted(picker_of(node).offices(caller.office.code),
                                      key=lambda m: (-m.recent, m.value))),
        levels=[(n, CLASSIFICATION_LABELS[n]) for n in range(0, caller.user.clearance + 1)],
        limit=_size(node.settings.max_message_bytes), **common_context(caller, "compose"),
        procedures=node.procedures.procedures(caller.office.code) if node.procedures else [],
    )


@router.get("/compose")
def compose_form(request: Request, node: NodeDep, caller: CallerDep, render: RendererDep,
                 reply_to: str = "", forward: str = "") -> Response:
    """The compose form; ``?reply_to=ID`` answers a message, ``?forward=ID`` forwards one."""
    form = ComposeForm(reply_to=reply_to[:64], forward=forward[:64] if not reply_to else "")
    svc = delivery_of(node)
    source = form.forward or form.reply_to
    if source:
        original = svc.message(source, caller.user.login)
        form.classification = original.classification
        subject = original.subject or ""
        if form.reply_to and isinstance(original, InboxItem):
            form.to = original.sender
            form.subject = f"Re: {subject}"[:200] if subject else ""
        elif form.forward:
            form.subject = f"Fw: {subject}"[:200] if subject else ""
            form.priority = original.priority
    return _compose_page(request, node, caller, render, form)


def _field(values: dict[str, str], name: str, limit: int) -> str:
    return values.get(name, "")[:limit]


EMAIL_CLASSIFIED = N_("Documents of classification 2 (秘) and 3 (極秘) never leave the government: they cannot be "
                      "sent to an e-mail address. The attempt was recorded.")
EMAIL_CONFIRM = N_("This document is internal (classification 1). Tick the confirmation to send it to an e-mail "
                   "address.")


def _error_text(render: Renderer, request: Request, node: Node, exc: InklessError) -> tuple[str, str | None]:
    """A translated headline for a refused send, and the service's own sentence (translated) beneath it."""
    detail = render.error_detail(request, exc)
    if isinstance(exc, MessageTooLargeError):
        return render.gettext(request, TOO_LARGE) % {"limit": _size(node.settings.max_message_bytes)}, detail
    if isinstance(exc, NotFoundError):
        return render.gettext(request, UNKNOWN_RECIPIENT), detail
    if isinstance(exc, PolicyError) and "never leaves the government" in exc.message:
        return render.gettext(request, EMAIL_CLASSIFIED), None
    if isinstance(exc, PolicyError) and "needs a confirmation" in exc.message:
        return render.gettext(request, EMAIL_CONFIRM), None
    if isinstance(exc, PolicyError):
        lead = NOT_PINNED if "pinned" in exc.message else NOT_ALLOWED
        return render.gettext(request, lead), detail
    if isinstance(exc, UnsafeTextError):
        # Translated sentence; beneath it the character (code point and Unicode name) to look for.
        return render.error_text(request, exc), f"{exc.codepoint} {exc.char_name}"
    if isinstance(exc, ValidationError):
        return render.gettext(request, INVALID), detail
    return render.error_text(request, exc), None


async def close_upload(request: Request) -> AsyncIterator[None]:
    """Close the parsed form's spooled files however the request ends (a refused CSRF token included)."""
    try:
        yield
    finally:
        await request.close()


@router.post("/compose")
async def compose_send(request: Request, _close: Annotated[None, Depends(close_upload)], node: NodeDep,
                       caller: CallerDep, render: RendererDep) -> Response:
    """Send (or reply, or forward) from the caller's office; errors show the form again with the input."""
    svc = delivery_of(node)
    parsed = await request.form(max_files=1000, max_fields=1000)
    try:
        values = {k: v for k, v in parsed.multi_items() if isinstance(v, str)}
        form = ComposeForm(
            to=_field(values, "to", 4000), subject=_field(values, "subject", 300),
            lists=[v[:100] for v in parsed.getlist("list") if isinstance(v, str) and v],
            priority=_field(values, "priority", 20) or "normal",
            procedure_code=_field(values, "procedure_code", 100).strip(),
            reply_to=_field(values, "reply_to", 64), forward=_field(values, "forward", 64),
            mobile=_field(values, "mobile", 40).strip(), confirm_external=values.get("confirm_external") == "1",
        )
        error: str | None = None
        try:
            form.classification = int(values.get("classification", "0"))
        except ValueError:
            error = BAD_CLASSIFICATION
        if not 0 <= form.classification <= 3:
            form.classification, error = 0, BAD_CLASSIFICATION
        if form.priority not in ("normal", "urgent"):
            form.priority, error = "normal", BAD_PRIORITY
        documents: list[NewDocument] = []
        total = 0
        drafts = DraftStore(node.db, node.blobs, node.clock)
        draft = _field(values, "draft", 64)
        if not form.forward and draft and not values.get("drop_draft"):
            for kept in await run_in_threadpool(drafts.files, caller.user.id, draft):
                data = await run_in_threadpool(drafts.read, kept)
                total += len(data)
                documents.append(NewDocument(kept.name, data, kept.content_type))
        if not form.forward:
            for upload in parsed.getlist("files"):
                # A file input left empty still sends a part, with no file name and no bytes.
                if not isinstance(upload, UploadFile) or not upload.filename:
                    continue
                data = await upload.read()
                total += len(data)
                # A file chosen again under the name of a kept one replaces it (the user picked it anew).
                for old in [d for d in documents if d.name == upload.filename]:
                    documents.remove(old)
                    total -= len(old.data)
                documents.append(NewDocument(upload.filename, data,
                                             upload.content_type or "application/octet-stream"))
    finally:
        await parsed.close()
    to = [a.strip() for a in form.to.replace("、", ",").split(",") if a.strip()]
    if error is None and not form.reply_to and not to and not form.lists:
        error = NO_RECIPIENT
    if error is None and to and not form.reply_to:
        # A typed office name or kana (民事局, ミンジキョク) becomes the address it names; addresses stay.
        try:
            to = await run_in_threadpool(picker_of(node).resolve_offices, to, caller.office.code)
        except InklessError as exc:
            message = entry_error(lambda m: render.gettext(request, m), exc)
            if message is None:
                raise
            form.invalid = "to"
            await _keep_files(drafts, caller, form, draft, documents)
            return _compose_page(request, node, caller, render, form, 422, message)
    if error is None and not form.reply_to and not form.forward and not form.subject.strip():
        error = NO_SUBJECT
    if error is None and not form.forward and not documents:
        error = NO_DOCUMENT
    if error is not None:
        form.invalid = {NO_RECIPIENT: "to", NO_SUBJECT: "subject", NO_DOCUMENT: "files"}.get(error, "")
        await _keep_files(drafts, caller, form, draft, documents)
        return _compose_page(request, node, caller, render, form, 422, render.gettext(request, error))
    login, office = caller.user.login, caller.office.code
    try:
        svc.check_size(total)
        if form.forward:
            new_id = await run_in_threadpool(
                svc.forward, form.forward, login, to, form.lists, form.classification, form.subject or None,
                form.priority, office)
        elif form.reply_to:
            new_id = await run_in_threadpool(
                svc.reply, form.reply_to, login, form.subject or None, documents, form.classification,
                form.priority, office)
        else:
            mobiles = {a: form.mobile for a in to if "@" in a and "." in a.rpartition("@")[2]} if form.mobile else {}
            # The procedure, once the office has a catalogue, must be one of it (as on the fax and route pages).
            procedure = (node.procedures.check_choice(form.procedure_code, office) if node.procedures
                         else form.procedure_code or None)
            new_id = await run_in_threadpool(functools.partial(
                svc.send, login, office, to, form.lists, form.subject, documents, form.classification,
                form.priority, procedure, None, confirm=form.confirm_external, mobiles=mobiles))
    except InklessError as exc:
        if exc.http_status >= 500:
            raise
        lead, detail = _error_text(render, request, node, exc)
        form.invalid = "to" if isinstance(exc, NotFoundError) else ""
        if not isinstance(exc, MessageTooLargeError):
            await _keep_files(drafts, caller, form, draft, documents)
        return _compose_page(request, node, caller, render, form, exc.http_status, lead, detail)
    if draft:
        await run_in_threadpool(drafts.drop, caller.user.id, draft)
    return RedirectResponse(f"/messages/{new_id}?sent=1", status_code=303)


async def _keep_files(drafts: DraftStore, caller: Caller, form: ComposeForm, old: str,
                      documents: list[NewDocument]) -> None:
    """Keep the form's files in a fresh draft (the old one dropped) for the form shown again."""
    if old:
        await run_in_threadpool(drafts.drop, caller.user.id, old)
    if documents:
        form.draft = await run_in_threadpool(
            drafts.keep, caller.user.id, [(d.name, d.content_type, d.data) for d in documents])
        form.kept = await run_in_threadpool(drafts.files, caller.user.id, form.draft)

