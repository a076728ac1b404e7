"""The rows of a route: reading an :class:`ApprovalRoute` from its tables and writing it back.

The route service calls these inside its transactions; nothing here commits or seals.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from inkless.db import tables as t
from inkless.db import tables_seals as s
from inkless.errors import NotFoundError
from inkless.metrics import rollup
from inkless.seals.routes import ApprovalRoute, Approver, ResumeFrom, RouteState, RouteStep, StepState


def revision_digest(conn: Connection, route_id: int, revision: int) -> str:
    """The blob digest of revision ``revision`` of a route's PDF (NotFoundError if there is none)."""
    digest = conn.execute(
        select(s.route_documents.c.blob_digest).where(
            s.route_documents.c.route_id == route_id, s.route_documents.c.revision == revision
        )
    ).scalar()
    if digest is None:
        raise NotFoundError("route {route_id} has no revision {revision}", route_id=route_id, revision=revision)
    return str(digest)


def add_revision(
    conn: Connection, route_id: int, revision: int, digest: str, kind: str, actor_id: int | None, at: datetime
) -> None:
    """Record a new revision of a route's PDF."""
    conn.execute(
        insert(s.route_documents).values(
            route_id=route_id, revision=revision, blob_digest=digest, kind=kind, actor_id=actor_id, created_at=at
        )
    )
    if kind in rollup.SEAL_KINDS:
        # A stamp or the office seal: counted for the route's office and procedure in this transaction.
        route = conn.execute(select(t.offices.c.code, s.routes.c.procedure_code).join(
            s.routes, s.routes.c.office_id == t.offices.c.id).where(s.routes.c.id == route_id)).one()
        rollup.add(conn, rollup.seal(at, route.code, route.procedure_code, kind))


def add_event(
    conn: Connection,
    route_id: int,
    at: datetime,
    actor_id: int,
    action: str,
    *,
    step: int | None = None,
    to_step: int | None = None,
    revision: int | None = None,
    seal_kind: str | None = None,
    comment: str | None = None,
) -> None:
    """Add an entry to a route's timeline."""
    conn.execute(
        insert(s.route_events).values(
            route_id=route_id, at=at, actor_id=actor_id, action=action, step_idx=step, to_step=to_step,
            revision=revision, seal_kind=seal_kind, comment=comment,
        )
    )


def save_route(conn: Connection, route: ApprovalRoute, now: datetime, office_sealer: int | None = None) -> None:
    """Write ``route`` back: its state, steps and approvers' boxes."""
    values: dict[str, Any] = {
        # 差し戻し is stored as in_progress plus the returning step (see tables_seals.routes).
        "state": RouteState.IN_PROGRESS.value if route.state is RouteState.RETURNED else route.state.value,
        "returned_step": route.returned_step if route.state is RouteState.RETURNED else None,
        "version": route.version,
        "current_step": route.current_step,
        "revision": route.revision,
        "updated_at": now,
    }
    if office_sealer is not None:
        values["office_sealed_by"] = office_sealer
    conn.execute(update(s.routes).where(s.routes.c.id == route.id).values(**values))
    for step in route.steps:
        step_id = conn.execute(
            update(s.route_steps)
            .where(s.route_steps.c.route_id == route.id, s.route_steps.c.idx == step.index)
            .values(state=step.state.value, base_revision=step.base_revision)
            .returning(s.route_steps.c.id)
        ).scalar_one()
        for approver in step.approvers:
            conn.execute(
                update(s.step_approvers)
                .where(s.step_approvers.c.step_id == step_id, s.step_approvers.c.field_name == approver.field_name)
                .values(
                    stamped_revision=approver.stamped_revision,
                    stamped_at=approver.stamped_at,
                    seal_kind=approver.seal_kind,
                )
            )


def load_route(conn: Connection, route_id: int, lock: bool = False) -> ApprovalRoute:
    """Read route ``route_id`` (NotFoundError if there is none); ``lock`` holds its row until the transaction ends."""
    starter = t.users.alias()
    sealer = t.users.alias()
    query = (
        select(
            s.routes,
            t.offices.c.code.label("office_code"),
            starter.c.login.label("starter_login"),
            sealer.c.login.label("sealer_login"),
        )
        .join(t.offices, t.offices.c.id == s.routes.c.office_id)
        .join(starter, starter.c.id == s.routes.c.starter_id)
        .outerjoin(sealer, sealer.c.id == s.routes.c.office_sealed_by)
        .where(s.routes.c.id == route_id)
    )
    if lock:
        # PostgreSQL: hold the route row until the transaction ends (SQLite: BEGIN IMMEDIATE already does).
        query = query.with_for_update(of=s.routes)
    row = conn.execute(query).one_or_none()
    if row is None:
        raise NotFoundError("no route {route_id}", route_id=route_id)
    steps = conn.execute(
        select(s.route_steps).where(s.route_steps.c.route_id == route_id).order_by(s.route_steps.c.idx)
    ).all()
    approvers = conn.execute(
        select(s.step_approvers, t.users.c.login)
        .join(t.users, t.users.c.id == s.step_approvers.c.user_id)
        .join(s.route_steps, s.route_steps.c.id == s.step_approvers.c.step_id)
        .where(s.route_steps.c.route_id == route_id)
        .order_by(s.step_approvers.c.step_id, s.step_approvers.c.position)
    ).all()
    by_step: dict[int, list[Approver]] = {}
    for a in approvers:
        by_step.setdefault(a.step_id, []).append(
            Approver(a.login, a.field_name, a.stamped_revision, a.stamped_at, a.seal_kind)
        )
    return ApprovalRoute(
        id=row.id,
        office_code=row.office_code,
        starter=row.starter_login,
        document_name=row.document_name,
        steps=tuple(
            RouteStep(
                index=st.idx,
                title=st.title,
                approvers=tuple(by_step.get(st.id, [])),
                deadline=st.deadline,
                state=StepState(st.state),
                base_revision=st.base_revision,
            )
            for st in steps
        ),
        state=RouteState.RETURNED if row.returned_step is not None else RouteState(row.state),
        current_step=row.current_step,
        revision=row.revision,
        created_at=row.created_at,
        office_sealed_by=row.sealer_login,
        strip_page=row.strip_page,
        deliver_to=row.deliver_to,
        delivered_message_id=row.delivered_message_id,
        version=row.version,
        resume_from=ResumeFrom(row.resume_from),
        returned_step=row.returned_step,
        procedure_code=row.procedure_code,
    )
