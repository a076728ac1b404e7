"""The inbox and sent items pages (search, filters, pages, unread counts) and the unread-count endpoint.

Every control is a plain GET form or link: the pages work without JavaScript. With it,
``/static/live.js`` asks ``/offices/{code}/inbox/unread.json`` every few seconds, puts the count
into the tab title and the menu, and refreshes the first page of the inbox when a message arrives.
That endpoint reads the session without extending it: a tab left open must not keep a login alive
past its idle timeout.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from inkless.app import Node
from inkless.delivery.model import InboxItem, SentMessage
from inkless.errors import InklessError, ValidationError
from inkless.search.listing import Cursor, ListFilter, MessageListing, Page
from inkless.web.deps import SESSION_COOKIE, Caller, get_node, get_services, page_caller, require_own_office
from inkless.web.pages import RendererDep
from inkless.web.pages_delivery import CLASSIFICATION_LABELS, AddressBook, common_context, delivery_of, fax_note_of
from inkless.web.render import N_, Renderer
from inkless.web.security import Stage

router = APIRouter(include_in_schema=False)

NodeDep = Annotated[Node, Depends(get_node)]
CallerDep = Annotated[Caller, Depends(page_caller)]

BAD_DATE = N_("Enter dates as YYYY-MM-DD.")
BAD_FILTER = N_("The search could not be read; showing nothing until it is corrected.")
DATE_ORDER = N_("The start date is after the end date.")
TOO_LONG = N_("The search is too long (at most 100 characters).")
KINDS = {"fax": N_("Faxes"), "inkless": N_("Digital")}


def listing_of(node: Node) -> MessageListing:
    """Pages of the node's inboxes and sent items."""
    return MessageListing(delivery_of(node), node.settings.tz)


def date_param(value: str) -> date | None:
    """A date field of a search form (YYYY-MM-DD); None if empty, ValidationError if unreadable."""
    value = value.strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationError(BAD_DATE) from None


def form_values(request: Request) -> dict[str, str]:
    """The search form's fields as typed (shown again in the form, also after an error)."""
    return {name: request.query_params.get(name, "")[:200] for name in ("q", "unread", "kind", "from", "to", "cls")}


def parse_filter(request: Request, raw: dict[str, str]) -> ListFilter:
    """The filter in the query string; ValidationError with one of this module's messages."""
    params = request.query_params
    cls = raw["cls"].strip()
    if len(raw["q"]) > 100:
        raise ValidationError(TOO_LONG)
    if cls and cls not in ("0", "1", "2", "3"):
        raise ValidationError(BAD_FILTER)
    kind = raw["kind"] or None
    if kind is not None and kind not in KINDS:
        raise ValidationError(BAD_FILTER)
    date_from, date_to = date_param(raw["from"]), date_param(raw["to"])
    if date_from and date_to and date_from > date_to:
        raise ValidationError(DATE_ORDER)
    before = Cursor.decode(params["before"]) if params.get("before") else None
    after = Cursor.decode(params["after"]) if params.get("after") and before is None else None
    return ListFilter(q=raw["q"].strip(), unread=raw["unread"] == "1", source=kind, date_from=date_from,
                      date_to=date_to, classification=int(cls) if cls else None, before=before, after=after)


def _page_links(raw: dict[str, str], page: Page[Any]) -> dict[str, str | None]:
    kept = {k: v for k, v in raw.items() if v}
    return {
        "older": "?" + urlencode({**kept, "before": page.older.encode()}) if page.older else None,
        "newer": "?" + urlencode({**kept, "after": page.newer.encode()}) if page.newer else None,
        "first": "?" + urlencode(kept) if page.newer else None,
    }


def _list_page(request: Request, node: Node, caller: Caller, render: Renderer, code: str, folder: str) -> Response:
    require_own_office(caller, code)
    listing = listing_of(node)
    error: str | None = None
    raw = form_values(request)
    try:
        filt = parse_filter(request, raw)
    except ValidationError as exc:
        # The message is one of ours (N_ above) or the cursor's: say it in the page's language.
        error = render.gettext(request, exc.message if exc.message in (BAD_DATE, DATE_ORDER, TOO_LONG) else BAD_FILTER)
        filt = ListFilter()
    inbox_page: Page[InboxItem] = Page([])
    sent_page: Page[SentMessage] = Page([])
    try:
        if error is None and folder == "inbox":
            inbox_page = listing.inbox(code, caller.user.login, filt)
        elif error is None:
            sent_page = listing.sent(code, caller.user.login, filt)
    except ValidationError:
        # A page position of the other list (or made up): the same answer as any unreadable search.
        error = render.gettext(request, BAD_FILTER)
    page: Page[Any] = inbox_page if folder == "inbox" else sent_page
    counts = listing.unread(code, caller.user.login)
    context: dict[str, Any] = {
        **common_context(caller, folder), "form": raw, "filtered": filt.narrowed or error is not None,
        "links": _page_links(raw, page), "counts": counts, "kinds": KINDS,
        "levels": list(range(0, caller.user.clearance + 1)), "search_error": error, "unread_total": counts.total,
        "first_page": filt.before is None and filt.after is None and not filt.narrowed,
    }
    status = 422 if error is not None else 200
    # Level names and "(classified: …)" in the page's language, once per page rather than per row.
    labels = {n: render.gettext(request, label) for n, label in CLASSIFICATION_LABELS.items()}
    withheld = render.gettext(request, "(classified: %(level)s)")
    context["t_cls"] = labels
    context["t_withheld"] = {n: withheld % {"level": label} for n, label in labels.items()}
    if folder == "inbox":
        book = AddressBook(node)
        rows = [{"item": i, "sender_name": book.name(i.sender) if i.source != "fax" else None}
                for i in inbox_page.items]
        return render.render(request, "inbox.html", status_code=status, messages=rows, **context)
    return render.render(request, "delivery_outbox.html", status_code=status, messages=sent_page.items,
                         book=AddressBook(node), fax_note=fax_note_of(request, render), **context)


@router.get("/offices/{code}/inbox")
def inbox_page(request: Request, code: str, node: NodeDep, caller: CallerDep, render: RendererDep) -> Response:
    """The inbox of the caller's office: search, filters, pages of 50, newest first."""
    return _list_page(request, node, caller, render, code, "inbox")


@router.get("/offices/{code}/sent")
def sent_page(request: Request, code: str, node: NodeDep, caller: CallerDep, render: RendererDep) -> Response:
    """Messages sent by the caller's office, with the state of every recipient; search and pages."""
    return _list_page(request, node, caller, render, code, "sent")


@router.get("/offices/{code}/inbox/unread.json")
def unread_counts(request: Request, code: str, node: NodeDep) -> Response:
    """``{"unread", "fax", "digital", "latest"}`` of the caller's office, for the page's own polling.

    The session is read without extending it (a polling tab would otherwise never time out); 401
    without a live login, 403 for another office.
    """
    services = get_services(request)
    session = services.sessions.load(request.cookies.get(SESSION_COOKIE), touch=False)
    if session is None or session.stage != Stage.ACTIVE:
        return JSONResponse({"error": "login required"}, status_code=401)
    try:
        user = node.directory.user_by_id(session.user_id)
        if not user.active or user.office_code != code:
            return JSONResponse({"error": "forbidden"}, status_code=403)
        counts = listing_of(node).unread(code, user.login)
    except InklessError as exc:
        return JSONResponse({"error": exc.message}, status_code=exc.http_status)
    return JSONResponse({"unread": counts.total, "fax": counts.fax, "digital": counts.digital,
                         "latest": counts.latest}, headers={"Cache-Control": "no-store"})
