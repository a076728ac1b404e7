"""``inkless audit``: verify the audit log, sign and show tree heads, list entries, print proofs."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from inkless.cli.common import DataOption, JsonOption, open_node, print_json, print_table, shown_time

app = typer.Typer(help="The tamper-evident audit log (RFC 9162 Merkle tree).", no_args_is_help=True)
proof_app = typer.Typer(help="Inclusion and consistency proofs.", no_args_is_help=True)
app.add_typer(proof_app, name="proof")


@app.command("verify")
def verify(data: DataOption = None, as_json: JsonOption = False) -> None:
    """Recompute every entry, subtree and signed tree head; exit 5 naming the first bad one."""
    with open_node(data) as node, node.db.read() as conn:
        report = node.audit.verify(conn)
    if as_json:
        print_json({
            "ok": True, "entries": report.entries, "tree_heads": report.tree_heads,
            "root_hash": report.root_hash.hex(), "latest_head_size": report.latest_head_size,
        })
        return
    signed = (
        f"latest signed head covers {report.latest_head_size}"
        if report.latest_head_size is not None else "no signed head yet"
    )
    typer.echo(
        f"OK: {_plural(report.entries, 'entry', 'entries')}, {_plural(report.tree_heads, 'tree head')}, "
        f"root {report.root_hash.hex()} ({signed})"
    )


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


@app.command("head")
def head(data: DataOption = None, as_json: JsonOption = False) -> None:
    """Sign a tree head for the current size (unless the latest covers it) and print it."""
    with open_node(data) as node, node.db.begin() as conn:
        tree_head = node.audit.sign_tree_head(conn, node.pki)
    value = tree_head.to_json()
    if as_json:
        print_json(value)
        return
    for key in ("node_id", "tree_size", "root_hash", "timestamp", "signature", "certificate_fingerprint"):
        typer.echo(f"{key + ':':25}{value[key]}")


@app.command("list")
def list_entries(
    action: Annotated[
        str | None, typer.Option("--action", help="Only this action, e.g. user.created.")
    ] = None,
    object_type: Annotated[str | None, typer.Option("--object-type", help="Only this object type.")] = None,
    object_id: Annotated[str | None, typer.Option("--object-id", help="Only this object id.")] = None,
    start: Annotated[int, typer.Option("--start", help="First entry index.", min=0)] = 0,
    limit: Annotated[
        int, typer.Option("--limit", help="At most this many entries (1-1000).", min=1, max=1000)
    ] = 50,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """List entries, oldest first."""
    with open_node(data) as node, node.db.read() as conn:
        entries = node.audit.entries(conn, start, limit, action=action, object_type=object_type,
                                     object_id=object_id)
    if as_json:
        print_json([e.to_json() for e in entries])
        return
    print_table(
        [
            (
                e.index, shown_time(node, e.at, seconds=True), e.actor, e.action,
                f"{e.object_type}:{e.object_id}" if e.object_type else "",
                json.dumps(e.details, ensure_ascii=False, sort_keys=True) if e.details else "",
            )
            for e in entries
        ],
        ["index", "time", "actor", "action", "object", "details"],
    )


@proof_app.command("inclusion")
def proof_inclusion(
    index: Annotated[int, typer.Argument(help="Index of the entry (0-based).")],
    size: Annotated[int | None, typer.Option("--size", help="Tree size (default: the current size).")] = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the inclusion proof of entry INDEX in the tree of --size entries, checked before printing."""
    with open_node(data) as node, node.db.read() as conn:
        proof = node.audit.inclusion_proof(conn, index, size)
    value = proof.to_json()
    value["verified"] = proof.verify()
    if as_json:
        print_json(value)
        return
    status = "verified" if value["verified"] else "FAILED"
    typer.echo(f"entry {proof.index} in tree of {proof.tree_size}: {status}")
    typer.echo(f"leaf hash:  {value['leaf_hash']}")
    typer.echo(f"root hash:  {value['root_hash']}")
    typer.echo("audit path:" + ("" if value["audit_path"] else " (empty: the tree has one entry)"))
    for h in value["audit_path"]:
        typer.echo(f"  {h}")


@proof_app.command("consistency")
def proof_consistency(
    old: Annotated[int, typer.Argument(help="The older tree size.")],
    new: Annotated[int, typer.Argument(help="The newer tree size.")],
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the proof that the tree of OLD entries is a prefix of the tree of NEW entries."""
    with open_node(data) as node, node.db.read() as conn:
        proof = node.audit.consistency_proof(conn, old, new)
    value = proof.to_json()
    value["verified"] = proof.verify()
    if as_json:
        print_json(value)
        return
    status = "verified" if value["verified"] else "FAILED"
    typer.echo(f"tree {proof.first} -> tree {proof.second}: {status}")
    typer.echo(f"old root:   {value['first_root_hash']}")
    typer.echo(f"new root:   {value['second_root_hash']}")
    typer.echo("proof:" + ("" if value["consistency_path"] else " (empty: the sizes are equal)"))
    for h in value["consistency_path"]:
        typer.echo(f"  {h}")
