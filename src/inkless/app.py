"""The composition root: builds a node's services from its settings.

Web routes and CLI commands get a :class:`Node` and call its services; nothing
else constructs services.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar, cast, overload

from cryptography import x509
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
from inkless.db.schema_heads import expected_heads, stored_heads
from inkless.directory.service import DirectoryService
from inkless.errors import ConfigurationError, ConflictError
from inkless.pki.ca import NodeCA, NodeIdentity
from inkless.pki.keystore import KeyStore, SecretBox, create_master_key_file, load_master_key

if TYPE_CHECKING:
    from collections.abc import Sequence

    from sqlalchemy.engine import Connection

    from inkless.audit.witness import WitnessService
    from inkless.delivery.policy import Actor
    from inkless.delivery.service import DeliveryService
    from inkless.delivery.transport import PeerLookup, PeerTransport
    from inkless.directory.admin import Administration
    from inkless.directory.peers import PeerService
    from inkless.directory.tokens import ApiTokenService
    from inkless.fax.service import FaxService
    from inkless.intake.service import IntakeService
    from inkless.mail.notices import InboxNotices
    from inkless.mail.outbox import MailOutbox, MailStatus
    from inkless.metrics.catalogue import ProcedureCatalogue
    from inkless.metrics.service import MetricsService
    from inkless.pickup.model import NewPickup
    from inkless.pickup.service import PickupService
    from inkless.seals.model import SealKind, SealPlacement
    from inkless.seals.route_service import RouteService
    from inkless.seals.sealing import SealingService

log = logging.getLogger("inkless")
S = TypeVar("S")


class _Service(Generic[S]):
    """A service of the node, built from ``factory(node)`` the first time it is read.

    A short CLI command needs two or three of the node's services; building every one of them
    imports most of inkless (fax imaging, seals, intake, metrics…), which each start of
    ``inkless inbox`` used to pay. Assigning a value (a test's fake, ``None`` for "this node has
    none") replaces the factory. Building is serialised per node (web requests in several threads
    may be first at once) and a factory that reads itself, directly or through others, is refused.
    """

    def __init__(self, factory: Callable[[Node], S | None]) -> None:
        self._factory = factory
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, node: None, owner: type | None = None) -> _Service[S]: ...

    @overload
    def __get__(self, node: Node, owner: type | None = None) -> S | None: ...

    def __get__(self, node: Node | None, owner: type | None = None) -> _Service[S] | S | None:
        if node is None:
            return self
        built = node.__dict__
        if self._name in built:
            return cast("S | None", built[self._name])
        with node._building_lock:
            if self._name not in built:
                if self._name in node._building:
                    raise RuntimeError(f"building the node's {self._name} service needs itself: "
                                       f"{' → '.join([*node._building, self._name])}")
                node._building.append(self._name)
                try:
                    value = self._factory(node)
                finally:
                    node._building.remove(self._name)
                built.setdefault(self._name, value)  # a factory may have set it already (wiring)
            return cast("S | None", built[self._name])

    def __set__(self, node: Node, value: S | None) -> None:
        node.__dict__[self._name] = value

    def built(self, node: Node) -> bool:
        """Whether the service exists already (closing a node must not build what nobody used)."""
        return self._name in node.__dict__


@dataclass
class Node:
    """One running inkless node: its settings and its services.

    The core (database, blobs, keys, audit log, directory) is built with the node; every other
    service is built on first use (:class:`_Service`), in the order the caller needs them.
    """

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
    _building_lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False, compare=False)
    _building: list[str] = field(default_factory=list, init=False, repr=False, compare=False)

    # Federation: the HTTP envelope transport and the pinned peers; delivery reads them late.
    peers = _Service["PeerLookup"](lambda node: _peers(node))
    transport = _Service["PeerTransport"](lambda node: _transport(node))
    witness = _Service["WitnessService"](lambda node: _witness(node))
    mail = _Service["MailOutbox"](lambda node: _mail(node))
    tokens = _Service["ApiTokenService"](lambda node: _tokens(node))
    delivery = _Service["DeliveryService"](lambda node: _delivery(node))
    pickup = _Service["PickupService"](lambda node: _pickup(node))
    notices = _Service["InboxNotices"](lambda node: _notices(node))
    # The sealing service (and the node TSA) loads pyHanko, which most commands never need.
    sealing = _Service["SealingService"](lambda node: _sealing(node))
    routes = _Service["RouteService"](lambda node: _routes(node))
    fax = _Service["FaxService"](lambda node: _fax(node))
    procedures = _Service["ProcedureCatalogue"](lambda node: _procedures(node))
    admin = _Service["Administration"](lambda node: _admin(node))
    intake = _Service["IntakeService"](lambda node: _intake(node))
    metrics = _Service["MetricsService"](lambda node: _metrics(node))

    @property
    def node_id(self) -> str:
        return self.settings.node_id

    def close(self) -> None:
        if Node.peers.built(self):  # a command that never talked to peers has no client to close
            from inkless.directory.peers import PeerService

            if isinstance(self.peers, PeerService):
                self.peers.client.close()
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
    from inkless.fax import render_pool

    # One pool per process, shared by its nodes; set here, because pages are drawn by more than the fax
    # service (the spool, intake cover pages, previews).
    render_pool.configure(settings.fax_render_processes)
    db = Database(settings.database_url, lock_timeout=settings.database_lock_timeout_seconds)
    if check_schema:
        _check_initialised(db, settings)
    box = SecretBox(load_master_key(settings.master_key_file))
    keystore = KeyStore(box)
    identity = NodeIdentity(settings.node_id, settings.organisation, settings.base_url)
    pki = NodeCA(keystore, identity, clock)
    audit = AuditLog(clock)
    directory = DirectoryService(db, settings.node_id, pki, audit, box, clock)
    return Node(
        settings=settings, db=db, blobs=open_blob_store(settings, db, box), clock=clock, box=box,
        keystore=keystore, pki=pki, audit=audit, directory=directory,
    )


def open_blob_store(settings: Settings, db: Database, box: SecretBox) -> BlobStore:
    """The node's blob store: in the database on PostgreSQL (``blob_store``), else the blob folder."""
    if not settings.blobs_in_database:
        return LocalBlobStore(settings.blob_dir, box)
    from inkless.db.blob_store import DatabaseBlobStore

    if any(settings.blob_dir.glob("??/??/*")):
        log.warning(
            "blobs are kept in the database, but %s still holds blob files: "
            "run 'inkless blobs migrate --to postgresql' to move them", settings.blob_dir
        )
    return DatabaseBlobStore(db, box)


class _NodeSealer:
    """The node's sealing service as approval routes use it, looked up when a route first seals."""

    def __init__(self, node: Node) -> None:
        self._node = node

    def _service(self) -> SealingService:
        service = self._node.sealing
        if service is None:
            raise ConfigurationError("this node has no sealing service")
        return service

    async def seal_async(self, pdf: bytes, signer_login: str, kind: SealKind, placement: SealPlacement, *,
                         actor: str, reason: str | None = None, certify: bool = False,
                         size_mm: float | None = None) -> bytes:
        return await self._service().seal_async(pdf, signer_login, kind, placement, actor=actor, reason=reason,
                                                certify=certify, size_mm=size_mm)

    async def extend_to_lta_async(self, pdf: bytes, *, actor: str = "system") -> bytes:
        return await self._service().extend_to_lta_async(pdf, actor=actor)


def _describe(revisions: frozenset[str]) -> str:
    return ", ".join(sorted(revisions)) or "empty"


def _check_initialised(db: Database, settings: Settings) -> None:
    try:
        revision = stored_heads(db)
    except ProgrammingError as exc:
        raise ConfigurationError(f"cannot open the database {settings.backend}: {exc.orig}") from None
    if not revision:
        raise ConfigurationError(
            f"no inkless node in {settings.data_dir} (database {settings.backend}): run 'inkless init --data DIR'"
        )
    heads = expected_heads()
    if revision != heads:
        raise ConfigurationError(
            f"the database schema is at {_describe(revision)}, this inkless {__version__} needs "
            f"{_describe(heads)}: run 'inkless migrate'"
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
    from inkless.db.migrate import upgrade

    db = Database(settings.database_url, create=True, lock_timeout=settings.database_lock_timeout_seconds)
    try:
        if stored_heads(db):
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

# --- the services that read other parts of the node -------------------------------------------


def _mail(node: Node) -> MailOutbox:
    """The node's mail outbox, sending through ``smtp_url`` (a node without it queues nothing)."""
    from inkless.mail.options import smtp_options
    from inkless.mail.outbox import MailOutbox, helo_name
    from inkless.mail.smtp import SmtpTransport

    settings = node.settings
    options = smtp_options(settings)
    transport = SmtpTransport(options, helo_name=helo_name(settings.base_url)) if options.enabled else None
    outbox = MailOutbox(
        node.db, node.box, node.clock, node.audit, options, transport,
        expiry=timedelta(hours=settings.mail_expiry_hours),
        backoff_base=float(settings.mail_backoff_base_seconds), backoff_cap=float(settings.mail_backoff_cap_seconds),
        lease=timedelta(seconds=max(60.0, 4 * options.timeout)),
    )

    def pickup_notice_ended(conn: Connection, status: MailStatus) -> None:
        # The mail worker that sent a pickup notice marks the pickup notified (通知済み) or bounced,
        # building the pickup service if this process had not needed it yet.
        pickup = node.pickup
        if pickup is not None:
            pickup.notice_ended(conn, status)

    outbox.listen("pickup.notice", pickup_notice_ended)
    return outbox


def _peers(node: Node) -> PeerLookup:
    """The pinned-peer directory (federation)."""
    from inkless.directory.peers import PeerService

    settings = node.settings
    return PeerService(
        node.db, settings.node_id, settings.base_url, settings.organisation, node.pki, node.directory, node.audit,
        node.clock,
    )


def _peer_service(node: Node) -> PeerService:
    from inkless.directory.peers import PeerService

    peers = node.peers
    if not isinstance(peers, PeerService):
        raise ConfigurationError("this node has no federation peers")
    return peers


def _transport(node: Node) -> PeerTransport:
    """The HTTP envelope transport to pinned peers."""
    from inkless.delivery.transport_http import HttpTransport

    return HttpTransport(_peer_service(node))


def _witness(node: Node) -> WitnessService:
    """The witness of peers' audit logs."""
    from inkless.audit.witness import WitnessService

    return WitnessService(node.db, node.settings.node_id, node.audit, _peer_service(node), node.clock)


def _tokens(node: Node) -> ApiTokenService:
    from inkless.directory.tokens import ApiTokenService

    return ApiTokenService(node.db, node.directory, node.audit, node.clock)


def _delivery(node: Node) -> DeliveryService:
    """Delivery; it hands e-mail recipients to pickup and tells notices of what arrived."""
    from inkless.delivery.service import build_delivery

    service = build_delivery(node)
    service.pickup = _NodePickup(node)

    def tell_notices(conn: Connection, office_id: int, office_code: str, at: datetime) -> None:
        notices = node.notices  # built when the first message arrives, not when delivery is
        if notices is not None:
            notices.on_received(conn, office_id, office_code, at)

    service.on_received.append(tell_notices)
    return service


class _NodePickup:
    """Secure pickup as delivery uses it, built when a message first goes to an e-mail address."""

    def __init__(self, node: Node) -> None:
        self._node = node

    @property
    def enabled(self) -> bool:
        pickup = self._node.pickup
        return pickup is not None and pickup.enabled

    def _pickup(self) -> PickupService:
        pickup = self._node.pickup
        if pickup is None:
            raise ConfigurationError("this node has no secure pickup")
        return pickup

    def check(self, actor: Actor, office_code: str, classification: int, recipients: Sequence[NewPickup],
              confirmed: bool) -> None:
        self._pickup().check(actor, office_code, classification, recipients, confirmed)

    def record(self, conn: Connection, *, message_id: str, office_id: int, office_code: str, sender_login: str,
               subject: str, recipients: Sequence[NewPickup], now: datetime) -> list[int]:
        return self._pickup().record(conn, message_id=message_id, office_id=office_id, office_code=office_code,
                                     sender_login=sender_login, subject=subject, recipients=recipients, now=now)


def _pickup(node: Node) -> PickupService:
    from inkless.pickup.service import PickupService

    return PickupService(node.settings, node.db, node.clock, node.audit, node.box, node.blobs, node.directory,
                         node.mail, delivery=lambda: node.delivery)


def _notices(node: Node) -> InboxNotices:
    from inkless.mail.notices import InboxNotices

    return InboxNotices(node.settings, node.db, node.clock, node.audit, node.directory, node.mail)


def _routes(node: Node) -> RouteService:
    from inkless.seals.route_service import RouteService

    return RouteService(node.db, node.blobs, node.directory, _NodeSealer(node), node.audit, node.clock,
                        courier=node.delivery)


def _fax(node: Node) -> FaxService:
    """The fax service; its cover pages invite to the office's intake window, when it has one."""
    from inkless.fax.service import build_fax

    service = build_fax(node)

    def invitation_for(office_code: str) -> str | None:
        intake = node.intake  # read late: most faxes never need the intake service built
        return intake.invitation_for(office_code) if intake is not None else None

    service.invitation_for = invitation_for
    return service


def _procedures(node: Node) -> ProcedureCatalogue:
    from inkless.metrics.catalogue import ProcedureCatalogue

    return ProcedureCatalogue(node.db, node.audit, node.clock)


def _admin(node: Node) -> Administration:
    from inkless.directory.admin import Administration

    def cover_default(code: str, on: bool, actor: str) -> None:
        # Read late: the fax service is the one the node has when the setting changes.
        if node.fax is None:
            raise ConfigurationError("this node has no fax service")
        node.fax.set_office_settings(code, cover_page_default=on, actor=actor)

    return Administration(node.db, node.settings.node_id, node.directory, node.audit, node.box, node.clock,
                          cover_default=cover_default)


def _metrics(node: Node) -> MetricsService:
    from inkless.metrics.service import MetricsService
    from inkless.metrics.uptake import RemoteUptake

    procedures = node.procedures
    if procedures is None:
        raise ConfigurationError("this node has no procedure catalogue")
    return MetricsService(node.db, procedures, node.audit, node.clock, remote_status=RemoteUptake(node.box))


def _sealing(node: Node) -> SealingService:
    """The sealing service: node TSA (or ``tsa_url``), trust in own and pinned peers' CAs."""
    from inkless.seals.sealing import SealingService
    from inkless.seals.tsa import NodeTimeStampAuthority, choose_timestamper

    tsa = NodeTimeStampAuthority(node.db, node.pki, node.audit, node.clock, node.settings.node_id)
    node.extras["tsa"] = tsa

    def peer_cas() -> list[x509.Certificate]:
        # The CAs of pinned peers (federation) are trust anchors too; without federation only our own.
        from inkless.directory.peers import PeerService

        if isinstance(node.peers, PeerService):
            return node.peers.ca_certificates()
        return []

    return SealingService(
        node.db, node.pki, node.directory, node.audit, node.clock,
        node_id=node.settings.node_id, organisation=node.settings.organisation,
        timestamper=choose_timestamper(node.settings.tsa_url, tsa), trust_source=peer_cas,
        timezone=node.settings.tz,
    )


def _intake(node: Node) -> IntakeService:
    """The intake service; the fax service's cover pages invite to open windows."""
    from inkless.audit.traffic import AnonymousTraffic
    from inkless.intake.mailer import NoMailer, OutboxMailer
    from inkless.intake.service import IntakeService
    from inkless.untrusted.clamd import scanner_for

    settings = node.settings
    catalogue = node.procedures

    def listed(office_code: str) -> list[tuple[str, str]]:
        # (code, name) of an office's procedures in the node's catalogue
        assert catalogue is not None
        return [(p.code, p.name) for p in catalogue.procedures(office_code)]

    return IntakeService(
        node.db, node.blobs, node.box, node.clock, node.audit, node.directory,
        AnonymousTraffic(node.db, node.clock, node.audit, settings.public_requests_per_minute,
                         settings.audit_tally_seconds),
        AnonymousTraffic(node.db, node.clock, node.audit, settings.intake_address_per_minute,
                         settings.audit_tally_seconds),
        base_url=settings.base_url, organisation=settings.organisation or settings.node_id, timezone=settings.tz,
        delivery=lambda: node.delivery, sealing=lambda: node.sealing, fax=lambda: node.fax,
        mailer=OutboxMailer(node.mail) if node.mail is not None else NoMailer(),
        scanner=scanner_for(settings.clamd_socket), procedures=listed if catalogue is not None else None,
    )
