"""Approval routes with real seals: pyHanko, the node TSA, pdfium pixels and poppler's pdfsig, on both backends."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pypdfium2
import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.fields import enumerate_sig_fields
from sqlalchemy import func, select

from inkless.app import Node, init_node
from inkless.config import load_settings
from inkless.db import tables as t
from inkless.db import tables_seals as s
from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, create_demo
from inkless.errors import NotFoundError, PolicyError, ValidationError
from inkless.seals.imprint import SealKind
from inkless.seals.model import SealPlacement
from inkless.seals.route_service import RouteService
from inkless.seals.routes import OFFICE_SEAL_FIELD, RouteState, StepPlan, StepState
from tests.conftest import BACKENDS
from tests.helpers.db import fresh_database
from tests.helpers.nodes import refused_url
from tests.helpers.route_docs import sample_pdf

DOCUMENT_NAME = "令和9年度予算要求書"
RENDER_DPI = 100


@dataclass
class World:
    node: Node
    routes: RouteService


@pytest.fixture(scope="module", params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One demo node per backend, with two more approvers in 民事局; every test starts its own routes."""
    backend = str(request.param)
    tmp = tmp_path_factory.mktemp(f"routes-{backend}")
    with fresh_database(backend, tmp / "node") as url:
        settings = load_settings(
            tmp / "node",
            env={},
            overrides={
                "node_id": DEMO_NODE_ID,
                "organisation": DEMO_ORGANISATION,
                "database_url": url,
                "base_url": refused_url(),
            },
        )
        node = init_node(settings)
        try:
            create_demo(node.directory)
            node.directory.add_user("kobayashi", "civil-affairs", "approver", 2, "小林 明", actor="test")
            node.directory.add_user("kato", "civil-affairs", "approver", 3, "加藤 恵", actor="test")
            node.directory.add_user("mori", "civil-affairs", "clerk", 1, "森 優", actor="test")
            assert node.routes is not None
            yield World(node, node.routes)
        finally:
            node.close()


FOUR_STEPS = [
    StepPlan("担当", ("tanaka",)),
    StepPlan("係長", ("sato",)),
    StepPlan("課長", ("suzuki", "kobayashi")),  # 合議
    StepPlan("部長", ("kato",)),
]


def _vermilion(r: int, g: int, b: int) -> bool:
    # The imprint ink is RGB (0.89, 0.26, 0.20) = (227, 66, 51); anti-aliased edges stay reddish.
    return r > 150 and g < 150 and b < 140 and r - g > 70


def _render(pdf: bytes, page: int) -> tuple[int, int, bytes, int]:
    document = pypdfium2.PdfDocument(pdf)
    try:
        document.init_forms()
        bitmap = document[page - 1].render(
            scale=RENDER_DPI / 72, fill_color=(255, 255, 255, 255), may_draw_forms=True, rev_byteorder=True
        )
        width, height, stride, channels = bitmap.width, bitmap.height, bitmap.stride, bitmap.n_channels
        return width, height, bytes(bitmap.buffer), stride * 1000 + channels
    finally:
        document.close()


Box = tuple[float, float, float, float]


def _ink_by_box(pdf: bytes, page: int, boxes: dict[str, Box]) -> tuple[dict[str, int], int]:
    """Vermilion pixels inside each box, and outside all of them."""
    width, height, buffer, packed = _render(pdf, page)
    stride, channels = divmod(packed, 1000)
    scale = RENDER_DPI / 72
    pixel_boxes = {
        name: (x1 * scale, height - y2 * scale, x2 * scale, height - y1 * scale)
        for name, (x1, y1, x2, y2) in boxes.items()
    }
    inside = dict.fromkeys(boxes, 0)
    outside = 0
    for y in range(height):
        row = buffer[y * stride : y * stride + width * channels]
        if row[0::channels] == row[2::channels]:
            continue  # a grey row (red = blue everywhere): no ink on it
        for x in range(width):
            r, g, b = row[x * channels], row[x * channels + 1], row[x * channels + 2]
            if not _vermilion(r, g, b):
                continue
            for name, (px1, py1, px2, py2) in pixel_boxes.items():
                if px1 <= x + 0.5 <= px2 and py1 <= y + 0.5 <= py2:
                    inside[name] += 1
                    break
            else:
                outside += 1
    return inside, outside


def _fields(pdf: bytes) -> dict[str, tuple[tuple[float, float, float, float], bool]]:
    """Every signature field: its widget rectangle and whether it is signed."""
    reader = PdfFileReader(io.BytesIO(pdf))
    found = {}
    for name, value, ref in enumerate_sig_fields(reader):
        field = ref.get_object()
        rect = field.get("/Rect") or field["/Kids"][0].get_object()["/Rect"]
        found[name] = (tuple(float(v) for v in rect), value is not None)
    return found


def _audit_count(node: Node) -> int:
    with node.db.begin() as conn:
        return int(conn.execute(select(func.count()).select_from(t.audit_entries)).scalar_one())


def test_four_step_route_with_a_parallel_step_ends_sealed_certified_and_b_lta(world: World, tmp_path: Path) -> None:
    node, routes = world.node, world.routes
    route = routes.start(
        sample_pdf(2), "tanaka", FOUR_STEPS, document_name=DOCUMENT_NAME, comment="ご確認ください",
        deliver_to="criminal-affairs@moj",
    )
    assert route.state is RouteState.IN_PROGRESS and route.current_step == 0 and route.revision == 0
    assert route.strip_page == 2  # the short letter has room at the bottom of its last page
    assert [q.route.id for q in routes.queue("tanaka")] == [route.id]
    assert route.id not in [q.route.id for q in routes.queue("sato")]

    # Out of turn: the 係長 before the 担当 has stamped.
    with pytest.raises(PolicyError, match=r"not sato's turn: route \d+ is at step 1 \(担当\), waiting for tanaka"):
        routes.approve(route.id, "sato")
    assert routes.route(route.id).revision == 0

    route = routes.approve(route.id, "tanaka", SealKind.PERSONAL)
    route = routes.approve(route.id, "sato", SealKind.DATE)
    assert route.current_step == 2 and route.steps[1].state is StepState.DONE
    # 合議: both 課長 see it; after one stamps, only the other does, and the step is still open.
    assert route.id in [q.route.id for q in routes.queue("suzuki")]
    assert route.id in [q.route.id for q in routes.queue("kobayashi")]
    route = routes.approve(route.id, "kobayashi", SealKind.PERSONAL)
    assert route.current_step == 2 and route.waiting_for() == ("suzuki",)
    assert route.id not in [q.route.id for q in routes.queue("kobayashi")]
    with pytest.raises(PolicyError, match="kobayashi already stamped step 3"):
        routes.approve(route.id, "kobayashi")
    route = routes.approve(route.id, "suzuki", SealKind.PERSONAL)
    assert route.current_step == 3
    route = routes.approve(route.id, "kato", SealKind.DATE)
    assert route.state is RouteState.AWAITING_OFFICE_SEAL and route.waiting_for() == ()
    assert [q.action for q in routes.queue("kato") if q.route.id == route.id] == ["office_seal"]
    assert [q.action for q in routes.queue("yamada") if q.route.id == route.id] == []  # admin of another office

    # Without the role, or from another office, no office seal: and nothing changes.
    before = routes.route(route.id).revision
    for login, message in (
        ("mori", "mori is a clerk: only approvers and administrators may use the office seal"),
        ("tanaka", "tanaka is a clerk"),
        ("sato", "only an approver of the last step"),
    ):
        with pytest.raises(PolicyError, match=message):
            routes.office_seal(route.id, login)
    # Someone of another office, not on the route, learns nothing: the route does not exist for them.
    with pytest.raises(NotFoundError, match=f"no route {route.id}"):
        routes.office_seal(route.id, "ito")
    assert routes.route(route.id).revision == before
    with pytest.raises(PolicyError, match="only the office seal is missing"):
        routes.approve(route.id, "kato")

    route = routes.office_seal(route.id, "kato")
    assert route.state is RouteState.COMPLETED and route.office_sealed_by == "kato"
    final = routes.document(route.id)
    # Handed straight to delivery: the 刑事局 receives the sealed document.
    assert route.delivered_message_id is not None
    assert node.delivery is not None
    node.delivery.deliver_due()
    assert route.delivered_message_id in [m.message_id for m in node.delivery.inbox("criminal-affairs", "ito")]
    opened = node.delivery.open_message(route.delivered_message_id, "ito")
    assert [(d.name, d.data) for d in opened.documents] == [(f"route-{route.id}.pdf", final)]
    (tmp_path / "final.pdf").write_bytes(final)

    # pyHanko (through the sealing service): every seal valid, the closing seal locks, the file is B-LTA.
    assert node.sealing is not None
    report = node.sealing.verify(final)
    assert report.indication.value == "PASSED", report.reason
    seals = [r for r in report.seals if r.kind == "seal"]
    assert [r.field_name for r in seals] == [
        "inkless-step1-1", "inkless-step2-1", "inkless-step3-2", "inkless-step3-1", "inkless-step4-1",
        OFFICE_SEAL_FIELD,
    ]
    assert [r.signer_name for r in seals] == ["田中 花子", "佐藤 一郎", "小林 明", "鈴木 健二", "加藤 恵", "民事局"]
    assert all(r.trusted and r.intact and r.valid for r in seals)
    assert all(r.pades_level.value == "B-LTA" for r in report.seals)
    assert "locks the document" in (seals[-1].certification or "")
    assert report.seals[-1].kind == "document-timestamp"

    # poppler agrees that every seal is a valid ETSI.CAdES.detached signature.
    out = subprocess.run(["pdfsig", str(tmp_path / "final.pdf")], capture_output=True, text=True, check=False).stdout
    blocks = out.split("Signature #")[1:]
    regular = [b for b in blocks if "Timestamp-" not in b]
    assert len(regular) == 6
    for block in regular:
        assert "Signature Type: ETSI.CAdES.detached" in block, block
        assert "Signature Validation: Signature is Valid." in block, block

    # Each box holds its seal, and no vermilion lands anywhere else on the page.
    fields = _fields(final)
    boxes = {name: rect for name, (rect, signed) in fields.items() if name.startswith("inkless-")}
    assert all(signed for name, (_, signed) in fields.items() if name.startswith("inkless-"))
    inside, outside = _ink_by_box(final, route.strip_page, boxes)
    assert all(count > 150 for count in inside.values()), inside
    assert outside == 0
    # The date seals (three bands) and the 角印 carry more ink than a round personal seal.
    assert inside["inkless-step2-1"] > inside["inkless-step1-1"]
    assert inside[OFFICE_SEAL_FIELD] > inside["inkless-step1-1"]

    # The history: revision 0 with the strip, one per stamp, the office seal and its B-LTA extension.
    status = routes.status(route.id)
    assert [v.kind for v in status.revisions] == ["strip", "stamp", "stamp", "stamp", "stamp", "stamp",
                                                  "office_seal", "lta"]
    assert [e.action for e in status.events] == ["started"] + ["stamped"] * 5 + ["office_sealed"]
    assert status.events[0].comment == "ご確認ください"
    assert json.loads(json.dumps(status.to_dict()))["state"] == "completed"

    # Audit: an event for every action, never the document name or the comment.
    with node.db.begin() as conn:
        entries = conn.execute(
            select(t.audit_entries.c.action, t.audit_entries.c.entry).where(
                t.audit_entries.c.object_type == "route", t.audit_entries.c.object_id == str(route.id)
            ).order_by(t.audit_entries.c.idx)  # PostgreSQL returns rows in no particular order without one
        ).all()
    assert [e.action for e in entries] == (
        ["route.started"] + ["route.stamped"] * 5 + ["route.office_sealed", "route.delivered"]
    )
    text = b"".join(e.entry for e in entries).decode()
    assert DOCUMENT_NAME not in text and "ご確認ください" not in text


def test_a_returned_route_goes_back_to_the_right_step_and_restarts_its_document(world: World) -> None:
    node, routes = world.node, world.routes
    route = routes.start(
        sample_pdf(1, full_last_page=True), "mori",
        [StepPlan("担当", ("tanaka",)), StepPlan("係長", ("sato",)), StepPlan("課長", ("suzuki", "kobayashi"))],
        document_name="出張命令",
    )
    assert route.strip_page == 2  # the page was full: the strip got a page of its own
    route = routes.approve(route.id, "tanaka")
    after_tanaka = routes.document(route.id)
    route = routes.approve(route.id, "sato")
    route = routes.approve(route.id, "suzuki")
    assert route.revision == 3

    # Bad returns and rejections change nothing.
    entries = _audit_count(node)
    for call, error, message in (
        (lambda: routes.return_route(route.id, "kobayashi", None), ValidationError, "comment is required"),
        (lambda: routes.return_route(route.id, "kobayashi", "x", to_step=2), ValidationError, "earlier step"),
        (lambda: routes.return_route(route.id, "kobayashi", "x", to_step=-1), ValidationError, "earlier step"),
        (lambda: routes.return_route(route.id, "suzuki", "x"), PolicyError, "already stamped"),
        (lambda: routes.return_route(route.id, "sato", "x"), PolicyError, "not sato's turn"),
        # ito, of another office and not on the route, is told nothing about it.
        (lambda: routes.reject(route.id, "ito", "x"), NotFoundError, f"no route {route.id}"),
        (lambda: routes.reject(route.id, "kobayashi", "  "), ValidationError, "comment is required"),
        (lambda: routes.approve(route.id, "kobayashi", SealKind.OFFICE), ValidationError, "personal or date"),
        (lambda: routes.approve(route.id + 1000, "kobayashi"), NotFoundError, "no route"),
    ):
        with pytest.raises(error, match=message):
            call()
    assert routes.route(route.id).revision == 3 and _audit_count(node) == entries

    # 差し戻し by the second 課長: back to the 係長, whose and suzuki's seals are gone from the document.
    route = routes.return_route(route.id, "kobayashi", "予算額の根拠を添付してください", to_step=1)
    assert route.current_step == 1 and route.revision == 4
    assert route.steps[1].state is StepState.ACTIVE and not any(a.stamped for a in route.steps[1].approvers)
    assert route.steps[2].state is StepState.WAITING and not any(a.stamped for a in route.steps[2].approvers)
    assert route.steps[0].approvers[0].stamped  # the 担当's seal stays
    assert routes.document(route.id) == after_tanaka
    assert route.id in [q.route.id for q in routes.queue("sato")]
    assert route.id not in [q.route.id for q in routes.queue("suzuki")]
    status = routes.status(route.id)
    assert [v.kind for v in status.revisions] == ["strip", "stamp", "stamp", "stamp", "restart"]
    assert status.events[-1].action == "returned" and status.events[-1].to_step == 1
    assert status.events[-1].comment == "予算額の根拠を添付してください"

    # The 係長 sends it back further, to the 担当 (step 1), who stamps again on the restarted document.
    route = routes.return_route(route.id, "sato", "担当者の確認が必要", to_step=0)
    assert route.current_step == 0 and routes.document(route.id) == routes.document(route.id, revision=0)
    with pytest.raises(ValidationError, match="first step"):
        routes.return_route(route.id, "tanaka", "x", to_step=0)
    route = routes.approve(route.id, "tanaka")
    route = routes.approve(route.id, "sato")
    assert node.sealing is not None
    report = node.sealing.verify(routes.document(route.id))
    assert report.indication.value == "PASSED", report.reason
    assert [r.signer_name for r in report.seals if r.kind == "seal"] == ["田中 花子", "佐藤 一郎"]

    # 却下 ends the route.
    route = routes.reject(route.id, "suzuki", "今年度は見送り")
    assert route.state is RouteState.REJECTED and route.waiting_for() == ()
    with pytest.raises(PolicyError, match="was rejected"):
        routes.approve(route.id, "kobayashi")
    assert route.id not in [q.route.id for q in routes.queue("kobayashi")]
    with node.db.begin() as conn:
        actions = conn.execute(
            select(t.audit_entries.c.action)
            .where(t.audit_entries.c.object_type == "route", t.audit_entries.c.object_id == str(route.id))
            .order_by(t.audit_entries.c.idx)
        ).scalars().all()
    assert actions[-1] == "route.rejected" and actions.count("route.returned") == 2


def test_starting_a_route_refuses_bad_input_and_stores_nothing(world: World) -> None:
    node, routes = world.node, world.routes
    with node.db.begin() as conn:
        before = conn.execute(select(func.count()).select_from(s.routes)).scalar_one()
    entries = _audit_count(node)
    assert node.sealing is not None
    signed = node.sealing.seal(
        sample_pdf(1), "sato", SealKind.PERSONAL,
        SealPlacement(page=1, box=(400, 400, 460, 460)),
        actor="sato",
    )
    entries = _audit_count(node)
    one = [StepPlan("担当", ("tanaka",))]
    for pdf, steps, name, message in (
        (b"not a pdf", one, "x", "not a readable PDF"),
        (signed, one, "x", "already signed"),
        (sample_pdf(1), [], "x", "1 to 8 steps"),
        (sample_pdf(1), [StepPlan("担当", ("nobody",))], "x", "no user 'nobody'"),
        (sample_pdf(1), [StepPlan("担当", ("tanaka",)), StepPlan("係長", ("tanaka",))], "x", "steps 1 and 2"),
        (sample_pdf(1), [StepPlan("課長", ("sato", "sato"))], "x", "twice in that step"),
        (sample_pdf(1), [StepPlan("", ("sato",))], "x", "title"),
        (sample_pdf(1), [StepPlan("係長", ())], "x", "1 to 4 approvers"),
        (sample_pdf(1), one, " ", "document name"),
    ):
        with pytest.raises(ValidationError, match=message):
            routes.start(pdf, "mori", steps, document_name=name)
    with pytest.raises(ValidationError, match="not an office address"):
        routes.start(sample_pdf(1), "mori", one, document_name="x", deliver_to="nowhere")
    with node.db.begin() as conn:
        assert conn.execute(select(func.count()).select_from(s.routes)).scalar_one() == before
    assert _audit_count(node) == entries


def test_two_approvers_of_a_parallel_step_stamping_at_once_both_keep_their_seal(world: World) -> None:
    import asyncio

    node, routes = world.node, world.routes
    route = routes.start(sample_pdf(1), "mori", [StepPlan("課長", ("suzuki", "kobayashi"))], document_name="合議")

    async def both() -> None:
        await asyncio.gather(routes.approve_async(route.id, "suzuki"), routes.approve_async(route.id, "kobayashi"))

    asyncio.run(both())
    route = routes.route(route.id)
    assert route.state is RouteState.AWAITING_OFFICE_SEAL and route.revision == 2
    assert node.sealing is not None
    report = node.sealing.verify(routes.document(route.id))
    assert report.indication.value == "PASSED", report.reason
    assert sorted(r.signer_name or "" for r in report.seals) == ["小林 明", "鈴木 健二"]
