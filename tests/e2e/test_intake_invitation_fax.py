"""Issue 10, test 5: from a received fax, 招待FAXを送る sends the sender a fax whose cover page OCRs to the
intake window's URL; the invitation is recorded (number, office, time)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from inkless.app import build_node
from inkless.config import load_settings
from inkless.db.tables_fax import fax_calls
from inkless.fax import imaging
from tests.e2e.conftest import INKLESS, ServedNode
from tests.helpers.faxdocs import three_page_pdf
from tests.helpers.web import browser_login

LIMIT_SECONDS = 240
SENDER = "06-6941-0351"


def _wait_delivered(node: ServedNode) -> None:
    settings = load_settings(node.data, env=node.env)
    engine = sa.create_engine(settings.database_url)
    deadline = time.monotonic() + LIMIT_SECONDS
    try:
        while True:
            with engine.connect() as conn:
                status = conn.execute(sa.select(fax_calls.c.status).where(fax_calls.c.direction == "RECV")).scalar()
            if status not in (None, "routed"):
                break
            assert time.monotonic() < deadline, node.log.read_text()
            time.sleep(0.5)
    finally:
        engine.dispose()
    assert status == "delivered", node.log.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_invitation_fax_from_a_received_fax_carries_the_intake_url(served_node: ServedNode, tmp_path: Path) -> None:
    opened = served_node.cli("intake", "open", "civil-affairs", "--procedure", "営業許可")
    assert opened.returncode == 0, opened.stderr
    url = f"{served_node.url}/i/civil-affairs"
    assert url in opened.stdout
    socket_path = served_node.data / "fax" / "loopback.sock"
    deadline = time.monotonic() + LIMIT_SECONDS
    while not socket_path.exists():
        assert time.monotonic() < deadline, served_node.log.read_text()
        time.sleep(0.2)
    document = tmp_path / "order.pdf"
    document.write_bytes(three_page_pdf())
    sent = served_node.cli("fax", "simulate", "--to", "03-3580-4111", str(document), "--from-number", SENDER,
                           "--tsi", "YAMADA SHOTEN")
    assert sent.returncode == 0, sent.stderr
    _wait_delivered(served_node)
    listing = served_node.cli("inbox", "civil-affairs", "--as", "tanaka", "--json")
    [item] = [i for i in json.loads(listing.stdout) if i["source"] == "fax"]

    # The clerk opens the fax and presses 招待FAXを送る; a simulated remote answers the call.
    node = build_node(load_settings(served_node.data, env=served_node.env))
    try:
        clerk = browser_login(node, "tanaka")
    finally:
        node.close()
    out = tmp_path / "remote"
    with (tmp_path / "remote.log").open("wb") as sink:
        remote = subprocess.Popen(
            [INKLESS, "fax", "simulate", "--answer", "--out", str(out), "--calls", "1", "--tsi", "YAMADA SHOTEN",
             "--data", str(served_node.data)], env=served_node.env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=served_node.url, cookies=clerk.cookies, timeout=60) as browser:
            page = browser.get(f"/messages/{item['message_id']}")
            assert page.status_code == 200 and "招待FAXを送る" in page.text
            pressed = browser.post(f"/messages/{item['message_id']}/invite", data={"csrf_token": clerk.csrf})
            assert pressed.status_code == 303
            notice = browser.get(pressed.headers["location"])
            assert "招待FAXを送信待ちにしました" in notice.text
        assert remote.wait(timeout=LIMIT_SECONDS) == 0, (tmp_path / "remote.log").read_text()
    finally:
        if remote.poll() is None:
            remote.kill()
            remote.wait()
    call = json.loads((out / "call-000.json").read_text())
    assert call["t30_code"] == 0 and call["pages_transferred"] == 2  # cover page + letter
    cover = imaging.tiff_images((out / "call-000.tif").read_bytes())[0]
    image = tmp_path / "cover.png"
    cover.save(image)
    ocr = subprocess.run(["tesseract", str(image), "-", "-l", "jpn+eng"], capture_output=True, check=True).stdout
    text = re.sub(r"\s+", "", ocr.decode())
    assert url in text, text
    assert "次回からはオンラインで送れます" in text

    invitations = served_node.cli("intake", "invitations", "--json")
    [invitation] = json.loads(invitations.stdout)
    assert (invitation["office"], invitation["number"], invitation["invited_by"], invitation["source"]) == (
        "civil-affairs", SENDER, "tanaka", "message")
