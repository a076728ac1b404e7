"""The user's own e-mail notice of new inbox items (メール通知): ``GET/POST /notices``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response
from starlette.concurrency import run_in_threadpool

from inkless.app import Node
from inkless.errors import ValidationError
from inkless.web.deps import Caller, get_node, page_caller
from inkless.web.pages import RendererDep
from inkless.web.render import N_

router = APIRouter(include_in_schema=False)
NodeDep = Annotated[Node, Depends(get_node)]
CallerDep = Annotated[Caller, Depends(page_caller)]

SAVED_ON = N_("Saved. You will get a short mail when a document arrives in your office's inbox.")
SAVED_OFF = N_("Saved. You will get no mail notices.")
BAD_ADDRESS = N_("Please enter a valid e-mail address.")
NO_MAIL = N_("This node sends no e-mail, so notices cannot be sent. Ask the administrator.")


@router.get("/notices")
def notices_page(request: Request, node: NodeDep, caller: CallerDep, render: RendererDep) -> Response:
    """The form: an address and on/off."""
    assert node.notices is not None
    setting = node.notices.setting(caller.user.login)
    return render.render(request, "notices.html", setting=setting, address=setting.address if setting else "",
                         csrf_token=caller.session.csrf_token if caller.session else "", caller=caller,
                         mail_enabled=node.mail is not None and node.mail.enabled)


@router.post("/notices")
async def notices_save(request: Request, node: NodeDep, caller: CallerDep, render: RendererDep,
                       address: Annotated[str, Form(max_length=300)] = "",
                       enabled: Annotated[str, Form(max_length=5)] = "") -> Response:
    """Save; a bad address shows the form again with what was typed."""
    assert node.notices is not None
    on = enabled == "1"
    try:
        setting = await run_in_threadpool(node.notices.set, caller.user.login, address.strip() or None, on,
                                          caller.user.login)
    except ValidationError:
        return render.render(request, "notices.html", status_code=422, setting=None, address=address,
                             error=render.gettext(request, BAD_ADDRESS), enabled=on, caller=caller,
                             csrf_token=caller.session.csrf_token if caller.session else "",
                             mail_enabled=node.mail is not None and node.mail.enabled)
    return render.render(request, "notices.html", setting=setting, address=setting.address if setting else "",
                         notice=render.gettext(request, SAVED_ON if on else SAVED_OFF), caller=caller,
                         csrf_token=caller.session.csrf_token if caller.session else "",
                         mail_enabled=node.mail is not None and node.mail.enabled)
