"""Two clerks in a real browser against ``inkless serve``: one sends a PDF to another office, the other
opens it from the inbox and sees the page rendered by the server."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pyotp
import pytest
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas

from inkless.delivery.report import gothic_font
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, ServedNode

NEW_PASSWORD = "fumi-wo-okuru-2026-aki"
SUBJECT = "令和9年度 刑事統計資料の送付"
# The worker delivers on its next outbox pass; the inbox is reloaded until then.
DELIVERY_WAIT_SECONDS = 60


def _japanese_pdf() -> bytes:
    if "IPAexGothic" not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(TTFont("IPAexGothic", str(gothic_font())))
    out = io.BytesIO()
    page = canvas.Canvas(out, pagesize=A4)
    page.setFont("IPAexGothic", 24)
    page.drawString(72, 760, "刑事統計資料（令和9年度）")
    page.setFont("IPAexGothic", 12)
    page.drawString(72, 730, "民事局から刑事局へ、inkless で送付します。")
    page.rect(72, 500, 450, 200)
    page.showPage()
    page.save()
    return out.getvalue()


def _first_login(page: Any, url: str, login: str, account: dict[str, Any]) -> None:
    """Password, authenticator enrolment and the first-login password change, as the other browser tests do."""
    from playwright.sync_api import expect

    page.goto(url + "/login")
    page.get_by_label("ログイン名").fill(login)
    page.get_by_label("パスワード").fill(account["password"])
    page.get_by_role("button", name="次へ").click()
    expect(page).to_have_url(url + "/login/enrol")
    page.get_by_label("認証アプリに表示される6桁のコード").fill(pyotp.TOTP(account["totp_secret"]).now())
    page.get_by_role("button", name="確認").click()
    expect(page).to_have_url(url + "/login/password")
    page.get_by_label("新しいパスワード", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("新しいパスワード（確認）").fill(NEW_PASSWORD)
    page.get_by_role("button", name="パスワードを変更").click()


@pytest.mark.browser
def test_a_clerk_sends_a_pdf_and_the_other_office_opens_it_with_its_preview(
    served_node: ServedNode, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    document = tmp_path / "刑事統計資料.pdf"
    document.write_bytes(_japanese_pdf())
    url = served_node.url
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # 民事局's tanaka sends the PDF to 刑事局.
            page = browser.new_page(locale="ja-JP", viewport={"width": 1200, "height": 900})
            _first_login(page, url, "tanaka", served_node.accounts["tanaka"])
            expect(page).to_have_url(url + "/offices/civil-affairs/inbox")
            page.get_by_role("link", name="文書を送信").click()
            expect(page.get_by_role("heading", name="文書を送信")).to_be_visible()
            # A mistyped address: refused with a clear message, the typed input kept.
            page.get_by_label("宛先（部署アドレスまたはメールアドレス、カンマ区切り）").fill("criminal-afairs@moj")
            page.get_by_label("件名").fill(SUBJECT)
            page.get_by_label("文書（PDF。その他の形式は添付ファイルとして）").set_input_files(str(document))
            page.get_by_role("button", name="送信", exact=True).click()
            expect(page.get_by_role("alert")).to_contain_text("宛先または配信リストが見つかりません。")
            expect(page.get_by_label("件名")).to_have_value(SUBJECT)
            page.screenshot(path=str(tmp_path / "compose-error.png"), full_page=True)
            page.get_by_label("宛先（部署アドレスまたはメールアドレス、カンマ区切り）").fill("criminal-affairs@moj")
            page.get_by_label("区分").select_option("1")
            page.get_by_label("優先度").select_option("urgent")
            # The PDF chosen before the error is still attached: no need to choose it again.
            expect(page.locator("#kept-files")).to_contain_text("刑事統計資料.pdf")
            page.screenshot(path=str(tmp_path / "compose.png"), full_page=True)
            page.get_by_role("button", name="送信", exact=True).click()
            expect(page.get_by_text("送信を受け付けました")).to_be_visible()
            expect(page.locator("#subject")).to_contain_text(SUBJECT)
            page.screenshot(path=str(tmp_path / "sent-message.png"), full_page=True)

            page.get_by_role("link", name="送信済み").click()
            expect(page.locator("#sent")).to_contain_text(SUBJECT)
            page.get_by_role("button", name="ログアウト").click()
            expect(page).to_have_url(url + "/login")

            # 刑事局's takahashi (clearance 2) finds it in the inbox and opens it.
            _first_login(page, url, "takahashi", served_node.accounts["takahashi"])
            expect(page).to_have_url(url + "/offices/criminal-affairs/inbox")
            deadline = time.monotonic() + DELIVERY_WAIT_SECONDS
            while page.get_by_role("link", name=SUBJECT).count() == 0 and time.monotonic() < deadline:
                time.sleep(1)
                page.reload()
            row = page.locator("#inbox tbody tr").filter(has_text=SUBJECT)
            expect(row).to_contain_text("民事局")
            expect(row).to_contain_text("至急")
            expect(row).to_contain_text("内部")
            expect(row).to_contain_text("未読")
            page.screenshot(path=str(tmp_path / "inbox.png"), full_page=True)

            row.get_by_role("link", name=SUBJECT).click()
            expect(page.locator("#subject")).to_contain_text(SUBJECT)
            expect(page.locator("#facts")).to_contain_text("civil-affairs@moj")
            preview = page.locator("figure.page-image img").first
            expect(preview).to_be_visible()
            preview.scroll_into_view_if_needed()
            page.wait_for_load_state("load")  # images included
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=preview.element_handle())
            natural = preview.evaluate("img => [img.naturalWidth, img.naturalHeight]")
            assert natural[0] > 700 and natural[1] > natural[0], natural  # an A4 page, portrait
            expect(page.get_by_role("link", name="刑事統計資料.pdf")).to_be_visible()
            expect(page.get_by_role("link", name="返信")).to_be_visible()
            page.screenshot(path=str(tmp_path / "message.png"), full_page=True)
        finally:
            browser.close()
