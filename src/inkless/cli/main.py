"""``inkless``: initialise, run and administer a node.

Exit codes: 0 success; 1 failure; 2 bad input or usage; 3 not found; 4 not
allowed / wrong credentials; 5 integrity check failed; 6 configuration error;
7 already exists; 8 storage or key store failure.
"""

from __future__ import annotations

import copy
import json
import os
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from typer.models import CommandInfo, TyperInfo

from inkless.cli.common import DataOption, JsonOption, open_node, print_json, print_table
from inkless.config import load_settings
from inkless.directory.model import Clearance
from inkless.errors import InklessError

if TYPE_CHECKING:  # imported when a command runs, so that `inkless --help` starts at once
    from inkless.directory.admin import Administration

app = typer.Typer(
    name="inkless",
    help="Official documents without fax paper or seal ink.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain click help and errors: rich and its markdown parser would cost a quarter second per start.
    rich_markup_mode=None,
)
node_app = typer.Typer(help="This node.", no_args_is_help=True)
office_app = typer.Typer(help="Offices (部署).", no_args_is_help=True)
user_app = typer.Typer(help="Users and their credentials.", no_args_is_help=True)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"inkless {version('inkless')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Official documents without fax paper or seal ink."""


app.add_typer(node_app, name="node")
app.add_typer(office_app, name="office")
app.add_typer(user_app, name="user")


@app.command()
def init(
    data: DataOption = None,
    node_id: Annotated[str | None, typer.Option("--node-id", help="Short id of this node, e.g. 'moj'.")] = None,
    url: Annotated[str | None, typer.Option("--url", help="Base URL where peers and users reach this node.")] = None,
    organisation: Annotated[str | None, typer.Option("--organisation", help="Organisation name, e.g. 法務省.")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Sample offices, users, procedures (node 'moj').")] = False,
    as_json: JsonOption = False,
) -> None:
    """Create a node: database, node CA, TSA key, master key file (0600), and optionally demo data."""
    from inkless.app import init_node, node_facts
    from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, create_demo

    overrides: dict[str, object] = {
        "node_id": node_id or (DEMO_NODE_ID if demo else None),
        "base_url": url,
        "organisation": organisation or (DEMO_ORGANISATION if demo else None),
    }
    settings = load_settings(data, overrides=overrides)
    node = init_node(settings)
    try:
        accounts = create_demo(node.directory).accounts if demo else []
        if demo:
            from inkless.metrics.demo import create_demo_procedures

            assert node.procedures is not None
            create_demo_procedures(node.procedures)
        facts = node_facts(node)
    finally:
        node.close()
    listing = [
        {
            "login": a.user.login,
            "name": a.user.display_name,
            "office": a.user.office_code,
            "role": a.user.role.value,
            "clearance": a.user.clearance,
            "password": a.password,
            "totp_secret": a.totp_secret,
        }
        for a in accounts
    ]
    if demo:
        # The demo's first-login secrets, kept beside the node for the person trying it out.
        path = settings.data_dir / "demo-accounts.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(listing, fh, ensure_ascii=False, indent=2)
    if as_json:
        print_json({"node": facts, "accounts": listing})
        return
    typer.echo(f"Initialised node {facts['node_id']} in {facts['data_dir']} ({facts['database']})")
    typer.echo(f"CA fingerprint: {facts['ca_fingerprint']}")
    if listing:
        typer.echo("\nDemo accounts (first-login password and TOTP secret; both shown only now):")
        print_table(
            [
                (a["login"], a["name"], a["office"], a["role"], a["clearance"], a["password"], a["totp_secret"])
                for a in listing
            ],
            ["login", "name", "office", "role", "clearance", "password", "TOTP secret"],
        )
        typer.echo(f"\n(also saved, mode 0600, in {settings.data_dir / 'demo-accounts.json'})")


@app.command()
def migrate(data: DataOption = None) -> None:
    """Upgrade the database schema to this version of inkless."""
    from inkless.db.engine import Database
    from inkless.db.migrate import current_heads, describe, script_heads, upgrade
    from inkless.pki.keystore import SecretBox, load_master_key

    settings = load_settings(data)
    db = Database(settings.database_url, lock_timeout=settings.database_lock_timeout_seconds)
    try:
        before = current_heads(db)
        # The key lets a migration index existing messages (the search index holds keyed tokens).
        upgrade(db, box=SecretBox(load_master_key(settings.master_key_file)))
        typer.echo(f"schema {describe(before)} -> {describe(script_heads(db))}")
    finally:
        db.dispose()


@app.command()
def serve(
    data: DataOption = None,
    host: Annotated[str | None, typer.Option("--host", help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port to listen on.")] = None,
    workers: Annotated[bool, typer.Option("--workers/--no-workers", help="Run background workers.")] = True,
) -> None:
    """Serve the web UI and /api/v1, with the background workers, in one process."""
    from inkless.web.server import run_server

    settings = load_settings(data, overrides={"host": host, "port": port, "workers": workers})
    run_server(settings)


@app.command()
def worker(data: DataOption = None) -> None:
    """Run the background workers alone (no web server) until SIGTERM or SIGINT.

    Exits 0 after SIGTERM (a service manager's stop) and 130 after SIGINT (Ctrl-C), like every
    interrupted command; either way the tasks hand unfinished work back to the queue first.
    """
    import signal
    import threading

    from inkless.app import configure_logging
    from inkless.workers import run_forever

    stop = threading.Event()
    interrupted: list[int] = []

    def _stop(signum: int, _frame: object) -> None:
        if signum == signal.SIGINT:
            interrupted.append(signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    settings = load_settings(data)
    configure_logging(settings)
    with open_node(data) as node:
        typer.echo(f"inkless node {node.node_id}: workers running (stop with SIGTERM or Ctrl-C)")
        run_forever(node, stop)
    typer.echo("workers stopped")
    if interrupted:
        raise typer.Exit(130)


@node_app.command("info")
def node_info(data: DataOption = None, as_json: JsonOption = False) -> None:
    """Node id, base URL, CA fingerprint and database backend."""
    from inkless.app import node_facts

    with open_node(data) as node:
        facts = node_facts(node)
    if as_json:
        print_json(facts)
        return
    for key in ("node_id", "organisation", "base_url", "ca_fingerprint", "database", "data_dir", "version"):
        typer.echo(f"{key + ':':16}{facts[key]}")


@office_app.command("add")
def office_add(
    code: Annotated[str, typer.Argument(help="Office code, e.g. civil-affairs")],
    name: Annotated[str, typer.Argument(help="Office name, e.g. 民事局")],
    fax_number: Annotated[str | None, typer.Option("--fax-number", help="The office's fax number.")] = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add an office and issue its encryption and signing certificates."""
    with open_node(data) as node:
        office = node.directory.add_office(code, name, fax_number, actor="cli")
        address = office.address(node.node_id)
    if as_json:
        print_json({"code": office.code, "name": office.name, "address": address, "fax_number": office.fax_number})
    else:
        typer.echo(f"Added office {address} ({office.name})")


@office_app.command("list")
def office_list(data: DataOption = None, as_json: JsonOption = False) -> None:
    """List the offices of this node."""
    with open_node(data) as node:
        offices = node.directory.offices()
        node_id = node.node_id
    rows = [
        {"code": o.code, "name": o.name, "address": o.address(node_id), "fax_number": o.fax_number}
        for o in offices
    ]
    if as_json:
        print_json(rows)
    else:
        print_table([(r["code"], r["name"], r["address"], r["fax_number"]) for r in rows],
                    ["code", "name", "address", "fax"])


@user_app.command("add")
def user_add(
    login: Annotated[str, typer.Argument(help="Login name, e.g. yamada")],
    office: Annotated[str, typer.Option("--office", help="Office code.")],
    role: Annotated[str, typer.Option("--role", help="clerk, approver, integrator, admin or operator.")],
    clearance: Annotated[int, typer.Option("--clearance", help="0 公開, 1 内部, 2 秘, 3 極秘.")],
    name: Annotated[str, typer.Option("--name", help='Full name, e.g. "山田 太郎".')],
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add a user; prints the first-login password and TOTP secret (shown only once)."""
    with open_node(data) as node:
        account = node.directory.add_user(login, office, role, clearance, name, actor="cli")
    result = {
        "login": account.user.login,
        "name": account.user.display_name,
        "office": account.user.office_code,
        "role": account.user.role.value,
        "clearance": account.user.clearance,
        "password": account.password,
        "totp_secret": account.totp_secret,
        "totp_uri": account.totp_uri,
    }
    if as_json:
        print_json(result)
        return
    typer.echo(f"Added user {login} ({account.user.display_name}) to {account.user.office_code}")
    typer.echo(f"first-login password: {account.password}")
    typer.echo(f"TOTP secret:          {account.totp_secret}")
    typer.echo("The user must change the password and confirm the TOTP code at first login.")


@user_app.command("list")
def user_list(
    office: Annotated[str | None, typer.Option("--office", help="Only this office.")] = None,
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """List users."""
    with open_node(data) as node:
        users = node.directory.users(office)
    rows = [
        {
            "login": u.login, "name": u.display_name, "office": u.office_code, "role": u.role.value,
            "clearance": u.clearance, "totp_enrolled": u.totp_confirmed, "active": u.active,
        }
        for u in users
    ]
    if as_json:
        print_json(rows)
    else:
        print_table(
            [(r["login"], r["name"], r["office"], r["role"],
              f"{r['clearance']} {Clearance.LABELS[int(str(r['clearance']))]}",
              "yes" if r["totp_enrolled"] else "no") for r in rows],
            ["login", "name", "office", "role", "clearance", "TOTP"],
        )


@user_app.command("totp")
def user_totp(
    login: Annotated[str, typer.Argument(help="Login name.")],
    data: DataOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the user's current TOTP code (for demos and tests on the node itself)."""
    with open_node(data) as node:
        code = node.directory.current_totp(login)
    if as_json:
        print_json({"login": login, "code": code})
    else:
        typer.echo(code)


def _admin(node: object) -> Administration:
    from inkless.directory.admin import Administration

    admin = getattr(node, "admin", None)
    assert isinstance(admin, Administration)
    return admin


@user_app.command("set")
def user_set(
    login: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option("--role", help="clerk, approver, integrator, admin or operator.")],
    clearance: Annotated[int, typer.Option("--clearance", help="0 公開, 1 内部, 2 秘, 3 極秘.")],
    data: DataOption = None,
) -> None:
    """Change a user's role and clearance."""
    with open_node(data) as node:
        user = _admin(node).change_user(None, login, role, clearance)
    typer.echo(f"{user.login}: role {user.role.value}, clearance {user.clearance}")


@user_app.command("lock")
def user_lock(login: Annotated[str, typer.Argument(help="Login name.")], data: DataOption = None) -> None:
    """Lock an account: its sessions end, no login and no API token work until 'inkless user unlock'."""
    with open_node(data) as node:
        _admin(node).lock(None, login)
    typer.echo(f"locked {login}")


@user_app.command("unlock")
def user_unlock(login: Annotated[str, typer.Argument(help="Login name.")], data: DataOption = None) -> None:
    """Unlock an account."""
    with open_node(data) as node:
        _admin(node).unlock(None, login)
    typer.echo(f"unlocked {login}")


@user_app.command("reset-totp")
def user_reset_totp(login: Annotated[str, typer.Argument(help="Login name.")], data: DataOption = None) -> None:
    """Give the user a new TOTP key: they register their authenticator app again at the next login."""
    with open_node(data) as node:
        _admin(node).reset_totp(None, login)
    typer.echo(f"TOTP key of {login} reset; the next login enrols the authenticator again")


@user_app.command("deactivate")
def user_deactivate(login: Annotated[str, typer.Argument(help="Login name.")], data: DataOption = None) -> None:
    """Deactivate an account (someone who left); 'inkless user reactivate' undoes it."""
    with open_node(data) as node:
        _admin(node).set_active(None, login, False)
    typer.echo(f"deactivated {login}")


@user_app.command("reactivate")
def user_reactivate(login: Annotated[str, typer.Argument(help="Login name.")], data: DataOption = None) -> None:
    """Reactivate a deactivated account."""
    with open_node(data) as node:
        _admin(node).set_active(None, login, True)
    typer.echo(f"reactivated {login}")


@office_app.command("set")
def office_set(
    code: Annotated[str, typer.Argument(help="Office code.")],
    name: Annotated[str | None, typer.Option("--name", help="New office name.")] = None,
    kana: Annotated[str | None, typer.Option("--kana", help="The name's reading in kana, e.g. ミンジキョク.")] = None,
    fax_number: Annotated[
        str | None, typer.Option("--fax-number", help="The office's fax number ('' for none).")
    ] = None,
    data: DataOption = None,
) -> None:
    """Change an office's name, reading or fax number (options not given stay as they are)."""
    with open_node(data) as node:
        office = node.directory.office(code)
        office = _admin(node).update_office(
            None, code, name if name is not None else office.name,
            kana if kana is not None else office.kana,
            fax_number if fax_number is not None else office.fax_number)
    typer.echo(f"{office.code}: {office.name} ({office.kana or '-'}), fax {office.fax_number or '-'}")


@office_app.command("seal-image")
def office_seal_image(
    code: Annotated[str, typer.Argument(help="Office code.")],
    image: Annotated[Path, typer.Argument(help="PNG or JPEG scan of the office seal (at most 1 MB).")],
    data: DataOption = None,
) -> None:
    """Store the office's seal image (checked by decoding it, whatever its file name says)."""
    with open_node(data) as node:
        seal = _admin(node).set_seal_image(None, code, image.read_bytes())
    typer.echo(f"{code}: seal image {seal.media_type} {seal.width}x{seal.height} ({seal.sha256[:16]}…)")


def _register_optional() -> None:
    """Attach command groups that live beside their feature packages."""
    from importlib import import_module

    for module, name in (("inkless.cli.audit", "audit"), ("inkless.cli.token", "token"), ("inkless.cli.peer", "peer"),
                         ("inkless.cli.fax", "fax"), ("inkless.cli.routes", "route"),
                         ("inkless.cli.mail", "mail"), ("inkless.cli.pickup", "pickup"),
                         ("inkless.cli.procedure", "procedure"), ("inkless.cli.metrics", "metrics"),
                         ("inkless.cli.intake", "intake"), ("inkless.cli.blobs", "blobs")):
        try:
            sub = import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        app.add_typer(sub.app, name=name)
    from inkless.cli import seals

    seals.register(app)
    from inkless.cli import delivery

    delivery.register(app)


_register_optional()


def _command_name(command: CommandInfo) -> str:
    if command.name:
        return command.name
    assert command.callback is not None
    return typer.main.get_command_name(command.callback.__name__)


def _pruned(typer_app: typer.Typer, path: list[str]) -> typer.Typer:
    """``typer_app`` with only what the command line ``path`` reaches built into click commands.

    Typer turns every command into a click command, reading each function's signature and type hints,
    before it looks at the command line: for ~100 commands that is most of the start-up. The command
    named by ``path`` keeps everything (so its help, errors and parsing are Typer's own); sibling groups
    keep their names and help but not their commands, which is all a help listing or a "no such
    command" error shows of them.
    """
    pruned = copy.copy(typer_app)
    name = path[0] if path else None
    commands = [c for c in typer_app.registered_commands if _command_name(c) == name]
    groups = [g for g in typer_app.registered_groups if g.name == name]
    if commands:
        pruned.registered_commands, pruned.registered_groups = commands[:1], []
    elif groups and groups[0].typer_instance is not None:
        pruned.registered_commands = []
        pruned.registered_groups = [_with_instance(groups[0], _pruned(groups[0].typer_instance, path[1:]))]
    else:  # a listing (help, or an unknown name): every command, and the groups by name only
        pruned.registered_commands = list(typer_app.registered_commands)
        pruned.registered_groups = [_with_instance(g, _shallow(g.typer_instance)) for g in typer_app.registered_groups]
    return pruned


def _with_instance(group: TyperInfo, typer_app: typer.Typer | None) -> TyperInfo:
    replaced = copy.copy(group)
    replaced.typer_instance = typer_app
    return replaced


def _shallow(typer_app: typer.Typer | None) -> typer.Typer | None:
    if typer_app is None:
        return None
    shallow = copy.copy(typer_app)
    shallow.registered_commands, shallow.registered_groups = [], []
    return shallow


def _command_path(args: list[str]) -> list[str]:
    """The leading words of a command line (``fax send`` of ``fax send FILE --to …``): the root and the
    groups take no options before a command's name."""
    path: list[str] = []
    for arg in args:
        if arg.startswith("-"):
            break
        path.append(arg)
    return path


def main() -> None:
    """Entry point: run the command, turning inkless errors into a message and an exit code."""
    # Everything a command creates (database, WAL, blobs, spool, reports, exports) is the node's alone.
    # This is inkless.app.restrict_file_modes (umask 077), not imported from there: importing the
    # composition root would load the database, crypto and PDF libraries before `--help`.
    os.umask(0o077)
    try:
        _pruned(app, _command_path(sys.argv[1:]))()
    except InklessError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


def data_dir_of(data: Path | None) -> Path:
    return load_settings(data).data_dir
