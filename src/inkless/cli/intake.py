"""``inkless intake``: open and close an office's public intake window, list invitations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from inkless.cli.common import DataOption, JsonOption, open_node, print_json, print_table, shown_time

if TYPE_CHECKING:  # imported when a command runs, so that `inkless --help` starts at once
    from inkless.app import Node
    from inkless.intake.model import IntakeWindow
    from inkless.intake.service import IntakeService

app = typer.Typer(help="The public intake window (受付窓口) of an office.", no_args_is_help=True)


def _service(node: Node) -> IntakeService:
    assert node.intake is not None
    return node.intake


def _row(window: IntakeWindow, url: str) -> dict[str, object]:
    return {"office": window.office_code, "open": window.is_open, "url": url, "max_files": window.max_files,
            "max_file_bytes": window.max_file_bytes, "max_pages": window.max_pages, "max_pixels": window.max_pixels,
            "procedures": list(window.choices)}


def _show(window: IntakeWindow, url: str, as_json: bool) -> None:
    if as_json:
        print_json(_row(window, url))
        return
    state = "open" if window.is_open else "closed"
    typer.echo(f"Intake window of {window.office_code} ({window.office_name}) is {state}: {url}")
    typer.echo(f"limits: {window.max_files} files, {window.max_file_bytes // (1024 * 1024)} MB each, "
               f"{window.max_pages} pages, {window.max_pixels:,} pixels per image")
    typer.echo("procedures: " + ", ".join(window.choices))


@app.command("open")
def open_window(
    office: Annotated[str, typer.Argument(help="Office code, e.g. civil-affairs.")],
    max_files: Annotated[int | None, typer.Option("--max-files", help="Files per submission (default 5).")] = None,
    max_file_mb: Annotated[int | None, typer.Option("--max-file-mb", help="MB per file (default 10).")] = None,
    max_pages: Annotated[int | None, typer.Option("--max-pages", help="Pages per PDF (default 100).")] = None,
    max_pixels: Annotated[int | None, typer.Option("--max-pixels", help="Pixels per image (default 40000000).")] = None,
    procedure: Annotated[list[str] | None, typer.Option(
        "--procedure", help="A procedure offered in the form (repeat; その他 is always offered).")] = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Open the office's window (anyone may then submit at /intake/OFFICE)."""
    with open_node(data) as node:
        service = _service(node)
        window = service.set_window(office, True, "operator", max_files=max_files, max_file_mb=max_file_mb,
                                    max_pages=max_pages, max_pixels=max_pixels, procedures=procedure)
        _show(window, service.intake_url(office), as_json)


@app.command("close")
def close_window(
    office: Annotated[str, typer.Argument(help="Office code.")],
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Close the office's window (its page then says politely that it is closed)."""
    with open_node(data) as node:
        service = _service(node)
        window = service.set_window(office, False, "operator")
        _show(window, service.intake_url(office), as_json)


@app.command("show")
def show_window(
    office: Annotated[str, typer.Argument(help="Office code.")],
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Whether the office's window is open, its URL and limits."""
    with open_node(data) as node:
        service = _service(node)
        _show(service.window(office), service.intake_url(office), as_json)


@app.command("invitations")
def invitations(
    office: Annotated[str | None, typer.Option("--office", help="Only this office.")] = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fax senders invited to the intake window: number, office, time."""
    with open_node(data) as node:
        found = _service(node).invitations(office)
        if as_json:
            print_json([{"id": i.id, "office": i.office_code, "number": i.number,
                         "invited_at": i.invited_at.isoformat(), "invited_by": i.invited_by,
                         "fax_job": i.fax_job_id, "source": i.source} for i in found])
            return
        print_table([(i.id, i.office_code, i.number, shown_time(node, i.invited_at), i.invited_by, i.fax_job_id or "-")
                     for i in found], ["id", "office", "number", "invited", "by", "fax job"])
