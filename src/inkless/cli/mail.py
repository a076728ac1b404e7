"""``inkless mail``: the mail outbox — what is queued, sent, refused; a test mail; one sending pass."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from inkless.cli.common import DataOption, JsonOption, fail, open_node, print_json, print_table, shown_time

if TYPE_CHECKING:  # imported when a command runs, so that `inkless --help` starts at once
    from inkless.app import Node
    from inkless.mail.outbox import MailOutbox, MailStatus

app = typer.Typer(help="The mail outbox (smtp_url): list mails, send a test mail.", no_args_is_help=True)


def _outbox(node: Node) -> MailOutbox:
    assert node.mail is not None
    return node.mail


def _row(status: MailStatus) -> dict[str, object]:
    return {
        "id": status.id, "kind": status.kind, "ref": status.ref, "to": status.recipient, "state": status.state,
        "attempts": status.attempts, "created_at": status.created_at.isoformat(),
        "sent_at": status.sent_at.isoformat() if status.sent_at else None,
        "smtp_code": status.smtp_code, "last_error": status.last_error,
    }


@app.command("list")
def list_mails(
    state: Annotated[str | None, typer.Option("--state", help="queued, retrying, sent, failed or expired.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="How many of the newest mails.")] = 50,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """The newest mails of the outbox with their state and the server's last answer (never their content)."""
    with open_node(data) as node:
        mails = _outbox(node).recent(limit, state)
        if as_json:
            print_json([_row(m) for m in mails])
            return
        print_table([(m.id, m.kind, m.recipient, m.state, m.attempts, shown_time(node, m.created_at),
                      shown_time(node, m.sent_at), m.last_error or "") for m in mails],
                    ["id", "kind", "to", "state", "tries", "queued", "sent", "last answer"])


@app.command("test")
def test_mail(
    to: Annotated[str, typer.Option("--to", help="The address to send the test mail to.")],
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Send it now and show the server's answer.")] = True,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Queue a short test mail (Japanese and English) and, with --wait, hand it to the server at once."""
    from inkless.mail.compose import MailContent

    with open_node(data) as node:
        outbox = _outbox(node)
        if not outbox.enabled:
            fail("smtp_url is not set: this node sends no mail (see docs/external.md)", 6)
        content = MailContent(
            subject=f"inkless テストメール / test mail ({node.settings.organisation or node.node_id})",
            text="inkless からのテストメールです。返信は不要です。\n\n"
                 "This is a test mail from inkless. No reply is needed.\n")
        with node.db.begin() as conn:
            status = outbox.enqueue(conn, kind="test", recipient=to, content=content)
        if wait:
            outbox.deliver_due()
            with node.db.read() as conn:
                status = outbox.status(conn, status.id)
        if as_json:
            print_json(_row(status))
        else:
            typer.echo(f"mail {status.id} to {status.recipient}: {status.state}"
                       + (f" ({status.last_error})" if status.last_error else ""))
        if status.state in ("failed", "expired"):
            raise typer.Exit(1)


@app.command("send")
def send_due(data: DataOption = None) -> None:
    """One sending pass over the due mails (what the workers do every few seconds)."""
    with open_node(data) as node:
        result = _outbox(node).deliver_due(limit=200)
    typer.echo(f"sent {result.sent}, retrying {result.retrying}, failed {result.failed}, expired {result.expired}")


@app.command("notice")
def notice(
    login: Annotated[str, typer.Argument(help="The user.")],
    to: Annotated[str | None, typer.Option("--to", help="The address notices go to.")] = None,
    on: Annotated[bool, typer.Option("--on/--off", help="Send notices or not.")] = True,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """A user's mail notice of new inbox items (新着文書があります + a link, never content)."""
    with open_node(data) as node:
        assert node.notices is not None
        current = node.notices.setting(login)
        address = to or (current.address if current else None)
        setting = node.notices.set(login, address, on, actor="operator")
    if as_json:
        print_json({"login": login, "address": setting.address if setting else None,
                    "enabled": bool(setting and setting.enabled)})
    else:
        typer.echo(f"{login}: notices {'on' if setting and setting.enabled else 'off'}"
                   + (f" to {setting.address}" if setting else ""))
