"""Secure pickup with ``inkless send``, ``inkless serve`` (its workers send the mails through a real Postfix) and a
phone-width chromium: the recipient asks for a code, enters it from the mail, downloads a document and sends a file
back; ``inkless message status --json`` then shows each step."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, INKLESS, free_port
from tests.e2e.test_delivery_browser import _first_login
from tests.helpers.nodes import wait_healthy
from tests.helpers.postfix import PrivatePostfix, postfix_available, running_postfix
from tests.helpers.seals import sample_pdf

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(postfix_available() is not None, reason=str(postfix_available()))]


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([INKLESS, *args], capture_output=True, text=True, env=env, check=False, timeout=120)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, dict[str, str], PrivatePostfix]]:
    with running_postfix(tls=True) as postfix:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        data = tmp_path / "node"
        env = {k: v for k, v in os.environ.items() if not k.startswith("INKLESS_")}
        env.update({"INKLESS_SMTP_URL": postfix.smtp_url + "?starttls=require",
                    "INKLESS_SMTP_CA_FILE": str(postfix.ca_file),
                    "INKLESS_SMTP_FROM": "法務省 民事局 <no-reply@moj.example.go.jp>",
                    "INKLESS_MAIL_POLL_SECONDS": "1"})
        init = run(env, "init", "--data", str(data), "--demo", "--url", url, "--json")
        assert init.returncode == 0, init.stderr
        (tmp_path / "accounts.json").write_text(json.dumps(json.loads(init.stdout)["accounts"]))
        log = (tmp_path / "serve.log").open("wb")
        process = subprocess.Popen([INKLESS, "serve", "--data", str(data), "--port", str(port)], stdout=log,
                                   stderr=subprocess.STDOUT, env=env)
        try:
            wait_healthy(url, alive=lambda: process.poll() is None)
            yield url, data, env, postfix
        finally:
            process.terminate()
            process.wait(30)
            log.close()


def _plain(mail: object) -> str:
    body = mail.get_body(("plain",))  # type: ignore[attr-defined]
    return str(body.get_content())


def test_a_recipient_collects_documents_on_a_phone_and_replies(
        served: tuple[str, Path, dict[str, str], PrivatePostfix], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    url, data, env, postfix = served
    shots = Path(os.environ.get("INKLESS_TEST_SCREENSHOTS", tmp_path / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    to = f"taro-{uuid.uuid4().hex[:8]}@example.co.jp"
    document = tmp_path / "通知書.pdf"
    document.write_bytes(sample_pdf(2))
    sent = run(env, "send", str(document), "--from", "civil-affairs", "--as", "tanaka", "--to", to,
               "--subject", "過料決定通知書の送付", "--data", str(data))
    assert sent.returncode == 0, sent.stderr
    message_id = sent.stdout.strip()
    # The workers of inkless serve send the notice (the send command only queued it).
    [notice] = postfix.wait_for(to, timeout=60)
    link = re.search(rf"{re.escape(url)}/p/[A-Za-z0-9_-]+", _plain(notice))
    assert link and list(notice.iter_attachments()) == []

    reply_file = tmp_path / "返信.png"
    from PIL import Image

    Image.new("RGB", (400, 300), "white").save(reply_file)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="ja-JP", viewport={"width": 390, "height": 844})
            page.goto(link.group(0))
            expect(page.get_by_role("heading", name="文書の受け取り")).to_be_visible()
            page.screenshot(path=str(shots / "pickup-code-390.png"), full_page=True)
            page.get_by_role("button", name="確認コードを送る").click()
            expect(page.get_by_role("status")).to_contain_text("確認コードを送りました")
            code_mail = postfix.wait_for(to, count=2, timeout=60)[-1]
            code = re.search(r"確認コード: (\d{6})", _plain(code_mail))
            assert code
            page.get_by_label("確認コード（6桁）").fill(code.group(1))
            page.get_by_role("button", name="文書を表示する").click()
            expect(page.get_by_role("heading", name="過料決定通知書の送付")).to_be_visible()
            page.screenshot(path=str(shots / "pickup-documents-390.png"), full_page=True)
            wide = page.evaluate("[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect()"
                                 ".right > window.innerWidth + 1).map(e => e.tagName + '.' + e.className)")
            assert wide == []  # nothing wider than the phone: no sideways scrolling
            with page.expect_download() as download:
                page.get_by_role("link", name="通知書.pdf").click()
            assert Path(download.value.path()).read_bytes() == document.read_bytes()
            page.get_by_label("ファイル（PDF・JPEG・PNG、20MBまでのファイルを5つまで）").set_input_files(str(reply_file))
            page.get_by_label("メッセージ（任意）").fill("確認しました。")
            page.get_by_role("button", name="送信").click()
            expect(page.get_by_role("status")).to_contain_text("ありがとうございます")
            page.set_viewport_size({"width": 1366, "height": 900})
            page.screenshot(path=str(shots / "pickup-documents-1366.png"), full_page=True)

            # The sender sees every step with JST times on the message page, on a phone too.
            accounts = {a["login"]: a for a in json.loads((tmp_path / "accounts.json").read_text())}
            clerk = browser.new_page(locale="ja-JP", viewport={"width": 390, "height": 844})
            _first_login(clerk, url, "tanaka", accounts["tanaka"])
            clerk.goto(f"{url}/messages/{message_id}")
            row = clerk.locator(f'.pickups li[data-recipient="{to}"]')
            expect(row).to_have_attribute("data-state", "replied")
            for label in ("通知済み", "開封", "ダウンロード", "返信"):
                expect(row.locator("ul.timeline")).to_contain_text(re.compile(
                    label + r" \d{4}年\d{1,2}月\d{1,2}日 \d{2}:\d{2} JST"))
            expect(row).to_contain_text("返信.pdf")
            clerk.screenshot(path=str(shots / "pickup-sender-390.png"), full_page=True)
            clerk.set_viewport_size({"width": 1366, "height": 900})
            clerk.screenshot(path=str(shots / "pickup-sender-1366.png"), full_page=True)

            # The reply threads into the conversation: listed under the message, it opens as an item of the
            # office's inbox (external, e-mail verified) that points back at the message.
            thread = clerk.locator('#conversation li[data-source="pickup"]')
            expect(thread).to_contain_text("メール受取人からの返信")
            expect(thread).to_contain_text("外部・メール確認済み")
            thread.get_by_role("link", name="Re: 過料決定通知書の送付").click()
            expect(clerk.locator("#pickup-comment")).to_contain_text("確認しました。")
            expect(clerk.locator(f'#facts a[href="/messages/{message_id}"]')).to_be_visible()
            clerk.goto(f"{url}/offices/civil-affairs/inbox")
            expect(clerk.locator('tr[data-source="pickup"]')).to_contain_text("Re: 過料決定通知書の送付")
        finally:
            browser.close()

    status = run(env, "message", "status", message_id, "--as", "tanaka", "--json", "--data", str(data))
    assert status.returncode == 0, status.stderr
    [row] = json.loads(status.stdout)
    assert (row["recipient"], row["kind"], row["state"]) == (to, "email", "replied")
    assert row["notified_at"] < row["opened_at"] < row["downloaded_at"] < row["replied_at"]
    assert [r["name"] for r in row["replies"]] == ["返信.pdf"]  # the image came back as a PDF
