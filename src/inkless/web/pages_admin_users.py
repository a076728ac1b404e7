"""Admin console, users: add, roles and clearances, reset TOTP, lock and unlock, deactivate, last login."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from inkless.directory.admin import Administration
from inkless.directory.model import Role, check_login, check_name
from inkless.errors import ConflictError, InklessError, NotFoundError, PolicyError, ValidationError
from inkless.web.deps import Caller
from inkless.web.pages_admin import (
    CONFIRM_FIRST,
    NOT_ALLOWED,
    AdminDep,
    NodeDep,
    RenderDep,
    administration,
    confirmed,
    explain,
    render_console,
)
from inkless.web.render import N_, Renderer

router = APIRouter(include_in_schema=False)

BAD_LOGIN = N_("The login must be 2-64 lower-case letters, digits, “.”, “_” or “-”, starting with a letter or digit.")
BAD_NAME = N_("Enter the name (1-200 characters).")
BAD_ROLE = N_("Choose one of the roles offered.")
BAD_CLEARANCE = N_("Choose a clearance from 0 to 3.")
LOGIN_TAKEN = N_("The login “%(login)s” is already in use. Nothing was added.")
NO_SUCH_USER = N_("There is no such user among those you administer.")
ALREADY = N_("Nothing to change: the account is already in that state.")
ADDED = N_(
    "User %(login)s was added. Hand over the first-login password and the one-time code key "
    "below; they are shown only now."
)
CHANGED = N_("The role and clearance of %(login)s were saved.")
TOTP_RESET = N_(
    "The one-time code key of %(login)s was reset: at the next login they register their "
    "authenticator app again."
)
LOCKED = N_("%(login)s is locked: their sessions have ended and they cannot log in until unlocked.")
UNLOCKED = N_("%(login)s is unlocked and may log in again.")
DEACTIVATED = N_("%(login)s is deactivated.")
REACTIVATED = N_("%(login)s is active again.")
OWN_ACCOUNT = N_("You cannot lock, reset or deactivate your own account, or change your own role.")

NOTICES = {"added": ADDED, "changed": CHANGED, "totp": TOTP_RESET, "locked": LOCKED, "unlocked": UNLOCKED,
           "deactivated": DEACTIVATED, "reactivated": REACTIVATED}


def _grantable(caller: Caller) -> list[str]:
    """The roles ``caller`` may give: an office administrator not the node operator's."""
    roles = [r.value for r in (Role.CLERK, Role.APPROVER, Role.INTEGRATOR, Role.ADMIN)]
    if caller.user.role == Role.OPERATOR:
        roles.append(Role.OPERATOR.value)
    return roles


def _list_page(request: Request, render: Renderer, caller: Caller, admin: Administration, office: str | None,
               status_code: int = 200, **extra: Any) -> Response:
    users = admin.users(caller.user, office or None)
    return render_console(
        request, render, caller, "admin_users.html", "users", status_code=status_code, users=users,
        offices=admin.offices(caller.user), office_filter=office or "", grantable=_grantable(caller),
        form=extra.pop("form", {}), **extra,
    )


@router.get("/admin/users")
def users_page(request: Request, node: NodeDep, caller: AdminDep, render: RenderDep, office: str = "") -> Response:
    """The users the caller administers, with their state and last login, and a form to add one."""
    return _list_page(request, render, caller, administration(node), office[:64] or None)


@router.post("/admin/users")
def users_add(
    request: Request, node: NodeDep, caller: AdminDep, render: RenderDep,
    login: Annotated[str, Form(max_length=200)] = "",
    display_name: Annotated[str, Form(max_length=400)] = "",
    office: Annotated[str, Form(max_length=64)] = "",
    role: Annotated[str, Form(max_length=16)] = "",
    clearance: Annotated[str, Form(max_length=2)] = "",
) -> Response:
    """Add a user; the page shows the first-login password and TOTP key once."""
    admin = administration(node)
    form = {"login": login, "display_name": display_name, "office": office, "role": role, "clearance": clearance}
    login = login.strip().lower()
    error: str | None = None
    try:
        check_login(login)
    except ValidationError:
        error = BAD_LOGIN
    if error is None:
        try:
            check_name(display_name, "name")
        except ValidationError:
            error = BAD_NAME
    if error is None and role not in _grantable(caller):
        error = BAD_ROLE
    if error is None and clearance not in ("0", "1", "2", "3"):
        error = BAD_CLEARANCE
    if error is not None:
        return _list_page(request, render, caller, admin, None, status_code=422, form=form,
                          error=render.gettext(request, error))
    try:
        account = admin.add_user(caller.user, login, office, role, int(clearance), display_name)
    except InklessError as exc:
        message = explain(render, request, exc, {ConflictError: LOGIN_TAKEN, PolicyError: NOT_ALLOWED,
                                                 NotFoundError: NOT_ALLOWED, ValidationError: BAD_NAME},
                          login=login)
        return _list_page(request, render, caller, admin, None, status_code=exc.http_status, form=form,
                          error=message)
    return _list_page(request, render, caller, admin, None, notice=render.gettext(request, ADDED) % {"login": login},
                      new_account=account)


def _detail(request: Request, render: Renderer, caller: Caller, admin: Administration, login: str,
            status_code: int = 200, **extra: Any) -> Response:
    user = admin.user(caller.user, login)
    return render_console(request, render, caller, "admin_user.html", "users", status_code=status_code,
                          target=user, grantable=_grantable(caller), **extra)


@router.get("/admin/users/{login}")
def user_page(request: Request, login: str, node: NodeDep, caller: AdminDep, render: RenderDep,
              done: str = "") -> Response:
    """One user: role, clearance, state, last login, and the actions on the account."""
    notice = NOTICES.get(done)
    return _detail(request, render, caller, administration(node), login[:64],
                   notice=render.gettext(request, notice) % {"login": login} if notice else None)


def _act(request: Request, node: NodeDep, caller: Caller, render: Renderer, login: str, done: str,
         action: Any, confirm: str | None = None) -> Response:
    admin = administration(node)
    try:
        if confirm is not None and not confirmed(confirm):
            raise ValidationError(CONFIRM_FIRST)
        action(admin)
    except InklessError as exc:
        own = caller.user.login == login and isinstance(exc, PolicyError)
        message = explain(render, request, exc, {
            ConflictError: ALREADY, PolicyError: OWN_ACCOUNT if own else NOT_ALLOWED,
            NotFoundError: NO_SUCH_USER, ValidationError: CONFIRM_FIRST if confirm is not None else BAD_CLEARANCE,
        })
        if isinstance(exc, NotFoundError):
            return render_console(request, render, caller, "admin_home.html", "users", status_code=404,
                                  error=message)
        return _detail(request, render, caller, admin, login, status_code=exc.http_status, error=message)
    return RedirectResponse(f"/admin/users/{login}?done={done}", status_code=303)


@router.post("/admin/users/{login}/change")
def user_change(request: Request, login: str, node: NodeDep, caller: AdminDep, render: RenderDep,
                role: Annotated[str, Form(max_length=16)] = "",
                clearance: Annotated[str, Form(max_length=2)] = "") -> Response:
    """Change role and clearance."""
    def change(admin: Administration) -> None:
        if role not in _grantable(caller) or clearance not in ("0", "1", "2", "3"):
            # The form offers only valid choices: anything else is a forged or stale form.
            raise ValidationError(BAD_CLEARANCE)
        admin.change_user(caller.user, login, role, int(clearance))
    return _act(request, node, caller, render, login, "changed", change)


@router.post("/admin/users/{login}/reset-totp")
def user_reset_totp(request: Request, login: str, node: NodeDep, caller: AdminDep, render: RenderDep,
                    confirm: Annotated[str, Form(max_length=5)] = "") -> Response:
    """Reset the user's TOTP key (confirmed): they enrol again at their next login."""
    return _act(request, node, caller, render, login, "totp",
                lambda admin: admin.reset_totp(caller.user, login), confirm)


@router.post("/admin/users/{login}/lock")
def user_lock(request: Request, login: str, node: NodeDep, caller: AdminDep, render: RenderDep,
              confirm: Annotated[str, Form(max_length=5)] = "") -> Response:
    """Lock the account (confirmed)."""
    return _act(request, node, caller, render, login, "locked", lambda admin: admin.lock(caller.user, login), confirm)


@router.post("/admin/users/{login}/unlock")
def user_unlock(request: Request, login: str, node: NodeDep, caller: AdminDep, render: RenderDep) -> Response:
    """Unlock the account."""
    return _act(request, node, caller, render, login, "unlocked", lambda admin: admin.unlock(caller.user, login))


@router.post("/admin/users/{login}/deactivate")
def user_deactivate(request: Request, login: str, node: NodeDep, caller: AdminDep, render: RenderDep,
                    confirm: Annotated[str, Form(max_length=5)] = "") -> Response:
    """Deactivate the account (confirmed), e.g. when someone leaves."""
    return _act(request, node, caller, render, login, "deactivated",
                lambda admin: admin.set_active(caller.user, login, False), confirm)


@router.post("/admin/users/{login}/reactivate")
def user_reactivate(request: Request, login: str, node: NodeDep, caller: AdminDep, render: RenderDep) -> Response:
    """Reactivate a deactivated account."""
    return _act(request, node, caller, render, login, "reactivated",
                lambda admin: admin.set_active(caller.user, login, True))
