"""``inkless route``: approval routes (稟議/回覧) — start, status, approve (stamp), return, reject, queue, download.

The CLI runs on the node itself with the operator's access to it; the web UI is where
approvers prove who they are (password + TOTP, and the TOTP again for the office seal).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from inkless.cli.common import DataOption, JsonOption, open_node, print_json, print_table, shown_time
from inkless.errors import SealError, ValidationError
from inkless.seals.model import SealKind
from inkless.seals.routes import ApprovalRoute, ResumeFrom, RouteState, StepPlan

if TYPE_CHECKING:  # imported when a command runs, so that `inkless --help` starts at once
    from inkless.app import Node
    from inkless.seals.route_service import RouteService, RouteStatus

app = typer.Typer(help="Approval routes (稟議/回覧): steps of approvers who stamp in turn.", no_args_is_help=True)

AsOption = Annotated[str, typer.Option("--as", help="The login acting.")]
CommentOption = Annotated[str | None, typer.Option("--comment", help="A comment for the route's timeline.")]
# The one vocabulary of docs/routes.md: Japanese term first, the English term beside it.
STATE_LABELS = {
    RouteState.IN_PROGRESS: "承認待ち in progress",
    RouteState.RETURNED: "差し戻し returned",
    RouteState.AWAITING_OFFICE_SEAL: "公印待ち awaiting office seal",
    RouteState.COMPLETED: "完了 completed",
    RouteState.REJECTED: "却下 rejected",
}


def _routes(node: Node) -> RouteService:
    if node.routes is None:
        raise SealError("this node has no approval route service")
    return node.routes


def _deadlines(values: list[str], steps: int) -> list[date | None]:
    parsed: list[date | None] = []
    for value in values:
        if value in ("", "-"):
            parsed.append(None)
            continue
        try:
            parsed.append(date.fromisoformat(value))
        except ValueError:
            raise ValidationError(f"deadline {value!r} must be a date like 2026-12-24 (or '-' for none)") from None
    if not parsed:
        return [None] * steps
    if len(parsed) == 1:
        return parsed * steps
    if len(parsed) != steps:
        raise ValidationError(f"give --deadline once (for every step) or once per --step ({steps}), not {len(parsed)}")
    return parsed


@app.command("start")
def start(
    file: Annotated[Path, typer.Argument(help="The PDF to route.", exists=True, dir_okay=False, readable=True)],
    starter: AsOption,
    step: Annotated[list[str], typer.Option("--step", help="Approvers of a step: LOGIN or LOGIN,LOGIN (合議).")],
    title: Annotated[list[str], typer.Option("--title", help="Title above the step's box (担当, 係長 …), per --step.")],
    deadline: Annotated[
        list[str] | None, typer.Option("--deadline", help="YYYY-MM-DD once for every step, or once per --step.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Document name (default: the file name).")] = None,
    comment: CommentOption = None,
    deliver_to: Annotated[
        str | None, typer.Option("--deliver-to", help="Send the finished document to this office address.")
    ] = None,
    resume_from: Annotated[
        ResumeFrom, typer.Option("--resume-from", help="After a 差し戻し and a corrected version, resume at the "
                                                       "step that returned it (step) or at step 1 (start).")
    ] = ResumeFrom.STEP,
    procedure: Annotated[
        str | None, typer.Option("--procedure", help="Procedure code of the catalogue the seals are counted against.")
    ] = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add the approval strip to FILE and start the route; the first step's approvers see it in their queue."""
    if len(step) != len(title):
        raise ValidationError(f"give one --title per --step: {len(step)} steps, {len(title)} titles")
    dates = _deadlines(deadline or [], len(step))
    plans = [
        StepPlan(t, tuple(login.strip() for login in logins.split(",")), d)
        for logins, t, d in zip(step, title, dates, strict=True)
    ]
    pdf = file.read_bytes()
    with open_node(data) as node:
        code = (node.procedures.check_choice(procedure, node.directory.user(starter).office_code)
                if node.procedures and procedure else procedure)
        route = _routes(node).start(
            pdf, starter, plans, document_name=name or file.stem, comment=comment, deliver_to=deliver_to,
            resume_from=resume_from, procedure_code=code,
        )
        status = _routes(node).status(route.id)
    if as_json:
        print_json(status.to_dict())
        return
    typer.echo(f"Started route {route.id} '{route.document_name}' ({len(route.steps)} steps, strip on page "
               f"{route.strip_page}); waiting for {', '.join(route.waiting_for())}")


@app.command("status")
def status(
    route_id: Annotated[int, typer.Argument(help="Route id.")],
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Where the route stands: every step and box, and its timeline."""
    with open_node(data) as node:
        found = _routes(node).status(route_id)
    if as_json:
        print_json(found.to_dict())
        return
    _print_status(found, node)


@app.command("approve")
def approve(
    route_ids: Annotated[list[int], typer.Argument(help="Route id; several to stamp them all (in parallel).")],
    login: AsOption,
    kind: Annotated[
        SealKind | None,
        typer.Option("--kind", help="personal (認印) or date (日付印); the office seal when the route awaits it."),
    ] = None,
    comment: CommentOption = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1, help="Processes stamping several routes in parallel (default: one per core).")] = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stamp LOGIN's box of the current step; after the last step, press the office seal (角印) and finish.

    Several route ids are stamped alike in parallel worker processes, with a progress line per route;
    a route that cannot be stamped is named with the reason and the others go on (exit 1 if any failed).
    """
    if len(route_ids) > 1:
        _approve_many(route_ids, login, kind, comment, workers, data, as_json)
        return
    route_id = route_ids[0]
    with open_node(data) as node:
        routes = _routes(node)
        current = routes.route(route_id)
        if kind is SealKind.OFFICE or (kind is None and current.state is RouteState.AWAITING_OFFICE_SEAL):
            route = routes.office_seal(route_id, login)
            done = f"pressed the office seal on route {route.id}: completed, extended to PAdES B-LTA"
            if route.delivered_message_id:
                done += f", delivered to {route.deliver_to} as message {route.delivered_message_id}"
        else:
            route = routes.approve(route_id, login, kind or SealKind.PERSONAL, comment)
            done = f"{login} stamped route {route.id}; " + _next(route)
        found = routes.status(route.id)
    if as_json:
        print_json(found.to_dict())
        return
    typer.echo(done)


def _approve_many(route_ids: list[int], login: str, kind: SealKind | None, comment: str | None,
                  workers: int | None, data: Path | None, as_json: bool) -> None:
    from inkless.config import load_settings
    from inkless.seals.batch import RouteOutcome, finish_routes

    if len(set(route_ids)) != len(route_ids):
        raise ValidationError("a route id is given twice: each route is stamped once")

    def progress(done: int, total: int, result: RouteOutcome) -> None:
        status = result.done if result.ok else f"FAILED: {result.error}"
        typer.echo(f"[{done}/{total}] route {result.route_id}: {status}", err=True)

    results = finish_routes(load_settings(data), route_ids, login, kind, comment, workers=workers,
                            progress=progress)
    failed = [r for r in results if not r.ok]
    if as_json:
        print_json([{"route_id": r.route_id, "ok": r.ok, "done": r.done or None, "error": r.error}
                    for r in results])
    else:
        typer.echo(f"{login} stamped {len(results) - len(failed)} of {len(results)} routes")
    if failed:
        typer.echo(f"{len(failed)} failed: " + ", ".join(f"route {r.route_id}" for r in failed), err=True)
        raise typer.Exit(1)


@app.command("return")
def return_route(
    route_id: Annotated[int, typer.Argument(help="Route id.")],
    login: AsOption,
    comment: Annotated[str, typer.Option("--comment", help="Why it goes back (required).")],
    to_step: Annotated[
        int | None, typer.Option("--to-step", help="Step number to go back to (default: to the starter, who "
                                                   "uploads a corrected version with 'route resubmit').")
    ] = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Return the route (差し戻し): to its starter for a corrected version, or to an earlier step."""
    with open_node(data) as node:
        route = _routes(node).return_route(route_id, login, comment, None if to_step is None else to_step - 1)
        found = _routes(node).status(route.id)
    if as_json:
        print_json(found.to_dict())
        return
    if route.state is RouteState.RETURNED:
        typer.echo(f"{login} returned route {route.id} to its starter {route.starter} (差し戻し); " + _next(route))
        return
    typer.echo(f"{login} returned route {route.id} to step {(route.current_step or 0) + 1}; " + _next(route))


@app.command("resubmit")
def resubmit(
    route_id: Annotated[int, typer.Argument(help="Route id.")],
    file: Annotated[Path, typer.Argument(help="The corrected PDF.", exists=True, dir_okay=False, readable=True)],
    login: AsOption,
    comment: Annotated[str | None, typer.Option("--comment", help="What was corrected.")] = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Upload a corrected version of a returned route's document (v2, v3 …); the route resumes."""
    with open_node(data) as node:
        route = _routes(node).resubmit(route_id, login, file.read_bytes(), comment)
        found = _routes(node).status(route.id)
    if as_json:
        print_json(found.to_dict())
        return
    typer.echo(f"{login} submitted version {route.version} of route {route.id}; " + _next(route))


@app.command("reject")
def reject(
    route_id: Annotated[int, typer.Argument(help="Route id.")],
    login: AsOption,
    comment: Annotated[str, typer.Option("--comment", help="Why it is rejected (required).")],
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Reject the route (却下): it ends."""
    with open_node(data) as node:
        route = _routes(node).reject(route_id, login, comment)
        found = _routes(node).status(route.id)
    if as_json:
        print_json(found.to_dict())
        return
    typer.echo(f"{login} rejected route {route.id}")


@app.command("queue")
def queue(
    login: Annotated[str, typer.Argument(help="Whose queue (承認待ち).")],
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Routes waiting for LOGIN: a box to stamp, or the office seal to press."""
    with open_node(data) as node:
        items = _routes(node).queue(login)
        today = node.clock.now().date()
    rows = [
        {
            "id": i.route.id,
            "document_name": i.route.document_name,
            "starter": i.route.starter,
            "action": i.action,
            "step": i.step_title,
            "deadline": i.deadline.isoformat() if i.deadline else None,
            "overdue": i.overdue(today),
        }
        for i in items
    ]
    if as_json:
        print_json(rows)
        return
    print_table(
        [[r["id"], r["document_name"], r["starter"], r["step"], r["action"], r["deadline"] or "-"] for r in rows],
        ["id", "document", "started by", "step", "action", "deadline"],
    )


@app.command("download")
def download(
    route_id: Annotated[int, typer.Argument(help="Route id.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the PDF.", dir_okay=False)],
    revision: Annotated[int | None, typer.Option("--revision", help="An earlier revision (default: current).")] = None,
    data: DataOption = None,
) -> None:
    """Write the route's document (the current revision, or one from its history) to OUT."""
    with open_node(data) as node:
        pdf = _routes(node).document(route_id, revision=revision)
    out.write_bytes(pdf)
    typer.echo(f"wrote {out} ({len(pdf)} bytes)")


@app.command("deliver")
def deliver(
    route_id: Annotated[int, typer.Argument(help="Route id.")],
    login: AsOption,
    data: DataOption = None,
) -> None:
    """Hand a completed route's document to delivery again (when that failed after the office seal)."""
    with open_node(data) as node:
        route = _routes(node).deliver(route_id, login)
    typer.echo(f"route {route.id} delivered to {route.deliver_to} as message {route.delivered_message_id}")


def _next(route: ApprovalRoute) -> str:
    if route.state is RouteState.AWAITING_OFFICE_SEAL:
        return "every step is stamped; the office seal (角印) is next"
    if route.state is RouteState.RETURNED:
        return f"差し戻し: waiting for a corrected version from {route.starter} ('inkless route resubmit')"
    if route.state is RouteState.IN_PROGRESS:
        step = route.current
        assert step is not None
        return f"now at step {step.index + 1} ({step.title}), waiting for {', '.join(route.waiting_for())}"
    return STATE_LABELS[route.state]


def _print_status(found: RouteStatus, node: Node) -> None:
    r = found.route
    typer.echo(f"route {r.id}  {r.document_name}")
    typer.echo(f"office {r.office_code}  started by {r.starter}  {shown_time(node, r.created_at)}")
    typer.echo(f"state {STATE_LABELS[r.state]}  version v{r.version}  revision {r.revision}  "
               f"strip on page {r.strip_page}" + (f"  procedure {r.procedure_code}" if r.procedure_code else ""))
    rows = []
    for st in r.steps:
        marker = "▶" if st.index == r.current_step else ""
        for a in st.approvers:
            stamped = f"{a.seal_kind} {shown_time(node, a.stamped_at)}" if a.stamped and a.stamped_at else ""
            rows.append([f"{marker}{st.index + 1}", st.title, a.login, stamped, st.deadline or "-"])
    print_table(rows, ["step", "title", "approver", "stamped", "deadline"])
    typer.echo("")
    print_table(
        [
            [shown_time(node, e.at), e.actor, e.action,
             "" if e.step is None else e.step + 1, "" if e.to_step is None else e.to_step + 1, e.comment or ""]
            for e in found.events
        ],
        ["at", "who", "what", "step", "to step", "comment"],
    )
