"""The delivery pages as clerks use them: compose, send, the recipient's inbox, the message with its page
previews, downloads, the sent items with their statuses, and who may see what (403/404) through the UI."""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from PIL import Image
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas
from sqlalchemy import func, select, update

from inkless.app import Node, init_node
from inkless.config import load_settings
from inkless.db.tables import audit_entries
from inkless.db.tables_delivery import inbox, messages, outbox
from inkless.delivery.report import gothic_font
from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, create_demo
from inkless.web.app import create_app
from inkless.web.i18n import LANG_COOKIE
from tests.conftest import BACKENDS
from tests.helpers.db import fresh_database
from tests.helpers.nodes import refused_url

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

PASSWORD = "tsuki-ga-noboru-2026"
LIMIT = 1024 * 1024  # max_message_bytes of this module's node: shown as "1.0 MB"


def pdf(pages: int, text: str) -> bytes:
    """A small A4 PDF with a Japanese line on every page."""
    if "IPAexGothic" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("IPAexGothic", str(gothic_font())))
    out = io.BytesIO()
    page = canvas.Canvas(out, pagesize=A4, invariant=True)
    for n in range(pages):
        page.setFont("IPAexGothic", 18)
        page.drawString(72, 720, f"{text}（{n + 1}頁）")
        page.showPage()
    page.save()
    return out.getvalue()


@pytest.fixture(scope="module", params=BACKENDS)
def pages_node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    folder = tmp_path_factory.mktemp("pages")
    with fresh_database(str(request.param), folder) as url:
        settings = load_settings(folder, env={}, overrides={
            "node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION, "database_url": url,
            "base_url": refused_url(), "workers": False, "max_message_bytes": LIMIT,
        })
        node = init_node(settings)
        create_demo(node.directory)
        try:
            yield node
        finally:
            node.close()


class Clerk:
    """A logged-in browser session of one user (its own cookie jar) and its CSRF token."""

    def __init__(self, client: TestClient, csrf: str) -> None:
        self.client = client
        self.csrf = csrf


@pytest.fixture(scope="module")
def logged_in_clerks(pages_node: Node) -> Iterator[dict[str, Clerk]]:
    app = create_app(pages_node)
    out: dict[str, Clerk] = {}
    with TestClient(app) as first:
        for login in ("tanaka", "takahashi", "yamada"):
            client = first if login == "tanaka" else TestClient(app)
            out[login] = Clerk(client, _login(client, pages_node, login))
        yield out


@pytest.fixture
def clerks(logged_in_clerks: dict[str, Clerk]) -> dict[str, Clerk]:
    """The logged-in clerks in the node's default language, whatever ``?lang=`` an earlier test chose."""
    for clerk in logged_in_clerks.values():
        clerk.client.cookies.delete(LANG_COOKIE)
    return logged_in_clerks


def _login(client: TestClient, node: Node, login: str) -> str:
    secret = node.directory.totp_secret(login)
    now = datetime.now(UTC)
    # Enrolled with the previous time step's code; each step's code is accepted once.
    node.directory.verify_totp(login, pyotp.TOTP(secret).at(now - timedelta(seconds=30)))
    node.directory.set_password(login, PASSWORD, actor="test")
    page = client.post("/login", data={"login": login, "password": PASSWORD})
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf, page.text
    inbox = client.post("/login/totp", data={"code": pyotp.TOTP(secret).now(), "csrf_token": csrf.group(1)})
    assert inbox.status_code == 200, inbox.text
    fresh = re.search(r'name="csrf_token" value="([^"]+)"', inbox.text)
    assert fresh
    return fresh.group(1)


def _send(clerk: Clerk, files: list[tuple[str, bytes, str]], **fields: str) -> tuple[int, str, str]:
    """POST the compose form; status, Location (or ""), and the page text."""
    data = {"csrf_token": clerk.csrf, "classification": "0", "priority": "normal", **fields}
    response = clerk.client.post("/compose", data=data, files=[("files", f) for f in files],
                                 follow_redirects=False)
    return response.status_code, response.headers.get("location", ""), response.text


def _count(node: Node) -> int:
    with node.db.begin() as conn:
        return int(conn.execute(select(func.count()).select_from(messages)).scalar_one())


def test_compose_deliver_inbox_message_previews_and_download(pages_node: Node, clerks: dict[str, Clerk]) -> None:
    tanaka, takahashi = clerks["tanaka"], clerks["takahashi"]
    form = tanaka.client.get("/compose")
    assert form.status_code == 200
    # The picker's list: the office's address, then its name, kana and organisation to match on.
    assert '<option value="criminal-affairs@moj" label="刑事局 ケイジキョク 法務省">' in form.text
    levels = re.findall(r'<option value="(\d)"[^>]*>\d ', form.text)
    assert levels == ["0", "1"]  # tanaka's clearance is 1 (内部)
    assert "文書を送信" in form.text and 'enctype="multipart/form-data"' in form.text

    one, two = pdf(2, "刑事事件記録の送付について"), pdf(1, "添付資料")
    status, location, _ = _send(
        tanaka, [("記録.pdf", one, "application/pdf"), ("添付.pdf", two, "application/pdf")],
        to="criminal-affairs@moj", subject="刑事事件記録の送付", classification="1", priority="urgent",
        procedure_code="MOJ-42",
    )
    assert status == 303, location
    match = re.fullmatch(r"/messages/([0-9a-f-]{36})\?sent=1", location)
    assert match
    mid = match.group(1)
    status_page = tanaka.client.get(location)
    assert status_page.status_code == 200
    assert "送信を受け付けました" in status_page.text and "送信待ち" in status_page.text

    assert pages_node.delivery is not None
    assert pages_node.delivery.deliver_due().delivered == 1

    sent = tanaka.client.get("/offices/civil-affairs/sent")
    assert sent.status_code == 200
    row = sent.text[sent.text.index(f'data-message="{mid}"'):]
    assert "配達済み" in row[:3000] and f"/messages/{mid}/report" in row[:3000]
    report = tanaka.client.get(f"/messages/{mid}/report")
    assert report.status_code == 200 and report.content.startswith(b"%PDF-")

    inbox = takahashi.client.get("/offices/criminal-affairs/inbox")
    assert inbox.status_code == 200
    line = inbox.text[inbox.text.index(f'data-message="{mid}"'):]
    line = line[: line.index("</tr>")]
    for shown in ("刑事事件記録の送付", "民事局", "civil-affairs@moj", "至急", "内部", "未読", ">2</td>"):
        assert shown in line, shown

    page = takahashi.client.get(f"/messages/{mid}")
    assert page.status_code == 200
    assert "刑事事件記録の送付" in page.text and "MOJ-42" in page.text and "返信" in page.text
    previews = re.findall(r'<img src="(/messages/[^"]+\.png)"', page.text)
    assert previews == [f"/messages/{mid}/documents/1/pages/1.png", f"/messages/{mid}/documents/1/pages/2.png",
                        f"/messages/{mid}/documents/2/pages/1.png"]
    for url in previews:
        png = takahashi.client.get(url)
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert png.headers["cache-control"] == "no-store"
        image = Image.open(io.BytesIO(png.content))
        image.load()
        # A4 at 110 dpi: 909 × 1286 pixels, with the dark text line on white paper.
        assert abs(image.width - 909) <= 2 and abs(image.height - 1286) <= 2
        assert image.convert("L").getextrema()[0] < 80
    assert takahashi.client.get(f"/messages/{mid}/documents/1/pages/3.png").status_code == 404
    assert takahashi.client.get(f"/messages/{mid}/documents/1/pages/0.png").status_code == 404
    assert takahashi.client.get(f"/messages/{mid}/documents/3/pages/1.png").status_code == 404
    assert takahashi.client.get(f"/messages/{mid}/documents/0").status_code == 404
    download = takahashi.client.get(f"/messages/{mid}/documents/1")
    assert download.status_code == 200 and download.content == one
    assert "filename*=UTF-8''%E8%A8%98%E9%8C%B2.pdf" in download.headers["content-disposition"]
    assert takahashi.client.get(f"/messages/{mid}/documents/2").content == two
    assert "unread-mark" not in takahashi.client.get("/offices/criminal-affairs/inbox").text  # no 未読 badge
    # Every opening (page, previews, downloads) is in the audit log; no subject, no content.
    with pages_node.db.begin() as conn:
        opened = conn.execute(select(audit_entries.c.entry).where(
            audit_entries.c.action == "message.opened", audit_entries.c.object_id == mid,
            audit_entries.c.actor == "takahashi")).scalars().all()
    assert len(opened) == 1 + len(previews) + 4 + 2  # the page, 3 previews, 4 missing pages or documents, 2 downloads
    assert all("刑事事件".encode() not in bytes(e) for e in opened)

    # The reply form is prefilled; the reply goes back to tanaka's office and points at the original.
    reply_form = takahashi.client.get(f"/compose?reply_to={mid}")
    assert reply_form.status_code == 200
    assert 'value="Re: 刑事事件記録の送付"' in reply_form.text and "civil-affairs@moj" in reply_form.text
    status, location, _ = _send(takahashi, [("回答.pdf", pdf(1, "回答"), "application/pdf")], reply_to=mid,
                                subject="Re: 刑事事件記録の送付", classification="1")
    assert status == 303, location
    reply_id = location.split("/")[2].split("?")[0]
    pages_node.delivery.deliver_due()
    answered = tanaka.client.get(f"/messages/{reply_id}")
    assert answered.status_code == 200 and f'href="/messages/{mid}"' in answered.text

    # Forwarding keeps the documents: the forward form has no file input.
    forward_form = takahashi.client.get(f"/compose?forward={mid}")
    assert 'value="Fw: 刑事事件記録の送付"' in forward_form.text and 'type="file"' not in forward_form.text

    # The same pages in English.
    english = {f"/messages/{mid}?lang=en": "Urgent", "/offices/criminal-affairs/inbox?lang=en": "Internal",
               "/compose?lang=en": "Send a document", "/offices/criminal-affairs/sent?lang=en": "Delivered"}
    for path, shown in english.items():
        page = takahashi.client.get(path)
        assert page.status_code == 200 and shown in page.text, path
    takahashi.client.get("/offices/criminal-affairs/inbox?lang=ja")


def test_who_may_see_a_message_through_the_pages(pages_node: Node, clerks: dict[str, Clerk]) -> None:
    tanaka, takahashi, yamada = clerks["tanaka"], clerks["takahashi"], clerks["yamada"]
    status, location, _ = _send(takahashi, [("秘文書.pdf", pdf(1, "秘"), "application/pdf")],
                                to="civil-affairs@moj", subject="人事異動の内示", classification="2")
    assert status == 303, location
    mid = location.split("/")[2].split("?")[0]
    assert pages_node.delivery is not None
    pages_node.delivery.deliver_due()

    # tanaka (clearance 1) sees that a 秘 message arrived, not its subject, and cannot open it.
    inbox = tanaka.client.get("/offices/civil-affairs/inbox").text
    line = inbox[inbox.index(f'data-message="{mid}"'):]
    line = line[: line.index("</tr>")]
    assert "（秘）" in line and "人事異動" not in line
    paths = [f"/messages/{mid}", f"/messages/{mid}/documents/1", f"/messages/{mid}/documents/1/pages/1.png"]
    for path in paths:
        refused = tanaka.client.get(path)
        assert refused.status_code == 403, path
        assert "人事異動" not in refused.text
    # yamada belongs to another office: the message does not exist for him (ids cannot be probed).
    for path in [*paths, f"/messages/{mid}/report", f"/compose?forward={mid}"]:
        assert yamada.client.get(path).status_code == 404, path
    assert yamada.client.get("/offices/civil-affairs/inbox").status_code == 403
    assert yamada.client.get("/offices/criminal-affairs/sent").status_code == 403
    assert tanaka.client.get(f"/messages/{mid}/report").status_code == 403
    # Not logged in: the login page.
    anonymous = TestClient(tanaka.client.app)
    assert anonymous.get(f"/messages/{mid}", follow_redirects=False).headers["location"] == "/login"


def test_bad_compose_input_is_refused_keeps_the_input_and_sends_nothing(
    pages_node: Node, clerks: dict[str, Clerk]
) -> None:
    tanaka = clerks["tanaka"]
    good = [("doc.pdf", pdf(1, "文書"), "application/pdf")]
    cases = [
        ({"to": "nobody@moj"}, good, 404, "宛先または配信リストが見つかりません"),
        ({"to": "records@elsewhere"}, good, 404, "宛先または配信リストが見つかりません"),
        ({"to": ""}, good, 422, "宛先を1つ以上入力するか"),
        ({"to": "criminal-affairs@moj", "list": "no-such-list"}, good, 404, "宛先または配信リストが見つかりません"),
        ({"to": "criminal-affairs@moj"}, [], 422, "文書を1つ以上添付してください"),
        ({"to": "criminal-affairs@moj"}, [("big.bin", b"\0" * (LIMIT + 1), "application/octet-stream")],
         413, "最大 1.0 MB"),
        # Forged form values beyond the choices offered: above tanaka's clearance, no such priority.
        ({"to": "criminal-affairs@moj", "classification": "3"}, good, 403, "送信規則により"),
        ({"to": "criminal-affairs@moj", "priority": "asap"}, good, 422, "優先度を一覧から選んでください"),
        ({"to": "criminal-affairs@moj", "procedure_code": "手続 1"}, good, 422, "手続コードは英数字"),
        ({"to": "records@elsewhere", "classification": "1"}, good, 404, "宛先または配信リストが見つかりません"),
        # A file name that displays as "photoexe.jpg" (U+202E RIGHT-TO-LEFT OVERRIDE).
        ({"to": "criminal-affairs@moj"}, [("photo\u202egpj.exe", pdf(1, "x"), "application/pdf")], 422,
         "表示を偽装できる見えない制御文字"),
    ]
    before = _count(pages_node)
    for fields, files, status, message in cases:
        subject = "入力を保持する件名"
        got, location, text = _send(tanaka, files, subject=subject, **fields)
        assert (got, location) == (status, ""), (fields, got, text[:2000])
        assert message in text, (fields, text)
        assert f'value="{subject}"' in text, fields
        if fields.get("to"):
            assert f'value="{fields["to"]}"' in text
    # No CSRF token: refused before anything is read.
    refused = tanaka.client.post("/compose", data={"to": "criminal-affairs@moj", "subject": "x"},
                                 files=[("files", good[0])], follow_redirects=False)
    assert refused.status_code == 403
    assert _count(pages_node) == before


def test_the_sent_items_show_why_a_delivery_did_not_happen(pages_node: Node, clerks: dict[str, Clerk]) -> None:
    tanaka = clerks["tanaka"]
    assert pages_node.delivery is not None
    pages_node.delivery.set_list("all-bureaus", ["criminal-affairs@moj", "secretariat@moj"], actor="test")
    form = tanaka.client.get("/compose").text
    assert '<option value="all-bureaus">all-bureaus (2)</option>' in form
    status, location, _ = _send(tanaka, [("a.pdf", pdf(1, "照会"), "application/pdf")],
                                to="", list="all-bureaus", subject="照会の件")
    assert status == 303, location
    mid = location.split("/")[2].split("?")[0]
    retry_at = datetime(2031, 4, 1, 0, 30, tzinfo=UTC)
    # The states a remote delivery can end in, set on the outbox rows as the worker leaves them.
    outcomes = {
        "criminal-affairs@moj": {"state": "retrying", "attempts": 3, "next_attempt_at": retry_at,
                                 "last_error": "connection refused by 192.0.2.7:8443"},
        "secretariat@moj": {"state": "rejected", "last_error": "the recipient certificate was revoked"},
    }
    with pages_node.db.begin() as conn:
        for recipient, values in outcomes.items():
            conn.execute(update(outbox).where(outbox.c.message_id == mid, outbox.c.recipient == recipient)
                         .values(**values))
    for path in ("/offices/civil-affairs/sent", f"/messages/{mid}"):
        page = tanaka.client.get(path).text
        part = page[page.index(f'data-message="{mid}"'):] if "sent" in path else page
        retrying = part[part.index('data-recipient="criminal-affairs@moj"'):]
        retrying = retrying[: retrying.index("</li>")]
        assert "再送中" in retrying and "3 回目の送信に失敗" in retrying
        assert "connection refused by 192.0.2.7:8443" in retrying and "2031年4月1日 09:30 JST" in retrying
        rejected = part[part.index('data-recipient="secretariat@moj"'):]
        rejected = rejected[: rejected.index("</li>")]
        assert "拒否" in rejected and "the recipient certificate was revoked" in rejected
    with pages_node.db.begin() as conn:
        conn.execute(update(outbox).where(outbox.c.message_id == mid)
                     .values(state="expired", last_error="not delivered within 72 hours"))
    page = tanaka.client.get("/offices/civil-affairs/sent").text
    part = page[page.index(f'data-message="{mid}"'):]
    part = part[: part.index("</tr>")]
    assert part.count("期限切れ") == 2 and "not delivered within 72 hours" in part
    # The disaster fallback keeps its decision and the fax outcome as codes; the page says them in one language.
    with pages_node.db.begin() as conn:
        conn.execute(update(outbox).where(outbox.c.message_id == mid, outbox.c.recipient == "secretariat@moj").values(
            state="retrying", last_error="mlit is unreachable: connection refused", next_attempt_at=retry_at,
            fax_decision="faxing", fax_decision_params='{"minutes": 30, "node": "mlit", "number": "03-3581-0000"}',
            fax_outcome="sent", fax_outcome_params='{"job": 7, "number": "03-3581-0000", "pages": 4}'))
        conn.execute(update(outbox).where(outbox.c.message_id == mid, outbox.c.recipient == "criminal-affairs@moj")
                     .values(state="retrying", next_attempt_at=retry_at, fax_decision="classification",
                             fax_decision_params='{"classification": 2}'))
    for lang, decision, outcome, not_faxed in (
        ("ja", "送信先ノード mlit に30分以上接続できないため、FAX（03-3581-0000）で送信します。",
         "03-3581-0000 へFAXで送信しました（FAXジョブ 7、4枚）。",
         "FAX送信しません：秘密区分 2 の文書はFAXで送れません（1 内部まで）。"),
        ("en", "Peer mlit has been unreachable for 30 minutes: sending by fax to 03-3581-0000.",
         "Sent by fax to 03-3581-0000 (fax job 7, 4 pages).",
         "Not faxed: classification 2 is never sent by fax (at most 1)."),
    ):
        for path in (f"/messages/{mid}?lang={lang}", f"/offices/civil-affairs/sent?lang={lang}"):
            page = tanaka.client.get(path).text
            part = page[page.index(f'data-message="{mid}"'):] if "sent" in path else page
            faxed = part[part.index('data-recipient="secretariat@moj"'):]
            faxed = faxed[: faxed.index("</li>")]
            assert f'data-fax-decision="faxing">{decision}</span>' in faxed, faxed
            assert f'data-fax-outcome="sent">{outcome}</span>' in faxed, faxed
            other = part[part.index('data-recipient="criminal-affairs@moj"'):]
            assert f'data-fax-decision="classification">{not_faxed}</span>' in other[: other.index("</li>")]


def test_a_message_received_by_fax_first_is_marked_and_linked(pages_node: Node,
                                                              clerks: dict[str, Clerk]) -> None:
    tanaka, takahashi = clerks["tanaka"], clerks["takahashi"]
    assert pages_node.delivery is not None
    status, location, _ = _send(tanaka, [("a.pdf", pdf(1, "避難所"), "application/pdf")], to="criminal-affairs@moj",
                                subject="避難所の開設")
    assert status == 303, location
    mid = location.split("/")[2].split("?")[0]
    assert pages_node.delivery.deliver_due().delivered >= 1
    faxed = pages_node.delivery.deposit_external("criminal-affairs", [("fax.pdf", pdf(1, "FAX"), "application/pdf")],
                                                 "fax", {"from": "03-3580-4111"}, "FAX受信 03-3580-4111（2枚）")
    # As the delivery of a message the sending node had faxed first leaves it (see test_fax_service_fallback).
    claim = '{"from":"03-3580-4111","job":3,"number":"03-3581-0000","pages":2,"sent_at":"2031-04-01T00:30:00+00:00"}'
    with pages_node.db.begin() as conn:
        conn.execute(update(inbox).where(inbox.c.message_id == mid).values(fax_first=claim,
                                                                           fax_copy_message_id=faxed))
    listing = takahashi.client.get("/offices/criminal-affairs/inbox?lang=ja").text
    row = listing[listing.index(f'data-message="{mid}"'):]
    badge = f'<span class="badge fax-first" data-fax-first="{faxed}">先にFAXで受信済み</span>'
    assert badge in row[: row.index("</tr>")]
    english = takahashi.client.get("/offices/criminal-affairs/inbox?lang=en").text
    assert "Received by fax first" in english and "先にFAXで受信済み" not in english
    page = takahashi.client.get(f"/messages/{mid}?lang=ja").text
    mark = page[page.index('<div id="fax-first">'):]
    mark = mark[: mark.index("</div>")]
    assert "2031年4月1日 09:30 JST" in mark and "03-3581-0000" in mark and "（2枚）" in mark
    assert f'<a id="fax-copy" href="/messages/{faxed}">FAXで受信した写し</a>' in mark
    assert takahashi.client.get(f"/messages/{faxed}").status_code == 200


def test_the_inbox_of_an_empty_office_and_the_navigation(clerks: dict[str, Clerk]) -> None:
    yamada = clerks["yamada"]
    page = yamada.client.get("/offices/secretariat/inbox")
    assert page.status_code == 200 and "受信文書はありません" in page.text
    for link in ('href="/offices/secretariat/inbox"', 'href="/offices/secretariat/sent"', 'href="/compose"'):
        assert link in page.text
    for label in ("受信箱", "送信済み", "文書を送信"):
        assert label in page.text
    assert "送信した文書はありません" in yamada.client.get("/offices/secretariat/sent").text
    english = yamada.client.get("/offices/secretariat/sent?lang=en")
    assert "No messages sent yet." in english.text
    yamada.client.get("/offices/secretariat/inbox?lang=ja")
