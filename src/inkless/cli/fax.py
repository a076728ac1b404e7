"""``inkless fax``: the fax bridge from the command line (``simulate`` a remote fax machine, ...)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from inkless.cli.common import DataOption, JsonOption, print_json
from inkless.config import load_settings
from inkless.errors import FaxError, ValidationError

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

    if answer:
        if out is None:
            raise ValidationError("--answer needs --out DIR for the received faxes")
        path = _socket(socket_path, data, "fax_loopback_remote")
        remote = AnsweringRemote(path, out, busy=busy, hangup_after_page=hangup_after_page,
                                 ident=tsi or from_number or "REMOTE")
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
    try:
        document = file.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read {file}: {exc.strerror}") from None
    path = _socket(socket_path, data, "fax_loopback_socket")
    result = send_document(
        path, to, document, from_number=from_number, tsi=tsi, sub_address=sub_address, header=header,
        ecm=not no_ecm, fine=not standard, hangup_after_page=hangup_after_page,
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
