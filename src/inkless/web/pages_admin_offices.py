"""Admin console, offices: names and readings, fax numbers, cover page defaults, seal images."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Request, Response, UploadFile
from fastapi.responses import RedirectResponse

from inkless.directory.admin import MAX_SEAL_IMAGE_BYTES, Administration
from inkless.directory.model import check_fax_number, check_kana, check_name, check_office_code
from inkless.errors import ConflictError, InklessError, PolicyError, ValidationError
from inkless.web.deps import Caller
from inkless.web.pages_admin import NOT_ALLOWED, AdminDep, NodeDep, RenderDep, administration, explain, render_console
from inkless.web.render import N_, Renderer

router = APIRouter(include_in_schema=False)

BAD_OFFICE_NAME = N_("Enter the office name (1-200 characters).")
BAD_KANA = N_("Write the reading in kana, e.g. ミンジキョク.")
BAD_FAX = N_(
    "The fax number must be digits, optionally with “+”, spaces or “-”, e.g. 03-3580-4111. "
    "Nothing was changed."
)
BAD_CODE = N_("The office code must be lower-case letters, digits and “-”, e.g. civil-affairs.")
CODE_TAKEN = N_("The office code “%(code)s” is already in use. Nothing was added.")
BAD_SEAL = N_(
    "The seal image must be a PNG or JPEG picture, 32 to 2000 pixels wide and high, at most 1 "
    "MB. The file was not a readable image of that kind; nothing was changed."
)
NO_SEAL = N_("No seal image has been uploaded for this office.")
NO_SEAL_FILE = N_("Choose an image file of the seal.")
OPERATORS_ONLY = N_("Only a node operator may add offices.")
SAVED = N_("The office was saved.")
SEAL_SAVED = N_("The seal image was saved.")
COVER_SAVED = N_("The cover page default was saved.")
OFFICE_ADDED = N_("The office was added.")
INTAKE_OPENED = N_("The intake window is open: anyone can now submit documents to this office online.")
INTAKE_CLOSED = N_("The intake window is closed: its page now says so, and faxes no longer invite to it.")
INTAKE_CHOICE = N_("Choose whether to open or close the intake window. Nothing was changed.")
NOTICES = {"saved": SAVED, "seal": SEAL_SAVED, "cover": COVER_SAVED, "added": OFFICE_ADDED,
           "intake-open": INTAKE_OPENED, "intake-closed": INTAKE_CLOSED}


def _list_page(request: Request, render: Renderer, caller: Caller, admin: Administration, status_code: int = 200,
               **extra: Any) -> Response:
    return render_console(request, render, caller, "admin_offices.html", "offices", status_code=status_code,
                          offices=admin.offices(caller.user), form=extra.pop("form", {}), **extra)


@router.get("/admin/offices")
def offices_page(request: Request, node: NodeDep, caller: AdminDep, render: RenderDep) -> Response:
    """The offices the caller administers (every office for a node operator)."""
    return _list_page(request, render, caller, administration(node))


def _field_error(name: str, kana: str, fax: str) -> str | None:
    for check, value, message in ((lambda v: check_name(v, "office name"), name, BAD_OFFICE_NAME),
                                  (check_kana, kana, BAD_KANA), (check_fax_number, fax.strip(), BAD_FAX)):
        try:
            check(value)
        except ValidationError:
            return message
    return None


@router.post("/admin/offices")
def offices_add(
    request: Request, node: NodeDep, caller: AdminDep, render: RenderDep,
    code: Annotated[str, Form(max_length=64)] = "",
    name: Annotated[str, Form(max_length=400)] = "",
    kana: Annotated[str, Form(max_length=400)] = "",
    fax_number: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Add an office (node operators)."""
    admin = administration(node)
    form = {"code": code, "name": name, "kana": kana, "fax_number": fax_number}
    error = _field_error(name, kana, fax_number)
    if error is None:
        try:
            check_office_code(code.strip())
        except ValidationError:
            error = BAD_CODE
    if error is not None:
        return _list_page(request, render, caller, admin, 422, form=form, error=render.gettext(request, error))
    try:
        office = admin.add_office(caller.user, code.strip(), name, fax_number.strip() or None, kana)
    except InklessError as exc:
        message = explain(render, request, exc, {ConflictError: CODE_TAKEN, PolicyError: OPERATORS_ONLY},
                          code=code.strip())
        return _list_page(request, render, caller, admin, exc.http_status, form=form, error=message)
    return RedirectResponse(f"/admin/offices/{office.code}?done=added", status_code=303)


def _detail(request: Request, render: Renderer, caller: Caller, node: NodeDep, code: str, status_code: int = 200,
            **extra: Any) -> Response:
    admin = administration(node)
    admin.check_office(caller.user, code)
    office = node.directory.office(code)
    cover = node.fax.office_settings(code).cover_page_default if node.fax is not None else None
    intake = node.intake.window(code) if node.intake is not None else None
    return render_console(request, render, caller, "admin_office.html", "offices", status_code=status_code,
                          office=office, seal=admin.seal_image(caller.user, code), cover_default=cover,
                          intake=intake, intake_url=node.intake.intake_url(code) if node.intake is not None else None,
                          form=extra.pop("form", None), **extra)


@router.get("/admin/offices/{code}")
def office_page(request: Request, code: str, node: NodeDep, caller: AdminDep, render: RenderDep,
                done: str = "") -> Response:
    """One office: its names, fax number, cover page default and seal image, each editable."""
    notice = NOTICES.get(done)
    return _detail(request, render, caller, node, code[:64],
                   notice=render.gettext(request, notice) if notice else None)


@router.post("/admin/offices/{code}")
def office_update(
    request: Request, code: str, node: NodeDep, caller: AdminDep, render: RenderDep,
    name: Annotated[str, Form(max_length=400)] = "",
    kana: Annotated[str, Form(max_length=400)] = "",
    fax_number: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Save the office's name, reading and fax number."""
    admin = administration(node)
    admin.check_office(caller.user, code)
    form = {"name": name, "kana": kana, "fax_number": fax_number}
    error = _field_error(name, kana, fax_number)
    if error is not None:
        return _detail(request, render, caller, node, code, 422, form=form, error=render.gettext(request, error))
    admin.update_office(caller.user, code, name, kana, fax_number)
    return RedirectResponse(f"/admin/offices/{code}?done=saved", status_code=303)


@router.post("/admin/offices/{code}/cover")
def office_cover(request: Request, code: str, node: NodeDep, caller: AdminDep,
                 enabled: Annotated[str, Form(max_length=5)] = "") -> Response:
    """Whether the office's faxes get a cover page (送信票) unless the sender says otherwise."""
    administration(node).set_cover_default(caller.user, code, enabled == "1")
    return RedirectResponse(f"/admin/offices/{code}?done=cover", status_code=303)


@router.post("/admin/offices/{code}/intake")
def office_intake(request: Request, code: str, node: NodeDep, caller: AdminDep, render: RenderDep,
                  open_: Annotated[str, Form(alias="open", max_length=5)] = "") -> Response:
    """Open (``open=1``) or close (``open=0``) the office's public intake window (受付窓口); audited as
    ``intake.opened`` / ``intake.closed`` with the administrator's login, as ``inkless intake open|close``."""
    administration(node).check_office(caller.user, code)
    if node.intake is None:
        raise HTTPException(status_code=404, detail=N_("Not found"))
    if open_ not in ("0", "1"):
        return _detail(request, render, caller, node, code, 422, error=render.gettext(request, INTAKE_CHOICE))
    node.intake.set_window(code, open_ == "1", caller.user.login)
    return RedirectResponse(f"/admin/offices/{code}?done=intake-{'open' if open_ == '1' else 'closed'}#intake",
                            status_code=303)


@router.post("/admin/offices/{code}/seal")
async def office_seal(request: Request, code: str, node: NodeDep, caller: AdminDep, render: RenderDep,
                      image: Annotated[UploadFile | None, File()] = None) -> Response:
    """Upload the office's seal image (PNG or JPEG, checked by decoding it, not by its name)."""
    admin = administration(node)
    admin.check_office(caller.user, code)
    data = await image.read(MAX_SEAL_IMAGE_BYTES + 1) if image is not None and image.filename else b""
    if not data:
        return _detail(request, render, caller, node, code, 422, error=render.gettext(request, NO_SEAL_FILE))
    try:
        admin.set_seal_image(caller.user, code, data)
    except InklessError as exc:
        message = explain(render, request, exc, {ValidationError: BAD_SEAL, PolicyError: NOT_ALLOWED})
        return _detail(request, render, caller, node, code, exc.http_status, error=message)
    return RedirectResponse(f"/admin/offices/{code}?done=seal", status_code=303)


@router.get("/admin/offices/{code}/seal")
def office_seal_image(code: str, node: NodeDep, caller: AdminDep) -> Response:
    """The office's seal image as uploaded (served with the type its content was found to be)."""
    seal = administration(node).seal_image(caller.user, code)
    if seal is None:
        raise HTTPException(status_code=404, detail=NO_SEAL)
    return Response(seal.data, media_type=seal.media_type,
                    headers={"Content-Disposition": f'inline; filename="seal-{code}"'})
