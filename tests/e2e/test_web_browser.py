"""A person logging in to a real ``inkless serve`` with a real browser, and a program using the API."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pyotp
import pytest

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, INKLESS, ServedNode

NEW_PASSWORD = "sakura-saku-2026-haru"


@pytest.mark.browser
def test_first_login_in_the_browser_shows_the_japanese_inbox(served_node: ServedNode, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    tanaka = served_node.accounts["tanaka"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(locale="ja-JP", viewport={"width": 1100, "height": 760})
            page.goto(served_node.url + "/")
            expect(page).to_have_url(served_node.url + "/login")
            expect(page.locator("html")).to_have_attribute("lang", "ja")
            expect(page.get_by_role("heading", name="ログイン")).to_be_visible()
            page.screenshot(path=str(tmp_path / "login.png"))

            page.get_by_label("ログイン名").fill("tanaka")
            page.get_by_label("パスワード").fill(tanaka["password"])
            page.get_by_role("button", name="次へ").click()

            expect(page).to_have_url(served_node.url + "/login/enrol")
            expect(page.get_by_role("heading", name="認証アプリの設定")).to_be_visible()
            expect(page.locator("figure.qr svg")).to_be_visible()
            page.screenshot(path=str(tmp_path / "enrol.png"))
            # What the authenticator app would show after scanning the QR code.
            page.get_by_label("認証アプリに表示される6桁のコード").fill(
                pyotp.TOTP(tanaka["totp_secret"]).now()
            )
            page.get_by_role("button", name="確認").click()

            expect(page).to_have_url(served_node.url + "/login/password")
            page.get_by_label("新しいパスワード", exact=True).fill(NEW_PASSWORD)
            page.get_by_label("新しいパスワード（確認）").fill(NEW_PASSWORD)
            page.get_by_role("button", name="パスワードを変更").click()

            expect(page).to_have_url(served_node.url + "/offices/civil-affairs/inbox")
            expect(page.get_by_role("heading", name="受信箱")).to_be_visible()
            expect(page.get_by_text("受信文書はありません")).to_be_visible()
            expect(page.locator("dd.user")).to_have_text("田中 花子")
            expect(page.locator("dd.office")).to_have_text("民事局")
            expect(page.locator("dd.clearance")).to_have_text("内部")
            page.screenshot(path=str(tmp_path / "inbox.png"), full_page=True)

            # Another office's inbox is closed, to the browser as to the API.
            response = page.goto(served_node.url + "/offices/criminal-affairs/inbox")
            assert response is not None and response.status == 403
            expect(page.get_by_text("自分の部署のページしか開くことができません")).to_be_visible()

            page.goto(served_node.url + "/offices/civil-affairs/inbox")
            page.get_by_role("link", name="English").click()
            expect(page.get_by_role("heading", name="Inbox")).to_be_visible()
            expect(page.locator("html")).to_have_attribute("lang", "en")
            page.get_by_role("link", name="日本語").click()

            page.get_by_role("button", name="ログアウト").click()
            expect(page).to_have_url(served_node.url + "/login")
            page.goto(served_node.url + "/offices/civil-affairs/inbox")
            expect(page).to_have_url(served_node.url + "/login")
        finally:
            browser.close()


def test_api_token_from_the_cli_works_against_the_server(served_node: ServedNode) -> None:
    created = served_node.cli(
        "token", "create", "takahashi", "--office", "criminal-affairs", "--name", "ci", "--json"
    )
    assert created.returncode == 0, created.stderr
    token = json.loads(created.stdout)
    headers = {"Authorization": f"Bearer {token['token']}"}
    inbox = httpx.get(f"{served_node.url}/api/v1/offices/criminal-affairs/inbox", headers=headers, timeout=10)
    assert inbox.status_code == 200 and inbox.json()["messages"] == []
    other = httpx.get(f"{served_node.url}/api/v1/offices/civil-affairs/inbox", headers=headers, timeout=10)
    assert other.status_code == 403

    refused = served_node.cli("token", "create", "takahashi", "--office", "civil-affairs", "--name", "x")
    assert refused.returncode == 4 and "own office" in refused.stderr

    revoked = served_node.cli("token", "revoke", str(token["id"]))
    assert revoked.returncode == 0, revoked.stderr
    again = httpx.get(f"{served_node.url}/api/v1/me", headers=headers, timeout=10)
    assert again.status_code == 401
    listing = json.loads(served_node.cli("token", "list", "--json").stdout)
    assert [(t["name"], t["state"]) for t in listing] == [("ci", "revoked")]
    assert token["token"] not in served_node.cli("token", "list", "--json").stdout


def test_serve_publishes_the_crl_named_in_certificates_and_stops_on_sigterm(served_node: ServedNode) -> None:
    health = httpx.get(f"{served_node.url}/healthz", timeout=10).json()
    assert health["status"] == "ok" and health["node_id"] == "moj"
    crl = httpx.get(f"{served_node.url}/pki/crl", timeout=10)
    assert crl.status_code == 200 and crl.headers["content-type"] == "application/pkix-crl"
    socket = served_node.data / "fax" / "loopback.sock"
    deadline = time.monotonic() + 30
    while not socket.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert socket.exists(), "the fax line should be answering"
    assert served_node.stop() == 0
    # On SIGTERM the fax line hangs up cleanly and gives its socket back.
    assert not socket.exists()
    log = served_node.log.read_text()
    assert f"serving on {served_node.url}/" in log


def test_worker_command_runs_beside_the_server_and_stops_on_sigterm(
    served_node: ServedNode, tmp_path: Path
) -> None:
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [INKLESS, "worker", "--data", str(served_node.data)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=served_node.env,
        )
    try:
        deadline = time.monotonic() + 60
        while (
            "workers running" not in log.read_text() and worker.poll() is None and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert "workers running" in log.read_text(), log.read_text()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
        assert "workers stopped" in log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert httpx.get(f"{served_node.url}/healthz", timeout=10).status_code == 200
