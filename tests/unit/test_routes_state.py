"""The approval route state machine: turns, 合議, returns, rejection, the office seal, plan checks (no I/O)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from inkless.errors import PolicyError, ValidationError
from inkless.seals.routes import (
    MAX_BOXES,
    ApprovalRoute,
    RouteState,
    StepPlan,
    StepState,
    check_comment,
    check_office_sealer,
    check_plan,
    field_name,
    new_route,
)

AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
PLANS = [
    StepPlan("担当", ("tanaka",)),
    StepPlan("係長", ("sato",)),
    StepPlan("課長", ("suzuki", "kobayashi"), date(2026, 12, 4)),
    StepPlan("部長", ("kato",)),
]


def route() -> ApprovalRoute:
    return new_route(7, "civil-affairs", "tanaka", " 予算要求 ", PLANS, 0, AT)


def test_a_new_route_waits_for_its_first_step() -> None:
    r = route()
    assert r.state is RouteState.IN_PROGRESS and r.current_step == 0 and r.document_name == "予算要求"
    assert [s.state for s in r.steps] == [StepState.ACTIVE] + [StepState.WAITING] * 3
    assert r.steps[2].logins == ("suzuki", "kobayashi") and r.steps[2].parallel
    assert [a.field_name for a in r.steps[2].approvers] == ["inkless-step3-1", "inkless-step3-2"]
    assert field_name(0, 0) == "inkless-step1-1"
    assert r.waiting_for() == ("tanaka",) and r.steps[0].base_revision == 0


def test_stamps_in_turn_walk_the_route_and_a_parallel_step_waits_for_everyone() -> None:
    r = route().stamped("tanaka", 1, AT)
    assert r.current_step == 1 and r.revision == 1 and r.steps[0].state is StepState.DONE
    assert r.steps[1].base_revision == 1
    r = r.stamped("sato", 2, AT, "date")
    assert r.steps[1].approvers[0].seal_kind == "date"
    r = r.stamped("kobayashi", 3, AT)
    assert r.current_step == 2 and r.waiting_for() == ("suzuki",) and r.steps[2].state is StepState.ACTIVE
    r = r.stamped("suzuki", 4, AT)
    assert r.current_step == 3 and r.steps[3].base_revision == 4
    r = r.stamped("kato", 5, AT)
    assert r.state is RouteState.AWAITING_OFFICE_SEAL and r.current_step is None and r.waiting_for() == ()
    done = r.office_sealed("kato", 7)
    assert done.state is RouteState.COMPLETED and done.revision == 7 and done.office_sealed_by == "kato"
    with pytest.raises(PolicyError, match="is completed"):
        done.stamped("kato", 8, AT)
    with pytest.raises(PolicyError, match="not waiting for the office seal"):
        done.office_sealed("kato", 8)


def test_out_of_turn_and_strangers_are_refused_with_the_reason() -> None:
    r = route()
    for login, message in (
        ("sato", r"not sato's turn: route 7 is at step 1 \(担当\), waiting for tanaka; sato's step 2 \(係長\) comes"),
        ("nobody", "nobody is not an approver of route 7"),
    ):
        with pytest.raises(PolicyError, match=message):
            r.stamped(login, 1, AT)
    r = r.stamped("tanaka", 1, AT)
    with pytest.raises(PolicyError, match=r"tanaka's step 1 \(担当\) is already done"):
        r.stamped("tanaka", 2, AT)
    r = r.stamped("sato", 2, AT).stamped("suzuki", 3, AT)
    with pytest.raises(PolicyError, match=r"suzuki already stamped step 3 .* waiting for kobayashi"):
        r.stamped("suzuki", 4, AT)
    with pytest.raises(PolicyError, match="already stamped"):
        r.rejected("suzuki")


def test_a_return_clears_the_stamps_from_the_target_step_on_and_restarts_there() -> None:
    r = route().stamped("tanaka", 1, AT).stamped("sato", 2, AT).stamped("suzuki", 3, AT)
    assert r.return_target("kobayashi").index == 1
    back = r.returned("kobayashi", None, 4)
    assert back.current_step == 1 and back.revision == 4 and back.steps[1].base_revision == 4
    assert back.steps[0].approvers[0].stamped and back.steps[0].state is StepState.DONE
    assert not back.steps[1].approvers[0].stamped and back.steps[1].state is StepState.ACTIVE
    assert not any(a.stamped for a in back.steps[2].approvers) and back.steps[2].state is StepState.WAITING
    assert back.waiting_for() == ("sato",)
    # Further back, to the first step, on request.
    first = back.returned("sato", 0, 5)
    assert first.current_step == 0 and not first.steps[0].approvers[0].stamped
    for to_step, message in ((0, "no earlier step"), (None, "no earlier step")):
        with pytest.raises(ValidationError, match=message):
            first.return_target("tanaka", to_step)
    for to_step in (1, 2, -1, 9):
        with pytest.raises(ValidationError, match="only be returned to an earlier step"):
            back.return_target("sato", to_step)


def test_a_rejected_route_ends() -> None:
    r = route().stamped("tanaka", 1, AT).rejected("sato")
    assert r.state is RouteState.REJECTED and r.waiting_for() == ()
    with pytest.raises(PolicyError, match="was rejected"):
        r.stamped("sato", 2, AT)


def test_the_office_seal_is_for_approvers_of_the_last_step_and_admins_of_the_office() -> None:
    r = route()
    with pytest.raises(PolicyError, match="not waiting for the office seal"):
        check_office_sealer(r, "kato", "approver", "civil-affairs")
    r = r.stamped("tanaka", 1, AT).stamped("sato", 2, AT).stamped("suzuki", 3, AT).stamped("kobayashi", 4, AT)
    r = r.stamped("kato", 5, AT)
    check_office_sealer(r, "kato", "approver", "civil-affairs")
    check_office_sealer(r, "yamada", "admin", "civil-affairs")
    for login, role, office, message in (
        ("kato", "clerk", "civil-affairs", "kato is a clerk"),
        ("sato", "approver", "civil-affairs", "only an approver of the last step"),
        ("ito", "admin", "criminal-affairs", "does not belong to office civil-affairs"),
    ):
        with pytest.raises(PolicyError, match=message):
            check_office_sealer(r, login, role, office)


def test_bad_plans_and_comments_get_clear_errors() -> None:
    one = [StepPlan("担当", ("tanaka",))]
    too_many = [StepPlan(f"S{i}", (f"user{i}a",)) for i in range(9)]
    crowded = [StepPlan(f"S{i}", (f"u{i}a", f"u{i}b", f"u{i}c")) for i in range(4)]
    for plans, name, message in (
        ([], "x", "1 to 8 steps"),
        (too_many, "x", "1 to 8 steps"),
        (crowded, "x", f"at most {MAX_BOXES} approvers' boxes"),
        ([StepPlan("課長", ("a1", "a2", "a3", "a4", "a5"))], "x", "1 to 4 approvers"),
        ([StepPlan("係 長", ("sato",))], "x", "without spaces"),
        ([StepPlan("とても長い肩書きの課長補佐", ("sato",))], "x", "1-10 characters"),
        ([StepPlan("担当", ("sato",)), StepPlan("係長", ("sato",))], "x", "in steps 1 and 2"),
        (one, "", "document name"),
        (one, "a\x07b", "document name"),
    ):
        with pytest.raises(ValidationError, match=message):
            check_plan(plans, name)
    assert check_plan([StepPlan(" 係長 ", (" sato ", ""))], "x") == (StepPlan("係長", ("sato",)),)
    assert check_comment("  ") is None and check_comment(" ok\n2 ") == "ok\n2"
    for bad in ("x" * 1001, "a\x00b"):
        with pytest.raises(ValidationError):
            check_comment(bad)
