"""An approver in a real browser against ``inkless serve``: log in, open the queue, stamp, see the imprint."""

from __future__ import annotations

import struct
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, ServedNode
from tests.helpers.route_docs import sample_pdf

NEW_PASSWORD = "hanko-no-nai-2026-fuyu"


def _decode_png(data: bytes) -> tuple[int, int, int, bytes]:
    """Width, height, channels and raw pixels of an 8-bit RGB(A) PNG, as Chromium writes screenshots."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6), (depth, colour)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    out = bytearray()
    prev = bytearray(stride)
    for y in range(height):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        out += line
        prev = line
    return width, height, channels, bytes(out)


def _vermilion_pixels(png: bytes) -> int:
    width, height, channels, pixels = _decode_png(png)
    count = 0
    for i in range(0, width * height * channels, channels):
        r, g, b = pixels[i], pixels[i + 1], pixels[i + 2]
        if r > 150 and g < 150 and b < 140 and r - g > 70:
            count += 1
    return count


@pytest.mark.browser
def test_an_approver_logs_in_opens_the_queue_stamps_and_sees_the_imprint(
    served_node: ServedNode, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    document = tmp_path / "予算要求.pdf"
    document.write_bytes(sample_pdf(1))
    started = served_node.cli(
        "route", "start", str(document), "--as", "tanaka", "--step", "tanaka", "--title", "担当",
        "--step", "sato", "--title", "課長", "--name", "令和9年度予算要求",
    )
    assert started.returncode == 0, started.stderr
    assert served_node.cli("route", "approve", "1", "--as", "tanaka").returncode == 0

    sato = served_node.accounts["sato"]
    totp = pyotp.TOTP(sato["totp_secret"])
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="ja-JP", viewport={"width": 1280, "height": 1000})
            page.goto(served_node.url + "/login")
            page.get_by_label("ログイン名").fill("sato")
            page.get_by_label("パスワード").fill(sato["password"])
            page.get_by_role("button", name="次へ").click()
            expect(page).to_have_url(served_node.url + "/login/enrol")
            page.get_by_label("認証アプリに表示される6桁のコード").fill(totp.now())
            page.get_by_role("button", name="確認").click()
            page.get_by_label("新しいパスワード", exact=True).fill(NEW_PASSWORD)
            page.get_by_label("新しいパスワード（確認）").fill(NEW_PASSWORD)
            page.get_by_role("button", name="パスワードを変更").click()
            expect(page).to_have_url(served_node.url + "/offices/civil-affairs/inbox")

            # The queue: 承認待ち in the navigation, the document waiting for sato's 課長 box.
            page.get_by_role("link", name="承認待ち").click()
            expect(page.get_by_role("heading", name="承認待ち")).to_be_visible()
            queue = page.locator("#queue")
            expect(queue).to_contain_text("令和9年度予算要求")
            expect(queue).to_contain_text("課長")
            page.screenshot(path=str(tmp_path / "queue.png"), full_page=True)
            queue.get_by_role("link", name="令和9年度予算要求").click()

            # The stamp dialog with the page preview: only tanaka's seal so far, sato's box outlined.
            expect(page.locator("#stamp-dialog")).to_be_visible()
            expect(page.get_by_text("青枠の欄に押印されます。")).to_be_visible()
            preview = page.locator("#preview")
            expect(preview).to_be_visible()
            page.wait_for_load_state("load")  # images included
            before = _vermilion_pixels(preview.screenshot(path=str(tmp_path / "preview-before.png")))
            assert before > 50  # the 担当's imprint

            page.get_by_label("認印").check()
            page.get_by_role("button", name="押印する").click()
            expect(page.get_by_text("押印しました。")).to_be_visible()
            page.wait_for_load_state("load")  # images included
            preview = page.locator("#preview")
            after = _vermilion_pixels(preview.screenshot(path=str(tmp_path / "preview-after.png")))
            assert after > before * 1.6, (before, after)  # sato's imprint is in the picture now
            expect(page.locator("#route-state")).to_have_text("公印待ち")
            expect(page.locator("#timeline")).to_contain_text("sato")

            # The office seal asks for the one-time code again (the next one: each code works once).
            page.get_by_label("ワンタイムコードをもう一度入力してください").fill(
                totp.at(datetime.now(UTC) + timedelta(seconds=30))
            )
            page.get_by_role("button", name="公印を押す").click()
            expect(page.get_by_text("公印を押しました。文書は完成です。")).to_be_visible()
            expect(page.locator("#route-state")).to_have_text("完了")
            page.wait_for_load_state("load")  # images included
            sealed = _vermilion_pixels(page.locator("#preview").screenshot(path=str(tmp_path / "preview-sealed.png")))
            assert sealed > after * 1.5, (after, sealed)  # the 角印 carries more ink than a personal seal
            page.screenshot(path=str(tmp_path / "route.png"), full_page=True)
        finally:
            browser.close()
