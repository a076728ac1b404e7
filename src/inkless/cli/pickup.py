"""``inkless pickup``: e-mail recipients of sent messages (secure pickup) — link lifetime, cancel, unlock."""

from __future__ import annotations

from typing import Annotated

import typer

from inkless.cli.common import DataOption, open_node

app = typer.Typer(help="Secure pickup links of e-mail recipients: lifetime per office, cancel, unlock.",
                  no_args_is_help=True)
AsOption = Annotated[str | None, typer.Option("--as", help="Act as this user (default: the node operator).")]


@app.command("expiry")
def expiry(
    office: Annotated[str, typer.Argument(help="Office code.")],
    days: Annotated[int, typer.Argument(help="How many days a new link works (1-90).")],
    data: DataOption = None,
) -> None:
    """Set how long the office's new pickup links work (default: pickup_expiry_days, 7)."""
    with open_node(data) as node:
        assert node.pickup is not None
        node.pickup.set_expiry_days(office, days)
    typer.echo(f"{office}: new pickup links work for {days} days")


@app.command("revoke")
def revoke(pickup_id: Annotated[int, typer.Argument(help="The pickup id (message status --json).")],
           as_login: AsOption = None, data: DataOption = None) -> None:
    """Cancel an e-mail recipient's link at once."""
    with open_node(data) as node:
        assert node.pickup is not None
        node.pickup.revoke(pickup_id, as_login)
    typer.echo(f"pickup {pickup_id}: link cancelled")


@app.command("reopen")
def reopen(pickup_id: Annotated[int, typer.Argument(help="The pickup id (message status --json).")],
           as_login: AsOption = None, data: DataOption = None) -> None:
    """Unlock a link that five wrong codes locked (the recipient then asks for a new code)."""
    with open_node(data) as node:
        assert node.pickup is not None
        node.pickup.reopen(pickup_id, as_login)
    typer.echo(f"pickup {pickup_id}: unlocked")
