"""The composition root: builds a node's services from its settings.

Web routes and CLI commands get a :class:`Node` and call its services; nothing
else constructs services.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import insert, select
from sqlalchemy.exc import ProgrammingError

from inkless import __version__
from inkless.audit.log import AuditLog
from inkless.audit.model import AuditEvent
from inkless.blobs import BlobStore, LocalBlobStore
from inkless.clock import Clock, SystemClock
from inkless.config import Settings, write_config
from inkless.db import tables as t
from inkless.db.engine import Database
from inkless.db.migrate import current_heads, describe, script_heads, upgrade
from inkless.directory.service import DirectoryService
from inkless.errors import ConfigurationError, ConflictError
from inkless.pki.ca import NodeCA, NodeIdentity
from inkless.pki.keystore import KeyStore, SecretBox, create_master_key_file, load_master_key

if TYPE_CHECKING:
    from inkless.audit.witness import WitnessService
    from inkless.delivery.service import DeliveryService
    from inkless.delivery.transport import PeerLookup, PeerTransport
    from inkless.directory.admin import Administration
    from inkless.directory.tokens import ApiTokenService
    from inkless.fax.service import FaxService
    from inkless.intake.service import IntakeService
    from inkless.mail.notices import InboxNotices
    from inkless.mail.outbox import MailOutbox
    from inkless.metrics.catalogue import ProcedureCatalogue
    from inkless.metrics.service import MetricsService
    from inkless.pickup.service import PickupService
    from inkless.seals.route_service import RouteService
    from inkless.seals.sealing import SealingService


@dataclass
class Node:
    """One running inkless node: its settings and its services."""

    settings: Settings
    db: Database
    blobs: BlobStore
    clock: Clock
    box: SecretBox
    keystore: KeyStore
    pki: NodeCA
    audit: AuditLog
    directory: DirectoryService
    extras: dict[str, object] = field(default_factory=dict)
    # Federation fills these in (HTTP transport, pinned peers); delivery adds its service.
    transport: PeerTransport | None = None
    peers: PeerLookup | None = None
    delivery: DeliveryService | None = None
    sealing: SealingService | None = None
    routes: RouteService | None = None
    fax: FaxService | None = None
    tokens: ApiTokenService | None = None
    mail: MailOutbox | None = None
    procedures: ProcedureCatalogue | None = None
    witness: WitnessService | None = None
    pickup: PickupService | None = None
    notices: InboxNotices | None = None
    admin: Administration | None = None
    intake: IntakeService | None = None
    metrics: MetricsService | None = None

    @property
    def node_id(self) -> str:
        return self.settings.node_id

    def close(self) -> None:
        self.db.dispose()


def restrict_file_modes() -> None:
    """Create every file 0600 and every folder 0700 from now on in this process (umask 077).

    The data folder is 0700 already, but a copied or re-permissioned folder must not expose the
    database, its WAL, blobs, the fax spool or reports: each file is private on its own.
    """
    os.umask(0o077)


def configure_logging(settings: Settings) -> None:
    """Log at the node's ``log_level`` to stderr (``inkless serve`` and ``inkless worker``)."""
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _tighten_sqlite_files(settings: Settings) -> None:
    """Make an existing SQLite database and its WAL/SHM private (SQLite gives the WAL the database's mode)."""
    if settings.backend != "sqlite":
        return
    database = settings.database_url.split(":///", 1)[-1]
    for suffix in ("", "-wal", "-shm"):
        path = Path(database + suffix)
        try:
            if path.exists() and path.stat().st_mode & 0o077:
                os.chmod(path, 0o600)
        except OSError:  # not ours to change (read-only mount): the folder's 0700 still protects it
            pass


def build_node(settings: Settings, clock: Clock | None = None, *, check_schema: bool = True) -> Node:
    """Wire the services of an initialised node."""
    clock = clock or SystemClock()
    restrict_file_modes()
    _tighten_sqlite_files(settings)
    db = Database(settings.database_url, lock_timeout=settings.database_lock_timeout_seconds)
    if check_schema:
        _check_initialised(db, settings)
    box = SecretBox(load_master_key(settings.master_key_file))
    keystore = KeyStore(box)
    identity = NodeIdentity(settings.node_id, settings.organisation, settings.base_url)
    pki = NodeCA(keystore, identity, clock)
    audit = AuditLog(clock)
    directory = DirectoryService(db, settings.node_id, pki, audit, box, clock)
    node = Node(
        settings=settings, db=db, blobs=LocalBlobStore(settings.blob_dir, box), clock=clock, box=box,
        keystore=keystore, pki=pki, audit=audit, directory=directory,
    )
    from inkless.mail.outbox import build_mail

    node.mail = build_mail(node)
    from inkless.directory.tokens import ApiTokenService

    node.tokens = ApiTokenService(db, directory, audit, clock)
    from inkless.directory.peers import build_federation

    build_federation(node)
    from inkless.delivery.service import build_delivery

    node.delivery = build_delivery(node)
    from inkless.pickup.service import build_pickup

    node.pickup = build_pickup(node)
    node.delivery.pickup = node.pickup
    from inkless.mail.notices import build_notices

    node.notices = build_notices(node)
    from inkless.seals.sealing import build_sealing

    node.sealing = build_sealing(node)
    from inkless.seals.route_service import RouteService

    node.routes = RouteService(db, node.blobs, directory, node.sealing, audit, clock, courier=node.delivery)
    from inkless.fax.service import build_fax

    node.fax = build_fax(node)
    from inkless.metrics.catalogue import ProcedureCatalogue

    node.procedures = ProcedureCatalogue(db, audit, clock)
    from inkless.directory.admin import Administration

    def cover_default(code: str, on: bool, actor: str) -> None:
        # Read late: the fax service is the one the node has when the setting changes.
        if node.fax is None:
            raise ConfigurationError("this node has no fax service")
        node.fax.set_office_settings(code, cover_page_default=on, actor=actor)

    node.admin = Administration(db, settings.node_id, directory, audit, box, clock, cover_default=cover_default)

    from inkless.intake.service import build_intake

    node.intake = build_intake(node)
    from inkless.metrics.service import MetricsService
    from inkless.metrics.uptake import RemoteUptake

    node.metrics = MetricsService(db, node.procedures, audit, clock, remote_status=RemoteUptake(box))
    return node


def _check_initialised(db: Database, settings: Settings) -> None:
    try:
        revision = current_heads(db)
    except ProgrammingError as exc:
        raise ConfigurationError(f"cannot open the database {settings.backend}: {exc.orig}") from None
    if not revision:
        raise ConfigurationError(
            f"no inkless node in {settings.data_dir} (database {settings.backend}): run 'inkless init --data DIR'"
        )
    heads = script_heads(db)
    if revision != heads:
        raise ConfigurationError(
            f"the database schema is at {describe(revision)}, this inkless {__version__} needs "
            f"{describe(heads)}: run 'inkless migrate'"
        )
    with db.read() as conn:
        stored = conn.execute(select(t.node_meta.c.value).where(t.node_meta.c.key == "node_id")).scalar()
    if stored is not None and stored != settings.node_id:
        raise ConfigurationError(
            f"the database belongs to node {stored!r} but the settings say node_id = {settings.node_id!r}"
        )


def init_node(settings: Settings, clock: Clock | None = None) -> Node:
    """Create a node in ``settings.data_dir``: config file, master key, schema, CA, node and TSA keys."""
    clock = clock or SystemClock()
    restrict_file_modes()
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    os.chmod(data, 0o700)
    db = Database(settings.database_url, create=True, lock_timeout=settings.database_lock_timeout_seconds)
    try:
        if current_heads(db):
            with db.begin() as conn:
                existing = conn.execute(select(t.node_meta.c.value).where(t.node_meta.c.key == "node_id")).scalar()
            if existing is not None:
                raise ConflictError(f"the database already holds node {existing!r}; refusing to initialise again")
    except ProgrammingError as exc:
        raise ConfigurationError(f"cannot open the database: {exc.orig}") from None
    if not settings.config_path.exists():
        values: dict[str, object] = {
            "node_id": settings.node_id,
            "base_url": settings.base_url,
            "organisation": settings.organisation,
        }
        if settings.backend != "sqlite":
            # A node on PostgreSQL remembers where its database is (INKLESS_DATABASE_URL still wins).
            values["database_url"] = settings.database_url
        write_config(data, values)
    if not settings.master_key_file.exists() and not os.environ.get("INKLESS_MASTER_KEY"):
        create_master_key_file(settings.master_key_file)
    upgrade(db)
    db.dispose()
    node = build_node(settings, clock)
    now = clock.now()
    with node.db.begin() as conn:
        ca = node.pki.initialise(conn)
        conn.execute(
            insert(t.node_meta),
            [
                {"key": "node_id", "value": settings.node_id},
                {"key": "initialised_at", "value": now.isoformat()},
                {"key": "ca_fingerprint", "value": ca.fingerprint},
            ],
        )
        node.audit.record(
            conn,
            AuditEvent(actor="system", action="node.initialised", object_type="node", object_id=settings.node_id,
                       digests={"ca": ca.fingerprint}),
            at=now,
        )
    return node


def node_facts(node: Node) -> dict[str, object]:
    """What ``inkless node info`` and ``/healthz`` tell about a node."""
    with node.db.read() as conn:
        meta = {r.key: r.value for r in conn.execute(select(t.node_meta)).all()}
    return {
        "node_id": node.settings.node_id,
        "organisation": node.settings.organisation,
        "base_url": node.settings.base_url,
        "ca_fingerprint": meta.get("ca_fingerprint"),
        "database": node.settings.backend,
        "data_dir": str(node.settings.data_dir),
        "initialised_at": meta.get("initialised_at"),
        "version": __version__,
    }


def data_path(settings: Settings, *parts: str) -> Path:
    return settings.data_dir.joinpath(*parts)


def utc_iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
