"""招待FAXを送る: a clerk invites a fax sender to the office's intake window in one click.

From the fax log (a received call) or from an inbox message that came by fax, the button faxes the
sender a cover page with the window's URL and QR code and a one-page letter, and records the
invitation (number, office, time) for the migration figures.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from inkless.app import Node
from inkless.intake.model import Invitation
from inkless.web.deps import Caller, RowId, get_node, page_caller
from inkless.web.pages_intake import intake_of
from inkless.web.render import N_

router = APIRouter(include_in_schema=False)
NodeDep = Annotated[Node, Depends(get_node)]
CallerDep = Annotated[Caller, Depends(page_caller)]

NOT_YOURS = N_("No such fax in your office.")
NO_NUMBER = N_("The sender of this fax sent no number: nobody can be invited.")


def _invite_call(node: Node, caller: Caller, call_id: int) -> Invitation:
    assert node.fax is not None
    call = node.fax.call(call_id)
    # A received fax is its office's mail: for anyone else (administrators too) it does not exist.
    if call.direction != "RECV" or call.office_code is None or call.office_code != caller.office.code:
        raise HTTPException(status_code=404, detail=NOT_YOURS)
    if not call.remote_number:
        raise HTTPException(status_code=422, detail=NO_NUMBER)
    return intake_of(node).invite_by_fax(call.office_code, call.remote_number, caller.user.login, "fax_call",
                                         str(call_id))


@router.post("/fax/calls/{call_id}/invite")
async def invite_from_fax_log(call_id: RowId, node: NodeDep, caller: CallerDep) -> Response:
    """Fax an invitation to the sender of a received call."""
    invitation = await run_in_threadpool(_invite_call, node, caller, call_id)
    return RedirectResponse(f"/fax/log?invited={invitation.fax_job_id}", status_code=303)


def _invite_message(node: Node, caller: Caller, message_id: str) -> Invitation:
    assert node.delivery is not None
    opened = node.delivery.open_message(message_id, caller.user.login)
    facts = opened.metadata.facts or {}
    if opened.metadata.source != "fax" or opened.copy != "received":
        raise HTTPException(status_code=422, detail=NO_NUMBER)
    number = facts.get("cid") or None
    if not number:
        raise HTTPException(status_code=422, detail=NO_NUMBER)
    return intake_of(node).invite_by_fax(opened.office, str(number), caller.user.login, "message", message_id)


@router.post("/messages/{message_id}/invite")
async def invite_from_message(request: Request, message_id: str, node: NodeDep, caller: CallerDep) -> Response:
    """Fax an invitation to the sender of a message that arrived by fax."""
    invitation = await run_in_threadpool(_invite_message, node, caller, message_id)
    return RedirectResponse(f"/messages/{message_id}?invited={invitation.fax_job_id}", status_code=303)
