"""``inkless peer``: pin peer nodes by URL and CA fingerprint, list them, refresh their directories, unpin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from inkless.cli.common import DataOption, JsonOption, open_node, print_json, print_table, shown_time
from inkless.errors import ConfigurationError

if TYPE_CHECKING:  # imported when a command runs, so that `inkless --help` starts at once
    from inkless.app import Node
    from inkless.directory.peers import Peer, PeerService, RefreshResult

app = typer.Typer(help="Peer nodes (federation), pinned by CA fingerprint.", no_args_is_help=True)


def _service(node: Node) -> PeerService:
    from inkless.directory.peers import PeerService

    if not isinstance(node.peers, PeerService):
        raise ConfigurationError("federation is not available on this node")
    return node.peers


def _row(peer: Peer) -> dict[str, object]:
    return {
        "node_id": peer.node_id,
        "url": peer.url,
        "fingerprint": peer.fingerprint,
        "added_at": peer.added_at.isoformat(),
        "last_seen_at": peer.last_seen_at.isoformat() if peer.last_seen_at else None,
        "unreachable_since": peer.unreachable_since.isoformat() if peer.unreachable_since else None,
        "last_error": peer.last_error,
        "directory_fetched_at": peer.directory_fetched_at.isoformat() if peer.directory_fetched_at else None,
        "offices": peer.office_count,
    }


def _result(result: RefreshResult) -> dict[str, object]:
    return {"node_id": result.node_id, "ok": result.ok, "offices": result.offices, "changed": result.changed,
            "error": result.error}


@app.command("add")
def add(
    url: Annotated[str, typer.Argument(help="The peer's base URL, e.g. https://inkless.npa.example.jp")],
    fingerprint: Annotated[
        str, typer.Option("--fingerprint", help="The peer's CA fingerprint (SHA256:...), obtained out of band.")
    ],
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pin the node at URL if its CA has this fingerprint, then fetch its office directory."""
    with open_node(data) as node:
        peer, result = _service(node).add(url, fingerprint, actor="cli")
    if as_json:
        print_json({**_row(peer), "directory": _result(result)})
        return
    typer.echo(f"Pinned node {peer.node_id} at {peer.url} ({peer.fingerprint})")
    if result.ok:
        typer.echo(f"Office directory: {result.offices} offices")
    else:
        typer.echo(f"Office directory not fetched yet: {result.error}")
        typer.echo(f"(the peer must pin this node too; then run 'inkless peer refresh {peer.node_id}')")


@app.command("list")
def list_peers(data: DataOption = None, as_json: JsonOption = False) -> None:
    """List the pinned peers, their state and their directories."""
    with open_node(data) as node:
        peers = _service(node).all()
    if as_json:
        print_json([_row(p) for p in peers])
        return
    print_table(
        [(p.node_id, p.url, p.office_count, shown_time(node, p.last_seen_at) or "-",
          f"since {shown_time(node, p.unreachable_since)}" if p.unreachable_since else "ok", p.last_error or "")
         for p in peers],
        ["node", "url", "offices", "last seen", "reachable", "last error"],
    )


@app.command("refresh")
def refresh(
    node_id: Annotated[str | None, typer.Argument(help="Only this peer (default: all).")] = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fetch the signed office directory of one peer or of all; exit 1 if any fetch failed."""
    with open_node(data) as node:
        results = _service(node).refresh(node_id, actor="cli")
    if as_json:
        print_json([_result(r) for r in results])
    else:
        for r in results:
            if r.ok:
                typer.echo(f"{r.node_id}: {r.offices} offices{' (changed)' if r.changed else ''}")
            else:
                typer.echo(f"{r.node_id}: not refreshed: {r.error}", err=True)
    if any(not r.ok for r in results):
        raise typer.Exit(1)


@app.command("remove")
def remove(
    node_id: Annotated[str, typer.Argument(help="The peer's node id.")],
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Unpin a peer: its requests are refused from now on and its directory is forgotten."""
    with open_node(data) as node:
        _service(node).remove(node_id, actor="cli")
    if as_json:
        print_json({"node_id": node_id, "removed": True})
    else:
        typer.echo(f"Removed peer {node_id}")
