"""``inkless token``: API tokens for automation, each scoped to one office."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from inkless.cli.common import DataOption, JsonOption, open_node, print_json, print_table, shown_time

if TYPE_CHECKING:  # imported when a command runs, so that `inkless --help` starts at once
    from inkless.app import Node
    from inkless.directory.tokens import ApiToken, ApiTokenService

app = typer.Typer(help="API tokens (scoped to the user's own office).", no_args_is_help=True)


def _service(node: Node) -> ApiTokenService:
    from inkless.directory.tokens import ApiTokenService

    return node.tokens or ApiTokenService(node.db, node.directory, node.audit, node.clock)


def _row(token: ApiToken, node: Node) -> dict[str, object]:
    return {
        "id": token.id,
        "user": token.user_login,
        "office": token.office_code,
        "name": token.name,
        "created_at": token.created_at.isoformat(),
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
        "state": token.state(node.clock.now()),
        "scope": token.scope,
    }


@app.command("create")
def create(
    login: Annotated[str, typer.Argument(help="The user the token acts for.")],
    office: Annotated[str, typer.Option("--office", help="Office code (must be the user's own office).")],
    name: Annotated[str, typer.Option("--name", help="What the token is for, e.g. 'scanner'.")],
    expires_days: Annotated[
        int | None, typer.Option("--expires-days", help="Days until it expires (default: never).")
    ] = None,
    scope: Annotated[
        str | None, typer.Option("--scope", help="'metrics': reads only /metrics (administrators; for Prometheus).")
    ] = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a token; prints the secret once (only its SHA-256 is stored)."""
    with open_node(data) as node:
        created = _service(node).create(login, office, name, expires_days, actor="cli", scope=scope)
        row = _row(created.token, node)
    if as_json:
        print_json({**row, "token": created.secret})
        return
    typer.echo(f"Created API token {created.token.id} '{created.token.name}' for {login} ({office})")
    typer.echo(f"token: {created.secret}")
    typer.echo("It is shown only now; send it as 'Authorization: Bearer <token>'.")


@app.command("list")
def list_tokens(
    login: Annotated[str | None, typer.Option("--login", help="Only this user's tokens.")] = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """List tokens (never their secrets)."""
    with open_node(data) as node:
        found = _service(node).list(login)
        rows = [_row(t, node) for t in found]
    if as_json:
        print_json(rows)
        return
    print_table(
        [(r["id"], r["user"], r["office"], r["name"], shown_time(node, t.expires_at) or "never", r["state"])
         for r, t in zip(rows, found, strict=True)],
        ["id", "user", "office", "name", "expires", "state"],
    )


@app.command("revoke")
def revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id (see 'inkless token list').")],
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a token: it stops working at once."""
    with open_node(data) as node:
        token = _service(node).revoke(token_id, actor="cli")
        row = _row(token, node)
    if as_json:
        print_json(row)
    else:
        typer.echo(f"Revoked API token {token.id} '{token.name}' of {token.user_login}")
