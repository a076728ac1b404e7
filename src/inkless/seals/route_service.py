"""The approval route service: start a route, stamp, return (差し戻し), reject, office seal; status and queues.

Every document revision is a blob (content-addressed) listed in ``route_documents``;
the route's rows say which revision is current. Sealing is slow (a signature and a
timestamp), so it happens outside any database transaction: the service reads the
route, seals the current revision, and then stores the result only if the route is
still at the revision it sealed (two approvers of a parallel step stamping at the
same moment: the later one is sealed again on top of the earlier one's revision).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import insert, select, update

from inkless.audit.model import AuditEvent
from inkless.db import tables as t
from inkless.db import tables_seals as s
from inkless.directory.model import User
from inkless.errors import ConflictError, PolicyError, ValidationError
from inkless.metrics.model import check_procedure_code
from inkless.pageview.render import page_count
from inkless.seals.model import SealKind, SealPlacement
from inkless.seals.route_base import (
    DELIVERY_CLASSIFICATION,
    MAX_PDF_BYTES,
    STAMP_ATTEMPTS,
    Courier,
    RouteBase,
    Sealer,
    check_address,
    check_resume_from,
    in_thread,
    run_route,
    stamp_kind,
)
from inkless.seals.route_rows import add_event, add_revision, load_route, revision_digest, save_route
from inkless.seals.route_status import DocumentVersion, QueueItem, Revision, RouteEvent, RouteStatus
from inkless.seals.routes import (
    OFFICE_SEAL_FIELD,
    ApprovalRoute,
    ResumeFrom,
    RouteState,
    StepPlan,
    check_comment,
    check_office_sealer,
    check_plan,
    new_route,
)

__all__ = [
    "MAX_PDF_BYTES", "Courier", "DocumentVersion", "QueueItem", "Revision", "RouteEvent", "RouteService",
    "RouteStatus", "Sealer",
]


class RouteService(RouteBase):
    """Approval routes: start, stamp, return, resubmit, reject, office seal and delivery."""

    # --- start ---------------------------------------------------------------------

    def start(
        self,
        pdf: bytes,
        starter: str,
        steps: Sequence[StepPlan],
        *,
        document_name: str,
        comment: str | None = None,
        deliver_to: str | None = None,
        resume_from: ResumeFrom | str = ResumeFrom.STEP,
        procedure_code: str | None = None,
    ) -> ApprovalRoute:
        """Start a route: add the approval strip and empty fields, store revision 0 (version 1), open step 1.

        ``resume_from`` says where the route resumes after a 差し戻し and a corrected version.
        """
        procedure_code = check_procedure_code(procedure_code) if procedure_code else None
        if len(pdf) > MAX_PDF_BYTES:
            raise ValidationError(f"the PDF is larger than {MAX_PDF_BYTES // (1024 * 1024)} MiB")
        plans = check_plan(steps, document_name)
        comment = check_comment(comment)
        deliver_to = check_address(deliver_to)
        resume = check_resume_from(resume_from)
        user = self._active_user(starter)
        approvers = {login: self._active_user(login) for plan in plans for login in plan.approvers}
        # The strip is drawn with pyHanko, imported here: listing routes and queues does not need it.
        from inkless.seals.strip import StripStep, add_approval_strip

        # Field names come from the domain; the strip only needs titles and names in step order.
        draft = new_route(0, user.office_code, starter, document_name, plans, 0, self._clock.now())
        stripped = add_approval_strip(
            pdf, [StripStep(st.title, tuple(a.field_name for a in st.approvers)) for st in draft.steps]
        )
        original = self._blobs.put(pdf)
        digest = self._blobs.put(stripped.pdf)
        now = self._clock.now()
        with self._db.begin() as conn:
            office_id = conn.execute(select(t.offices.c.id).where(t.offices.c.code == user.office_code)).scalar_one()
            route_id = conn.execute(
                insert(s.routes).values(
                    office_id=office_id,
                    starter_id=user.id,
                    document_name=draft.document_name,
                    state=RouteState.IN_PROGRESS.value,
                    current_step=0,
                    revision=0,
                    original_digest=original,
                    strip_page=stripped.page,
                    deliver_to=deliver_to,
                    resume_from=resume.value,
                    version=1,
                    procedure_code=procedure_code,
                    created_at=now,
                    updated_at=now,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            conn.execute(insert(s.route_versions).values(
                route_id=route_id, version=1, original_digest=original, pages=page_count(pdf), revision=0,
                actor_id=user.id, comment=comment, created_at=now))
            for st in draft.steps:
                step_id = conn.execute(
                    insert(s.route_steps).values(
                        route_id=route_id,
                        idx=st.index,
                        title=st.title,
                        deadline=st.deadline,
                        state=st.state.value,
                        base_revision=st.base_revision,
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
                for position, a in enumerate(st.approvers):
                    conn.execute(
                        insert(s.step_approvers).values(
                            step_id=step_id,
                            user_id=approvers[a.login].id,
                            position=position,
                            field_name=a.field_name,
                        )
                    )
            add_revision(conn, route_id, 0, digest, "strip", user.id, now)
            add_event(conn, route_id, now, user.id, "started", comment=comment, revision=0)
            self._audit.record(
                conn,
                AuditEvent(
                    actor=starter,
                    action="route.started",
                    object_type="route",
                    object_id=str(route_id),
                    digests={"original": original, "document": digest},
                    details={
                        "office": user.office_code,
                        "steps": len(plans),
                        "approvers": [list(p.approvers) for p in plans],
                        "strip_page": stripped.page,
                        "new_page": stripped.new_page,
                        "comment": comment is not None,
                    },
                ),
                at=now,
            )
            return load_route(conn, route_id)

    # --- stamping ------------------------------------------------------------------

    def approve(self, route_id: int, login: str, kind: SealKind | str = SealKind.PERSONAL,
                comment: str | None = None) -> ApprovalRoute:
        """Synchronous :meth:`approve_async` (CLI, tests)."""
        return run_route(self.approve_async(route_id, login, kind, comment))

    async def approve_async(
        self, route_id: int, login: str, kind: SealKind | str = SealKind.PERSONAL, comment: str | None = None
    ) -> ApprovalRoute:
        """``login`` stamps their box of the current step with their personal or date seal."""
        seal_kind = stamp_kind(kind)
        comment = check_comment(comment)
        sealer = self._require_sealer()
        for _ in range(STAMP_ATTEMPTS):
            route = await in_thread(self._route_seen_by, route_id, login)
            step = route.check_turn(login)
            approver = next(a for a in step.approvers if a.login == login)
            pdf = await in_thread(self._document_at, route_id, route.revision)
            sealed = await sealer.seal_async(
                pdf,
                login,
                seal_kind,
                SealPlacement(page=route.strip_page, field_name=approver.field_name),
                actor=login,
                reason=f"{step.title} (route {route.id}, step {step.index + 1})",
            )
            stored = await in_thread(self._store_stamp, route, login, seal_kind, sealed, comment)
            if stored is not None:
                return stored
        raise ConflictError(
            "route {route_id} kept changing while {login} stamped it; try again",
            route_id=route_id, login=login)

    def _store_stamp(
        self, seen: ApprovalRoute, login: str, kind: SealKind, sealed: bytes, comment: str | None
    ) -> ApprovalRoute | None:
        digest = self._blobs.put(sealed)
        now = self._clock.now()
        with self._db.begin() as conn:
            current = load_route(conn, seen.id, lock=True)
            if current.revision != seen.revision:
                return None  # someone else stored a revision meanwhile: seal again on top of it
            revision = current.revision + 1
            after = current.stamped(login, revision, now, kind.value)
            user = self._directory.user(login, conn)
            step = current.steps[current.current_step or 0]
            add_revision(conn, current.id, revision, digest, "stamp", user.id, now)
            save_route(conn, after, now)
            add_event(conn, current.id, now, user.id, "stamped", step=step.index, revision=revision,
                            seal_kind=kind.value, comment=comment)
            self._audit.record(
                conn,
                AuditEvent(
                    actor=login,
                    action="route.stamped",
                    object_type="route",
                    object_id=str(current.id),
                    digests={"document": digest},
                    details={
                        "step": step.index + 1,
                        "title": step.title,
                        "kind": kind.value,
                        "revision": revision,
                        "step_done": after.current_step != current.current_step,
                        "comment": comment is not None,
                    },
                ),
                at=now,
            )
            return after

    # --- return and reject ------------------------------------------------------------

    def return_route(self, route_id: int, login: str, comment: str | None, to_step: int | None = None) -> ApprovalRoute:
        """Return the route (差し戻し) with a comment: to its starter, or to an earlier step ``to_step`` (0-based).

        Returned to the starter, the route waits for a corrected version (:meth:`resubmit`).
        Returned to an earlier step, the document restarts from the revision that step started
        from, stored as a new revision; every earlier revision stays in the history.
        """
        if to_step is None:
            return self._return_to_starter(route_id, login, comment)
        comment = check_comment(comment)
        if comment is None:
            raise ValidationError("say why the route is returned: a comment is required")
        now = self._clock.now()
        with self._db.begin() as conn:
            route = load_route(conn, route_id, lock=True)
            self._check_viewer(conn, route, login)
            step = route.check_turn(login)
            target = route.return_target(login, to_step)
            assert target.base_revision is not None
            digest = revision_digest(conn, route_id, target.base_revision)
            revision = route.revision + 1
            after = route.returned(login, target.index, revision)
            user = self._directory.user(login, conn)
            add_revision(conn, route_id, revision, digest, "restart", user.id, now)
            save_route(conn, after, now)
            add_event(conn, route_id, now, user.id, "returned", step=step.index, to_step=target.index,
                            revision=revision, comment=comment)
            self._audit.record(
                conn,
                AuditEvent(
                    actor=login,
                    action="route.returned",
                    object_type="route",
                    object_id=str(route_id),
                    digests={"document": digest},
                    details={
                        "from_step": step.index + 1,
                        "to_step": target.index + 1,
                        "restarted_from_revision": target.base_revision,
                        "revision": revision,
                    },
                ),
                at=now,
            )
            return after

    def _return_to_starter(self, route_id: int, login: str, comment: str | None) -> ApprovalRoute:
        comment = check_comment(comment)
        if comment is None:
            raise ValidationError("say why the route is returned: a comment is required")
        now = self._clock.now()
        with self._db.begin() as conn:
            route = load_route(conn, route_id, lock=True)
            self._check_viewer(conn, route, login)
            after = route.returned_to_starter(login)
            step = route.steps[after.returned_step or 0]
            user = self._directory.user(login, conn)
            save_route(conn, after, now)
            add_event(conn, route_id, now, user.id, "returned", step=step.index, revision=route.revision,
                            comment=comment)
            self._audit.record(
                conn,
                AuditEvent(
                    actor=login,
                    action="route.returned",
                    object_type="route",
                    object_id=str(route_id),
                    details={"from_step": step.index + 1, "to": "starter", "revision": route.revision,
                             "version": route.version},
                ),
                at=now,
            )
            return after

    def resubmit(self, route_id: int, login: str, pdf: bytes, comment: str | None = None) -> ApprovalRoute:
        """The starter uploads a corrected version of a returned route's document (v2, v3 …).

        The new version gets a fresh approval strip with the boxes of the steps that still have to
        stamp; the route resumes from the step that returned it, or from step 1 (its ``resume_from``).
        Every earlier version and revision stays viewable.
        """
        if len(pdf) > MAX_PDF_BYTES:
            raise ValidationError(f"the PDF is larger than {MAX_PDF_BYTES // (1024 * 1024)} MiB")
        comment = check_comment(comment)
        seen = self._route_seen_by(route_id, login)
        seen.check_resubmitter(login)
        start = seen.resume_step
        from inkless.seals.strip import StripStep, add_approval_strip

        stripped = add_approval_strip(
            pdf, [StripStep(st.title, tuple(a.field_name for a in st.approvers)) for st in seen.steps[start:]]
        )
        pages = page_count(pdf)
        original = self._blobs.put(pdf)
        digest = self._blobs.put(stripped.pdf)
        now = self._clock.now()
        with self._db.begin() as conn:
            route = load_route(conn, route_id, lock=True)
            if route.version != seen.version or route.state is not RouteState.RETURNED:
                raise ConflictError(f"route {route_id} changed while the corrected version was prepared; try again")
            revision = route.revision + 1
            after = route.resubmitted(login, revision)
            user = self._directory.user(login, conn)
            add_revision(conn, route_id, revision, digest, "version", user.id, now)
            conn.execute(insert(s.route_versions).values(
                route_id=route_id, version=after.version, original_digest=original, pages=pages, revision=revision,
                actor_id=user.id, comment=comment, created_at=now))
            conn.execute(update(s.routes).where(s.routes.c.id == route_id).values(strip_page=stripped.page))
            save_route(conn, after, now)
            add_event(conn, route_id, now, user.id, "resubmitted", step=after.current_step, revision=revision,
                            comment=comment)
            self._audit.record(
                conn,
                AuditEvent(
                    actor=login,
                    action="route.resubmitted",
                    object_type="route",
                    object_id=str(route_id),
                    digests={"original": original, "document": digest},
                    details={"version": after.version, "pages": pages, "revision": revision,
                             "resumes_at_step": (after.current_step or 0) + 1, "strip_page": stripped.page},
                ),
                at=now,
            )
            return load_route(conn, route_id)

    def reject(self, route_id: int, login: str, comment: str | None) -> ApprovalRoute:
        """Reject the route (却下): it ends, with the reason."""
        comment = check_comment(comment)
        if comment is None:
            raise ValidationError("say why the route is rejected: a comment is required")
        now = self._clock.now()
        with self._db.begin() as conn:
            route = load_route(conn, route_id, lock=True)
            self._check_viewer(conn, route, login)
            step = route.check_turn(login)
            after = route.rejected(login)
            user = self._directory.user(login, conn)
            save_route(conn, after, now)
            add_event(conn, route_id, now, user.id, "rejected", step=step.index, revision=route.revision,
                            comment=comment)
            self._audit.record(
                conn,
                AuditEvent(
                    actor=login,
                    action="route.rejected",
                    object_type="route",
                    object_id=str(route_id),
                    details={"step": step.index + 1, "revision": route.revision},
                ),
                at=now,
            )
            return after

    # --- office seal ----------------------------------------------------------------------

    def office_seal(self, route_id: int, login: str) -> ApprovalRoute:
        """Synchronous :meth:`office_seal_async`."""
        return run_route(self.office_seal_async(route_id, login))

    async def office_seal_async(self, route_id: int, login: str) -> ApprovalRoute:
        """Press the office seal (角印) that closes the route, then extend the document to PAdES B-LTA.

        PDF allows a certification signature only as the first signature of a document (pyHanko
        refuses anything else), so the closing office seal certifies the approved document the way
        PDF 2.0 allows after approvals: the lock its field was created with (see
        :mod:`inkless.seals.strip`) freezes every field and permits form filling only (DocMDP
        level 2). pyHanko applies a field's own lock when it signs, so the seal is made as an
        approval (``certify=False``): asking for certification would add the lock a second time,
        a change to the field that breaks every approver's seal. Callers check a fresh second
        factor first (the web UI asks for the TOTP again).
        """
        sealer = self._require_sealer()
        route = await in_thread(self._route_seen_by, route_id, login)
        user = await in_thread(self._directory.user, login)
        check_office_sealer(route, login, user.role.value, user.office_code)
        pdf = await in_thread(self._document_at, route_id, route.revision)
        sealed = await sealer.seal_async(
            pdf,
            login,
            SealKind.OFFICE,
            SealPlacement(page=route.strip_page, field_name=OFFICE_SEAL_FIELD),
            actor=login,
            reason=f"{route.office_code}: route {route.id} approved",
            certify=False,
        )
        final = await sealer.extend_to_lta_async(sealed, actor=login)
        done = await in_thread(self._store_office_seal, route, user, sealed, final)
        if done.deliver_to is not None:
            done = await in_thread(self.deliver, done.id, login)
        return done

    def deliver(self, route_id: int, login: str) -> ApprovalRoute:
        """Send the finished document to the route's ``deliver_to`` office as a delivery message (内部).

        Called after the office seal; callable again (``inkless route deliver``) when that failed.
        """
        from inkless.delivery.service import NewDocument

        route = self.route(route_id)
        if route.state is not RouteState.COMPLETED:
            raise PolicyError(
                "route {route_id} is not completed; only a finished document can be delivered",
                route_id=route_id)
        if route.deliver_to is None:
            raise ValidationError("route {route_id} has no delivery address", route_id=route_id)
        if route.delivered_message_id is not None:
            raise ConflictError(
                "route {route_id} was already delivered as message {delivered_message_id}",
                route_id=route_id, delivered_message_id=route.delivered_message_id)
        if self._courier is None:
            raise PolicyError("this node has no delivery service")
        pdf = self.document(route_id)
        message_id = self._courier.send(
            login,
            route.office_code,
            [route.deliver_to],
            [],
            route.document_name,
            [NewDocument(f"route-{route_id}.pdf", pdf)],
            classification=DELIVERY_CLASSIFICATION,
            procedure_code=route.procedure_code,
        )
        now = self._clock.now()
        with self._db.begin() as conn:
            conn.execute(
                update(s.routes)
                .where(s.routes.c.id == route_id)
                .values(delivered_message_id=message_id, updated_at=now)
            )
            self._audit.record(
                conn,
                AuditEvent(
                    actor=login,
                    action="route.delivered",
                    object_type="route",
                    object_id=str(route_id),
                    details={"message_id": message_id, "to": route.deliver_to},
                ),
                at=now,
            )
            return load_route(conn, route_id)

    def _store_office_seal(self, seen: ApprovalRoute, user: User, sealed: bytes, final: bytes) -> ApprovalRoute:
        sealed_digest = self._blobs.put(sealed)
        final_digest = self._blobs.put(final)
        now = self._clock.now()
        with self._db.begin() as conn:
            current = load_route(conn, seen.id, lock=True)
            if current.revision != seen.revision or current.state is not RouteState.AWAITING_OFFICE_SEAL:
                raise ConflictError(
                    "route {seen_id} changed while the office seal was applied; look at it again",
                    seen_id=seen.id)
            after = current.office_sealed(user.login, current.revision + 2)
            add_revision(conn, current.id, current.revision + 1, sealed_digest, "office_seal", user.id, now)
            add_revision(conn, current.id, current.revision + 2, final_digest, "lta", user.id, now)
            save_route(conn, after, now, office_sealer=user.id)
            add_event(conn, current.id, now, user.id, "office_sealed", revision=after.revision,
                            seal_kind=SealKind.OFFICE.value)
            self._audit.record(
                conn,
                AuditEvent(
                    actor=user.login,
                    action="route.office_sealed",
                    object_type="route",
                    object_id=str(current.id),
                    digests={"sealed": sealed_digest, "document": final_digest},
                    details={"office": current.office_code, "revision": after.revision, "level": "B-LTA"},
                ),
                at=now,
            )
            return after
