"""``inkless procedure``: the procedure catalogue (手続一覧) — import, export, list, show, set, retire."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from inkless.cli.common import DataOption, JsonOption, open_node, print_json, print_table, shown_time

if TYPE_CHECKING:
    from inkless.app import Node
    from inkless.metrics.catalogue import ProcedureCatalogue
    from inkless.metrics.model import Procedure

app = typer.Typer(help="The procedure catalogue (手続一覧).", no_args_is_help=True)

EncodingOption = Annotated[
    str | None, typer.Option("--encoding", help="utf-8 or cp932 (Shift_JIS); import guesses when not given.")
]


def _catalogue(node: Node) -> ProcedureCatalogue:
    from inkless.metrics.catalogue import ProcedureCatalogue

    return node.procedures or ProcedureCatalogue(node.db, node.audit, node.clock)


def _row(p: Procedure) -> dict[str, object]:
    f = p.fields
    return {
        "code": f.code, "name": f.name, "ministry": f.ministry, "office": f.office_code,
        "legal_basis": f.legal_basis, "seal_required": f.seal_required.value, "seal_label": f.seal_required.label,
        "fax_or_paper_allowed": f.fax_or_paper_allowed, "retired": p.retired, "version": p.version,
        "updated_at": p.updated_at.isoformat(), "updated_by": p.updated_by,
    }


@app.command("import")
def import_catalogue(
    file: Annotated[Path, typer.Argument(help="CSV file ('-' reads standard input).")],
    encoding: EncodingOption = None,
    actor: Annotated[str, typer.Option("--actor", help="Who is recorded as making the change.")] = "cli",
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create or change procedures from a CSV file; all or nothing, every bad line reported."""
    from inkless.errors import ValidationError

    try:
        content = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read {file}: {exc.strerror}") from None
    with open_node(data) as node:
        summary = _catalogue(node).import_csv(content, actor=actor, encoding=encoding)
    result = {"created": list(summary.created), "changed": list(summary.changed),
              "unchanged": list(summary.unchanged)}
    if as_json:
        print_json(result)
        return
    typer.echo(f"imported {file}: {len(summary.created)} created, {len(summary.changed)} changed, "
               f"{len(summary.unchanged)} unchanged")


@app.command("export")
def export_catalogue(
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")] = None,
    encoding: Annotated[str, typer.Option("--encoding", help="utf-8 or cp932 (Shift_JIS).")] = "utf-8",
    office: Annotated[str | None, typer.Option("--office", help="Only this office's and node-wide ones.")] = None,
    include_retired: Annotated[bool, typer.Option("--include-retired", help="Also retired procedures.")] = False,
    data: DataOption = None,
) -> None:
    """Write the catalogue as CSV with the Japanese header."""
    with open_node(data) as node:
        content = _catalogue(node).export_csv(encoding, office, include_retired)
    if output is None:
        sys.stdout.buffer.write(content)
        sys.stdout.flush()
    else:
        output.write_bytes(content)


@app.command("list")
def list_procedures(
    office: Annotated[str | None, typer.Option("--office", help="Only this office's and node-wide ones.")] = None,
    include_retired: Annotated[bool, typer.Option("--include-retired", help="Also retired procedures.")] = False,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the procedures of the catalogue."""
    with open_node(data) as node:
        found = _catalogue(node).procedures(office, include_retired=include_retired)
    rows = [_row(p) for p in found]
    if as_json:
        print_json(rows)
        return
    print_table(
        [(r["code"], r["name"], r["office"] or "(all)", r["seal_label"], "可" if r["fax_or_paper_allowed"] else "不可",
          r["version"], "retired" if r["retired"] else "") for r in rows],
        ["code", "name", "office", "seal", "fax/paper", "version", ""],
    )


@app.command("show")
def show(
    code: Annotated[str, typer.Argument(help="Procedure code.")],
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """A procedure and its history: every version, who changed which fields, when."""
    with open_node(data) as node:
        catalogue = _catalogue(node)
        current = catalogue.get(code)
        versions = catalogue.history(code)
        times = [shown_time(node, v.changed_at) for v in versions]
    if as_json:
        print_json({**_row(current), "history": [
            {"version": v.version, "change": v.change, "fields": list(v.changed_fields),
             "changed_at": v.changed_at.isoformat(), "changed_by": v.changed_by, "audit_index": v.audit_index}
            for v in versions]})
        return
    for key, value in _row(current).items():
        if key not in ("updated_at", "seal_required"):
            typer.echo(f"{key + ':':22}{'' if value is None else value}")
    typer.echo("")
    print_table([(v.version, v.change, ", ".join(v.changed_fields), time, v.changed_by, v.audit_index)
                 for v, time in zip(versions, times, strict=True)],
                ["version", "change", "fields", "when", "by", "audit"])


@app.command("set")
def set_procedure(
    code: Annotated[str, typer.Argument(help="Procedure code, e.g. MOJ-MIN-001.")],
    name: Annotated[str, typer.Option("--name", help="手続名.")],
    ministry: Annotated[str, typer.Option("--ministry", help="府省, e.g. 法務省.")] = "",
    office: Annotated[str | None, typer.Option("--office", help="Office code (default: node-wide).")] = None,
    legal_basis: Annotated[str, typer.Option("--legal-basis", help="根拠法令.")] = "",
    seal: Annotated[
        str, typer.Option("--seal", help="なし, 認印, 実印 or 公印 (none/mitome/jitsuin/official).")
    ] = "なし",
    fax_or_paper: Annotated[
        bool, typer.Option("--fax-or-paper/--digital-only", help="Whether fax or paper is still allowed.")
    ] = True,
    actor: Annotated[str, typer.Option("--actor", help="Who is recorded as making the change.")] = "cli",
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a procedure or change every field of it (a new version)."""
    from inkless.metrics.model import ProcedureFields

    new = ProcedureFields.checked(code, name, ministry, office, legal_basis, seal, fax_or_paper)
    with open_node(data) as node:
        saved = _catalogue(node).save(new, actor)
    if as_json:
        print_json(_row(saved))
    else:
        typer.echo(f"procedure {saved.code} at version {saved.version}")


@app.command("retire")
def retire(
    code: Annotated[str, typer.Argument(help="Procedure code.")],
    actor: Annotated[str, typer.Option("--actor", help="Who is recorded as making the change.")] = "cli",
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Take a procedure out of the lists (its history and counts stay; 'set' brings it back)."""
    with open_node(data) as node:
        saved = _catalogue(node).retire(code, actor)
    if as_json:
        print_json(_row(saved))
    else:
        typer.echo(f"procedure {saved.code} retired (version {saved.version})")
