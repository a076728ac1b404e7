"""``inkless send / inbox / message / report / list / outbox / deliver``: secure delivery from the command line.

Who acts: ``--as LOGIN`` sends and reads as that user, with that user's office membership and
clearance. Without it the command acts as the node *operator*, who may act for any office: a
person with a shell on the node holds the master key and so every office key anyway. Every
operator action is audited as ``operator``.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from inkless.cli.common import DataOption, JsonOption, open_node, print_json, print_table, shown_time
from inkless.config import LANGUAGES
from inkless.errors import ConfigurationError, NotFoundError, ValidationError

if TYPE_CHECKING:  # imported when a command runs, so that `inkless --help` starts at once
    from inkless.app import Node
    from inkless.delivery.faxnote import FaxNote
    from inkless.delivery.model import InboxItem, RecipientStatus, SentMessage
    from inkless.delivery.service import DeliveryService

message_app = typer.Typer(help="One message: show, status, export.", no_args_is_help=True)
list_app = typer.Typer(help="Distribution lists (broadcast).", no_args_is_help=True)

AsOption = Annotated[
    str | None, typer.Option("--as", help="Act as this user (default: the node operator, for any office).")
]


def _svc(node: Node) -> DeliveryService:
    if node.delivery is None:
        raise ConfigurationError("this node has no delivery service")
    return node.delivery


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


LangOption = Annotated[
    str | None,
    typer.Option("--lang", help="Language of the fax fallback notes and of e-mail recipients' states: ja or en "
                                "(default: the node's)."),
]


def _gettext(node: Node, lang: str | None) -> Callable[[str], str]:
    """The catalog of ``lang`` (or the node's default language) for texts shown to people."""
    from inkless.web.i18n import load_translations

    lang = lang or node.settings.default_language
    if lang not in LANGUAGES:
        raise ValidationError(f"--lang {lang!r} must be one of {', '.join(LANGUAGES)}")
    catalog = load_translations(lang)
    return lambda message: str(catalog.gettext(message))


def _note_json(n: FaxNote | None, gettext: Callable[[str], str]) -> dict[str, Any] | None:
    return None if n is None else {**n.as_dict(), "text": n.render(gettext), "detail": n.detail}


def _status_json(s: RecipientStatus, gettext: Callable[[str], str] = str) -> dict[str, Any]:
    return {"kind": "office", "recipient": s.recipient, "state": s.state, "attempts": s.attempts,
            "next_attempt_at": _iso(s.next_attempt_at), "last_error": s.last_error,
            "expires_at": _iso(s.expires_at), "delivered_at": _iso(s.delivered_at),
            "received_at": _iso(s.received_at), "receipt": s.has_receipt,
            "fax_decision": _note_json(s.fax_decision, gettext), "fax_outcome": _note_json(s.fax_outcome, gettext)}


def _item_json(i: InboxItem) -> dict[str, Any]:
    return {"message_id": i.message_id, "office": i.office, "from": i.sender, "subject": i.subject,
            "classification": i.classification, "priority": i.priority, "received_at": _iso(i.received_at),
            "documents": i.document_count, "source": i.source, "authenticated": i.authenticated,
            "opened": i.opened, "envelope_sha256": i.envelope_sha256,
            "fax_first": i.fax_first.as_dict() if i.fax_first else None,
            "fax_copy_message_id": i.fax_copy_message_id}


def _sent_json(m: SentMessage) -> dict[str, Any]:
    return {"message_id": m.message_id, "office": m.office, "sender": m.sender_login, "subject": m.subject,
            "classification": m.classification, "priority": m.priority, "procedure_code": m.procedure_code,
            "reply_to": m.reply_to, "created_at": _iso(m.created_at), "envelope_sha256": m.envelope_sha256,
            "envelope_size": m.envelope_size, "documents": m.document_count,
            "recipients": [_status_json(s) for s in m.recipients]}


def send(
    files: Annotated[list[Path], typer.Argument(help="Documents to send (PDF or any other file).")],
    from_office: Annotated[str, typer.Option("--from", help="Sending office code.")],
    subject: Annotated[str, typer.Option("--subject", help="Subject (件名).")],
    to: Annotated[str | None, typer.Option(
        "--to", help="Recipients, comma-separated: offices (office@node) or e-mail addresses (secure pickup).")] = None,
    lists: Annotated[list[str] | None, typer.Option("--list", help="A distribution list (repeatable).")] = None,
    classification: Annotated[int, typer.Option("--classification", help="0 公開, 1 内部, 2 秘, 3 極秘.")] = 0,
    priority: Annotated[str, typer.Option("--priority", help="normal or urgent.")] = "normal",
    procedure: Annotated[str | None, typer.Option("--procedure", help="Procedure code.")] = None,
    reply_to: Annotated[str | None, typer.Option("--reply-to", help="Message id this answers.")] = None,
    confirm: Annotated[bool, typer.Option(
        "--confirm", help="Confirm that a classification 1 document may go to the e-mail addresses.")] = False,
    mobile: Annotated[list[str] | None, typer.Option(
        "--mobile", help="ADDRESS=NUMBER: the e-mail recipient's mobile number (the code is then shown to the "
                         "sender to read out). Repeatable.")] = None,
    as_login: AsOption = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send documents to offices or e-mail addresses (prints the message id); delivery happens in the background."""
    from inkless.delivery.service import NewDocument

    docs = []
    for path in files:
        if not path.is_file():
            raise ValidationError(f"{path}: no such file")
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        docs.append(NewDocument(path.name, path.read_bytes(), ctype))
    addresses = [a.strip() for a in (to or "").split(",") if a.strip()]
    mobiles = {}
    for item in mobile or []:
        address, sep, number = item.partition("=")
        if not sep or not address.strip() or not number.strip():
            raise ValidationError(f"--mobile {item!r}: expected ADDRESS=NUMBER, e.g. taro@example.co.jp=090-1234-5678")
        mobiles[address.strip()] = number.strip()
    with open_node(data) as node:
        message_id = _svc(node).send(as_login, from_office, addresses, lists or [], subject, docs,
                                     classification, priority, procedure, reply_to, confirm=confirm, mobiles=mobiles)
    if as_json:
        print_json({"message_id": message_id})
    else:
        typer.echo(message_id)


def inbox(
    office: Annotated[str, typer.Argument(help="Office code.")],
    as_login: AsOption = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """List an office's inbox, newest first."""
    with open_node(data) as node:
        items = _svc(node).inbox(office, as_login)
    if as_json:
        print_json([_item_json(i) for i in items])
        return
    print_table([(i.message_id, shown_time(node, i.received_at), i.sender, i.classification, i.priority,
                  i.subject if i.subject is not None else "(classified)", i.document_count,
                  "unauthenticated" if not i.authenticated else
                  (f"faxed first (copy {i.fax_copy_message_id})" if i.fax_copy_message_id else "faxed first")
                  if i.fax_first else "") for i in items],
                ["ID", "RECEIVED", "FROM", "CLS", "PRIORITY", "SUBJECT", "DOCS", ""])


@message_app.command("show")
def message_show(
    message_id: Annotated[str, typer.Argument(help="Message id.")],
    as_login: AsOption = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Open a message (decrypted in memory): metadata and document list; audited."""
    with open_node(data) as node:
        opened = _svc(node).open_message(message_id, as_login)
    meta = opened.metadata.to_json()
    meta.update({"envelope_sha256": opened.envelope_sha256, "signed_by": opened.signer_address,
                 "authenticated": opened.authenticated, "copy": opened.copy, "office": opened.office})
    if as_json:
        print_json(meta)
        return
    for key in ("message_id", "from", "to", "subject", "classification", "priority", "procedure_code", "reply_to",
                "created_at", "signed_by", "authenticated", "envelope_sha256"):
        typer.echo(f"{key:16} {meta[key]}")
    for d in meta["documents"]:
        typer.echo(f"document         {d['name']}  {d['size']} bytes  sha256 {d['sha256']}")


@message_app.command("status")
def message_status(
    message_id: Annotated[str, typer.Argument(help="Message id.")],
    as_login: AsOption = None,
    lang: LangOption = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Per-recipient delivery state of a sent message, with the disaster fallback's decision and fax outcome.

    E-mail recipients (secure pickup) follow the offices: 通知済み / 開封 / ダウンロード / 返信 / 期限切れ / 不達 with
    the time of each step (``--json``: English state keys and ISO UTC times).
    """
    from inkless.pickup.status import STATE_LABELS, status_json

    with open_node(data) as node:
        gettext = _gettext(node, lang)
        rows = _svc(node).status(message_id, as_login)
        pickups = node.pickup.statuses(message_id, as_login) if node.pickup is not None else []
    if as_json:
        print_json([_status_json(s, gettext) for s in rows] + [status_json(p, gettext) for p in pickups])
        return
    print_table([(s.recipient, s.state, s.attempts, shown_time(node, s.delivered_at or s.next_attempt_at),
                  s.last_error or (s.fax_outcome.detail if s.fax_outcome else None) or "",
                  " ".join(n.render(gettext) for n in (s.fax_decision, s.fax_outcome) if n is not None))
                 for s in rows] +
                [(p.recipient, gettext(STATE_LABELS[p.state]), "",
                  shown_time(node, p.states[-1][1] if p.states else p.created_at), p.bounce_detail or "",
                  ", ".join(f"{gettext(STATE_LABELS[state])} {shown_time(node, at)}" for state, at in p.states))
                 for p in pickups], ["RECIPIENT", "STATE", "ATTEMPTS", "WHEN", "REASON", "EVENTS"])


@message_app.command("export")
def message_export(
    message_id: Annotated[str, typer.Argument(help="Message id.")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write into.")],
    as_login: AsOption = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write the documents, the raw envelope.p7m and the receipts (.p7s); audited."""
    with open_node(data) as node:
        files = _svc(node).export(message_id, as_login, out)
    if as_json:
        print_json([str(f) for f in files])
    else:
        for f in files:
            typer.echo(str(f))


def report(
    message_id: Annotated[str, typer.Argument(help="Message id.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the PDF.")],
    as_login: AsOption = None,
    data: DataOption = None,
) -> None:
    """Write the transmission report (送信証明) PDF of a sent message."""
    from inkless.delivery.report import transmission_report

    with open_node(data) as node:
        pdf = transmission_report(_svc(node), message_id, as_login, node.settings.tz)
    out.write_bytes(pdf)
    typer.echo(str(out))


@list_app.command("add")
def list_add(
    name: Annotated[str, typer.Argument(help="List name, e.g. all-police.")],
    addresses: Annotated[list[str], typer.Argument(help="Addresses office@node.")],
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a list, or add addresses to an existing one."""
    with open_node(data) as node:
        svc = _svc(node)
        try:
            existing = list(svc.distribution_list(name).addresses)
        except NotFoundError:
            existing = []
        saved = svc.set_list(name, existing + addresses)
    if as_json:
        print_json({"name": saved.name, "addresses": list(saved.addresses)})
    else:
        typer.echo(f"{saved.name}: {', '.join(saved.addresses)}")


@list_app.command("show")
def list_show(
    name: Annotated[str | None, typer.Argument(help="List name (default: every list).")] = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show one distribution list or all of them."""
    with open_node(data) as node:
        svc = _svc(node)
        found = [svc.distribution_list(name)] if name else svc.distribution_lists()
    if as_json:
        print_json([{"name": d.name, "addresses": list(d.addresses)} for d in found])
    else:
        print_table([(d.name, ", ".join(d.addresses)) for d in found], ["LIST", "ADDRESSES"])


def outbox(
    state: Annotated[str | None, typer.Option("--state", help="queued, retrying, delivered, expired, rejected")] = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every outbox row (one per recipient) with its state and last error."""
    with open_node(data) as node:
        rows = _svc(node).outbox_rows(state)
    if as_json:
        print_json([{"message_id": r.message_id, "recipient": r.recipient, "state": r.state,
                     "priority": r.priority, "attempts": r.attempts, "next_attempt_at": _iso(r.next_attempt_at),
                     "last_error": r.last_error, "expires_at": _iso(r.expires_at),
                     "delivered_at": _iso(r.delivered_at)} for r in rows])
        return
    print_table([(r.message_id, r.recipient, r.state, r.priority, r.attempts, r.last_error or "") for r in rows],
                ["ID", "RECIPIENT", "STATE", "PRIORITY", "ATTEMPTS", "LAST ERROR"])


def deliver(
    once: Annotated[bool, typer.Option("--once", help="Run one outbox pass and exit.")] = True,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deliver what is due in the outbox now (one pass); the workers do this continuously."""
    with open_node(data) as node:
        result = _svc(node).deliver_due(limit=1000)
    counts = {"delivered": result.delivered, "retrying": result.retrying, "expired": result.expired,
              "rejected": result.rejected}
    if as_json:
        print_json(counts)
    else:
        typer.echo(", ".join(f"{k} {v}" for k, v in counts.items()))


def register(app: typer.Typer) -> None:
    """Attach the delivery commands to the ``inkless`` command."""
    app.command("send")(send)
    app.command("inbox")(inbox)
    app.command("report")(report)
    app.command("outbox")(outbox)
    app.command("deliver")(deliver)
    app.add_typer(message_app, name="message")
    app.add_typer(list_app, name="list")
