"""Issue 10, test 3: bad input at the public intake window.

Wrong codes lock after 5 tries; an .exe renamed .pdf and a 60,000 × 60,000 PNG are refused by
content; HTML in the name stays text and bidi controls are refused; 1,000 submissions from one
address in a minute are rate-limited without affecting anyone else; each case is audited (one
entry for a lock, tallies for the anonymous traffic). Real SQLite and PostgreSQL, real pyHanko,
the node's real mail outbox.
"""

from __future__ import annotations

import dataclasses
import json
import re
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from inkless.app import Node, init_node
from inkless.audit.tasks import tally_anonymous_traffic
from inkless.clock import FixedClock
from inkless.config import load_settings
from inkless.db import tables as t
from inkless.db.tables_intake import intake_codes, intake_submissions
from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, create_demo
from inkless.intake.tasks import purge_expired_codes
from inkless.web.app import create_app
from tests.conftest import BACKENDS
from tests.helpers.db import fresh_database
from tests.helpers.intake import FORM, OFFICE, code_in, huge_png, open_window, two_files
from tests.helpers.mailbox import Mailbox, smtp_nowhere
from tests.helpers.nodes import refused_url
from tests.helpers.web import browser_login

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

TALLY_SECONDS = 600


@dataclasses.dataclass
class Shared:
    """One node per backend for the module; each test starts in a fresh tally period."""

    node: Node
    clock: FixedClock
    mailbox: Mailbox
    audit_start: int = 0
    inbox_start: int = 0
    # Codes and submissions of earlier tests (their second may be this test's: times cannot tell them apart).
    earlier_codes: frozenset[str] = frozenset()
    earlier_submissions: frozenset[str] = frozenset()


@pytest.fixture(scope="module", params=BACKENDS)
def shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    clock = FixedClock(datetime.now(UTC).replace(microsecond=0))
    folder = tmp_path_factory.mktemp("intake")
    with fresh_database(str(request.param), folder) as url:
        settings = load_settings(folder, env={}, overrides={
            "node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION, "database_url": url,
            "base_url": refused_url(), "workers": False, "audit_tally_seconds": TALLY_SECONDS,
            "smtp_url": smtp_nowhere(), "smtp_from": "法務省 民事局 <no-reply@moj.example.lg.jp>",
        })
        node = init_node(settings, clock)
        try:
            create_demo(node.directory)
            open_window(node)
            yield Shared(node, clock, Mailbox.of(node))
        finally:
            node.close()


def _flush_tallies(s: Shared) -> None:
    # The clock stands still in a test (one rate-limit minute); closing the period means stepping past it
    # and back: seals and envelopes are checked against real time, which a clock left ahead would break.
    now = s.clock.current
    s.clock.advance(seconds=TALLY_SECONDS)
    tally_anonymous_traffic(s.node)
    s.clock.current = now


@pytest.fixture
def state(shared: Shared) -> Shared:
    """The reset between tests: earlier traffic tallied away, the clock at the real time, counts taken from here."""
    _flush_tallies(shared)
    shared.clock.current = datetime.now(UTC).replace(microsecond=0)
    shared.mailbox.mark()
    with shared.node.db.read() as conn:
        shared.audit_start = int(conn.execute(select(func.coalesce(func.max(t.audit_entries.c.idx), -1))).scalar_one())
        shared.earlier_codes = frozenset(conn.execute(select(intake_codes.c.token_hash)).scalars())
        shared.earlier_submissions = frozenset(conn.execute(select(intake_submissions.c.receipt_number)).scalars())
    shared.inbox_start = inbox_count(shared.node)
    return shared


def client(node: Node, address: str = "198.51.100.7") -> TestClient:
    return TestClient(create_app(node), client=(address, 40000))


def submit(c: TestClient, form: dict[str, str] | None = None, files: Any = None) -> Any:
    return c.post(f"/intake/{OFFICE}", data=form or FORM, files=files if files is not None else two_files())


def token_of(page: str) -> str:
    found = re.search(r'name="token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def audit(s: Shared, action: str) -> list[dict[str, Any]]:
    """The test's own audit entries of ``action``."""
    with s.node.db.read() as conn:
        rows = conn.execute(select(t.audit_entries).where(
            t.audit_entries.c.action == action, t.audit_entries.c.idx > s.audit_start)
            .order_by(t.audit_entries.c.idx)).all()
    return [json.loads(r.entry) for r in rows]


def tallies(s: Shared) -> dict[str, dict[str, Any]]:
    """Close the test's tally period; its tallies by endpoint (outcomes summed over the periods it spanned)."""
    _flush_tallies(s)
    found: dict[str, dict[str, Any]] = {}
    for entry in audit(s, "traffic.anonymous"):
        mine = found.setdefault(entry["object_id"], {"outcomes": {}})
        for outcome, count in entry["details"]["outcomes"].items():
            mine["outcomes"][outcome] = mine["outcomes"].get(outcome, 0) + count
    return found


def codes_since(s: Shared) -> list[tuple[str, int]]:
    """The codes this test made (not those of an earlier test, even one in the same second)."""
    with s.node.db.read() as conn:
        rows = conn.execute(select(intake_codes.c.token_hash, intake_codes.c.state, intake_codes.c.tries)).all()
    return [(r.state, r.tries) for r in rows if r.token_hash not in s.earlier_codes]


def inbox_count(node: Node) -> int:
    assert node.delivery is not None
    return len(node.delivery.inbox(OFFICE, "tanaka"))


def test_five_wrong_codes_lock_the_submission_and_the_right_code_no_longer_helps(state: Shared) -> None:
    web_node, mailbox = state.node, state.mailbox
    stranger = client(web_node)
    page = submit(stranger)
    assert page.status_code == 200 and "確認コード" in page.text and "ta***@example.jp" in page.text
    token = token_of(page.text)
    right = code_in(mailbox.wait_for("taro@example.jp")[-1])
    wrong = "000000" if right != "000000" else "111111"
    answers = [stranger.post(f"/intake/{OFFICE}/confirm", data={"token": token, "code": wrong}) for _ in range(5)]
    assert [a.status_code for a in answers] == [422] * 4 + [403]
    assert "確認コードが違います" in answers[0].text
    assert "使えなくなりました" in answers[4].text and "最初からやり直す" in answers[4].text
    late = stranger.post(f"/intake/{OFFICE}/confirm", data={"token": token, "code": right})
    assert late.status_code == 403 and "使えなくなりました" in late.text
    # Nothing reached the office; the lock is one audit entry, the wrong codes are tallied.
    assert inbox_count(web_node) == state.inbox_start
    with web_node.db.read() as conn:
        receipts = set(conn.execute(select(intake_submissions.c.receipt_number)).scalars())
    assert receipts <= state.earlier_submissions
    assert codes_since(state) == [("locked", 5)]
    [locked] = audit(state, "intake.code_locked")
    assert locked["object_id"] == OFFICE and locked["details"]["tries"] == 5
    outcomes = tallies(state)["intake.codes"]["outcomes"]
    assert outcomes == {"code_wrong": 4, "code_locked": 2}


def test_an_exe_renamed_pdf_and_a_huge_png_are_refused_by_content(state: Shared) -> None:
    web_node, mailbox = state.node, state.mailbox
    stranger = client(web_node)
    exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00" + b"\x00" * 100 + b"This program cannot be run in DOS mode.\r\n"
    page = submit(stranger, files=[("files", ("請求書.pdf", exe, "application/pdf"))])
    assert page.status_code == 422
    assert "請求書.pdf: 送れるのはPDF、JPEG、PNGのファイルだけです（ファイル名ではなく中身で確認しました）" in page.text
    # The form keeps what was typed.
    assert 'value="営業許可の更新申請"' in page.text
    english = submit(client(web_node, "198.51.100.8"), files=[("files", ("invoice.pdf", exe, "application/pdf"))])
    assert "invoice.pdf: only PDF, JPEG and PNG files are accepted" in client(web_node, "198.51.100.8").post(
        f"/intake/{OFFICE}?lang=en", data=FORM, files=[("files", ("invoice.pdf", exe, "application/pdf"))]).text
    assert english.status_code == 422
    bomb = submit(stranger, files=[("files", ("scan.png", huge_png(), "image/png"))])
    assert bomb.status_code == 422 and "scan.png: 画像が大きすぎます" in bomb.text
    # No code was mailed, nothing was kept, nothing reached the office; the refusals are tallied.
    assert mailbox.messages("taro@example.jp") == []
    assert codes_since(state) == []
    assert inbox_count(web_node) == state.inbox_start
    outcomes = tallies(state)["intake.submissions"]["outcomes"]
    assert outcomes == {"refused_type": 3, "refused_pixels": 1}


def test_html_in_the_name_stays_text_and_bidi_controls_are_refused(state: Shared) -> None:
    web_node, mailbox = state.node, state.mailbox
    stranger = client(web_node)
    bidi = submit(stranger, form={**FORM, "name": "山田\u202e太郎"})
    assert bidi.status_code == 422 and "見えない制御文字" in bidi.text
    assert mailbox.messages("taro@example.jp") == []
    html_name = '<script>alert(1)</script><b onmouseover="x()">山田</b>'
    page = submit(stranger, form={**FORM, "name": html_name})
    assert page.status_code == 200
    code = code_in(mailbox.wait_for("taro@example.jp")[-1])
    receipt = stranger.post(f"/intake/{OFFICE}/confirm", data={"token": token_of(page.text), "code": code})
    assert receipt.status_code == 200 and "書類を受け付けました" in receipt.text, receipt.text[-3000:]
    # The clerk's inbox and message page show the name as text.
    assert web_node.delivery is not None
    item = web_node.delivery.inbox(OFFICE, "tanaka")[0]
    assert inbox_count(web_node) == state.inbox_start + 1 and item.source == "intake"
    clerk = browser_login(web_node, "tanaka")
    office = TestClient(create_app(web_node), cookies=clerk.cookies)
    inbox_page = office.get(f"/offices/{OFFICE}/inbox")
    assert "外部・メール確認済み" in inbox_page.text
    message = office.get(f"/messages/{item.message_id}")
    assert message.status_code == 200, message.text[-1500:]
    assert "<script>alert(1)</script>" not in message.text and "<b onmouseover" not in message.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;b onmouseover=" in message.text


def test_a_thousand_submissions_from_one_address_in_a_minute_are_rate_limited(state: Shared) -> None:
    web_node, mailbox = state.node, state.mailbox
    flood = client(web_node, "203.0.113.66")
    files = [("files", ("申請書.pdf", two_files()[0][1][1], "application/pdf"))]
    answers = [submit(flood, files=files).status_code for _ in range(1000)]
    limit = web_node.settings.intake_address_per_minute
    assert answers[:limit] == [200] * limit
    assert answers[limit:] == [429] * (1000 - limit)
    assert len(mailbox.messages("taro@example.jp")) == limit
    refused = submit(flood, files=files)
    assert "リクエストが多すぎます。1分後にもう一度お試しください。" in refused.text
    # Nothing else is affected: another person at another address submits at once, and is accepted.
    other = client(web_node, "198.51.100.20")
    page = submit(other, form={**FORM, "email": "hanako@example.org", "name": "鈴木 花子"}, files=files)
    assert page.status_code == 200
    code = code_in(mailbox.wait_for("hanako@example.org")[-1])
    done = other.post(f"/intake/{OFFICE}/confirm", data={"token": token_of(page.text), "code": code})
    assert done.status_code == 200 and "書類を受け付けました" in done.text
    assert inbox_count(web_node) == state.inbox_start + 1
    # Audited as tallies: the flood's requests and refusals, per endpoint.
    found = tallies(state)
    ip_limit = web_node.settings.public_requests_per_minute
    assert found["intake.form"]["outcomes"] == {"request": ip_limit + 1, "rate_limited": 1000 + 1 - ip_limit}
    assert found["intake.address"]["outcomes"]["rate_limited"] == ip_limit - limit
    assert found["intake.submissions"]["outcomes"] == {"code_sent": limit + 1}
    assert len(audit(state, "intake.submitted")) == 1


def test_status_answers_look_the_same_whether_or_not_the_receipt_exists(state: Shared) -> None:
    web_node, mailbox = state.node, state.mailbox
    stranger = client(web_node)
    page = submit(stranger)
    code = code_in(mailbox.wait_for("taro@example.jp")[-1])
    receipt = stranger.post(f"/intake/{OFFICE}/confirm", data={"token": token_of(page.text), "code": code})
    number = re.search(r'id="receipt-number">([^<]+)<', receipt.text)
    assert number
    asks = {
        "real": {"receipt_number": number.group(1), "email": "taro@example.jp"},
        "unknown number": {"receipt_number": "20260101-AAAAAA", "email": "taro@example.jp"},
    }
    pages = {}
    for name, form in asks.items():
        answer = client(web_node, "198.51.100.30").post(f"/intake/{OFFICE}/status", data=form)
        pages[name] = (answer.status_code, re.sub(r'value="[^"]+"', "", answer.text))
    assert pages["real"] == pages["unknown number"]
    # Only the real one mailed a code; the other's token accepts nothing and locks the same way.
    assert len(mailbox.messages("taro@example.jp")) == 3  # code, receipt, status code


def test_codes_are_forgotten_a_day_after_they_expired(state: Shared) -> None:
    page = submit(client(state.node, "198.51.100.40"))
    assert page.status_code == 200
    assert codes_since(state) == [("pending", 0)]
    now = state.clock.current
    try:
        state.clock.advance(hours=24, minutes=9)
        # Codes of earlier tests (the node is the module's) may go now; this one expired, but not a day ago.
        purge_expired_codes(state.node)
        assert codes_since(state) == [("pending", 0)]
        state.clock.advance(minutes=2)
        assert purge_expired_codes(state.node) >= 1
        assert codes_since(state) == []
    finally:
        state.clock.current = now
