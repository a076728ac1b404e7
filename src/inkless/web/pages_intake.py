"""The public intake window pages (受付窓口): no account, no JavaScript, phone-width first.

    GET  /i/{office}                      short URL → /intake/{office}
    GET  /intake/{office}                 the form (or a polite closed page)
    GET  /intake/{office}/qr.svg          the QR code of the short URL
    POST /intake/{office}                 the form with its files → the code page (a code is mailed)
    POST /intake/{office}/confirm         the code → the receipt page (受付番号, 受付証明)
    POST /intake/{office}/certificate     the sealed 受付証明 PDF of the receipt page
    GET  /intake/{office}/status          receipt number and e-mail address
    POST /intake/{office}/status          → the code page (a code is mailed if they match)
    POST /intake/{office}/status/confirm  the code → the status, with the 受付証明 to download

Every POST comes from this site (same-origin check, as the login steps) and is counted per client
address (429 over ``public_requests_per_minute``); codes are also limited per e-mail address.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from inkless.app import Node
from inkless.errors import InklessError, MailUnavailableError, NotFoundError, RateLimitedError, UntrustedFileError
from inkless.intake.documents import qr_svg
from inkless.intake.model import IntakeForm, IntakeWindow, checked_via
from inkless.intake.service import IntakeService
from inkless.web.deps import admit_anonymous, client_address, get_node, same_origin
from inkless.web.downloads import content_disposition
from inkless.web.pages import RendererDep
from inkless.web.render import N_, Renderer

router = APIRouter(include_in_schema=False)
NodeDep = Annotated[Node, Depends(get_node)]
SameOrigin = Depends(same_origin)

TOO_MANY = N_("Too many requests. Try again in a minute.")
FILE_REFUSALS = {
    "empty": N_("%(name)s: the file is empty."),
    "size": N_("%(name)s: the file is larger than %(limit)s MB."),
    "type": N_("%(name)s: only PDF, JPEG and PNG files are accepted (the content was checked, not the name)."),
    "pages": N_("%(name)s: the PDF has more than %(pages)s pages."),
    "pixels": N_("%(name)s: the image is too large (more than %(pixels)s million pixels)."),
    "unreadable": N_("%(name)s: the file cannot be read."),
    "encrypted": N_("%(name)s: the PDF is protected by a password. Please send it without a password."),
    "virus": N_("%(name)s: the virus check refused the file."),
    "scan_failed": N_("%(name)s: the virus check is not available now. Please try again later."),
}
FIELDS = ("name", "organisation", "email", "phone", "subject", "procedure", "message")
# The service's messages, marked here so that the catalogs carry them (the service knows no web layer).
SERVICE_MESSAGES = (
    N_("Please enter your name."), N_("Please enter a valid e-mail address."),
    N_("The phone number may contain only digits, spaces, hyphens and brackets."), N_("Please enter a subject."),
    N_("Please choose a procedure from the list."), N_("One of the fields is too long."),
    N_("Please attach at least one file."), N_("Too many files for this window."),
    N_("The code is not right. Check the latest mail and try again."),
    N_("The code was entered wrongly too many times and no longer works. Please start again."),
    N_("The code has expired or was already used. Please start again."), N_("This intake window is closed."),
    N_("Open the intake window of this office before inviting fax senders to it."),
    N_("This window cannot send e-mail at the moment. Please try again later or contact the office."),
)


def intake_of(node: Node) -> IntakeService:
    if node.intake is None:
        raise NotFoundError("this node has no intake window")
    return node.intake


def _window(node: Node, office: str) -> IntakeWindow:
    return intake_of(node).window(office)


def _page(render: Renderer, request: Request, template: str, window: IntakeWindow, code: int = 200,
          **context: Any) -> Response:
    return render.render(request, template, status_code=code, window=window, **context)


@router.get("/i/{office}")
def short_url(office: str, via: Annotated[str, Query(max_length=40)] = "") -> Response:
    """The short URL printed on faxes (``?via=CODE``: the link of an invitation fax, kept with the form)."""
    code = checked_via(via)
    return RedirectResponse(f"/intake/{office}" + (f"?via={code}" if code else ""), status_code=303)


@router.get("/intake/{office}")
def intake_form(request: Request, office: str, node: NodeDep, render: RendererDep,
                via: Annotated[str, Query(max_length=40)] = "") -> Response:
    """The form, or the closed page."""
    window = _window(node, office)
    if not window.is_open:
        return _page(render, request, "intake_closed.html", window)
    return _page(render, request, "intake_form.html", window, form={"via": checked_via(via)},
                 url=intake_of(node).intake_url(office))


@router.get("/intake/{office}/qr.svg")
def intake_qr(office: str, node: NodeDep) -> Response:
    """The QR code of the window's short URL (SVG)."""
    window = _window(node, office)
    svg = qr_svg(intake_of(node).intake_url(window.office_code))
    return Response(svg, media_type="image/svg+xml")


def _file_message(render: Renderer, request: Request, exc: UntrustedFileError, window: IntakeWindow) -> str:
    template = render.gettext(request, FILE_REFUSALS.get(exc.reason, FILE_REFUSALS["unreadable"]))
    return str(template % {"name": exc.file_name or "-", "limit": window.max_file_bytes // (1024 * 1024),
                           "pages": window.max_pages, "pixels": window.max_pixels // 1_000_000})


@router.post("/intake/{office}", dependencies=[SameOrigin])
async def intake_submit(
    request: Request, office: str, node: NodeDep, render: RendererDep,
    name: Annotated[str, Form(max_length=400)] = "",
    organisation: Annotated[str, Form(max_length=400)] = "",
    email: Annotated[str, Form(max_length=400)] = "",
    phone: Annotated[str, Form(max_length=100)] = "",
    subject: Annotated[str, Form(max_length=400)] = "",
    procedure: Annotated[str, Form(max_length=400)] = "",
    message: Annotated[str, Form(max_length=8000)] = "",
    via: Annotated[str, Form(max_length=40)] = "",
    files: Annotated[list[UploadFile] | None, File()] = None,
) -> Response:
    """Check the form and files and mail a code."""
    await run_in_threadpool(admit_anonymous, request, "intake.form")
    window = await run_in_threadpool(_window, node, office)
    if not window.is_open:
        return _page(render, request, "intake_closed.html", window)
    form = IntakeForm(name=name, email=email, subject=subject, procedure=procedure, message=message,
                      organisation=organisation, phone=phone)
    kept = {k: getattr(form, k) for k in FIELDS} | {"via": checked_via(via)}
    uploads = [f for f in (files or []) if f.filename or f.size]
    try:
        contents: list[tuple[str, bytes]] = []
        for upload in uploads[: window.max_files + 1]:
            # Read at most one byte over the office's limit: the checker refuses it without more.
            contents.append((upload.filename or "document", await upload.read(window.max_file_bytes + 1)))
        if len(uploads) > window.max_files:
            contents.append(("", b""))  # the count check refuses it
        pending = await run_in_threadpool(intake_of(node).start_submission, office, form, contents,
                                          client_address(request), kept["via"])
    except UntrustedFileError as exc:
        return _page(render, request, "intake_form.html", window, 422, form=kept,
                     error=_file_message(render, request, exc, window), url=intake_of(node).intake_url(office))
    except RateLimitedError:
        return _page(render, request, "intake_form.html", window, 429, form=kept,
                     error=render.gettext(request, TOO_MANY), url=intake_of(node).intake_url(office))
    except MailUnavailableError as exc:
        return _page(render, request, "intake_form.html", window, 503, form=kept,
                     error=render.gettext(request, exc.message), url=intake_of(node).intake_url(office))
    except InklessError as exc:
        if exc.http_status >= 500:
            raise
        return _page(render, request, "intake_form.html", window, exc.http_status, form=kept,
                     error=render.gettext(request, exc.message), url=intake_of(node).intake_url(office))
    return _page(render, request, "intake_code.html", window, pending=pending, action=f"/intake/{office}/confirm",
                 purpose="submit")


@router.post("/intake/{office}/confirm", dependencies=[SameOrigin])
async def intake_confirm(
    request: Request, office: str, node: NodeDep, render: RendererDep,
    token: Annotated[str, Form(max_length=200)], code: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """The code from the mail: accept the submission and show the receipt."""
    await run_in_threadpool(admit_anonymous, request, "intake.confirm")
    window = await run_in_threadpool(_window, node, office)
    try:
        accepted = await run_in_threadpool(intake_of(node).confirm_submission, token, code, client_address(request))
    except InklessError as exc:
        if exc.http_status >= 500:
            raise
        locked = exc.http_status == 403
        return _page(render, request, "intake_code.html", window, exc.http_status, token=token, locked=locked,
                     error=render.gettext(request, exc.message), action=f"/intake/{office}/confirm",
                     purpose="submit", pending=None)
    return _page(render, request, "intake_receipt.html", window, accepted=accepted, token=token)


@router.post("/intake/{office}/certificate", dependencies=[SameOrigin])
async def intake_certificate(
    request: Request, office: str, node: NodeDep, token: Annotated[str, Form(max_length=200)],
) -> Response:
    """The sealed 受付証明 of the receipt page."""
    await run_in_threadpool(admit_anonymous, request, "intake.certificate")
    number, pdf = await run_in_threadpool(intake_of(node).certificate, token)
    return Response(pdf, media_type="application/pdf", headers={
        "Content-Disposition": content_disposition(f"受付証明-{number}.pdf", f"receipt-{number}.pdf")})


@router.get("/intake/{office}/status")
def intake_status_form(request: Request, office: str, node: NodeDep, render: RendererDep) -> Response:
    """Receipt number and e-mail address."""
    window = _window(node, office)
    return _page(render, request, "intake_status.html", window, form={})


@router.post("/intake/{office}/status", dependencies=[SameOrigin])
async def intake_status_request(
    request: Request, office: str, node: NodeDep, render: RendererDep,
    receipt_number: Annotated[str, Form(max_length=64)] = "", email: Annotated[str, Form(max_length=400)] = "",
) -> Response:
    """Mail a code if the number and address match (the page is the same either way)."""
    await run_in_threadpool(admit_anonymous, request, "intake.status")
    window = await run_in_threadpool(_window, node, office)
    kept = {"receipt_number": receipt_number, "email": email}
    try:
        pending = await run_in_threadpool(intake_of(node).start_status, office, receipt_number, email,
                                          client_address(request))
    except RateLimitedError:
        return _page(render, request, "intake_status.html", window, 429, form=kept,
                     error=render.gettext(request, TOO_MANY))
    except MailUnavailableError as exc:
        return _page(render, request, "intake_status.html", window, 503, form=kept,
                     error=render.gettext(request, exc.message))
    except InklessError as exc:
        if exc.http_status >= 500:
            raise
        return _page(render, request, "intake_status.html", window, exc.http_status, form=kept,
                     error=render.gettext(request, exc.message))
    return _page(render, request, "intake_code.html", window, pending=pending,
                 action=f"/intake/{office}/status/confirm", purpose="status")


@router.post("/intake/{office}/status/confirm", dependencies=[SameOrigin])
async def intake_status_confirm(
    request: Request, office: str, node: NodeDep, render: RendererDep,
    token: Annotated[str, Form(max_length=200)], code: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """The code from the mail: show the status."""
    await run_in_threadpool(admit_anonymous, request, "intake.status_confirm")
    window = await run_in_threadpool(_window, node, office)
    try:
        status = await run_in_threadpool(intake_of(node).confirm_status, token, code, client_address(request))
    except InklessError as exc:
        if exc.http_status >= 500:
            raise
        return _page(render, request, "intake_code.html", window, exc.http_status, token=token,
                     locked=exc.http_status == 403, error=render.gettext(request, exc.message),
                     action=f"/intake/{office}/status/confirm", purpose="status", pending=None)
    return _page(render, request, "intake_status_result.html", window, status=status, token=token)
