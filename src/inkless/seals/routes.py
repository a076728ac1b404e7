"""Approval routes (稟議/回覧): steps, approvers, and the state machine, free of web and database types.

A route is a list of ordered steps (担当 → 係長 → 課長 → 部長); a step has one approver
or several in parallel (合議). Only the approvers of the current step may act, and
only while they have not stamped yet. The methods of :class:`ApprovalRoute` never
change the route: they check the turn and return the route as it is after the
action, so the service can store it in the same transaction as the new PDF revision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from enum import StrEnum

from inkless.errors import PolicyError, ValidationError
from inkless.text import check_text

MAX_STEPS = 8
MAX_PARALLEL = 4
# The strip must fit across one page: one box per approver plus the office seal box.
MAX_BOXES = 9
MAX_TITLE = 10
MAX_COMMENT = 1000
MAX_DOCUMENT_NAME = 200


class RouteState(StrEnum):
    """Where a route is as a whole."""

    IN_PROGRESS = "in_progress"  # 回覧中 (承認待ち for its approvers): a step is waiting for its approvers
    RETURNED = "returned"  # 差し戻し: returned to the starter, waiting for a corrected version
    AWAITING_OFFICE_SEAL = "awaiting_office_seal"  # 決裁済: every step stamped, the 角印 is next
    COMPLETED = "completed"  # 完了: office seal applied, extended to B-LTA
    REJECTED = "rejected"  # 却下


class ResumeFrom(StrEnum):
    """Where a route resumes after its starter uploaded a corrected version."""

    STEP = "step"  # the step that returned it: earlier steps' approvals of the previous version stand
    START = "start"  # step 1: every approver stamps the corrected version again


class StepState(StrEnum):
    """Where one step is."""

    WAITING = "waiting"  # an earlier step is not finished
    ACTIVE = "active"  # its approvers may stamp, return or reject
    DONE = "done"  # every approver of the step stamped


@dataclass(frozen=True)
class Approver:
    """One person in a step, with the signature field of their box and the revision their seal made."""

    login: str
    field_name: str
    stamped_revision: int | None = None
    stamped_at: datetime | None = None
    seal_kind: str | None = None

    @property
    def stamped(self) -> bool:
        return self.stamped_revision is not None


@dataclass(frozen=True)
class RouteStep:
    """One step: a title above the box (係長, 課長 …), its approvers, an optional deadline."""

    index: int
    title: str
    approvers: tuple[Approver, ...]
    deadline: date | None = None
    state: StepState = StepState.WAITING
    # The revision the step started from: a return to this step restarts the document there.
    base_revision: int | None = None

    @property
    def logins(self) -> tuple[str, ...]:
        return tuple(a.login for a in self.approvers)

    @property
    def pending(self) -> tuple[str, ...]:
        """Approvers of this step who have not stamped yet."""
        return tuple(a.login for a in self.approvers if not a.stamped)

    @property
    def parallel(self) -> bool:
        return len(self.approvers) > 1


@dataclass(frozen=True)
class StepPlan:
    """What the clerk asks for when starting a route: a title, approvers, a deadline."""

    title: str
    approvers: tuple[str, ...]
    deadline: date | None = None


OFFICE_SEAL_FIELD = "inkless-office-seal"


def field_name(step_index: int, approver_index: int) -> str:
    """The signature field of one approver's box (PDF field names must not contain dots)."""
    return f"inkless-step{step_index + 1}-{approver_index + 1}"


@dataclass(frozen=True)
class ApprovalRoute:
    """A document's approval route and where it stands."""

    id: int
    office_code: str
    starter: str
    document_name: str
    steps: tuple[RouteStep, ...]
    state: RouteState
    current_step: int | None
    revision: int
    created_at: datetime
    office_sealed_by: str | None = None
    strip_page: int = 1  # 1-based page of the approval strip
    deliver_to: str | None = None
    delivered_message_id: str | None = None
    version: int = 1  # the document version the route is on (v1 as first uploaded)
    resume_from: ResumeFrom = ResumeFrom.STEP
    # While returned to the starter (差し戻し): the 0-based step that returned it.
    returned_step: int | None = None
    procedure_code: str | None = None  # the procedure the route's seals are counted against

    # --- reading -------------------------------------------------------------------

    @property
    def current(self) -> RouteStep | None:
        return None if self.current_step is None else self.steps[self.current_step]

    @property
    def last_step(self) -> RouteStep:
        return self.steps[-1]

    def waiting_for(self) -> tuple[str, ...]:
        """Logins whose action the route waits for (empty once it is decided or awaits the office seal)."""
        step = self.current
        return step.pending if step is not None and self.state is RouteState.IN_PROGRESS else ()

    def approver(self, login: str) -> tuple[RouteStep, Approver] | None:
        """The step and box of ``login`` (approvers appear in one step only)."""
        for step in self.steps:
            for approver in step.approvers:
                if approver.login == login:
                    return step, approver
        return None

    # --- checks --------------------------------------------------------------------

    def check_turn(self, login: str) -> RouteStep:
        """The current step if ``login`` may act on it now; PolicyError saying why not otherwise."""
        if self.state is RouteState.RETURNED:
            raise PolicyError(
                f"route {self.id} was returned to its starter ({self.starter}); it waits for a corrected version"
            )
        if self.state is RouteState.REJECTED:
            raise PolicyError("route {id} was rejected; nobody can act on it any more", id=self.id)
        if self.state is RouteState.COMPLETED:
            raise PolicyError("route {id} is completed; nobody can act on it any more", id=self.id)
        if self.state is RouteState.AWAITING_OFFICE_SEAL:
            raise PolicyError("every step of route {id} is stamped; only the office seal is missing", id=self.id)
        step = self.current
        assert step is not None
        if login in step.logins:
            if login not in step.pending:
                raise PolicyError(
                    f"{login} already stamped step {step.index + 1} ({step.title}) of route {self.id}; "
                    f"waiting for {', '.join(step.pending)}"
                )
            return step
        found = self.approver(login)
        if found is None:
            raise PolicyError("{login} is not an approver of route {id}", login=login, id=self.id)
        own, _ = found
        when = "comes later" if own.index > step.index else "is already done"
        raise PolicyError(
            f"not {login}'s turn: route {self.id} is at step {step.index + 1} ({step.title}), "
            f"waiting for {', '.join(step.pending)}; {login}'s step {own.index + 1} ({own.title}) {when}"
        )

    # --- transitions ---------------------------------------------------------------

    def stamped(self, login: str, revision: int, at: datetime, seal_kind: str = "personal") -> ApprovalRoute:
        """The route after ``login`` stamped their box, making PDF ``revision``."""
        step = self.check_turn(login)
        approvers = tuple(
            replace(a, stamped_revision=revision, stamped_at=at, seal_kind=seal_kind) if a.login == login else a
            for a in step.approvers
        )
        step = replace(step, approvers=approvers)
        steps = list(self.steps)
        steps[step.index] = step
        if step.pending:
            # 合議: the step waits for the other approvers.
            return replace(self, steps=tuple(steps), revision=revision)
        steps[step.index] = replace(step, state=StepState.DONE)
        nxt = step.index + 1
        if nxt < len(steps):
            steps[nxt] = replace(steps[nxt], state=StepState.ACTIVE, base_revision=revision)
            return replace(self, steps=tuple(steps), current_step=nxt, revision=revision)
        return replace(
            self, steps=tuple(steps), current_step=None, revision=revision, state=RouteState.AWAITING_OFFICE_SEAL
        )

    def return_target(self, login: str, to_step: int | None = None) -> RouteStep:
        """The step a return by ``login`` goes back to (``to_step`` 0-based; default: the previous step)."""
        step = self.check_turn(login)
        target = step.index - 1 if to_step is None else to_step
        if step.index == 0:
            raise ValidationError(
                f"route {self.id} is at its first step: there is no earlier step to return it to; reject it instead"
            )
        if not 0 <= target < step.index:
            raise ValidationError(
                f"a route at step {step.index + 1} can only be returned to an earlier step "
                f"(1 to {step.index}), not to step {target + 1}"
            )
        return self.steps[target]

    def returned(self, login: str, to_step: int | None, revision: int) -> ApprovalRoute:
        """The route after ``login`` returned it (差し戻し) to ``to_step``; the document is now ``revision``.

        Seals cannot be taken out of an incremental PDF: the document restarts from the
        revision the target step started from (``revision`` is a new revision holding those
        bytes), and the stamps of the target step up to the current one are cleared; the
        service keeps every earlier revision as history.
        """
        step = self.check_turn(login)
        target = self.return_target(login, to_step).index
        steps = list(self.steps)
        for i in range(target, step.index + 1):
            cleared = tuple(
                replace(a, stamped_revision=None, stamped_at=None, seal_kind=None) for a in steps[i].approvers
            )
            steps[i] = replace(
                steps[i],
                approvers=cleared,
                state=StepState.ACTIVE if i == target else StepState.WAITING,
                base_revision=revision if i == target else None,
            )
        return replace(self, steps=tuple(steps), current_step=target, revision=revision)

    def returned_to_starter(self, login: str) -> ApprovalRoute:
        """The route after ``login`` returned it to its starter (差し戻し) for a corrected version."""
        step = self.check_turn(login)
        return replace(self, state=RouteState.RETURNED, returned_step=step.index)

    @property
    def resume_step(self) -> int:
        """The 0-based step a corrected version starts at (see :class:`ResumeFrom`)."""
        if self.resume_from is ResumeFrom.START or self.returned_step is None:
            return 0
        return self.returned_step

    def check_resubmitter(self, login: str) -> None:
        """PolicyError unless ``login`` may upload a corrected version now: the starter, of a returned route."""
        if self.state is not RouteState.RETURNED:
            raise PolicyError(
                f"route {self.id} is not returned (it is {self.state.value}): a corrected version is only "
                "uploaded after a 差し戻し"
            )
        if login != self.starter:
            raise PolicyError(f"only the starter of route {self.id} ({self.starter}) uploads a corrected version")

    def resubmitted(self, login: str, revision: int) -> ApprovalRoute:
        """The route after its starter uploaded a corrected version, which became ``revision``.

        Steps from :attr:`resume_step` on start over (their stamps belong to the previous version);
        the steps before it keep their approvals, made on an earlier version.
        """
        self.check_resubmitter(login)
        start = self.resume_step
        steps = list(self.steps)
        for i in range(start, len(steps)):
            cleared = tuple(
                replace(a, stamped_revision=None, stamped_at=None, seal_kind=None) for a in steps[i].approvers
            )
            steps[i] = replace(
                steps[i],
                approvers=cleared,
                state=StepState.ACTIVE if i == start else StepState.WAITING,
                base_revision=revision if i == start else None,
            )
        return replace(
            self, steps=tuple(steps), state=RouteState.IN_PROGRESS, current_step=start, revision=revision,
            version=self.version + 1, returned_step=None,
        )

    def rejected(self, login: str) -> ApprovalRoute:
        """The route after ``login`` rejected it (却下): it ends."""
        self.check_turn(login)
        return replace(self, state=RouteState.REJECTED)

    def office_sealed(self, login: str, revision: int) -> ApprovalRoute:
        """The route after the office seal (角印) was applied and the document extended to B-LTA."""
        if self.state is not RouteState.AWAITING_OFFICE_SEAL:
            raise PolicyError(
                "route {id} is not waiting for the office seal (it is {value})",
                id=self.id, value=self.state.value)
        return replace(self, state=RouteState.COMPLETED, revision=revision, office_sealed_by=login)


def check_office_sealer(route: ApprovalRoute, login: str, role: str, office_code: str) -> None:
    """PolicyError unless ``login`` may press the office seal (角印) on ``route``.

    The office seal speaks for the office: only an approver of the route's last step or an
    administrator, and only with the role approver or admin in the route's own office.
    """
    if route.state is not RouteState.AWAITING_OFFICE_SEAL:
        raise PolicyError(
            "route {route_id} is not waiting for the office seal (it is {state_value})",
            route_id=route.id, state_value=route.state.value)
    if office_code != route.office_code:
        raise PolicyError(
            "{login} does not belong to office {office_code} and cannot use its office seal",
            login=login, office_code=route.office_code)
    if role not in ("approver", "admin"):
        raise PolicyError(
            "{login} is a {role}: only approvers and administrators may use the office seal",
            login=login, role=role)
    if role != "admin" and login not in route.last_step.logins:
        raise PolicyError(
            f"only an approver of the last step ({', '.join(route.last_step.logins)}) "
            f"or an administrator of {route.office_code} may use the office seal of route {route.id}"
        )


def check_plan(steps: Sequence[StepPlan], document_name: str) -> tuple[StepPlan, ...]:
    """The steps of a new route, checked: titles, approvers (each in one step only), box count."""
    name = check_text(document_name, "document name").strip()
    if not name or len(name) > MAX_DOCUMENT_NAME:
        raise ValidationError(
            "the document name must be 1-{max_document_name} characters without control characters",
            max_document_name=MAX_DOCUMENT_NAME)
    if not 1 <= len(steps) <= MAX_STEPS:
        raise ValidationError("a route has 1 to {max_steps} steps, got {count}", max_steps=MAX_STEPS, count=len(steps))
    seen: dict[str, int] = {}
    checked: list[StepPlan] = []
    for i, plan in enumerate(steps):
        title = check_text(plan.title, f"step {i + 1} title").strip()
        if not title or len(title) > MAX_TITLE or any(ord(ch) < 32 or ch.isspace() for ch in title):
            raise ValidationError(
                f"step {i + 1}: the title (e.g. 係長) must be 1-{MAX_TITLE} characters without spaces"
            )
        logins = tuple(login.strip() for login in plan.approvers if login.strip())
        if not 1 <= len(logins) <= MAX_PARALLEL:
            raise ValidationError(f"step {i + 1} ({title}) needs 1 to {MAX_PARALLEL} approvers, got {len(logins)}")
        for login in logins:
            if login in seen:
                where = "twice in that step" if seen[login] == i else f"in steps {seen[login] + 1} and {i + 1}"
                raise ValidationError(
                    "{login} appears {where}: each approver has one box in a route",
                    login=login, where=where)
            seen[login] = i
        checked.append(StepPlan(title, logins, plan.deadline))
    if len(seen) > MAX_BOXES:
        raise ValidationError(
            f"the approval strip holds at most {MAX_BOXES} approvers' boxes on one row, got {len(seen)}"
        )
    return tuple(checked)


def check_comment(comment: str | None) -> str | None:
    """A comment, stripped; None when empty."""
    if comment is None or not comment.strip():
        return None
    comment = check_text(comment, "comment", multiline=True).strip()
    if len(comment) > MAX_COMMENT:
        raise ValidationError(
            "a comment has at most {max_comment} characters, got {count}",
            max_comment=MAX_COMMENT, count=len(comment))
    return comment


def new_route(
    route_id: int,
    office_code: str,
    starter: str,
    document_name: str,
    plans: Sequence[StepPlan],
    revision: int,
    at: datetime,
) -> ApprovalRoute:
    """A route that has just started: step 1 is active from ``revision`` (the PDF with the strip)."""
    plans = check_plan(plans, document_name)
    steps = tuple(
        RouteStep(
            index=i,
            title=plan.title,
            approvers=tuple(Approver(login, field_name(i, j)) for j, login in enumerate(plan.approvers)),
            deadline=plan.deadline,
            state=StepState.ACTIVE if i == 0 else StepState.WAITING,
            base_revision=revision if i == 0 else None,
        )
        for i, plan in enumerate(plans)
    )
    return ApprovalRoute(
        id=route_id,
        office_code=office_code,
        starter=starter,
        document_name=document_name.strip(),
        steps=steps,
        state=RouteState.IN_PROGRESS,
        current_step=0,
        revision=revision,
        created_at=at,
    )
