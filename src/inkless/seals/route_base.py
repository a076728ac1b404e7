"""What every part of the route service shares: its collaborators, reading routes, their status, documents
and queues, and the checks of who may see what."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, select

from inkless.audit.model import AuditRecorder
from inkless.blobs import BlobStore
from inkless.clock import Clock
from inkless.db import tables as t
from inkless.db import tables_seals as s
from inkless.db.engine import Database
from inkless.directory.model import User
from inkless.directory.service import DirectoryService
from inkless.errors import NotFoundError, PolicyError, SealError, ValidationError
from inkless.seals.model import SealKind, SealPlacement
from inkless.seals.route_rows import load_route, revision_digest
from inkless.seals.route_status import DocumentVersion, QueueItem, Revision, RouteEvent, RouteStatus
from inkless.seals.routes import (
    ApprovalRoute,
    ResumeFrom,
    RouteState,
    check_office_sealer,
)

MAX_PDF_BYTES = 50 * 1024 * 1024
# How often a stamp is sealed again when another approver of the same step stored theirs first.
STAMP_ATTEMPTS = 4
STAMP_KINDS = (SealKind.PERSONAL, SealKind.DATE)
# A finished route's document goes out as 内部 (internal): routes carry no classification of their own.
DELIVERY_CLASSIFICATION = 1

T = TypeVar("T")


class Sealer(Protocol):
    """What routes need of the sealing service (a fake in unit tests)."""

    async def seal_async(
        self,
        pdf: bytes,
        signer_login: str,
        kind: SealKind,
        placement: SealPlacement,
        *,
        actor: str,
        reason: str | None = None,
        certify: bool = False,
    ) -> bytes: ...

    async def extend_to_lta_async(self, pdf: bytes, *, actor: str = "system") -> bytes: ...


class Courier(Protocol):
    """What routes need of the delivery service: hand a finished document to another office."""

    def send(
        self,
        sender_login: str | None,
        from_office: str,
        to: Sequence[str],
        list_names: Sequence[str],
        subject: str,
        documents: Sequence[Any],
        classification: int = 0,
        priority: str = "normal",
        procedure_code: str | None = None,
        reply_to: str | None = None,
    ) -> str: ...


class RouteBase:
    """Reading approval routes; the state the acting part (:mod:`inkless.seals.route_service`) shares."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        directory: DirectoryService,
        sealer: Sealer | None,
        audit: AuditRecorder,
        clock: Clock,
        courier: Courier | None = None,
    ) -> None:
        self._courier = courier
        self._db = db
        self._blobs = blobs
        self._directory = directory
        self._sealer = sealer
        self._audit = audit
        self._clock = clock

    def returned_to(self, login: str) -> list[ApprovalRoute]:
        """Routes ``login`` started that were returned to them (差し戻し) and wait for a corrected version."""
        user = self._directory.user(login)
        with self._db.read() as conn:
            ids = (
                conn.execute(
                    select(s.routes.c.id)
                    .where(s.routes.c.starter_id == user.id, s.routes.c.returned_step.is_not(None))
                    .order_by(s.routes.c.id)
                )
                .scalars()
                .all()
            )
            return [load_route(conn, rid) for rid in ids]

    def version_document(self, route_id: int, version: int, viewer: str | None = None) -> bytes:
        """Version ``version`` (1-based) of the route's document as its starter uploaded it."""
        with self._db.read() as conn:
            route = load_route(conn, route_id)
            if viewer is not None:
                self._check_viewer(conn, route, viewer)
            digest = conn.execute(
                select(s.route_versions.c.original_digest).where(
                    s.route_versions.c.route_id == route_id, s.route_versions.c.version == version
                )
            ).scalar()
        if digest is None:
            raise NotFoundError(f"route {route_id} has no version {version}")
        return self._blobs.get(str(digest))

    # --- reading ----------------------------------------------------------------------

    def route(self, route_id: int) -> ApprovalRoute:
        """The route ``route_id`` as it stands."""
        with self._db.read() as conn:
            return load_route(conn, route_id)

    def _route_seen_by(self, route_id: int, login: str) -> ApprovalRoute:
        # Acting on a route starts like viewing it: outsiders learn nothing, not even whose turn it is.
        with self._db.begin() as conn:
            route = load_route(conn, route_id)
            self._check_viewer(conn, route, login)
            return route

    def status(self, route_id: int, viewer: str | None = None) -> RouteStatus:
        """The route with its timeline and revisions; ``viewer`` must be involved or in its office."""
        with self._db.read() as conn:
            route = load_route(conn, route_id)
            if viewer is not None:
                self._check_viewer(conn, route, viewer)
            users = t.users.alias()
            events = conn.execute(
                select(s.route_events, users.c.login)
                .join(users, users.c.id == s.route_events.c.actor_id)
                .where(s.route_events.c.route_id == route_id)
                .order_by(s.route_events.c.id)
            ).all()
            revisions = conn.execute(
                select(s.route_documents, users.c.login)
                .outerjoin(users, users.c.id == s.route_documents.c.actor_id)
                .where(s.route_documents.c.route_id == route_id)
                .order_by(s.route_documents.c.revision)
            ).all()
            versions = conn.execute(
                select(s.route_versions, users.c.login)
                .join(users, users.c.id == s.route_versions.c.actor_id)
                .where(s.route_versions.c.route_id == route_id)
                .order_by(s.route_versions.c.version)
            ).all()
        return RouteStatus(
            route=route,
            events=tuple(
                RouteEvent(e.at, e.login, e.action, e.step_idx, e.to_step, e.revision, e.seal_kind, e.comment)
                for e in events
            ),
            revisions=tuple(Revision(v.revision, v.blob_digest, v.kind, v.login, v.created_at) for v in revisions),
            versions=tuple(
                DocumentVersion(v.version, v.original_digest, v.pages, v.revision, v.login, v.created_at, v.comment)
                for v in versions
            ),
        )

    def document(self, route_id: int, viewer: str | None = None, revision: int | None = None) -> bytes:
        """The route's PDF: the current revision, or an earlier one of its history."""
        with self._db.read() as conn:
            route = load_route(conn, route_id)
            if viewer is not None:
                self._check_viewer(conn, route, viewer)
            digest = revision_digest(conn, route_id, route.revision if revision is None else revision)
        return self._blobs.get(digest)

    def queue(self, login: str) -> list[QueueItem]:
        """Routes waiting for ``login``: their box to stamp, or (approvers, admins) the office seal to press."""
        user = self._directory.user(login)
        with self._db.read() as conn:
            mine = (
                conn.execute(
                    select(s.route_steps.c.route_id)
                    .join(s.step_approvers, s.step_approvers.c.step_id == s.route_steps.c.id)
                    .join(s.routes, s.routes.c.id == s.route_steps.c.route_id)
                    .where(s.step_approvers.c.user_id == user.id)
                    .where(s.routes.c.state.in_([RouteState.IN_PROGRESS.value, RouteState.AWAITING_OFFICE_SEAL.value]))
                )
                .scalars()
                .all()
            )
            ids = set(mine)
            if user.role.value == "admin":
                ids |= set(
                    conn.execute(
                        select(s.routes.c.id)
                        .join(t.offices, t.offices.c.id == s.routes.c.office_id)
                        .where(t.offices.c.code == user.office_code)
                        .where(s.routes.c.state == RouteState.AWAITING_OFFICE_SEAL.value)
                    )
                    .scalars()
                    .all()
                )
            routes = [load_route(conn, rid) for rid in sorted(ids)]
        items: list[QueueItem] = []
        for route in routes:
            step = route.current
            if step is not None and login in route.waiting_for():
                items.append(QueueItem(route, "stamp", step.title, step.deadline))
            elif route.state is RouteState.AWAITING_OFFICE_SEAL:
                try:
                    check_office_sealer(route, login, user.role.value, user.office_code)
                except PolicyError:
                    continue
                items.append(QueueItem(route, "office_seal", route.last_step.title, route.last_step.deadline))
        return items

    def routes_of_office(self, office_code: str, limit: int = 50) -> list[ApprovalRoute]:
        """The office's latest routes, newest first."""
        with self._db.read() as conn:
            ids = (
                conn.execute(
                    select(s.routes.c.id)
                    .join(t.offices, t.offices.c.id == s.routes.c.office_id)
                    .where(t.offices.c.code == office_code)
                    .order_by(s.routes.c.id.desc())
                    .limit(limit)
                )
                .scalars()
                .all()
            )
            return [load_route(conn, rid) for rid in ids]

    # --- helpers ------------------------------------------------------------------------

    def _require_sealer(self) -> Sealer:
        if self._sealer is None:
            raise SealError("this node has no sealing service")
        return self._sealer

    def _active_user(self, login: str) -> User:
        try:
            user = self._directory.user(login)
        except NotFoundError:
            raise ValidationError("no user {login!r} on this node", login=login) from None
        if not user.active:
            raise ValidationError("user {login!r} is deactivated", login=login)
        return user

    def _check_viewer(self, conn: Connection, route: ApprovalRoute, viewer: str) -> None:
        user = self._directory.user(viewer, conn)
        involved = viewer == route.starter or route.approver(viewer) is not None
        if not involved and user.office_code != route.office_code:
            # Same answer as for a route that does not exist: its existence is not for outsiders.
            raise NotFoundError("no route {route_id}", route_id=route.id)

    def _document_at(self, route_id: int, revision: int) -> bytes:
        with self._db.read() as conn:
            digest = revision_digest(conn, route_id, revision)
        return self._blobs.get(digest)


def check_resume_from(value: ResumeFrom | str) -> ResumeFrom:
    try:
        return ResumeFrom(value)
    except ValueError:
        raise ValidationError(
            f"unknown resume point {value!r}: use 'step' (the step that returned it) or 'start' (step 1)"
        ) from None


def stamp_kind(kind: SealKind | str) -> SealKind:
    try:
        value = SealKind(kind)
    except ValueError:
        raise ValidationError("unknown seal kind {kind!r}: use personal or date", kind=kind) from None
    if value not in STAMP_KINDS:
        raise ValidationError("an approver stamps with their personal or date seal; the office seal closes the route")
    return value


def check_address(address: str | None) -> str | None:
    if address is None or not address.strip():
        return None
    address = address.strip()
    code, at, node = address.partition("@")
    if not at or not code or not node or len(address) > 200 or any(ch.isspace() for ch in address):
        raise ValidationError("{address!r} is not an office address like civil-affairs@moj", address=address)
    return address


def sha256(data: bytes) -> str:
    """Hex SHA-256, as blob addresses are."""
    return hashlib.sha256(data).hexdigest()


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    # Database and blob I/O is blocking: keep it off the event loop of the web server.
    return await asyncio.to_thread(fn, *args)


def run_route(coro: Any) -> ApprovalRoute:
    from inkless.seals.sealing import run_sync

    result = run_sync(coro)
    assert isinstance(result, ApprovalRoute)
    return result
