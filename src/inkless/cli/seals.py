"""``inkless seal`` (apply a seal, or preview one) and ``inkless verify``.

``inkless verify`` exits 0 when every seal PASSED, 1 when the verdict is INDETERMINATE (or the
document has no seals) and 5 when a seal FAILED (the same code as other integrity failures).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from inkless.cli.common import DataOption, JsonOption, open_node, print_json, shown_time
from inkless.errors import ValidationError
from inkless.seals.batch import SealOrder
from inkless.seals.model import Indication, SealKind, SealPlacement, SealResult, VerificationReport

if TYPE_CHECKING:  # imported when a command runs, so that `inkless --help` starts at once
    from inkless.app import Node
    from inkless.seals.sealing import SealingService

EXIT_CODES = {Indication.PASSED: 0, Indication.INDETERMINATE: 1, Indication.FAILED: 5}


def _service(node: Node) -> SealingService:
    service = node.sealing
    if service is None:
        raise ValidationError("this node has no sealing service")
    return service


def _point(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise ValidationError(f"--at wants X,Y in PDF points from the bottom-left corner, got {text!r}") from None
    return x, y


def seal(
    args: Annotated[list[str], typer.Argument(
        help="FILE.pdf to seal; several files or folders to seal them all into --out DIR; or: preview LOGIN",
        show_default=False)],
    signer: Annotated[str, typer.Option("--as", help="Login of the person who seals.")] = "",
    kind: Annotated[SealKind, typer.Option("--kind", help="personal (認印), date (日付印) or office (角印).")] = (
        SealKind.PERSONAL
    ),
    page: Annotated[int, typer.Option("--page", help="Page number, from 1.")] = 1,
    at: Annotated[str, typer.Option("--at", help="X,Y of the seal's lower-left corner in points.")] = "",
    field: Annotated[str, typer.Option("--field", help="Fill this existing empty signature field instead.")] = "",
    size_mm: Annotated[float | None, typer.Option("--size-mm", help="Seal size in millimetres.")] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Reason recorded in the signature.")] = None,
    certify: Annotated[bool, typer.Option("--certify", help="Certify (DocMDP, form filling allowed).")] = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Where to write the result.")] = None,
    dpi: Annotated[int, typer.Option("--dpi", help="Preview resolution.")] = 300,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=1, help="Processes sealing a batch in parallel (default: one per core).")] = None,
    data: DataOption = None,
) -> None:
    """Seal a PDF (``inkless seal FILE.pdf --as LOGIN --page N --at X,Y --out OUT.pdf``) or preview a seal.

    Several files, or folders (every ``*.pdf`` in them), are sealed alike into the folder ``--out DIR``
    in parallel, with a progress line per file; a file that cannot be sealed is named with the reason
    and the others go on (exit code 1 if any failed).

    ``inkless seal preview LOGIN --kind K --out seal.png`` writes the imprint as a PNG.
    """
    if args and args[0] == "preview":
        if len(args) != 2:
            raise ValidationError("usage: inkless seal preview LOGIN --kind K --out seal.png")
        _preview(args[1], kind, size_mm, out, dpi, data)
        return
    if not args:
        raise ValidationError("usage: inkless seal FILE.pdf --as LOGIN --page N --at X,Y --out OUT.pdf")
    if not signer:
        raise ValidationError("--as LOGIN is required: whose seal is it?")
    if out is None:
        raise ValidationError("--out OUT.pdf is required")
    if bool(at) == bool(field):
        raise ValidationError("give either --at X,Y or --field NAME")
    if len(args) > 1 or Path(args[0]).is_dir():
        order = SealOrder(signer=signer, kind=kind, page=page, at=_point(at) if at else None,
                          field_name=field or None, size_mm=size_mm, reason=reason, certify=certify)
        _seal_batch([Path(a) for a in args], out, order, workers, data)
        return
    source = Path(args[0])
    if not source.is_file():
        raise ValidationError(f"no such file: {source}")
    with open_node(data) as node:
        service = _service(node)
        if field:
            placement = SealPlacement(page=page, field_name=field)
        else:
            x, y = _point(at)
            placement = service.placement_at(signer, kind, page, x, y, size_mm)
        sealed = service.seal(source.read_bytes(), signer, kind, placement, actor=signer, reason=reason,
                              certify=certify, size_mm=size_mm)
    out.write_bytes(sealed)
    typer.echo(f"sealed {source.name} as {signer} ({kind.value}) on page {page}: {out}")


def _seal_batch(sources: list[Path], out: Path, order: SealOrder, workers: int | None, data: Path | None) -> None:
    from inkless.config import load_settings
    from inkless.seals.batch import BatchResult, plan_batch, seal_batch

    if out.exists() and not out.is_dir():
        raise ValidationError(f"--out {out} is a file: sealing several files wants a folder")
    items = plan_batch(sources, out)
    settings = load_settings(data)
    out.mkdir(parents=True, exist_ok=True)

    def progress(done: int, total: int, result: BatchResult) -> None:
        status = f"sealed → {result.item.out}" if result.ok else f"FAILED: {result.error}"
        typer.echo(f"[{done}/{total}] {result.item.source.name}: {status}", err=True)

    results = seal_batch(settings, order, items, actor=order.signer, workers=workers, progress=progress)
    failed = [r for r in results if not r.ok]
    typer.echo(f"sealed {len(results) - len(failed)} of {len(results)} files as {order.signer} "
               f"({order.kind.value}) into {out}")
    if failed:
        typer.echo(f"{len(failed)} failed: " + ", ".join(r.item.source.name for r in failed), err=True)
        raise typer.Exit(1)


def _preview(login: str, kind: SealKind, size_mm: float | None, out: Path | None, dpi: int,
             data: Path | None) -> None:
    if out is None:
        raise ValidationError("--out seal.png is required")
    with open_node(data) as node:
        user = node.directory.user(login)
        office = node.directory.office_by_id(user.office_id)
        from inkless.seals.sealing import imprint_for

        imprint = imprint_for(user, office.name, kind, node.clock.now(), size_mm, node.settings.tz)
    from inkless.seals.imprint import render_png

    out.write_bytes(render_png(imprint, dpi=dpi))
    typer.echo(f"{kind.value} seal of {login}: {out}")


def verify(
    file: Annotated[Path, typer.Argument(help="The sealed PDF.", show_default=False)],
    json_out: JsonOption = False,
    data: DataOption = None,
) -> None:
    """Verify every seal of a PDF; exit 0 PASSED, 1 INDETERMINATE (or no seals), 5 FAILED."""
    if not file.is_file():
        raise ValidationError(f"no such file: {file}")
    with open_node(data) as node:
        report = _service(node).verify(file.read_bytes(), actor="cli")
    if json_out:
        print_json(report.to_dict())
    else:
        _print_report(report, node)
    raise typer.Exit(EXIT_CODES[report.indication])


def _print_report(report: VerificationReport, node: Node) -> None:
    for s in report.seals:
        head = f"#{s.index} {s.field_name}: {s.indication.value}"
        if s.subindication:
            head += f" / {s.subindication.value}"
        typer.echo(head)
        who = ", ".join(v for v in (s.signer_name, s.office, s.organisation) if v)
        typer.echo(f"   signer:     {who or '-'}")
        typer.echo(f"   signed:     {shown_time(node, s.signing_time, seconds=True) or '-'}")
        typer.echo(f"   timestamp:  {shown_time(node, s.timestamp_time, seconds=True) or '-'}")
        typer.echo(f"   intact:     {'yes' if s.intact and s.valid else 'NO'}; trusted: {_trust(s)}; "
                   f"revocation: {s.revocation}; PAdES {s.pades_level.value}")
        if s.certification:
            typer.echo(f"   {s.certification}")
        if s.change_summary:
            typer.echo(f"   changes:    {s.change_summary}")
        if s.reason:
            typer.echo(f"   reason:     {s.reason}")
    typer.echo(f"overall: {report.indication.value}" + (f" / {report.subindication.value}" if report.subindication
                                                        else "") + f" — {report.reason}")


def _trust(s: SealResult) -> str:
    # pyHanko checks the chain only for an intact signature: a broken one says nothing about trust.
    if not (s.intact and s.valid):
        return "not checked (the signature itself is broken)"
    if s.trusted and s.trust_anchor:
        return f"yes ({s.trust_anchor})"
    return "NO"


def register(app: typer.Typer) -> None:
    """Add ``seal`` and ``verify`` to the ``inkless`` command."""
    app.command("seal", context_settings={"allow_interspersed_args": True})(seal)
    app.command("verify")(verify)
