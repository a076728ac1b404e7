"""The services count their own events (SQLite and PostgreSQL): a message sent and delivered, faxes
received with procedures from rules (CID, keyword on page 1), an unroutable fax assigned, a fax
classified, a route stamped — each counter moves as it should, and a rebuild agrees."""

from __future__ import annotations

from datetime import UTC, datetime

from inkless.app import Node
from inkless.delivery.service import NewDocument
from inkless.directory.demo import DemoSample
from inkless.fax import imaging
from inkless.fax.jobs import JobSchedule
from inkless.fax.model import CallResult
from inkless.fax.service import FaxService
from inkless.metrics import rollup as r
from inkless.metrics.demo import create_demo_procedures
from inkless.metrics.periods import week_of
from inkless.seals.routes import StepPlan
from tests.helpers.faxdocs import JAPANESE_PHRASE, three_page_pdf
from tests.helpers.route_docs import sample_pdf

CIVIL_NUMBER = "03-3580-4111"
STARTED = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)  # Wednesday 10:00 JST
WEEK = week_of(STARTED)


def _call(pdf: bytes, *, cid: str, did: str) -> CallResult:
    return CallResult(
        success=True, t30_code=0, t30_text="OK", pages_transferred=3, pages_expected=None, remote_ident="SENDER",
        local_ident="NODE", calling_number=cid, called_number=did, sub_address=None, bit_rate=9600, ecm=False,
        compression="T.4 1D MH", bad_rows=0, duration_s=40.0, started_at=STARTED,
        received_tiff=imaging.pdf_to_tiff(pdf, fine=False),
    )


def _counts(node: Node, office: str, procedure: str) -> dict[str, int]:
    assert node.metrics is not None
    with node.db.read() as conn:
        kept = r.stored(conn)
    return {k[3]: v for k, v in kept.items() if k[:3] == (WEEK, office, procedure)}


def test_services_count_their_events(node: Node, demo: DemoSample) -> None:
    assert node.procedures is not None and node.metrics is not None and node.delivery is not None
    create_demo_procedures(node.procedures)
    metrics = node.metrics
    metrics.add_rule("cid", "06-1234-5678", "MOJ-MIN-006", "yamada")
    metrics.add_rule("keyword", JAPANESE_PHRASE[:6], "MOJ-KAN-011", "yamada")
    text_pdf = three_page_pdf()
    # OCR stands in as the page's own text layer while ``ocr_text`` holds it (OCR itself is tested in
    # tests/e2e/test_fax_inbound.py); without it the fax has no text.
    ocr_text = [text_pdf]
    fax = FaxService(node.db, node.blobs, node.clock, node.audit, node.directory, node.node_id,
                     delivery=lambda: node.delivery,
                     ocr=lambda pdf: (ocr_text[0], True) if ocr_text else (pdf, False),
                     schedule=JobSchedule(3, 60, 3600))

    # A message sent with a procedure, delivered to another office of the node.
    message_id = node.delivery.send("tanaka", "civil-affairs", ["criminal-affairs@moj"], [], "照会",
                                    [NewDocument("a.pdf", sample_pdf(1))], procedure_code="MOJ-MIN-001")
    assert node.delivery.deliver_due().delivered == 1
    week_now = week_of(node.clock.now())
    with node.db.read() as conn:
        kept = r.stored(conn)
    assert kept[(week_now, "civil-affairs", "MOJ-MIN-001", r.MESSAGES_OUT)] == 1
    assert kept[(week_now, "criminal-affairs", "MOJ-MIN-001", r.MESSAGES_IN)] == 1
    assert [i.ref for i in metrics.items(r.MESSAGES_OUT, week_now, "civil-affairs", "MOJ-MIN-001")] == [message_id]

    # Faxes: by CID rule; by the keyword on page 1; unroutable, then assigned; then classified by a clerk.
    by_cid = fax.receive(_call(text_pdf, cid="06-1234-5678", did=CIVIL_NUMBER), "loopback")
    assert by_cid.status == "delivered"
    assert _counts(node, "civil-affairs", "MOJ-MIN-006") == {r.FAX_IN: 1, r.FAX_IN_PAGES: 3}
    by_keyword = fax.receive(_call(text_pdf, cid="0120-000-000", did=CIVIL_NUMBER), "loopback")
    assert by_keyword.status == "delivered"
    assert _counts(node, "civil-affairs", "MOJ-KAN-011") == {r.FAX_IN: 1, r.FAX_IN_PAGES: 3}
    assert _counts(node, "civil-affairs", "") == {}
    ocr_text.clear()
    lost = fax.receive(_call(sample_pdf(1), cid="0120-000-001", did="099-999-9999"), "loopback")
    assert lost.status == "unroutable"
    assert _counts(node, "", "") == {r.FAX_IN: 1, r.FAX_IN_PAGES: 3}
    fax.assign(lost.call_id, "criminal-affairs", "yamada")
    assert all(v == 0 for v in _counts(node, "", "").values())
    assert _counts(node, "criminal-affairs", "") == {r.FAX_IN: 1, r.FAX_IN_PAGES: 3}
    metrics.classify_fax(lost.call_id, "MOJ-KEI-001", "takahashi", office="criminal-affairs")
    assert _counts(node, "criminal-affairs", "MOJ-KEI-001") == {r.FAX_IN: 1, r.FAX_IN_PAGES: 3}
    assert all(v == 0 for v in _counts(node, "criminal-affairs", "").values())

    # A route with a procedure: the approver's stamp is a digital seal.
    assert node.routes is not None
    route = node.routes.start(sample_pdf(1), "tanaka", [StepPlan("係長", ("sato",))], document_name="契約書",
                              procedure_code="MOJ-MIN-002")
    node.routes.approve(route.id, "sato")
    with node.db.read() as conn:
        kept = r.stored(conn)
    assert kept[(week_now, "civil-affairs", "MOJ-MIN-002", r.SEALS_DIGITAL)] == 1

    # Everything the services kept is what a rebuild from the source rows computes.
    assert r.rebuild(node.db, check_only=True).differences == {}
