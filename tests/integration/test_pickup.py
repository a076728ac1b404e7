"""Secure pickup end to end over HTTP, with the mails read from a real Postfix: a clerk sends sealed PDFs to an
e-mail address; the notice carries a link and no attachment; the code mail opens the link; the downloads verify;
a reply threads into the sender's view with JST times. Refusals: classification 2, 不達 from Postfix, wrong codes,
an expired link, another recipient's link."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
from sqlalchemy import func, select, update

from inkless import timefmt
from inkless.app import Node, init_node
from inkless.config import load_settings
from inkless.db.tables import audit_entries
from inkless.db.tables_mail import mail_outbox
from inkless.db.tables_pickup import pickups
from inkless.delivery.service import NewDocument
from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, create_demo
from inkless.seals.imprint import SealKind
from inkless.seals.model import SealPlacement
from inkless.web.app import create_app
from tests.conftest import BACKENDS
from tests.helpers.db import fresh_database
from tests.helpers.postfix import PrivatePostfix, deliver_queued_mail, postfix_available, running_postfix
from tests.helpers.seals import sample_pdf
from tests.helpers.web import TestClient, browser_login

pytestmark = pytest.mark.skipif(postfix_available() is not None, reason=str(postfix_available()))

BASE = "http://testserver"
LINK = re.compile(r"http://testserver(/p/[A-Za-z0-9_-]{43})")


@pytest.fixture(scope="module")
def postfix() -> Iterator[PrivatePostfix]:
    with running_postfix(tls=True) as instance:
        yield instance


@pytest.fixture(scope="module", params=BACKENDS)
def node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
         postfix: PrivatePostfix) -> Iterator[Node]:
    """One demo node per backend for the module; each test uses its own fresh addresses and messages."""
    folder = tmp_path_factory.mktemp(f"pickup-{request.param}") / "node"
    with fresh_database(str(request.param), folder.parent) as url:
        settings = load_settings(folder, env={}, overrides={
            "node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION, "base_url": BASE, "workers": False,
            "database_url": url, "smtp_url": postfix.smtp_url, "smtp_ca_file": str(postfix.ca_file),
            "smtp_from": "法務省 <no-reply@moj.example.go.jp>", "public_requests_per_minute": 1000,
        })
        n = init_node(settings)
        create_demo(n.directory)
        assert n.sealing is not None
        n.extras["sealed"] = [n.sealing.seal(sample_pdf(pages), "tanaka", SealKind.PERSONAL,
                                             SealPlacement(page=1, box=(400, 600, 460, 660)), actor="tanaka")
                              for pages in (1, 2)]
        try:
            yield n
        finally:
            n.close()


@pytest.fixture
def sealed(node: Node) -> list[bytes]:
    docs = node.extras["sealed"]
    assert isinstance(docs, list)
    return docs


@pytest.fixture(scope="module")
def app(node: Node) -> object:
    return create_app(node)


def clerk(app: object, node: Node, login: str = "tanaka") -> tuple[TestClient, str]:
    session = browser_login(node, login)
    client = TestClient(app)  # type: ignore[arg-type]
    client.cookies.set("inkless_session", session.cookie)
    return client, session.csrf


def address(prefix: str = "taro") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@example.co.jp"


def send(app: object, node: Node, to: str, docs: list[bytes], classification: int = 0, login: str = "tanaka",
         **extra: str) -> tuple[int, str]:
    client, csrf = clerk(app, node, login)
    files = [("files", (f"書類{i + 1}.pdf", d, "application/pdf")) for i, d in enumerate(docs)]
    r = client.post("/compose", data={"csrf_token": csrf, "to": to, "subject": "住民票の写しの送付",
                                      "classification": str(classification), "priority": "normal", **extra},
                    files=files, follow_redirects=False)
    return r.status_code, r.headers.get("location", "") if r.status_code == 303 else r.text


def link_of(mail: EmailMessage) -> str:
    body = mail.get_body(("plain",))
    assert body is not None
    found = LINK.search(body.get_content())
    assert found, body.get_content()
    return found.group(1)


def code_of(mail: EmailMessage) -> str:
    body = mail.get_body(("plain",))
    assert body is not None
    found = re.search(r"確認コード: (\d{6})", body.get_content())
    assert found
    return found.group(1)


def sent_link(app: object, node: Node, postfix: PrivatePostfix, to: str) -> tuple[str, str]:
    """A sample PDF sent to ``to`` by tanaka: the sent message's page and the link its notice mail names."""
    status, location = send(app, node, to, [sample_pdf()])
    assert status == 303
    deliver_queued_mail(node)
    return location, link_of(postfix.wait_for(to)[0])


def ask_code(public: TestClient, postfix: PrivatePostfix, node: Node, path: str, to: str, count: int) -> str:
    r = public.post(f"{path}/code")
    assert r.status_code == 200 and "確認コードを送りました" in r.text
    deliver_queued_mail(node)
    mails = postfix.wait_for(to, count=count)
    assert "確認コード" in str(mails[-1]["Subject"])
    return code_of(mails[-1])


def early_in_a_minute() -> None:
    """Rate limits count per clock minute: start a burst well inside one, so it cannot straddle two."""
    import time

    second = datetime.now(UTC).second
    if second > 45:
        time.sleep(61 - second)


def actions(node: Node, pickup_id: int) -> list[str]:
    with node.db.read() as conn:
        return [r.action for r in conn.execute(select(audit_entries.c.action).where(
            audit_entries.c.object_type == "pickup", audit_entries.c.object_id == str(pickup_id))
            .order_by(audit_entries.c.idx)).all()]


def test_a_clerk_sends_two_sealed_pdfs_to_an_email_address_and_follows_every_step(
        app: object, node: Node, postfix: PrivatePostfix, sealed: list[bytes]) -> None:
    to = address()
    status, location = send(app, node, to, sealed)
    assert status == 303, location
    message_id = location.split("/messages/")[1].split("?")[0]

    # The notice: Japanese subject naming the office, a link, the expiry in JST, no attachment, a Message-ID.
    deliver_queued_mail(node)
    [notice] = postfix.wait_for(to)
    assert str(notice["Subject"]) == "【法務省 民事局】文書のお受け取りのご案内 / Documents for you"
    assert notice["Message-ID"] and notice["Message-ID"].endswith("@moj.example.go.jp>")
    assert list(notice.iter_attachments()) == []
    assert [p.get_content_type() for p in notice.iter_parts()] == ["text/plain", "text/html"]
    text = notice.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "件名: 住民票の写しの送付" in text
    with node.db.read() as conn:
        [row] = conn.execute(select(pickups).where(pickups.c.message_id == message_id)).all()
    assert f"受け取り期限: {timefmt.format_datetime(row.expires_at, 'ja', node.settings.tz)}" in text
    assert "JST" in text and (row.expires_at - row.created_at).days == 7
    path = link_of(notice)
    assert row.token_hash != path.rsplit("/", 1)[1] and len(row.token_hash) == 64  # only the hash is stored

    # The recipient opens the link on a phone: code page, code mail, documents.
    public = TestClient(app)  # type: ignore[arg-type]
    page = public.get(path)
    assert page.status_code == 200 and "文書の受け取り" in page.text and "住民票" not in page.text
    code = ask_code(public, postfix, node, path, to, 2)
    opened = public.post(f"{path}/open", data={"code": code}, follow_redirects=False)
    assert opened.status_code == 303
    page = public.get(path)
    assert "住民票の写しの送付" in page.text and "書類1.pdf" in page.text and "書類2.pdf" in page.text
    for number, original in enumerate(sealed, start=1):
        download = public.get(f"{path}/documents/{number}")
        assert download.status_code == 200 and download.content == original
        verdict = public.post("/api/v1/verify", files={"file": ("d.pdf", download.content, "application/pdf")})
        assert verdict.json()["indication"] == "PASSED"

    # The recipient replies with a file: it threads into the sender's view of the message.
    reply = public.post(f"{path}/reply", data={"comment": "受け取りました。申請書を返送します。"},
                        files=[("files", ("申請書.pdf", sample_pdf(), "application/pdf"))], follow_redirects=False)
    assert reply.status_code == 303
    assert "ファイルを送付元の機関に送りました" in public.get(reply.headers["location"]).text

    sender, _ = clerk(app, node)
    view = sender.get(f"/messages/{message_id}").text
    with node.db.read() as conn:
        row = conn.execute(select(pickups).where(pickups.c.message_id == message_id)).one()
    tz = node.settings.tz
    for label, at in (("通知済み", row.notified_at), ("開封", row.opened_at), ("ダウンロード", row.downloaded_at),
                      ("返信", row.replied_at)):
        assert at is not None
        assert f"{label} {timefmt.format_datetime(at, 'ja', tz)}" in view
    assert row.opened_at < row.downloaded_at < row.replied_at
    assert "申請書.pdf" in view and "受け取りました。申請書を返送します。" in view
    reply_link = re.search(r'href="(/pickups/replies/\d+)"', view)
    assert reply_link
    reply_link_bytes = sender.get(reply_link.group(1)).content
    assert reply_link_bytes.startswith(b"%PDF-")

    # The reply threads into the conversation: one item in the sending office's inbox, marked external, that
    # answers the sent message; the sent message lists it among its replies, and the reply links back.
    thread = re.search(r'<li data-message="([0-9a-f-]{36})" data-direction="received" data-source="pickup">(.*?)</li>',
                       view, re.S)
    assert thread and "メール受取人からの返信" in thread.group(2) and to in thread.group(2)
    assert "Re: 住民票の写しの送付" in thread.group(2) and "外部・メール確認済み" in thread.group(2)
    reply_id = thread.group(1)
    assert f'<a class="reply-message" href="/messages/{reply_id}">' in view
    inbox_page = sender.get("/offices/civil-affairs/inbox").text
    row_html = re.search(rf'<tr data-message="{reply_id}" data-source="pickup".*?</tr>', inbox_page, re.S)
    assert row_html and to in row_html.group(0) and "外部・メール確認済み" in row_html.group(0)
    reply_page = sender.get(f"/messages/{reply_id}").text
    assert f'<a href="/messages/{message_id}">' in reply_page and "受け取りました。申請書を返送します。" in reply_page
    assert "申請書.pdf" in reply_page and "メール受取人からの返信" in reply_page
    documents = re.search(rf'href="(/messages/{reply_id}/documents/1)"', reply_page)
    assert documents and sender.get(documents.group(1)).content == reply_link_bytes
    assert actions(node, row.id) == ["pickup.created", "pickup.code_sent", "pickup.opened", "pickup.downloaded",
                                     "pickup.downloaded", "pickup.replied"]


def test_classification_2_is_refused_and_audited_and_1_needs_a_confirmation(
        app: object, node: Node, postfix: PrivatePostfix) -> None:
    to = address()
    with node.db.read() as conn:
        before = conn.execute(select(func.count()).select_from(mail_outbox)).scalar_one()
    status, body = send(app, node, to, [sample_pdf()], classification=2, login="suzuki")
    assert status == 403
    assert "秘（2）・極秘（3）の文書は行政機関の外に出せないため、メールアドレスには送れません。" in body
    status, body = send(app, node, to, [sample_pdf()], classification=1)
    assert status == 403 and "確認の欄にチェックを入れてください" in body
    with node.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(mail_outbox)).scalar_one() == before
        refused = conn.execute(select(audit_entries.c.idx).where(audit_entries.c.action == "pickup.refused")
                               .order_by(audit_entries.c.idx)).all()
    assert len(refused) >= 2
    status, location = send(app, node, to, [sample_pdf()], classification=1, confirm_external="1")
    assert status == 303, location


def test_a_recipient_postfix_refuses_is_shown_as_undeliverable(app: object, node: Node,
                                                                postfix: PrivatePostfix) -> None:
    to = address("bounce")
    status, location = send(app, node, to, [sample_pdf()])
    assert status == 303
    deliver_queued_mail(node)
    sender, _ = clerk(app, node)
    view = sender.get(location.split("?")[0]).text
    assert 'data-state="bounced"' in view and "不達" in view and "550 5.1.1" in view
    assert postfix.messages(to) == []


def test_five_wrong_codes_lock_the_link_until_the_clerk_unlocks_it(
        app: object, node: Node, postfix: PrivatePostfix) -> None:
    to = address()
    location, path = sent_link(app, node, postfix, to)
    public = TestClient(app)  # type: ignore[arg-type]
    code = ask_code(public, postfix, node, path, to, 2)
    wrong = "000000" if code != "000000" else "111111"
    unknown = "/p/" + "D" * 43
    stranger = public.post(f"{unknown}/open", data={"code": wrong})
    for _attempt in range(1, 6):
        r = public.post(f"{path}/open", data={"code": wrong})
        assert r.status_code == 422 and "確認コードが違うか、有効期限が切れています。" in r.text
        assert "5回間違えるとリンクはロックされます" in r.text
    # Locked, even the right code no longer opens it — and the page says exactly what it says for a link that
    # does not exist: no oracle for a stranger holding some token. The reason is in the audit log.
    r = public.post(f"{path}/open", data={"code": code})
    assert r.status_code == stranger.status_code == 422
    assert r.text.replace(path, unknown) == stranger.text
    assert dict(r.headers).keys() == dict(stranger.headers).keys()
    assert public.get(f"{path}/documents/1").status_code == 404
    with node.db.read() as conn:
        pickup_id = conn.execute(select(pickups.c.id).where(pickups.c.recipient == to)).scalar_one()
    assert actions(node, pickup_id)[-2:] == ["pickup.code_failed", "pickup.locked"]
    # The clerk sees it locked, and unlocks it; a fresh code then works.
    sender, csrf = clerk(app, node)
    message_page = location.split("?")[0]
    assert "ロック中" in sender.get(message_page).text
    assert sender.post(f"/pickups/{pickup_id}/reopen", data={"csrf_token": csrf, "message_id": message_page[10:]},
                       follow_redirects=False).status_code == 303
    code = ask_code(public, postfix, node, path, to, 3)
    assert public.post(f"{path}/open", data={"code": code}, follow_redirects=False).status_code == 303


def test_an_expired_link_and_another_recipients_link_do_not_open(
        app: object, node: Node, postfix: PrivatePostfix) -> None:
    first, second = address(), address()
    status, _ = send(app, node, f"{first}, {second}", [sample_pdf()])
    assert status == 303
    deliver_queued_mail(node)
    path_a, path_b = link_of(postfix.wait_for(first)[0]), link_of(postfix.wait_for(second)[0])
    public = TestClient(app)  # type: ignore[arg-type]
    code_a = ask_code(public, postfix, node, path_a, first, 2)
    # A's code on B's link is wrong, and A's session cookie does not open B's documents.
    assert public.post(f"{path_b}/open", data={"code": code_a}).status_code == 422
    assert public.post(f"{path_a}/open", data={"code": code_a}, follow_redirects=False).status_code == 303
    session = public.cookies.get("inkless_pickup")
    assert session
    other = TestClient(app)  # type: ignore[arg-type]
    other.cookies.set("inkless_pickup", session)
    r = other.get(f"{path_b}/documents/1")
    assert r.status_code == 404 and "このリンクは使えません" in r.text
    # An unknown link answers exactly like a real one.
    unknown = "/p/" + "A" * 43
    assert other.post(f"{unknown}/code").text.replace(unknown, "") == other.post(f"{path_b}/code").text.replace(
        path_b, "")
    # Once its lifetime has passed the link is closed, and the sender sees 期限切れ. (The expiry moves into
    # the past here rather than the clock forward: the node's seals are checked against the real time.)
    with node.db.begin() as conn:
        conn.execute(update(pickups).where(pickups.c.recipient.in_((first, second)))
                     .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert public.get(f"{path_a}/documents/1").status_code == 404
    r = public.post(f"{path_b}/open", data={"code": "123456"})
    assert r.status_code == 422 and "確認コードが違うか、有効期限が切れています" in r.text
    sender, _ = clerk(app, node)
    with node.db.read() as conn:
        message_id = conn.execute(select(pickups.c.message_id).where(pickups.c.recipient == first)).scalar_one()
    assert "期限切れ" in sender.get(f"/messages/{message_id}").text


def test_a_user_who_asked_for_it_gets_a_mail_notice_of_a_new_inbox_item_without_content(
        app: object, node: Node, postfix: PrivatePostfix) -> None:
    assert node.delivery is not None
    to = address("tanaka")
    client, csrf = clerk(app, node)
    bad = client.post("/notices", data={"csrf_token": csrf, "address": "tanaka@", "enabled": "1"})
    assert bad.status_code == 422 and "正しいメールアドレスを入力してください。" in bad.text
    assert node.notices is not None and node.notices.setting("tanaka") is None
    saved = client.post("/notices", data={"csrf_token": csrf, "address": to, "enabled": "1"})
    assert saved.status_code == 200 and "保存しました。所属部署の受信箱に文書が届くと" in saved.text
    for n in (1, 2):  # two arrivals within the quiet period give one mail
        node.delivery.send("takahashi", "criminal-affairs", ["civil-affairs@moj"], [], f"捜査関係事項照会 {n}",
                           [NewDocument("a.pdf", sample_pdf())], classification=1)
        while node.delivery.deliver_due().total:
            pass
        deliver_queued_mail(node)
    [mail] = postfix.wait_for(to)
    assert str(mail["Subject"]) == "【法務省】新着文書があります / New document"
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "http://testserver/offices/civil-affairs/inbox" in text and "捜査" not in text
    assert list(mail.iter_attachments()) == []
    client.post("/notices", data={"csrf_token": csrf, "address": to})  # off
    setting = node.notices.setting("tanaka")
    assert setting is not None and not setting.enabled


def test_the_public_pickup_endpoints_are_rate_limited_per_client(node: Node) -> None:
    import dataclasses

    strict = dataclasses.replace(node, settings=dataclasses.replace(node.settings, public_requests_per_minute=3))
    public = TestClient(create_app(strict), client=("198.51.100.7", 50000))  # this test's own client address
    early_in_a_minute()
    path = "/p/" + "B" * 43
    answers = [public.post(f"{path}/code").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    refused = public.post(f"{path}/open", data={"code": "123456"})
    assert refused.status_code == 429 and "リクエストが多すぎます。1分後にもう一度お試しください。" in refused.text
    assert refused.headers["Retry-After"]


def test_the_pickup_page_speaks_english_when_asked(app: object) -> None:
    page = TestClient(app).get("/p/" + "C" * 43 + "?lang=en")  # type: ignore[arg-type]
    assert page.status_code == 200 and "Collect documents" in page.text and "Send me a code" in page.text
    assert "文書" not in page.text


def test_codes_for_one_address_are_limited_whatever_client_asks(
        app: object, node: Node, postfix: PrivatePostfix) -> None:
    import dataclasses

    to = address()
    _, path = sent_link(app, node, postfix, to)
    strict = create_app(dataclasses.replace(
        node, settings=dataclasses.replace(node.settings, public_requests_per_minute=3)))
    early_in_a_minute()
    answers = [TestClient(strict, client=(f"192.0.2.{n}", 50000)).post(f"{path}/code").status_code  # type: ignore[arg-type]
               for n in range(1, 6)]
    assert answers == [200, 200, 200, 429, 429]  # five clients, one address: the fourth code is refused
    with node.db.read() as conn:
        codes = conn.execute(select(func.count()).select_from(mail_outbox).where(
            mail_outbox.c.recipient == to, mail_outbox.c.kind == "pickup.code")).scalar_one()
    assert codes == 3  # nothing was queued for the refused ones


def test_a_refused_reply_says_why_in_japanese_and_stores_nothing(
        app: object, node: Node, postfix: PrivatePostfix) -> None:
    from inkless.db.tables_delivery import inbox
    from inkless.db.tables_pickup import pickup_replies

    to = address()
    _, path = sent_link(app, node, postfix, to)
    public = TestClient(app)  # type: ignore[arg-type]
    code = ask_code(public, postfix, node, path, to, 2)
    assert public.post(f"{path}/open", data={"code": code}, follow_redirects=False).status_code == 303
    with node.db.read() as conn:
        before = conn.execute(select(func.count()).select_from(inbox)).scalar_one()
    r = public.post(f"{path}/reply", data={"comment": "あ" * 2001},
                    files=[("files", ("申請書.pdf", sample_pdf(), "application/pdf"))])
    assert r.status_code == 422 and "メッセージは2,000文字以内の文章にしてください。" in r.text
    assert "characters" not in r.text  # no English sentence on the Japanese page
    with node.db.read() as conn:
        assert conn.execute(select(func.count()).select_from(inbox)).scalar_one() == before
        assert conn.execute(select(func.count()).select_from(pickup_replies).join(
            pickups, pickups.c.id == pickup_replies.c.pickup_id).where(pickups.c.recipient == to)).scalar_one() == 0


def test_a_worker_that_never_built_pickup_still_marks_the_notice_sent(app: object, node: Node,
                                                                       postfix: PrivatePostfix) -> None:
    # `inkless worker` opens the node and sends the outbox's mail; it need not have touched pickup before.
    from inkless.app import build_node

    to = address()
    status, _ = send(app, node, to, [sample_pdf()])
    assert status == 303
    worker = build_node(node.settings)
    try:
        assert not Node.pickup.built(worker)
        deliver_queued_mail(worker)
    finally:
        worker.close()
    assert postfix.wait_for(to)
    with node.db.read() as conn:
        row = conn.execute(select(pickups).where(pickups.c.recipient == to)).one()
    assert row.notified_at is not None and row.bounced_at is None
