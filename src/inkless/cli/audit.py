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
def verify(
    data: DataOption = None,
    as_json: JsonOption = False,
    offline: Annotated[
        bool, typer.Option("--offline", help="Do not ask the witnesses; check only the cosignatures kept here.")
    ] = False,
) -> None:
    """Recompute every entry, subtree and signed tree head, then compare the log with what its witnesses hold.

    Exits 5 naming the first bad entry, or the witness whose cosigned head the log no longer contains.
    """
    from inkless.errors import AuditIntegrityError

    with open_node(data) as node:
        with node.db.read() as conn:
            report = node.audit.verify(conn)
        checks = node.witness.check_witnesses(online=not offline) if node.witness is not None else []
    for check in checks:
        if check.failed:
            raise AuditIntegrityError(check.detail)
    if as_json:
        print_json({
            "ok": True, "entries": report.entries, "tree_heads": report.tree_heads,
            "root_hash": report.root_hash.hex(), "latest_head_size": report.latest_head_size,
            "witnesses": [c.to_json() for c in checks],
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
    for check in checks:
        size = f" at size {check.tree_size}" if check.tree_size is not None else ""
        typer.echo(f"witness {check.witness}: {check.outcome}{size}" + (f" ({check.detail})" if check.detail else ""))


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


@app.command("head")
def head(data: DataOption = None, as_json: JsonOption = False) -> None:
    """Sign a tree head for the current size (unless the latest covers it) and print it."""
    from inkless.audit.tasks import export_signed_head

    with open_node(data) as node:
        with node.db.begin() as conn:
            tree_head = node.audit.sign_tree_head(conn, node.pki)
        export_signed_head(node, tree_head)
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


@app.command("witness")
def witness(
    data: DataOption = None,
    as_json: JsonOption = False,
    now: Annotated[
        bool, typer.Option("--now", help="First run a witnessing round: check and cosign every peer's latest head.")
    ] = False,
) -> None:
    """The witnesses of this node's log (newest head each cosigned, and when), and the peers this node witnesses."""
    from datetime import datetime

    with open_node(data) as node:
        if node.witness is None:
            raise typer.BadParameter("federation is not configured on this node")
        outcomes = node.witness.witness_all() if now else []
        status = node.witness.status()
        if as_json:
            print_json({**status, "round": [o.__dict__ for o in outcomes]} if now else status)
            return

        def when(value: str | None) -> str:
            return shown_time(node, datetime.fromisoformat(value)) if value else ""

        for o in outcomes:
            typer.echo(f"{o.peer}: {o.outcome}" + (f" (size {o.tree_size})" if o.tree_size is not None else "")
                       + (f": {o.detail}" if o.detail else ""))
        typer.echo("Witnesses of this node's audit log:")
        if status["witnesses"]:
            print_table([(w["witness"], w["tree_size"], w["root_hash"][:16] + "…", when(w["cosigned_at"]))
                         for w in status["witnesses"]], ["witness", "size", "root", "cosigned"])
        else:
            typer.echo("  none yet (peers cosign this node's heads when they witness it)")
        typer.echo("Peers this node witnesses:")
        rows = []
        for p in status["witnessed"]:
            refusal = p["refusals"][0] if p["refusals"] else None
            state = f"REFUSED: {refusal['reason']}" if refusal else ("ok" if p["tree_size"] is not None else "not yet")
            rows.append((p["peer"], p["tree_size"] if p["tree_size"] is not None else "", when(p["cosigned_at"]),
                         state))
        if rows:
            print_table(rows, ["peer", "size", "cosigned", "state"])
        else:
            typer.echo("  none (no pinned peers)")
