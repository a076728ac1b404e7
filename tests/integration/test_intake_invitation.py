"""招待FAXを送る from the fax log: the clerk's button queues a fax to the calling number whose cover page carries
the intake window's QR code (read back by zbarimg), and the invitation is recorded with number, office and time.
While the window is closed, cover pages carry no invitation and the button is not offered."""

from __future__ import annotations

import re
import subprocess
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from inkless.app import Node
from inkless.db.tables_fax import fax_jobs
from inkless.db.tables_intake import fax_invitations
from inkless.directory.demo import DemoSample
from inkless.fax import imaging
from inkless.fax.model import CallResult
from inkless.web.app import create_app
from tests.helpers.intake import OFFICE, open_window
from tests.helpers.web import browser_login

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

CALLER = "0798-11-2222"


@pytest.fixture
def faxed(node: Node, demo: DemoSample) -> Iterator[tuple[Node, int]]:
    assert node.fax is not None
    received = node.fax.receive(CallResult(
        success=True, t30_code=0, t30_text="OK", pages_transferred=1, pages_expected=None, remote_ident="YAMADA",
        local_ident="NODE", calling_number=CALLER, called_number="03-3580-4111", sub_address=None, bit_rate=9600,
        ecm=False, compression="T.4 1D MH", bad_rows=0, duration_s=20.0, started_at=datetime.now(UTC),
        received_tiff=imaging.pdf_to_tiff(_one_page()),
    ), "loopback")
    assert received.status == "delivered"
    yield node, received.call_id


def _one_page() -> bytes:
    from tests.helpers.seals import sample_pdf

    return sample_pdf(1)


def _cover_codes(node: Node, job: int, folder: Path) -> list[str]:
    with node.db.read() as conn:
        digest = conn.execute(select(fax_jobs.c.tiff_blob).where(fax_jobs.c.id == job)).scalar_one()
    cover = folder / f"cover-{job}.png"
    imaging.tiff_images(node.blobs.get(digest))[0].save(cover)
    found = subprocess.run(["zbarimg", "--quiet", "--raw", str(cover)], capture_output=True, text=True)
    return found.stdout.split()


def test_the_fax_log_button_invites_the_caller_once_the_window_is_open(faxed: tuple[Node, int],
                                                                        tmp_path: Path) -> None:
    node, call_id = faxed
    clerk = browser_login(node, "tanaka")
    office = TestClient(create_app(node), cookies=clerk.cookies, follow_redirects=False)
    closed_log = office.get("/fax/log").text
    assert "招待FAXを送る" not in closed_log
    refused = office.post(f"/fax/calls/{call_id}/invite", data={"csrf_token": clerk.csrf})
    assert refused.status_code == 422 and "受付窓口を開いてください" in refused.text
    # A clerk's ordinary fax while the window is closed: no invitation on its cover page.
    assert node.fax is not None
    plain = node.fax.send("tanaka", OFFICE, "06-6941-0351", [_one_page()], cover_page=True)
    assert _cover_codes(node, plain, tmp_path) == []

    open_window(node)
    url = f"{node.settings.base_url}/i/{OFFICE}"
    log = office.get("/fax/log").text
    assert "招待FAXを送る" in log
    pressed = office.post(f"/fax/calls/{call_id}/invite", data={"csrf_token": clerk.csrf})
    assert pressed.status_code == 303
    job = int(re.search(r"invited=(\d+)", pressed.headers["location"]).group(1))  # type: ignore[union-attr]
    notice = office.get(pressed.headers["location"]).text
    assert f"招待FAXを送信待ちにしました（FAXジョブ {job}）" in notice
    queued = node.fax.job(job)
    assert (queued.number, queued.pages, queued.office_code) == (CALLER, 2, OFFICE)
    assert _cover_codes(node, job, tmp_path) == [url]
    with node.db.read() as conn:
        [row] = conn.execute(select(fax_invitations)).all()
    assert (row.number, row.invited_by, row.fax_job_id, row.source, row.source_ref) == (
        CALLER, "tanaka", job, "fax_call", str(call_id))
    # Every cover page of the office now invites, an ordinary fax's too.
    ordinary = node.fax.send("tanaka", OFFICE, "06-6941-0351", [_one_page()], cover_page=True)
    assert _cover_codes(node, ordinary, tmp_path) == [url]
    # Without the session's CSRF token nothing is sent.
    assert office.post(f"/fax/calls/{call_id}/invite").status_code == 403


def test_a_node_without_mail_says_the_window_cannot_send_codes(node: Node, demo: DemoSample) -> None:
    from tests.helpers.intake import FORM, two_files

    open_window(node)
    assert node.mail is not None and not node.mail.enabled  # no smtp_url
    stranger = TestClient(create_app(node), client=("198.51.100.9", 40000))
    page = stranger.post(f"/intake/{OFFICE}", data=FORM, files=two_files())
    assert page.status_code == 503
    assert "この窓口では現在メールを送れません" in page.text and 'value="営業許可の更新申請"' in page.text
    english = stranger.post(f"/intake/{OFFICE}?lang=en", data=FORM, files=two_files())
    assert "This window cannot send e-mail at the moment." in english.text
    assert node.delivery is not None and node.delivery.inbox(OFFICE, "tanaka") == []
