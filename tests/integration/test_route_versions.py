"""差し戻し as a loop: a route returned to its starter, a corrected version (v2), and the route resuming.

Real seals (pyHanko and the node TSA), checked by poppler's pdfsig at the end, on both backends.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from inkless.app import Node, init_node
from inkless.config import load_settings
from inkless.db import tables as t
from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, create_demo
from inkless.errors import PolicyError, ValidationError
from inkless.seals.route_service import RouteService
from inkless.seals.routes import ResumeFrom, RouteState, StepPlan, StepState
from tests.conftest import BACKENDS
from tests.helpers.db import fresh_database
from tests.helpers.nodes import refused_url
from tests.helpers.route_docs import sample_pdf

STEPS = [StepPlan("担当", ("tanaka",)), StepPlan("係長", ("sato",)), StepPlan("課長", ("suzuki",))]


@dataclass
class World:
    node: Node
    routes: RouteService


@pytest.fixture(scope="module", params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One demo node per backend; every test starts its own routes."""
    backend = str(request.param)
    tmp = tmp_path_factory.mktemp(f"versions-{backend}")
    with fresh_database(backend, tmp / "node") as url:
        settings = load_settings(tmp / "node", env={}, overrides={
            "node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION, "database_url": url,
            "base_url": refused_url(),
        })
        node = init_node(settings)
        try:
            create_demo(node.directory)
            assert node.routes is not None
            yield World(node, node.routes)
        finally:
            node.close()


def _audit_count(node: Node) -> int:
    with node.db.begin() as conn:
        return int(conn.execute(select(func.count()).select_from(t.audit_entries)).scalar_one())


def _pdfsig(pdf: bytes, folder: Path) -> list[str]:
    """poppler's verdict block of every seal (document timestamps left out)."""
    path = folder / "final.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, check=False).stdout
    return [b for b in out.split("Signature #")[1:] if "Timestamp-" not in b]


def test_a_returned_route_waits_for_its_starter_and_resumes_from_the_returning_step(
    world: World, tmp_path: Path
) -> None:
    node, routes = world.node, world.routes
    v1 = sample_pdf(2)
    route = routes.start(v1, "tanaka", STEPS, document_name="出張命令書")
    assert route.version == 1 and route.resume_from is ResumeFrom.STEP
    route = routes.approve(route.id, "tanaka")
    route = routes.approve(route.id, "sato")

    # The 課長 returns it to the starter: 差し戻し, with the reason; nobody's queue holds it.
    route = routes.return_route(route.id, "suzuki", "日程表を添付してください")
    assert route.state is RouteState.RETURNED and route.returned_step == 2 and route.waiting_for() == ()
    assert route.id not in [q.route.id for q in routes.queue("suzuki")]
    assert [r.id for r in routes.returned_to("tanaka")].count(route.id) == 1
    status = routes.status(route.id)
    assert status.return_comment is not None and status.return_comment.comment == "日程表を添付してください"
    assert status.return_comment.actor == "suzuki"
    assert status.to_dict()["state"] == "returned" and status.to_dict()["returned_step"] == 3
    with pytest.raises(PolicyError, match="returned to its starter"):
        routes.approve(route.id, "suzuki")

    # The starter uploads v2: twelve pages instead of two.
    v2 = sample_pdf(12)
    route = routes.resubmit(route.id, "tanaka", v2, "日程表を追加")
    assert route.state is RouteState.IN_PROGRESS and route.version == 2 and route.returned_step is None
    # It resumes at the 課長, the step that returned it; the earlier approvals stand (made on v1).
    assert route.current_step == 2 and route.waiting_for() == ("suzuki",)
    assert route.steps[0].state is StepState.DONE and route.steps[0].approvers[0].stamped
    assert route.steps[1].state is StepState.DONE
    status = routes.status(route.id)
    assert [(v.version, v.pages, v.sha256, v.actor) for v in status.versions] == [
        (1, 2, hashlib.sha256(v1).hexdigest(), "tanaka"), (2, 12, hashlib.sha256(v2).hexdigest(), "tanaka")]
    assert status.versions[1].comment == "日程表を追加"
    assert routes.version_document(route.id, 1) == v1 and routes.version_document(route.id, 2) == v2
    assert [e.action for e in status.events][-2:] == ["returned", "resubmitted"]
    assert status.revisions[-1].kind == "version"
    assert routes.document(route.id).startswith(v2)  # the strip is an incremental update of v2
    assert route.id not in [r.id for r in routes.returned_to("tanaka")]

    route = routes.approve(route.id, "suzuki")
    assert route.state is RouteState.AWAITING_OFFICE_SEAL
    route = routes.office_seal(route.id, "suzuki")
    assert route.state is RouteState.COMPLETED
    final = routes.document(route.id)

    # Every seal on the final document verifies, in pyHanko and in poppler.
    assert node.sealing is not None
    report = node.sealing.verify(final)
    assert report.indication.value == "PASSED", report.reason
    assert [r.signer_name for r in report.seals if r.kind == "seal"] == ["鈴木 健二", "民事局"]
    blocks = _pdfsig(final, tmp_path)
    assert len(blocks) == 2
    for block in blocks:
        assert "Signature Validation: Signature is Valid." in block, block
    assert "The signature form field is not signed." not in "".join(blocks)


def test_a_route_that_resumes_from_the_start_is_stamped_again_by_everyone(world: World) -> None:
    routes = world.routes
    route = routes.start(sample_pdf(1), "tanaka", STEPS, document_name="研修計画", resume_from="start")
    route = routes.approve(route.id, "tanaka")
    route = routes.return_route(route.id, "sato", "予算額を確認してください")
    route = routes.resubmit(route.id, "tanaka", sample_pdf(3))
    assert route.current_step == 0 and route.waiting_for() == ("tanaka",) and route.version == 2
    assert not any(a.stamped for st in route.steps for a in st.approvers)
    assert routes.status(route.id).to_dict()["resume_from"] == "start"


def test_refused_returns_and_resubmissions_change_nothing(world: World) -> None:
    node, routes = world.node, world.routes
    route = routes.start(sample_pdf(1), "tanaka", STEPS, document_name="備品購入")
    with pytest.raises(PolicyError, match="not returned"):
        routes.resubmit(route.id, "tanaka", sample_pdf(1))
    route = routes.approve(route.id, "tanaka")
    before = _audit_count(node)
    for call, error, message in (
        (lambda: routes.return_route(route.id, "sato", "  "), ValidationError, "comment is required"),
        (lambda: routes.reject(route.id, "sato", ""), ValidationError, "comment is required"),
        (lambda: routes.start(sample_pdf(1), "tanaka", STEPS, document_name="x", resume_from="later"),
         ValidationError, "unknown resume point"),
    ):
        with pytest.raises(error, match=message):
            call()
    assert routes.route(route.id).state is RouteState.IN_PROGRESS and _audit_count(node) == before

    route = routes.return_route(route.id, "sato", "添付漏れ")
    before = _audit_count(node)
    for call, error, message in (
        (lambda: routes.resubmit(route.id, "sato", sample_pdf(1)), PolicyError, "only the starter"),
        (lambda: routes.resubmit(route.id, "tanaka", b"not a pdf"), ValidationError, "not a readable PDF"),
    ):
        with pytest.raises(error, match=message):
            call()
    after = routes.route(route.id)
    assert after.state is RouteState.RETURNED and after.version == 1 and _audit_count(node) == before
