"""``inkless fax``: the fax bridge from the command line (``simulate`` a remote fax machine, ...)."""

from __future__ import annotations

import signal
import threading
from datetime import tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from inkless.cli.common import DataOption, JsonOption, open_node, print_json, print_table, shown_time
from inkless.config import load_settings
from inkless.errors import ConfigurationError, FaxError, NotFoundError, ValidationError
from inkless.fax.jobs import JobSchedule, parse_duration
from inkless.fax.log import LOG_COLUMNS, FaxJob, log_line

if TYPE_CHECKING:  # imported when a command runs, so that `inkless --help` starts at once
    from inkless.fax.service import FaxService

app = typer.Typer(help="The fax bridge: send, log, and a software remote fax machine.", no_args_is_help=True)


def _socket(explicit: Path | None, data: Path | None, key: str) -> Path:
    if explicit is not None:
        return explicit
    path = getattr(load_settings(data), key)
    assert isinstance(path, Path)
    return path


@app.command()
def simulate(
    file: Annotated[Path | None, typer.Argument(help="PDF or TIFF to send (not with --answer).")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Number to call: the node's fax number (DID).")] = None,
    from_number: Annotated[str | None, typer.Option("--from-number", help="Our number (caller id, CID).")] = None,
    tsi: Annotated[str | None, typer.Option("--tsi", help="Our station id (TSI); default: --from-number.")] = None,
    sub_address: Annotated[str | None, typer.Option("--sub-address", help="T.30 sub-address (SUB).")] = None,
    header: Annotated[str | None, typer.Option("--header", help="Header line sender text to stamp.")] = None,
    standard: Annotated[bool, typer.Option("--standard", help="Send at 204×98 instead of 204×196.")] = False,
    no_ecm: Annotated[bool, typer.Option("--no-ecm", help="Do not offer error correction mode.")] = False,
    mh_only: Annotated[bool, typer.Option("--mh-only", help="Offer T.4 1D (MH) only, like an old machine.")] = False,
    answer: Annotated[bool, typer.Option("--answer", help="Answer the node's outbound calls instead.")] = False,
    busy: Annotated[int, typer.Option("--busy", help="With --answer: answer the first N calls busy.")] = 0,
    hangup_after_page: Annotated[
        int | None, typer.Option("--hangup-after-page", help="Drop the call part-way into the page after page K.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="With --answer: folder for received faxes.")] = None,
    calls: Annotated[int | None, typer.Option("--calls", help="With --answer: stop after N answered calls.")] = None,
    socket_path: Annotated[
        Path | None, typer.Option("--socket", help="Loopback socket (default: from the node's settings).")
    ] = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """A remote fax machine in software: call the node's loopback line and send FILE, or --answer its calls."""
    from inkless.fax.simulate import AnsweringRemote, result_facts, send_document
    from inkless.fax.spandsp import T30_SUPPORT_T4_1D_COMPRESSION
    from inkless.fax.terminal import ALL_COMPRESSIONS

    if answer:
        if out is None:
            raise ValidationError("--answer needs --out DIR for the received faxes")
        path = _socket(socket_path, data, "fax_loopback_remote")
        remote = AnsweringRemote(path, out, busy=busy, hangup_after_page=hangup_after_page,
                                 ident=tsi or from_number or "REMOTE", ecm=not no_ecm,
                                 compressions=T30_SUPPORT_T4_1D_COMPRESSION if mh_only else ALL_COMPRESSIONS)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda _s, _f: stop.set())
        signal.signal(signal.SIGINT, lambda _s, _f: stop.set())
        remote.start()
        typer.echo(f"answering fax calls on {path} (stop with SIGTERM or Ctrl-C)", err=True)
        try:
            while not stop.is_set():
                if calls is not None and len(remote.results) >= calls:
                    break
                stop.wait(0.2)
        finally:
            remote.stop()
        return
    if file is None or to is None:
        raise ValidationError("give --to NUMBER and a FILE to send (or --answer)")
    if busy or out is not None or calls is not None:
        raise ValidationError("--busy, --out and --calls go with --answer")
    try:
        document = file.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read {file}: {exc.strerror}") from None
    path = _socket(socket_path, data, "fax_loopback_socket")
    result = send_document(
        path, to, document, from_number=from_number, tsi=tsi, sub_address=sub_address, header=header,
        ecm=not no_ecm, fine=not standard, hangup_after_page=hangup_after_page,
        compressions=T30_SUPPORT_T4_1D_COMPRESSION if mh_only else ALL_COMPRESSIONS,
    )
    if as_json:
        print_json(result_facts(result))
    else:
        typer.echo(
            f"{'sent' if result.success else 'FAILED'}: {result.pages_transferred}/{result.pages_expected} pages"
            f" to {to}, {result.t30_text} (T.30 code {result.t30_code}), {result.bit_rate} bit/s,"
            f" {'ECM' if result.ecm else 'no ECM'}, {result.compression}, {result.duration_s:.1f} s of line time"
        )
    if not result.success:
        raise FaxError(f"the fax was not delivered: {result.t30_text}", t30_code=result.t30_code)


# --- the fax service: send, log, routing rules, block list, unroutable queue, fallback ---------------

route_app = typer.Typer(help="Inbound routing rules (DID, sub-address, TSI, CID → office).", no_args_is_help=True)
block_app = typer.Typer(help="The junk-fax block list (by CID or TSI).", no_args_is_help=True)
fallback_app = typer.Typer(help="Disaster fallback to fax, per office.", no_args_is_help=True)
line_app = typer.Typer(help="The telephone line (SIP): registration and calls in progress.", no_args_is_help=True)
app.add_typer(line_app, name="line")
app.add_typer(route_app, name="route")
app.add_typer(block_app, name="block")
app.add_typer(fallback_app, name="fallback")


def _fax(node: object) -> FaxService:
    from inkless.fax.service import FaxService

    service = getattr(node, "fax", None)
    if service is None:
        raise ConfigurationError("this node has no fax service")
    assert isinstance(service, FaxService)
    return service


@app.command("send")
def send(
    files: Annotated[list[Path], typer.Argument(help="PDF file(s) to fax, in order.")],
    from_office: Annotated[str, typer.Option("--from", help="Sending office code.")],
    to: Annotated[str, typer.Option("--to", help="Fax number to dial.")],
    login: Annotated[str | None, typer.Option("--as", help="Sending user (default: the office's first clerk).")] = None,
    cover: Annotated[bool | None, typer.Option("--cover/--no-cover", help="Prepend a cover page.")] = None,
    subject: Annotated[str | None, typer.Option("--subject", help="Subject for the cover page.")] = None,
    classification: Annotated[int, typer.Option("--classification", help="0 公開, 1 内部 (2+ are refused).")] = 0,
    confirm: Annotated[bool, typer.Option("--confirm", help="Confirm faxing a classification-1 document.")] = False,
    tries: Annotated[int | None, typer.Option("--tries", "-t", help="Maximum attempts (sendfax -t).")] = None,
    interval: Annotated[str | None, typer.Option("--interval", "-I", help="Retry interval: 90, 90s, 5m.")] = None,
    kill_time: Annotated[str | None, typer.Option("--kill-time", "-k", help="Give up after: 3h, 1d.")] = None,
    procedure: Annotated[str | None, typer.Option("--procedure", help="Procedure code of the catalogue.")] = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Queue PDF files as a fax; the workers dial it (retrying on busy / no answer) and keep a report."""
    documents: list[bytes] = []
    for file in files:
        try:
            documents.append(file.read_bytes())
        except OSError as exc:
            raise ValidationError(f"cannot read {file}: {exc.strerror}") from None
    with open_node(data) as node:
        fax = _fax(node)
        sender = login or _default_sender(node, from_office)
        base = fax.default_schedule
        schedule = JobSchedule(
            tries if tries is not None else base.max_tries,
            parse_duration(interval, "interval") if interval else base.interval_s,
            parse_duration(kill_time, "kill time") if kill_time else base.kill_after_s,
        )
        code = node.procedures.check_choice(procedure, from_office) if node.procedures else procedure
        job_id = fax.send(sender, from_office, to, documents, cover_page=cover, classification=classification,
                          confirm_internal=confirm, subject=subject, schedule=schedule, procedure_code=code)
        job = fax.job(job_id)
    if as_json:
        print_json(_job_dict(job))
        return
    typer.echo(f"queued fax job {job.id}: {job.pages} page(s) from {job.office_code} to {job.number}, "
               f"up to {job.max_tries} tries every {job.interval_s} s until {shown_time(node, job.kill_at)}")


def _default_sender(node: object, office_code: str) -> str:
    users = [u for u in node.directory.users(office_code) if u.active]  # type: ignore[attr-defined]
    if not users:
        raise NotFoundError(f"office {office_code} has no active user to send as; pass --as LOGIN")
    clerks = [u for u in users if u.role.value == "clerk"] or users
    return str(clerks[0].login)


def _job_dict(job: FaxJob) -> dict[str, object]:
    return {
        "id": job.id, "office": job.office_code, "created_by": job.created_by, "number": job.number,
        "pages": job.pages, "cover_page": job.cover_page, "classification": job.classification, "state": job.state,
        "tries": job.tries, "max_tries": job.max_tries, "interval_s": job.interval_s,
        "kill_at": job.kill_at.isoformat(), "next_attempt_at": job.next_attempt_at.isoformat(),
        "last_code": job.last_code, "last_text": job.last_text, "origin": job.origin,
        "procedure_code": job.procedure_code,
    }


@app.command("jobs")
def jobs(
    office: Annotated[str | None, typer.Option("--office", help="Only this office's jobs.")] = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Outbound fax jobs, newest first."""
    with open_node(data) as node:
        rows = [_job_dict(j) for j in _fax(node).jobs(office)]
    if as_json:
        print_json(rows)
        return
    print_table([(r["id"], r["office"], r["number"], r["pages"], r["state"], f"{r['tries']}/{r['max_tries']}",
                  r["last_text"]) for r in rows], ["id", "office", "number", "pages", "state", "tries", "result"])


@app.command("report")
def report(
    job_id: Annotated[int, typer.Argument(help="Fax job id.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the PDF.")],
    data: DataOption = None,
) -> None:
    """Write the transmission report of a job's last attempt (PDF)."""
    with open_node(data) as node:
        pdf = _fax(node).job_report(job_id)
    out.write_bytes(pdf)
    typer.echo(f"wrote {out}")


@app.command("log")
def log_command(
    limit: Annotated[int, typer.Option("--limit", "-n", help="Show the last N calls.")] = 1000,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Every call, one tab-separated line each, like HylaFAX's xferfaxlog (columns: see docs/fax.md)."""
    if limit <= 0:
        raise ValidationError("--limit must be positive")
    with open_node(data) as node:
        entries = _fax(node).calls(limit=limit)
    if as_json:
        print_json([dict(zip(LOG_COLUMNS, log_line(e).split("\t"), strict=True)) for e in entries])
        return
    for entry in entries:
        typer.echo(log_line(entry))


@app.command("unroutable")
def unroutable(
    assign: Annotated[int | None, typer.Option("--assign", help="Call id to route by hand.")] = None,
    office: Annotated[str | None, typer.Option("--office", help="With --assign: the office to deliver to.")] = None,
    image: Annotated[int | None, typer.Option("--image", help="Call id whose pages to write as PDF.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="With --image: where to write the PDF.")] = None,
    login: Annotated[str, typer.Option("--as", help="Administrator doing it (for the audit log).")] = "cli",
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """The administrators' queue of faxes no rule matched; --assign ID --office CODE delivers one."""
    with open_node(data) as node:
        fax = _fax(node)
        if assign is not None:
            if not office:
                raise ValidationError("--assign needs --office CODE")
            done = fax.assign(assign, office, login)
            typer.echo(f"fax {done.call_id} delivered to {done.office_code} (message {done.message_id})")
            return
        if image is not None:
            if out is None:
                raise ValidationError("--image needs --out FILE")
            out.write_bytes(fax.received_image(image))
            typer.echo(f"wrote {out}")
            return
        entries = fax.unroutable()
    rows = [{"call": e.id, "received": e.started_at.isoformat(timespec="seconds"), "cid": e.remote_number,
             "tsi": (e.remote_ident or "").strip(), "did": e.called_number, "sub_address": e.sub_address,
             "pages": e.pages} for e in entries]
    if as_json:
        print_json(rows)
        return
    print_table([(e.id, shown_time(node, e.started_at, seconds=True), *list(r.values())[2:])
                 for e, r in zip(entries, rows, strict=True)],
                ["call", "received", "cid", "tsi", "did", "subaddr", "pages"])


@route_app.command("add")
def route_add(
    kind: Annotated[str, typer.Argument(help="did, subaddress, tsi (regex) or cid (number or regex).")],
    pattern: Annotated[str, typer.Argument(help="What to match.")],
    office: Annotated[str, typer.Option("--office", help="The office that gets matching faxes.")],
    priority: Annotated[int, typer.Option("--priority", help="Lower is tried first.")] = 100,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a routing rule."""
    with open_node(data) as node:
        rule = _fax(node).add_rule(kind, pattern, office, priority, actor="cli")
    if as_json:
        print_json({"id": rule.id, "kind": rule.kind, "pattern": rule.pattern, "office": rule.office_code,
                    "priority": rule.priority})
        return
    typer.echo(f"rule {rule.id}: {rule.kind} {rule.pattern!r} -> {rule.office_code} (priority {rule.priority})")


@route_app.command("list")
def route_list(data: DataOption = None, as_json: JsonOption = False) -> None:
    """The routing rules, in the order they are tried (then the offices' own fax numbers)."""
    with open_node(data) as node:
        rules = _fax(node).rules()
    rows = [{"id": r.id, "priority": r.priority, "kind": r.kind, "pattern": r.pattern, "office": r.office_code}
            for r in rules]
    if as_json:
        print_json(rows)
        return
    print_table([tuple(r.values()) for r in rows], ["id", "priority", "kind", "pattern", "office"])


@route_app.command("remove")
def route_remove(rule_id: Annotated[int, typer.Argument(help="Rule id.")], data: DataOption = None) -> None:
    """Delete a routing rule."""
    with open_node(data) as node:
        _fax(node).remove_rule(rule_id, actor="cli")
    typer.echo(f"removed rule {rule_id}")


@block_app.command("add")
def block_add(
    kind: Annotated[str, typer.Argument(help="cid or tsi.")],
    pattern: Annotated[str, typer.Argument(help="Number or regular expression (matched in full).")],
    reason: Annotated[str | None, typer.Option("--reason", help="Why (shown to administrators).")] = None,
    data: DataOption = None,
) -> None:
    """Block calls by calling number or station id; they are logged and dropped."""
    with open_node(data) as node:
        entry = _fax(node).add_block(kind, pattern, reason, actor="cli")
    typer.echo(f"blocked {entry.kind} {entry.pattern!r} (entry {entry.id})")


@block_app.command("list")
def block_list(data: DataOption = None, as_json: JsonOption = False) -> None:
    """The block list."""
    with open_node(data) as node:
        entries = _fax(node).blocks()
    rows = [{"id": b.id, "kind": b.kind, "pattern": b.pattern, "reason": b.reason} for b in entries]
    if as_json:
        print_json(rows)
        return
    print_table([tuple(r.values()) for r in rows], ["id", "kind", "pattern", "reason"])


@block_app.command("remove")
def block_remove(entry_id: Annotated[int, typer.Argument(help="Entry id.")], data: DataOption = None) -> None:
    """Unblock."""
    with open_node(data) as node:
        _fax(node).remove_block(entry_id, actor="cli")
    typer.echo(f"removed block-list entry {entry_id}")


@fallback_app.command("enable")
def fallback_enable(office: Annotated[str, typer.Argument(help="Office code.")], data: DataOption = None) -> None:
    """Let urgent traffic of OFFICE to long-unreachable peers go out by fax (classification ≤ 1 only)."""
    with open_node(data) as node:
        _fax(node).set_office_settings(office, fallback_enabled=True, actor="cli")
    typer.echo(f"disaster fallback to fax enabled for {office}")


@fallback_app.command("disable")
def fallback_disable(office: Annotated[str, typer.Argument(help="Office code.")], data: DataOption = None) -> None:
    """Never fall back to fax for OFFICE."""
    with open_node(data) as node:
        _fax(node).set_office_settings(office, fallback_enabled=False, actor="cli")
    typer.echo(f"disaster fallback to fax disabled for {office}")


@fallback_app.command("status")
def fallback_status(data: DataOption = None, as_json: JsonOption = False) -> None:
    """Which offices have the fallback enabled."""
    with open_node(data) as node:
        fax = _fax(node)
        rows = [{"office": o.code, "fax_number": o.fax_number,
                 "fallback": fax.office_settings(o.code).fallback_enabled,
                 "after_minutes": node.settings.fax_fallback_after_minutes,
                 "cover_page_default": fax.office_settings(o.code).cover_page_default}
                for o in node.directory.offices()]
    if as_json:
        print_json(rows)
        return
    print_table([tuple(r.values()) for r in rows], ["office", "fax number", "fallback", "after (min)", "cover"])


@app.command("cover")
def cover_default(
    office: Annotated[str, typer.Argument(help="Office code.")],
    on: Annotated[bool, typer.Option("--on/--off", help="Add a cover page to the office's faxes by default.")],
    data: DataOption = None,
) -> None:
    """Whether OFFICE's faxes get a cover page (送信票) unless the sender says otherwise."""
    with open_node(data) as node:
        _fax(node).set_office_settings(office, cover_page_default=on, actor="cli")
    typer.echo(f"cover page by default {'on' if on else 'off'} for {office}")


# --- the line ---------------------------------------------------------------------------------------


def _shown(tz: tzinfo, text: str | None) -> str:
    """An ISO time from the line's status file, as the tables show times (the node's zone)."""
    from datetime import datetime

    from inkless import timefmt

    return timefmt.format_datetime(datetime.fromisoformat(text), "en", tz, seconds=True) if text else "-"


@line_app.command("status")
def line_status(data: DataOption = None, as_json: JsonOption = False) -> None:
    """Registration state, expiry, last error, and the calls in progress (phase, page n/m, bit rate)."""
    from inkless.fax.sip.status import read_status

    settings = load_settings(data)
    status: dict[str, Any]
    if settings.fax_line != "sip":
        status = {"line": settings.fax_line, "running": None, "registration": None, "calls": []}
    else:
        status = read_status(settings.data_dir)
    if as_json:
        print_json(status)
        return
    if settings.fax_line != "sip":
        typer.echo(f"line: {settings.fax_line} (no registration; status is shown for fax_line = \"sip\")")
        return
    if not status.get("running"):
        typer.echo("line: sip — not running (start inkless serve or inkless worker)")
        return
    reg: dict[str, Any] = status.get("registration") or {}
    typer.echo(f"line: sip on {status.get('listen')}  (pid {status.get('pid')})")
    if reg.get("state") == "none":
        typer.echo("registration: none (no fax_sip_registrar)")
    else:
        expires = _shown(settings.tz, reg.get("expires_at"))
        typer.echo(f"registration: {reg.get('state')} at {reg.get('registrar')}, expires {expires}")
        if reg.get("last_error"):
            typer.echo(f"last error: {reg['last_error']}")
    typer.echo(f"malformed datagrams dropped: {status.get('malformed_datagrams', 0)}, "
               f"INVITEs refused (untrusted): {status.get('refused_invites', 0)}")
    calls = status.get("calls") or []
    if not calls:
        typer.echo("calls in progress: none")
        return
    print_table([(c["direction"], c.get("number"), c.get("media"), c.get("phase"),
                  f"{c.get('page', 0)}/{c.get('pages') or '?'}", c.get("bit_rate"),
                  _shown(settings.tz, c.get("started_at")),
                  c.get("call_id")) for c in calls],
                ["dir", "number", "media", "phase", "page", "bit/s", "started", "call-id"])
