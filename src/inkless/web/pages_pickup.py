"""Secure pickup pages: the recipient's (public, no account, no JavaScript, phone-width first) and the
sender's actions on each e-mail recipient.

    GET  /p/{token}                        code page, or the documents once the code was right
    POST /p/{token}/code                   mail a code (the same answer whether or not the link exists)
    POST /p/{token}/open                   the code → a pickup session cookie → the documents
    GET  /p/{token}/documents/{n}          download document n (from 1)
    POST /p/{token}/reply                  files back to the sender (checked by content)
    POST /pickups/{id}/revoke | /reopen    the sender stops the link / unlocks it after wrong codes
    GET  /pickups/replies/{id}             the sender downloads a file the recipient sent back

Every public POST comes from this site (same-origin check) and is counted per client address and
per e-mail address (429 over ``public_requests_per_minute``).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from inkless.app import Node
from inkless.errors import MessageTooLargeError, NotFoundError, ValidationError
from inkless.pickup.files import ReplyFileRefused, check_reply_file
from inkless.pickup.service import MAX_TRIES, CommentRefused, PickupClosed, PickupCodeRefused, PickupService
from inkless.pickup.status import STATE_LABELS
from inkless.web.deps import (
    Caller,
    RowId,
    admit_anonymous,
    client_address,
    get_node,
    get_services,
    page_caller,
    same_origin,
)
from inkless.web.downloads import document_response
from inkless.web.pages import RendererDep
from inkless.web.render import N_, Renderer

router = APIRouter(include_in_schema=False)
NodeDep = Annotated[Node, Depends(get_node)]
CallerDep = Annotated[Caller, Depends(page_caller)]
SameOrigin = Depends(same_origin)
COOKIE = "inkless_pickup"

# One refusal for a wrong or expired code, an unknown or cancelled link and a link locked by wrong codes: the
# page must not tell a stranger holding some token whether it belongs to a real recipient. The sentence
# still tells the real recipient what to do when the link is locked.
REFUSED = N_("The code is not right, or it has expired. Check the latest mail, or ask for a new code. After "
             "%(n)s wrong codes the link is locked; then please contact the office that sent you the documents.")
CLOSED = N_("This link does not work. It may have expired or been cancelled by the sender. Please contact "
            "the office that sent you the documents.")
FILE_REFUSALS = {
    "empty": N_("%(name)s: the file is empty."),
    "size": N_("%(name)s: the file is larger than 20 MB."),
    "type": N_("%(name)s: only PDF, JPEG and PNG files are accepted (the content was checked, not the name)."),
    "pages": N_("%(name)s: the PDF has too many pages."),
    "pixels": N_("%(name)s: the image is too large."),
    "unreadable": N_("%(name)s: the file cannot be read."),
}
NO_FILE = N_("Please attach at least one file.")
TOO_MANY_FILES = N_("Please send at most 5 files at once.")
COMMENT_REFUSED = N_("The message must be plain text of at most 2,000 characters.")
TOO_LARGE = N_("Together the files are larger than the office accepts at once (%(mb)s MB). Please send fewer "
               "or smaller files.")
__all__ = ["STATE_LABELS", "router", "sender_view"]


def pickup_of(node: Node) -> PickupService:
    if node.pickup is None:
        raise NotFoundError("this node has no secure pickup")
    return node.pickup


def _limit(request: Request, endpoint: str) -> None:
    admit_anonymous(request, endpoint)


def _limit_address(request: Request, address: str) -> None:
    # The per-address limit shares the anonymous traffic counter, keyed by a hash of the address.
    key = "mail:" + hashlib.sha256(address.lower().encode()).hexdigest()[:40]
    get_services(request).traffic.admit("pickup-address", key)


def _code_page(render: Renderer, request: Request, token: str, code: int = 200, **context: Any) -> Response:
    return render.render(request, "pickup_code.html", status_code=code, token=token, **context)


@router.get("/p/{token}")
async def pickup_page(request: Request, token: str, node: NodeDep, render: RendererDep) -> Response:
    """The code page (identical for every link), or the documents with a valid pickup session."""
    _limit(request, "pickup")
    service = pickup_of(node)
    session = request.cookies.get(COOKIE)
    opened = bool(session) and await run_in_threadpool(service.has_session, token, session)
    if opened:
        view = await run_in_threadpool(service.view, token, session)
        return render.render(request, "pickup_documents.html", token=token, view=view,
                             sent="sent" in request.query_params)
    return _code_page(render, request, token)


@router.post("/p/{token}/code", dependencies=[SameOrigin])
async def pickup_code(request: Request, token: str, node: NodeDep, render: RendererDep) -> Response:
    """Mail a code when the link works; the page says the same thing either way."""
    _limit(request, "pickup")
    await run_in_threadpool(pickup_of(node).request_code, token, client_address(request),
                            lambda address: _limit_address(request, address))
    return _code_page(render, request, token, code_sent=True)


@router.post("/p/{token}/open", dependencies=[SameOrigin])
async def pickup_open(request: Request, token: str, node: NodeDep, render: RendererDep,
                      code: Annotated[str, Form(max_length=20)] = "") -> Response:
    """Check the code; a right one opens a pickup session for this link only."""
    _limit(request, "pickup")
    try:
        session = await run_in_threadpool(pickup_of(node).verify_code, token, code, client_address(request))
    except PickupCodeRefused:
        # The reason (wrong or locked) is in the audit log (pickup.code_failed, pickup.locked), not on the page.
        return _code_page(render, request, token, 422, error=render.gettext(request, REFUSED) % {"n": MAX_TRIES},
                          code_sent=True)
    response = RedirectResponse(f"/p/{token}", status_code=303)
    response.set_cookie(COOKIE, session, max_age=30 * 60, path=f"/p/{token}", httponly=True, samesite="strict",
                        secure=node.settings.base_url.startswith("https://"))
    return response


def _closed(render: Renderer, request: Request) -> Response:
    return render.render(request, "pickup_closed.html", status_code=404, message=render.gettext(request, CLOSED))


@router.get("/p/{token}/documents/{number}")
async def pickup_document(request: Request, token: str, number: RowId, node: NodeDep,
                          render: RendererDep) -> Response:
    """Download one document (recorded as ダウンロード)."""
    _limit(request, "pickup")
    try:
        name, content_type, data = await run_in_threadpool(
            pickup_of(node).document, token, request.cookies.get(COOKIE), number, client_address(request))
    except NotFoundError:
        return _closed(render, request)
    return document_response(data, content_type, name, f"document-{number}")


@router.post("/p/{token}/reply", dependencies=[SameOrigin])
async def pickup_reply(request: Request, token: str, node: NodeDep, render: RendererDep) -> Response:
    """Files back to the sender, typed by content; refusals name the file and keep the comment."""
    _limit(request, "pickup")
    service = pickup_of(node)
    session = request.cookies.get(COOKIE)
    if not session or not await run_in_threadpool(service.has_session, token, session):
        return _closed(render, request)
    form = await request.form(max_files=10, max_fields=10)
    try:
        comment = str(form.get("comment") or "")[:4000]
        uploads = [u for u in form.getlist("files") if isinstance(u, UploadFile) and u.filename]
        raw = [(u.filename or "file", await u.read()) for u in uploads]
    finally:
        await form.close()
    error = None
    if not raw:
        error = render.gettext(request, NO_FILE)
    elif len(raw) > 5:
        error = render.gettext(request, TOO_MANY_FILES)
    checked = []
    if error is None:
        try:
            for name, data in raw:
                checked.append(await run_in_threadpool(check_reply_file, name, data))
        except ReplyFileRefused as exc:
            error = render.gettext(request, FILE_REFUSALS[exc.reason]) % {"name": exc.file_name}
    if error is None:
        try:
            await run_in_threadpool(service.reply, token, session, checked, comment, client_address(request))
        except CommentRefused:
            error = render.gettext(request, COMMENT_REFUSED)
        except MessageTooLargeError as exc:
            error = render.gettext(request, TOO_LARGE) % {"mb": (exc.limit or 0) // (1024 * 1024)}
        except ValidationError as exc:
            error = render.error_text(request, exc)
    if error is not None:
        view = await run_in_threadpool(service.view, token, session)
        return render.render(request, "pickup_documents.html", status_code=422, token=token, view=view,
                             error=error, comment=comment)
    return RedirectResponse(f"/p/{token}?sent=1", status_code=303)


# --- the sender's actions ------------------------------------------------------------------------


@router.post("/pickups/{pickup_id}/revoke")
def pickup_revoke(pickup_id: RowId, node: NodeDep, caller: CallerDep,
                  message_id: Annotated[str, Form(max_length=64)] = "") -> Response:
    """Cancel an e-mail recipient's link."""
    pickup_of(node).revoke(pickup_id, caller.user.login)
    return RedirectResponse(f"/messages/{message_id}", status_code=303)


@router.post("/pickups/{pickup_id}/reopen")
def pickup_reopen(pickup_id: RowId, node: NodeDep, caller: CallerDep,
                  message_id: Annotated[str, Form(max_length=64)] = "") -> Response:
    """Unlock a link that wrong codes locked."""
    pickup_of(node).reopen(pickup_id, caller.user.login)
    return RedirectResponse(f"/messages/{message_id}", status_code=303)


@router.get("/pickups/replies/{reply_id}")
def pickup_reply_file(reply_id: RowId, node: NodeDep, caller: CallerDep) -> Response:
    """A file an e-mail recipient sent back."""
    try:
        name, content_type, data = pickup_of(node).reply_file(reply_id, caller.user.login)
    except NotFoundError:
        raise HTTPException(status_code=404, detail=N_("Not found")) from None
    return document_response(data, content_type, name, f"reply-{reply_id}")


def sender_view(node: Node, message_id: str, viewer: str) -> list[dict[str, Any]]:
    """The e-mail recipients of a sent message for its page: states with times, and the code to read out."""
    service = node.pickup
    if service is None:
        return []
    try:
        statuses = service.statuses(message_id, viewer)
    except (NotFoundError, PickupClosed):
        return []
    return [{"status": s, "code": service.current_code(s.id, viewer) if s.mobile else None} for s in statuses]
