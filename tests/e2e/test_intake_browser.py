"""Issue 10, test 1: a person submits two files on a phone-width page (no JavaScript), proves the address with
the code from the mail (a private Postfix delivers it), gets the receipt number and a 受付証明 whose seal
pdfsig accepts; the item is in the office inbox marked external; the status check works."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from inkless.app import build_node
from inkless.config import load_settings
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, INKLESS, ServedNode, _clean_env, _wait_until_healthy, free_port
from tests.helpers.intake import code_in, photo_png
from tests.helpers.postfix import PrivatePostfix, postfix_available, running_postfix
from tests.helpers.seals import nss_db_trusting, sample_pdf
from tests.helpers.web import browser_login

ADDRESS = "taro.yamada@example.jp"
MAIL_WAIT = 60.0


@dataclass
class Window:
    node: ServedNode
    postfix: PrivatePostfix


@pytest.fixture
def window(tmp_path: Path) -> Iterator[Window]:
    if (missing := postfix_available()) is not None:
        pytest.fail(missing)
    with running_postfix() as postfix:
        data = tmp_path / "node"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = _clean_env({"INKLESS_SMTP_URL": postfix.smtp_url,
                          "INKLESS_SMTP_FROM": "法務省 民事局 <no-reply@moj.example.lg.jp>"})
        init = subprocess.run([INKLESS, "init", "--data", str(data), "--demo", "--url", url, "--json"],
                              capture_output=True, text=True, env=env, check=False, timeout=300)
        assert init.returncode == 0, init.stderr
        accounts = {a["login"]: a for a in json.loads(init.stdout)["accounts"]}
        log = tmp_path / "serve.log"
        with log.open("wb") as out:
            process = subprocess.Popen([INKLESS, "serve", "--data", str(data), "--port", str(port)],
                                       stdout=out, stderr=subprocess.STDOUT, env=env)
        node = ServedNode(url=url, data=data, env=env, process=process, log=log, accounts=accounts)
        try:
            _wait_until_healthy(node)
            opened = node.cli("intake", "open", "civil-affairs")
            assert opened.returncode == 0, opened.stderr
            yield Window(node, postfix)
        finally:
            node.stop()


def _body(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def _mails(w: Window, count: int) -> list[EmailMessage]:
    return w.postfix.wait_for(ADDRESS, count=count, timeout=MAIL_WAIT)


@pytest.mark.browser
def test_a_person_submits_two_files_from_a_phone_and_checks_the_status(window: Window, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    node = window.node
    (tmp_path / "営業許可申請書.pdf").write_bytes(sample_pdf(2))
    (tmp_path / "免許証.png").write_bytes(photo_png())
    shots = tmp_path / "shots"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="ja-JP", viewport={"width": 390, "height": 844},
                                    java_script_enabled=False)
            page.goto(node.url + "/i/civil-affairs")
            expect(page).to_have_url(node.url + "/intake/civil-affairs")
            expect(page.get_by_role("heading", name="受付窓口 民事局")).to_be_visible()
            page.get_by_label("お名前").fill("山田 太郎")
            page.get_by_label("会社名・団体名（任意）").fill("山田商店")
            page.get_by_label("メールアドレス").fill(ADDRESS)
            page.get_by_label("件名").fill("営業許可の更新申請")
            # The procedures are the office's in the node's catalogue (the demo catalogue), then その他.
            page.get_by_label("手続").select_option("戸籍謄本等の交付請求")
            page.get_by_label("メッセージ（任意）").fill("更新の書類と免許証の写真を送ります。")
            page.get_by_label("ファイル").set_input_files([str(tmp_path / "営業許可申請書.pdf"),
                                                        str(tmp_path / "免許証.png")])
            page.screenshot(path=str(shots / "form-390.png"), full_page=True)
            page.get_by_role("button", name="確認コードを送る").click()
            expect(page.get_by_role("heading", name="確認コード")).to_be_visible()
            expect(page.get_by_text("ta***@example.jp に6桁の確認コードを送りました")).to_be_visible()

            [code_mail] = _mails(window, 1)
            assert "確認コード" in str(code_mail["Subject"]) and not list(code_mail.iter_attachments())
            page.get_by_label("メールに書かれた6桁の確認コード").fill(code_in(_body(code_mail)))
            page.get_by_role("button", name="確認").click()
            expect(page.get_by_role("heading", name="書類を受け付けました")).to_be_visible()
            number = page.locator("#receipt-number").inner_text().strip()
            assert re.fullmatch(r"\d{8}-[A-Z0-9]{6}", number)
            page.screenshot(path=str(shots / "receipt-390.png"), full_page=True)
            with page.expect_download() as download:
                page.get_by_role("button", name="受付証明（PDF）をダウンロード").click()
            certificate = tmp_path / "受付証明.pdf"
            download.value.save_as(certificate)

            receipt_mail = _mails(window, 2)[1]
            assert number in str(receipt_mail["Subject"]) and number in _body(receipt_mail)
            assert not list(receipt_mail.iter_attachments())

            # The seal: pdfsig (poppler/NSS) validates it and trusts the node CA; the text says what was received.
            ca = tmp_path / "ca.pem"
            ca.write_bytes(httpx.get(node.url + "/pki/ca.pem").content)
            nss = nss_db_trusting(ca, tmp_path / "nss")
            sig = subprocess.run(["pdfsig", "-nssdir", nss, str(certificate)], capture_output=True, text=True,
                                 check=True).stdout
            assert "Signature Validation: Signature is Valid." in sig
            assert "Certificate Validation: Certificate is Trusted." in sig
            assert "Signer Certificate Common Name: 民事局" in sig
            text = subprocess.run(["pdftotext", str(certificate), "-"], capture_output=True, text=True,
                                  check=True).stdout
            assert number in text and "営業許可申請書.pdf" in text and "山田 太郎" in text

            # The office inbox: an item marked external and e-mail-verified, never an authenticated office.
            listing = node.cli("inbox", "civil-affairs", "--as", "tanaka", "--json")
            [item] = [i for i in json.loads(listing.stdout) if i["source"] == "intake"]
            assert item["authenticated"] is False and item["documents"] == 3
            served = build_node(load_settings(node.data, env=node.env))
            try:
                clerk = browser_login(served, "tanaka")
            finally:
                served.close()
            with httpx.Client(base_url=node.url, cookies=clerk.cookies, timeout=60) as office:
                inbox = office.get("/offices/civil-affairs/inbox").text
                assert "外部・メール確認済み" in inbox and number in inbox
                status_before = _status(page, window, number, 3)
                assert "受け付けました（担当部署の確認前）" in status_before
                message = office.get(f"/messages/{item['message_id']}").text
                assert "山田 太郎" in message and ADDRESS in message and "戸籍謄本等の交付請求" in message
                assert "MOJ-MIN-005" in message  # the catalogue's code travels in the envelope, for the figures
            status_after = _status(page, window, number, 4)
            assert "担当部署が確認しました" in status_after
            page.screenshot(path=str(shots / "status-390.png"), full_page=True)
        finally:
            browser.close()


def _status(page: object, window: Window, number: str, mails: int) -> str:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    page.goto(window.node.url + "/intake/civil-affairs/status")
    page.get_by_label("受付番号").fill(number)
    page.get_by_label("メールアドレス").fill(ADDRESS)
    page.get_by_role("button", name="確認コードを送る").click()
    mail = _mails(window, mails)[mails - 1]
    page.get_by_label("メールに書かれた6桁の確認コード").fill(code_in(_body(mail)))
    page.get_by_role("button", name="確認").click()
    expect(page.get_by_role("heading", name="受付状況の確認")).to_be_visible()
    return str(page.locator("#intake-status").inner_text())
