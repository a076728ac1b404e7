"""The fax service on a real node (SQLite and PostgreSQL) with the real modem path over loopback lines.

Inbound: a software remote calls the node's loopback line; the fax lands in the office whose
number was called, as a PDF with the fax facts, marked as from an unauthenticated sender.
Junk is blocked, unknown numbers wait in the administrators' queue. Outbound: a remote that is
busy twice, then answers; a remote that drops the call mid-page; the classification policy.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest
from PIL import Image
from sqlalchemy import func, select

from inkless.app import Node, init_node
from inkless.clock import FixedClock
from inkless.config import load_settings
from inkless.db.tables import audit_entries
from inkless.db.tables_fax import fax_calls, fax_jobs
from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, create_demo
from inkless.errors import ConflictError, InklessError, NotFoundError, PolicyError, ValidationError
from inkless.fax import imaging
from inkless.fax.jobs import JobSchedule
from inkless.fax.loopback import LoopbackLine
from inkless.fax.model import CallResult
from inkless.fax.service import FaxService
from inkless.fax.simulate import AnsweringRemote, send_document
from inkless.web.app import create_app
from tests.conftest import BACKENDS
from tests.helpers.db import fresh_database
from tests.helpers.faxdocs import three_page_pdf
from tests.helpers.nodes import settle_pending_work

with warnings.catch_warnings():
    # Starlette warns that its test client prefers the httpx2 package; httpx is what we have.
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

CIVIL_NUMBER = "03-3580-4111"  # civil-affairs in the demo data


@dataclass
class FaxNode:
    node: Node
    clock: FixedClock
    fax: FaxService
    sockets: Path


def _no_ocr(pdf: bytes) -> tuple[bytes, bool]:
    # OCR is tested end to end (tests/e2e/test_fax_inbound.py); here it would only cost time.
    return pdf, False


@pytest.fixture(scope="module", params=BACKENDS)
def shared_fax_node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaxNode]:
    """One demo node per backend, shared by the tests of this module (each uses its own numbers)."""
    folder = tmp_path_factory.mktemp("faxnode")
    # UNIX socket paths must stay under 108 bytes: pytest's tmp paths can be longer.
    sockets = Path(tempfile.mkdtemp(prefix="inkfax-"))
    # Start at the real time: envelopes carry the signing time of the CMS library, checked against the clock.
    clock = FixedClock(datetime.now(UTC))
    with fresh_database(str(request.param), folder) as url:
        settings = load_settings(folder, env={}, overrides={
            "node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION, "database_url": url})
        node = init_node(settings, clock)
        create_demo(node.directory)
        fax = FaxService(node.db, node.blobs, clock, node.audit, node.directory, node.node_id,
                         delivery=lambda: node.delivery, ocr=_no_ocr, schedule=JobSchedule(3, 60, 3600))
        node.fax = fax  # the web tests below serve this node
        try:
            yield FaxNode(node, clock, fax, sockets)
        finally:
            node.close()
            shutil.rmtree(sockets, ignore_errors=True)


@pytest.fixture
def fax_node(shared_fax_node: FaxNode) -> FaxNode:
    """The shared node with no fax job or message of an earlier test still waiting to be sent."""
    settle_pending_work(shared_fax_node.node)
    return shared_fax_node


def _audit_count(node: Node, action: str) -> int:
    with node.db.begin() as conn:
        return int(conn.execute(select(func.count()).select_from(audit_entries).where(
            audit_entries.c.action == action)).scalar_one())


def _received(pdf: bytes, *, cid: str | None, tsi: str | None, did: str | None, sub: str | None = None) -> CallResult:
    """A finished inbound call as the line reports it, for the routing cases that need no modem."""
    tiff = imaging.pdf_to_tiff(pdf, fine=False)
    return CallResult(
        success=True, t30_code=0, t30_text="OK", pages_transferred=3, pages_expected=None, remote_ident=tsi,
        local_ident="NODE", calling_number=cid, called_number=did, sub_address=sub, bit_rate=9600, ecm=False,
        compression="T.4 1D MH", bad_rows=2, duration_s=61.5, started_at=datetime(2026, 4, 1, 9, 0, tzinfo=UTC),
        received_tiff=tiff,
    )


def test_a_fax_to_an_office_number_arrives_in_its_inbox_marked_unauthenticated(fax_node: FaxNode) -> None:
    node, fax = fax_node.node, fax_node.fax
    assert node.delivery is not None
    pdf = three_page_pdf()
    line = LoopbackLine(fax_node.sockets / "in.sock", fax_node.sockets / "nowhere.sock", ident="0335804111")
    line.listen(fax.handler(line.name))
    try:
        sent = send_document(line.socket_path, "0335804111", pdf, from_number="0612345678", tsi="OSAKA SHOKAI")
    finally:
        line.close()  # waits for the node's side of the call, and so for the delivery
    assert sent.success, sent.t30_text
    [call] = [c for c in fax.calls(direction="RECV") if c.remote_number == "0612345678"]
    assert (call.status, call.office_code, call.routed_by, call.pages) == ("delivered", "civil-affairs", "did", 3)
    assert call.remote_ident == "OSAKA SHOKAI" and call.ecm and call.bit_rate > 0

    [item] = [i for i in node.delivery.inbox("civil-affairs", None) if i.message_id == call.message_id]
    assert item.source == "fax" and item.authenticated is False
    assert "0612345678" in item.sender
    opened = node.delivery.open_message(item.message_id, "tanaka")
    facts = opened.metadata.facts
    assert facts["cid"] == "0612345678" and facts["tsi"] == "OSAKA SHOKAI" and facts["did"] == "0335804111"
    assert facts["pages"] == 3 and facts["authenticated"] is False and facts["sender_status"] == "送信元未認証（FAX）"
    assert {"bit_rate", "ecm", "bad_rows", "received_at"} <= set(facts)
    [document] = opened.documents
    assert document.content_type == "application/pdf"
    # The pages decode to what the remote rendered (same geometry, near-identical pixels).
    original = imaging.tiff_images(imaging.document_to_tiff(pdf))
    received = _pdf_pages(document.data, fax_node.sockets)
    assert len(received) == 3
    for mine, theirs in zip(original, received, strict=True):
        assert imaging.pixel_difference(mine, theirs) < 0.01
    # Nobody outside the office sees it.
    with pytest.raises(NotFoundError):
        node.delivery.open_message(item.message_id, "takahashi")


def _pdf_text(pdf: bytes) -> str:
    return subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()


def _pdf_pages(pdf: bytes, folder: Path) -> list[object]:
    """The CCITT images embedded in a PDF, extracted as-is by poppler's pdfimages."""
    from PIL import Image

    out = folder / "pages"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    (out / "in.pdf").write_bytes(pdf)
    subprocess.run(["pdfimages", "-tiff", str(out / "in.pdf"), str(out / "p")], check=True)
    return [Image.open(p).convert("1") for p in sorted(out.glob("p-*.tif"))]


def test_received_faxes_keep_their_proportions_at_standard_and_fine_resolution() -> None:
    source = three_page_pdf()
    for fine in (False, True):
        document = imaging.tiff_to_pdf(imaging.pdf_to_tiff(source, fine=fine))
        info = subprocess.run(["pdfinfo", "-"], input=document, capture_output=True, check=True).stdout.decode()
        size = next(line for line in info.splitlines() if line.startswith("Page size"))
        width, height = (float(v) for v in size.split(":")[1].split("pts")[0].split("x"))
        # The scan line is 1728 px at 204 dpi = 215 mm; an A4 page stays 297 mm long at 98 and 196 lines/inch.
        assert abs(width / 72 * 25.4 - 215.1) < 1
        assert abs(height / 72 * 25.4 - 297) < 2


def test_blocked_and_unroutable_faxes(fax_node: FaxNode) -> None:
    node, fax = fax_node.node, fax_node.fax
    assert node.delivery is not None
    pdf = three_page_pdf()
    before = len(node.delivery.inbox("civil-affairs", None))
    entry = fax.add_block("cid", "0120-444-444", "junk", actor="yamada")
    fax.add_block("tsi", r".*SALE.*", None, actor="yamada")
    with pytest.raises(ConflictError):
        fax.add_block("cid", "0120-444-444", "again", actor="yamada")
    blocked = fax.receive(_received(pdf, cid="0120444444", tsi="X", did=CIVIL_NUMBER), "loopback")
    blocked2 = fax.receive(_received(pdf, cid="0311112222", tsi="big sale", did=CIVIL_NUMBER), "loopback")
    assert blocked.status == blocked2.status == "blocked" and blocked.message_id is None
    assert len(node.delivery.inbox("civil-affairs", None)) == before
    assert _audit_count(node, "fax.blocked") >= 2
    with node.db.begin() as conn:
        assert conn.execute(select(fax_calls.c.tiff_blob).where(fax_calls.c.id == blocked.call_id)).scalar() is None

    lost = fax.receive(_received(pdf, cid="0455556666", tsi="YOKOHAMA", did="0399990000"), "loopback")
    assert lost.status == "unroutable"
    assert [c.id for c in fax.unroutable()] == [lost.call_id]
    assert fax.received_image(lost.call_id).startswith(b"%PDF-")
    assignee = fax.assign(lost.call_id, "criminal-affairs", actor="yamada")
    assert assignee.status == "delivered" and assignee.office_code == "criminal-affairs"
    assert fax.unroutable() == []
    assert fax.call(lost.call_id).routed_by == "admin:yamada"
    assert any(i.message_id == assignee.message_id for i in node.delivery.inbox("criminal-affairs", None))

    # Bad input: a damaged image, a decompression bomb, a call that delivered no page. Each is logged
    # as failed with its reason, the inbox stays as it was, and the next fax is unaffected.
    import dataclasses

    # 60,000 rows of 1728 pixels: 7.8 m of paper, a few hundred bytes of G4 (a decompression bomb).
    absurd = io.BytesIO()
    Image.new("1", (1728, 60_000), 1).save(absurd, format="TIFF", compression="group4", dpi=(204, 196))
    bomb = absurd.getvalue()
    for tiff, pages in ((b"II*\x00" + b"\x00" * 64, 3), (bomb, 1), (None, 0)):
        result = dataclasses.replace(_received(pdf, cid="0311110000", tsi="BAD", did=CIVIL_NUMBER),
                                     received_tiff=tiff, pages_transferred=pages, success=tiff is not None)
        failed = fax.receive(result, "loopback")
        assert failed.status == "failed" and failed.message_id is None
        assert fax.call(failed.call_id).t30_text
        if tiff is bomb:
            assert re.search("rows|decompression bomb", fax.call(failed.call_id).t30_text)
    assert len(node.delivery.inbox("civil-affairs", None)) == before

    # A rule by sub-address beats the office number; an unknown rule office or bad pattern changes nothing.
    rule = fax.add_rule("subaddress", "77", "criminal-affairs", priority=10, actor="yamada")
    routed = fax.receive(_received(pdf, cid="0311113333", tsi="T", did=CIVIL_NUMBER, sub="77"), "loopback")
    assert (routed.status, routed.office_code) == ("delivered", "criminal-affairs")
    for bad in (("did", "nonsense"), ("tsi", "(")):
        with pytest.raises(ValidationError):
            fax.add_rule(bad[0], bad[1], "civil-affairs", actor="yamada")
    with pytest.raises(NotFoundError):
        fax.add_rule("cid", "0311.*", "no-such-office", actor="yamada")
    assert [r.id for r in fax.rules()] == [rule.id]
    fax.remove_rule(rule.id, actor="yamada")
    fax.remove_block(entry.id, actor="yamada")
    assert [b.kind for b in fax.blocks()] == ["tsi"]


def test_outbound_busy_twice_then_sent_with_one_success_report(fax_node: FaxNode) -> None:
    node, fax, clock = fax_node.node, fax_node.fax, fax_node.clock
    sent_before = _audit_count(node, "fax.sent")
    remote_sock = fax_node.sockets / "remote-busy.sock"
    line = LoopbackLine(fax_node.sockets / "unused1.sock", remote_sock)
    with AnsweringRemote(remote_sock, fax_node.sockets / "busy-out", busy=2) as remote:
        job_id = fax.send("tanaka", "civil-affairs", "06-1234-5678", [three_page_pdf()], cover_page=True,
                          classification=1, confirm_internal=True, subject="避難所の開設",
                          schedule=JobSchedule(max_tries=3, interval_s=60, kill_after_s=3600))
        assert fax.job(job_id).pages == 4  # the cover page first
        assert fax.run_due_jobs(line) == 1
        assert (fax.job(job_id).state, fax.job(job_id).last_text) == ("retrying", "busy")
        assert fax.run_due_jobs(line) == 0  # not due before the interval has passed
        clock.advance(seconds=60)
        assert fax.run_due_jobs(line) == 1
        clock.advance(seconds=60)
        assert fax.run_due_jobs(line) == 1
        [received] = remote.wait_for_results(1, timeout_s=60)
    job = fax.job(job_id)
    assert (job.state, job.tries, job.last_code) == ("done", 3, 0)
    attempts = fax.attempts(job_id)
    assert [a.status for a in attempts] == ["retry", "retry", "done"]
    assert [a.t30_text for a in attempts[:2]] == ["busy", "busy"]
    assert attempts[2].pages == 4 and attempts[2].bit_rate > 0 and attempts[2].duration_s > 0
    assert received.pages_transferred == 4
    # One transmission report per attempt: a one-page PDF each.
    assert all(a.has_report for a in attempts)
    texts = [_pdf_text(fax.call_report(a.id)) for a in attempts]
    assert all("busy" in text and "失敗・再送予定" in text for text in texts[:2])
    assert "送信成功" in texts[2] and "06-1234-5678" in texts[2], texts[2]
    assert re.search(r"枚数 / Pages\s+4\s*/\s*4", texts[2]), texts[2]
    assert _pdf_text(fax.job_report(job_id)) == texts[2]
    assert sum(1 for a in attempts if a.status == "done") == 1
    assert _audit_count(node, "fax.sent") == sent_before + 1


def test_outbound_dropped_mid_page_is_reported_with_the_t30_reason_and_retried(fax_node: FaxNode) -> None:
    fax, clock = fax_node.fax, fax_node.clock
    remote_sock = fax_node.sockets / "remote-drop.sock"
    line = LoopbackLine(fax_node.sockets / "unused2.sock", remote_sock)
    with AnsweringRemote(remote_sock, fax_node.sockets / "drop-out", hangup_after_page=1):
        job_id = fax.send("tanaka", "civil-affairs", "06-1234-9999", [three_page_pdf()], cover_page=False,
                          schedule=JobSchedule(max_tries=2, interval_s=60, kill_after_s=3600))
        assert fax.run_due_jobs(line) == 1
        job = fax.job(job_id)
        [first] = fax.attempts(job_id)
        assert first.status == "retry" and first.pages < 3 and first.t30_text and first.t30_code != 0
        # The job shows the T.30 reason of its last attempt.
        assert (job.state, job.last_code, job.last_text) == ("retrying", first.t30_code, first.t30_text)
        clock.advance(seconds=60)
        assert fax.run_due_jobs(line) == 1
    job = fax.job(job_id)
    assert job.state == "failed" and "gave up after 2 tries" in (job.last_text or "")
    assert [a.status for a in fax.attempts(job_id)] == ["retry", "failed"]


def test_policy_refuses_confidential_and_asks_to_confirm_internal(fax_node: FaxNode) -> None:
    node, fax = fax_node.node, fax_node.fax
    pdf = three_page_pdf()
    with node.db.begin() as conn:
        jobs_before = conn.execute(select(func.count()).select_from(fax_jobs)).scalar_one()
    refused_before = _audit_count(node, "fax.refused")
    with pytest.raises(PolicyError, match="never sent by fax"):
        fax.send("sato", "civil-affairs", "0311112222", [pdf], classification=2, confirm_internal=True)
    with pytest.raises(PolicyError, match="never sent by fax"):
        fax.send("suzuki", "civil-affairs", "0311112222", [pdf], classification=3, confirm_internal=True)
    with pytest.raises(ValidationError, match="needs confirmation"):
        fax.send("tanaka", "civil-affairs", "0311112222", [pdf], classification=1)
    bad_inputs = [
        dict(number="not a number"), dict(number=""), dict(documents=[]), dict(documents=[b"GIF89a"]),
        dict(documents=[b"%PDF-1.7 garbage"]), dict(from_office="criminal-affairs"),
    ]
    for bad in bad_inputs:
        args = {"number": "0311112222", "documents": [pdf], "from_office": "civil-affairs", **bad}
        with pytest.raises(InklessError) as caught:
            fax.send("tanaka", str(args["from_office"]), str(args["number"]), args["documents"])  # type: ignore[arg-type]
        assert caught.value.message
    with node.db.begin() as conn:
        assert conn.execute(select(func.count()).select_from(fax_jobs)).scalar_one() == jobs_before
    assert _audit_count(node, "fax.refused") == refused_before + 3  # two levels refused, one foreign office


PASSWORD = "kawa-no-nagare-2026"


def _login(client: TestClient, node: Node, clock: FixedClock, login: str) -> str:
    """Log in through the pages (password, then TOTP); returns the session's CSRF token."""
    secret = node.directory.totp_secret(login)
    # The module's node is shared: another test may already have used this login's current time steps.
    clock.advance(seconds=120)
    node.directory.verify_totp(login, pyotp.TOTP(secret).at(clock.now() - timedelta(seconds=30)))
    node.directory.set_password(login, PASSWORD, actor="test")
    page = client.post("/login", data={"login": login, "password": PASSWORD})
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    done = client.post("/login/totp", data={"code": pyotp.TOTP(secret).at(clock.now()), "csrf_token": csrf.group(1)})
    assert done.status_code == 200
    fresh = re.search(r'name="csrf_token" value="([^"]+)"', done.text)
    assert fresh
    return fresh.group(1)


def test_fax_pages_for_clerks_and_administrators(fax_node: FaxNode) -> None:
    node, fax, clock = fax_node.node, fax_node.fax, fax_node.clock
    pdf = three_page_pdf()
    unroutable = fax.receive(_received(pdf, cid="0798-11-2222", tsi="NISHINOMIYA", did="0355550000"), "loopback")
    delivered = fax.receive(_received(pdf, cid="0798-33-4444", tsi="AMAGASAKI", did=CIVIL_NUMBER), "loopback")
    app = create_app(node)
    with TestClient(app) as clerk, TestClient(app) as admin:
        csrf = _login(clerk, node, clock, "tanaka")
        page = clerk.get("/fax")
        assert page.status_code == 200 and "FAXを送信" in page.text and 'href="/fax/log"' in page.text
        assert 'href="/fax/admin"' not in page.text  # clerks see no admin link
        # In the inbox a fax is marked wherever it is shown: its sender is not authenticated.
        inbox = clerk.get("/offices/civil-affairs/inbox")
        row = re.search(rf'<tr data-message="{delivered.message_id}"[^>]*>(.*?)</tr>', inbox.text, re.S)
        assert row and "0798-33-4444" in row.group(1) and "送信元未認証（FAX）" in row.group(1)
        form = {"number": "06-1234-0000", "subject": "", "csrf_token": csrf}
        files = {"document": ("notice.pdf", pdf, "application/pdf")}
        jobs_before = len(fax.jobs("civil-affairs"))
        refused = clerk.post("/fax/send", data={**form, "classification": "2", "confirm": "1"}, files=files)
        assert refused.status_code == 403 and "FAXで送信できません" in refused.text
        unconfirmed = clerk.post("/fax/send", data={**form, "classification": "1"}, files=files)
        assert unconfirmed.status_code == 422 and "確認が必要です" in unconfirmed.text
        no_file = clerk.post("/fax/send", data={**form, "classification": "0"})
        assert no_file.status_code == 422 and "送信するPDFファイルを選んでください" in no_file.text
        assert len(fax.jobs("civil-affairs")) == jobs_before
        # Nothing is queued before the clerk confirms number, recipient, pages and classification.
        check = clerk.post("/fax/send", data={**form, "classification": "1", "confirm": "1", "cover": "1"},
                           files=files)
        assert check.status_code == 200 and "FAX送信の確認" in check.text
        assert "3ページ" in check.text and "（ほかに送付状1枚）" in check.text
        assert len(fax.jobs("civil-affairs")) == jobs_before
        draft = re.search(r'name="draft" value="([^"]+)"', check.text)
        assert draft
        sent = clerk.post("/fax/send", data={**form, "classification": "1", "confirm": "1", "cover": "1",
                                             "draft": draft.group(1), "step": "send"})
        assert sent.status_code == 200 and "を受け付けました" in sent.text
        [job] = [j for j in fax.jobs("civil-affairs") if j.number == "06-1234-0000"]
        assert (job.pages, job.classification, job.cover_page, job.created_by) == (4, 1, True, "tanaka")
        assert clerk.get("/fax/admin").status_code == 403
        assert clerk.get(f"/fax/admin/calls/{unroutable.call_id}/image").status_code == 403
        # The clerk's fax log shows the office's calls only, and received faxes carry the badge.
        log = clerk.get("/fax/log")
        assert log.status_code == 200 and "NISHINOMIYA" not in log.text
        api_jobs = clerk.get("/api/v1/fax/jobs")
        assert api_jobs.status_code == 200 and job.id in [j["id"] for j in api_jobs.json()]
        headers = {"X-CSRF-Token": csrf}
        refused_api = clerk.post("/api/v1/fax/jobs", data={"number": "0611112222", "classification": "3"},
                                 files=files, headers=headers)
        assert refused_api.status_code == 403 and "never sent by fax" in refused_api.json()["detail"]
        bad_api = clerk.post("/api/v1/fax/jobs", data={"number": "0611112222", "interval": "soon"},
                             files=files, headers=headers)
        assert bad_api.status_code == 422
        assert len(fax.jobs("civil-affairs")) == jobs_before + 1
        created = clerk.post("/api/v1/fax/jobs", data={"number": "0611112222", "tries": "5", "interval": "2m"},
                             files=files, headers=headers)
        assert created.status_code == 201, created.text
        body = created.json()
        assert (body["state"], body["pages"], body["max_tries"], body["interval_s"]) == ("queued", 3, 5, 120)
        assert clerk.get(f"/api/v1/fax/jobs/{body['id']}").json()["number"] == "0611112222"
        assert clerk.get("/api/v1/fax/unroutable").status_code == 403

        admin_csrf = _login(admin, node, clock, "yamada")
        queue = admin.get("/fax/admin")
        assert queue.status_code == 200 and "NISHINOMIYA" in queue.text and "送信元未認証（FAX）" in queue.text
        assert "接続先ノードに60分以上つながらない場合" in queue.text  # whole minutes shown as such, not "60.0"
        image = admin.get(f"/fax/admin/calls/{unroutable.call_id}/image")
        assert image.status_code == 200 and image.content.startswith(b"%PDF-")
        bad = admin.post("/fax/admin/rules", data={"kind": "tsi", "pattern": "(", "office": "secretariat",
                                                  "priority": "5", "csrf_token": admin_csrf})
        assert bad.status_code == 422 and fax.rules() == []
        assert admin.post("/fax/admin/rules", data={"kind": "cid", "pattern": "0798.*", "office": "secretariat",
                                                   "priority": "5"}).status_code == 403  # no CSRF token
        ok = admin.post("/fax/admin/rules", data={"kind": "cid", "pattern": "0798.*", "office": "secretariat",
                                                 "priority": "5", "csrf_token": admin_csrf}, follow_redirects=False)
        assert ok.status_code == 303 and [r.pattern for r in fax.rules()] == ["0798.*"]
        assigned = admin.post(f"/fax/admin/unroutable/{unroutable.call_id}/assign",
                              data={"office": "secretariat", "csrf_token": admin_csrf}, follow_redirects=False)
        assert assigned.status_code == 303 and fax.call(unroutable.call_id).status == "delivered"
        toggled = admin.post("/fax/admin/offices/civil-affairs/fallback",
                             data={"enabled": "1", "csrf_token": admin_csrf}, follow_redirects=False)
        assert toggled.status_code == 303 and fax.office_settings("civil-affairs").fallback_enabled
        covered = admin.post("/fax/admin/offices/criminal-affairs/cover",
                             data={"enabled": "1", "csrf_token": admin_csrf}, follow_redirects=False)
        assert covered.status_code == 303 and fax.office_settings("criminal-affairs").cover_page_default
        fax.set_office_settings("criminal-affairs", cover_page_default=False, actor="yamada")
        log = admin.get("/fax/log")
        assert "NISHINOMIYA" in log.text and "送信元未認証（FAX）" in log.text
        calls = admin.get("/api/v1/fax/calls").json()
        assert any(c["remote_ident"] == "NISHINOMIYA" and c["authenticated"] is False for c in calls)
        for rule in fax.rules():
            fax.remove_rule(rule.id, actor="yamada")
        fax.set_office_settings("civil-affairs", fallback_enabled=False, actor="yamada")


def test_administrators_see_only_unroutable_faxes_of_other_offices(fax_node: FaxNode) -> None:
    node, fax, clock = fax_node.node, fax_node.fax, fax_node.clock
    clock.advance(seconds=90)  # fresh TOTP steps for the logins below
    pdf = three_page_pdf()
    delivered = fax.receive(_received(pdf, cid="0798-55-6666", tsi="KOBE", did=CIVIL_NUMBER), "loopback")
    unroutable = fax.receive(_received(pdf, cid="0798-77-8888", tsi="AKASHI", did="0355559999"), "loopback")
    assert fax.call(delivered.call_id).status == "delivered"
    remote_sock = fax_node.sockets / "remote-secret.sock"
    line = LoopbackLine(fax_node.sockets / "unused-secret.sock", remote_sock)
    with AnsweringRemote(remote_sock, fax_node.sockets / "secret-out", busy=1):
        job_id = fax.send("tanaka", "civil-affairs", "06-1234-9999", [pdf], cover_page=True, classification=1,
                          confirm_internal=True, subject="機密の件",
                          schedule=JobSchedule(max_tries=3, interval_s=60, kill_after_s=3600))
        fax.run_due_jobs(line)  # (jobs queued by other tests of the module may be dialled too)
    assert fax.job(job_id).has_report
    app = create_app(node)
    with TestClient(app) as clerk, TestClient(app) as admin:
        _login(clerk, node, clock, "tanaka")
        _login(admin, node, clock, "yamada")  # administrator of the secretariat, not of civil-affairs
        # The office's own clerk gets the report; the UI and the API agree.
        own = clerk.get(f"/fax/jobs/{job_id}/report")
        assert own.status_code == 200 and own.content.startswith(b"%PDF-")
        assert clerk.get(f"/api/v1/fax/jobs/{job_id}/report").status_code == 200
        # An administrator of another office gets neither the report nor the delivered fax's pages.
        assert admin.get(f"/api/v1/fax/jobs/{job_id}/report").status_code == 404
        report = admin.get(f"/fax/jobs/{job_id}/report")
        assert report.status_code == 404 and b"%PDF" not in report.content
        image = admin.get(f"/fax/admin/calls/{delivered.call_id}/image")
        assert image.status_code == 404 and b"%PDF" not in image.content
        # ... but still the unroutable fax they must route.
        queued = admin.get(f"/fax/admin/calls/{unroutable.call_id}/image")
        assert queued.status_code == 200 and queued.content.startswith(b"%PDF-")
        fax.assign(unroutable.call_id, "secretariat", "yamada")
        assert admin.get(f"/fax/admin/calls/{unroutable.call_id}/image").status_code == 404
        # The operator on the node (CLI) still sees every received fax.
        assert fax.received_image(delivered.call_id).startswith(b"%PDF-")


def test_a_fax_interrupted_before_its_deposit_is_delivered_once_by_the_worker(fax_node: FaxNode) -> None:
    node, fax = fax_node.node, fax_node.fax
    assert node.delivery is not None
    # A process that logged and routed the call but never got to the inbox (here: no delivery service).
    interrupted = FaxService(node.db, node.blobs, fax_node.clock, node.audit, node.directory, node.node_id,
                             delivery=lambda: None, ocr=_no_ocr)
    waiting = interrupted.receive(_received(three_page_pdf(), cid="0466001122", tsi="FUJISAWA", did=CIVIL_NUMBER),
                                  "loopback")
    assert waiting.status == "routed"
    before = len(node.delivery.inbox("civil-affairs", None))
    assert fax.deliver_pending(older_than_s=0) == 1
    assert fax.deliver_pending(older_than_s=0) == 0
    assert fax.deliver_call(waiting.call_id).status == "delivered"  # idempotent: nothing deposited again
    assert len(node.delivery.inbox("civil-affairs", None)) == before + 1


def test_a_job_that_cannot_be_dialled_fails_at_its_kill_time(fax_node: FaxNode) -> None:
    fax, clock = fax_node.fax, fax_node.clock
    job_id = fax.send("tanaka", "civil-affairs", "06-1234-7777", [three_page_pdf()],
                      schedule=JobSchedule(max_tries=3, interval_s=60, kill_after_s=600))
    assert job_id not in fax.expire_jobs()
    clock.advance(seconds=601)
    assert job_id in fax.expire_jobs()
    job = fax.job(job_id)
    assert (job.state, job.tries) == ("failed", 0) and "kill time" in (job.last_text or "")
    assert job_id not in fax.claim_due_jobs()


@pytest.mark.slow  # tesseract on a full page
def test_ocr_adds_a_searchable_layer_and_keeps_the_fax_image_bytes() -> None:
    import pikepdf

    from inkless.fax.ocr import searchable_pdf
    from tests.helpers.faxdocs import JAPANESE_PHRASE

    first_page = imaging.read_tiff(imaging.pdf_to_tiff(three_page_pdf(), fine=False))[0]
    pdf = imaging.tiff_to_pdf(first_page.image)  # standard resolution: 204×98, as many machines send

    def ccitt_streams(document: bytes) -> list[bytes]:
        with pikepdf.open(io.BytesIO(document)) as doc:
            return [image.read_raw_bytes() for page in doc.pages for image in page.get_images().values()]

    searchable, ok = searchable_pdf(pdf)
    assert ok
    assert ccitt_streams(searchable) == ccitt_streams(pdf)  # the received data, byte for byte
    text = subprocess.run(["pdftotext", "-", "-"], input=searchable, capture_output=True, check=True).stdout.decode()
    assert JAPANESE_PHRASE in re.sub(r"\s+", "", text)
    # OCR that fails leaves the fax as it was: delivered without a text layer, never lost.
    assert searchable_pdf(b"%PDF-1.4 damaged") == (b"%PDF-1.4 damaged", False)
