"""The admin console: a menu of sections for office administrators and node operators.

Each section lives in its own module (``pages_admin_<section>.py``) with its own router and adds
one :class:`Section` to :data:`SECTIONS`; the console's menu and its landing page list them in
that order, each shown only to the roles it names. Who may change what is enforced by the
services (:class:`inkless.directory.admin.Administration`), not only by these pages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from inkless.app import Node
from inkless.directory.admin import Administration
from inkless.directory.model import Clearance, Role, User
from inkless.errors import ConfigurationError, InklessError
from inkless.web.deps import Caller, get_node, page_caller
from inkless.web.render import N_, Renderer

router = APIRouter(include_in_schema=False)

ADMINS_ONLY = N_("administrators only")
CONFIRM_FIRST = N_("Tick the confirmation box to go ahead.")
NOT_ALLOWED = N_("You may not do this: office administrators manage their own office only.")
ROLE_LABELS = {
    "clerk": N_("Clerk"),
    "approver": N_("Approver"),
    "integrator": N_("Integrator (API tokens)"),
    "admin": N_("Office administrator"),
    "operator": N_("Node operator"),
}


@dataclass(frozen=True)
class Section:
    """One entry of the console's menu."""

    key: str
    title: str
    path: str
    description: str
    visible: Callable[[User], bool] = lambda user: user.role.administers


# The console's sections, in menu order. A new section appends itself here from its own module.
SECTIONS: list[Section] = [
    Section("users", N_("Users"), "/admin/users",
            N_("Add users, change roles and clearances, reset one-time codes, lock and unlock accounts.")),
    Section("offices", N_("Offices"), "/admin/offices",
            N_("Office names and readings, fax numbers, cover page defaults and seal images.")),
    Section("peers", N_("Peer nodes"), "/admin/peers",
            N_("Pin other nodes by comparing fingerprints read aloud; refresh and unpin them.")),
    Section("audit", N_("Audit log"), "/admin/audit",
            N_("Search the audit log, see each entry's inclusion proof, verify the whole log.")),
    Section("tokens", N_("API tokens"), "/admin/tokens",
            N_("The API tokens of the users you administer; revoke them.")),
    Section("fax", N_("Fax routing and block list"), "/fax/admin",
            N_("Routing rules for received faxes, the junk fax block list, unroutable faxes.")),
]


def admin_caller(caller: Annotated[Caller, Depends(page_caller)]) -> Caller:
    """The logged-in user of a console page: 403 for anyone who is not an administrator."""
    if not caller.user.role.administers:
        raise HTTPException(status_code=403, detail=ADMINS_ONLY)
    return caller


AdminDep = Annotated[Caller, Depends(admin_caller)]
NodeDep = Annotated[Node, Depends(get_node)]


def administration(node: Node) -> Administration:
    """The node's administration service."""
    if node.admin is None:
        raise ConfigurationError("this node has no administration service")
    return node.admin


def renderer_of(request: Request) -> Renderer:
    value = request.app.state.renderer
    assert isinstance(value, Renderer)
    return value


RenderDep = Annotated[Renderer, Depends(renderer_of)]


def render_console(request: Request, render: Renderer, caller: Caller, template: str, section: str,
                   status_code: int = 200, **context: Any) -> Response:
    """A console page: the site's header and menu, the console's menu, and the section's template."""
    lang = render.language(request)
    labels = Clearance.LABELS if lang == "ja" else Clearance.LABELS_EN
    return render.render(
        request, template, status_code=status_code, caller=caller,
        csrf_token=caller.session.csrf_token if caller.session else "", active="admin",
        sections=[s for s in SECTIONS if s.visible(caller.user)], section=section,
        role_labels=ROLE_LABELS, clearance_labels=labels, operator=caller.user.role == Role.OPERATOR,
        **context,
    )


def confirmed(value: str) -> bool:
    """A destructive action goes ahead only with its confirmation box ticked."""
    return value == "yes"


def explain(render: Renderer, request: Request, exc: InklessError, messages: dict[type, str],
            **values: object) -> str:
    """The user's-language sentence for a refused action: the most specific of ``messages`` that applies."""
    for kind in type(exc).__mro__:
        if kind in messages:
            text = render.gettext(request, messages[kind])
            return text % values if values else text
    return render.gettext(request, exc.message)


@router.get("/admin")
def console_home(request: Request, caller: AdminDep, render: RenderDep) -> Response:
    """The console's landing page: its sections, with what each is for."""
    return render_console(request, render, caller, "admin_home.html", "home")
