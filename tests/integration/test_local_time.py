"""Times as a clerk reads them: Tokyo time on pages, 和暦 on filed PDFs, and the Tokyo time in the fax
header line even when the server's TZ is UTC and the UTC date is still the day before."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pyotp
import pytest

from inkless import timefmt
from inkless.app import Node, init_node
from inkless.clock import FixedClock
from inkless.config import load_settings
from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, create_demo
from inkless.errors import FaxError
from inkless.fax import header as fax_header
from inkless.fax import imaging
from inkless.fax.jobs import JobSchedule
from inkless.fax.loopback import LoopbackLine
from inkless.fax.service import FaxService
from inkless.fax.simulate import AnsweringRemote
from inkless.fax.spool import SpoolLine
from inkless.web.app import create_app
from tests.conftest import BACKENDS
from tests.helpers.cli import inkless as run_inkless
from tests.helpers.db import fresh_database
from tests.helpers.faxdocs import three_page_pdf

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from fastapi.testclient import TestClient

PASSWORD = "asa-no-hikari-2026"
# 15:30 UTC on 3 December is already 00:30 on 4 December in Tokyo.
LATE_UTC = datetime(2026, 12, 3, 15, 30, tzinfo=UTC)
SENDER = "法務省 民事局 03-3580-4111"
# What a clerk must never be shown: UTC, or an ISO timestamp in UTC.
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d)?(\.\d+)?(Z|\+00:00)")


def _pdf_text(pdf: bytes) -> str:
    return subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True,
                          check=True).stdout.decode()


def _assert_no_utc(text: str) -> None:
    assert "UTC" not in text
    assert not ISO_UTC.search(text), ISO_UTC.search(text)


@pytest.fixture(params=BACKENDS)
def node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Node]:
    # Real time: envelopes carry the CMS library's signing time, checked against the clock.
    clock = FixedClock(datetime.now(UTC))
    with fresh_database(str(request.param), tmp_path) as url:
        settings = load_settings(tmp_path, env={}, overrides={
            "node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION, "database_url": url, "workers": False})
        built = init_node(settings, clock)
        create_demo(built.directory)
        try:
            yield built
        finally:
            built.close()


def _login(client: TestClient, node: Node, login: str) -> str:
    secret = node.directory.totp_secret(login)
    now = node.clock.now()
    node.directory.verify_totp(login, pyotp.TOTP(secret).at(now - timedelta(seconds=30)))
    node.directory.set_password(login, PASSWORD, actor="test")
    page = client.post("/login", data={"login": login, "password": PASSWORD})
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    done = client.post("/login/totp", data={"code": pyotp.TOTP(secret).at(now), "csrf_token": csrf.group(1)})
    assert done.status_code == 200
    fresh = re.search(r'name="csrf_token" value="([^"]+)"', done.text)
    assert fresh
    return fresh.group(1)


def test_pages_and_the_transmission_report_show_tokyo_time(node: Node) -> None:
    app = create_app(node)
    with TestClient(app) as tanaka, TestClient(app) as takahashi:
        csrf = _login(tanaka, node, "tanaka")
        _login(takahashi, node, "takahashi")
        sent = tanaka.post("/compose", data={"csrf_token": csrf, "classification": "0", "priority": "normal",
                                             "to": "criminal-affairs@moj", "subject": "時刻の確認"},
                           files=[("files", ("記録.pdf", three_page_pdf(), "application/pdf"))],
                           follow_redirects=False)
        assert sent.status_code == 303, sent.text
        mid = re.fullmatch(r"/messages/([0-9a-f-]{36})\?sent=1", sent.headers["location"])
        assert mid
        assert node.delivery is not None and node.delivery.deliver_due().delivered == 1
        facts, _, _ = node.delivery.report_facts(mid.group(1), "tanaka")
        [item] = node.delivery.inbox("criminal-affairs", "takahashi")

        inbox = takahashi.get("/offices/criminal-affairs/inbox")
        assert timefmt.format_datetime(item.received_at, "ja") in inbox.text  # 2026年12月3日 23:50 JST
        assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日 \d\d:\d\d JST", inbox.text)
        _assert_no_utc(inbox.text)
        english = takahashi.get("/offices/criminal-affairs/inbox?lang=en")
        shown = timefmt.to_local(item.received_at)
        assert f"{shown:%Y-%m-%d %H:%M} JST" in english.text
        _assert_no_utc(english.text)
        # The machine-readable <time datetime> carries Tokyo's offset too.
        assert f'datetime="{shown.isoformat(timespec="seconds")}"' in english.text

        message = takahashi.get(f"/messages/{mid.group(1)}?lang=ja")
        assert timefmt.format_datetime(facts.created_at, "ja") in message.text
        _assert_no_utc(message.text)
        outbox = tanaka.get("/offices/civil-affairs/sent")
        assert timefmt.format_datetime(facts.created_at, "ja") in outbox.text
        _assert_no_utc(outbox.text)

        report = tanaka.get(f"/messages/{mid.group(1)}/report")
        assert report.status_code == 200
    text = _pdf_text(report.content)
    local = timefmt.to_local(facts.created_at)
    era, year = timefmt.era_of(local.date())
    assert f"{era}{year}年{local.month}月{local.day}日 ({local.year}年) {local:%H:%M:%S} JST" in text, text
    assert "令和" in text
    _assert_no_utc(text)


def test_an_office_abroad_sees_its_zone_on_the_pages(tmp_path: Path) -> None:
    with fresh_database("sqlite", tmp_path) as url:
        settings = load_settings(tmp_path, env={"INKLESS_TIMEZONE": "Europe/Berlin"}, overrides={
            "node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION, "database_url": url, "workers": False})
        berlin = init_node(settings, FixedClock(datetime.now(UTC)))
        try:
            create_demo(berlin.directory)
            assert berlin.tokens is not None
            berlin.tokens.create("yamada", "secretariat", "監査連携", actor="yamada")
            created = timefmt.format_datetime(berlin.clock.now(), "en", ZoneInfo("Europe/Berlin"))
            assert created.endswith(" CET")  # December in Berlin
            with TestClient(create_app(berlin)) as client:
                _login(client, berlin, "yamada")
                tokens = client.get("/tokens?lang=en")
            assert tokens.status_code == 200
            assert created in tokens.text
            assert "JST" not in tokens.text
            _assert_no_utc(tokens.text)
        finally:
            berlin.close()


@pytest.fixture
def tz_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The server's own zone is UTC: what it would print with ``datetime.now().astimezone()``."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _band(page: object, rows: int) -> bytes:
    return page.crop((0, 0, page.width, rows)).tobytes()  # type: ignore[attr-defined]


def test_the_spool_header_line_is_stamped_with_the_tokyo_time_on_a_utc_server(tz_utc: None, tmp_path: Path) -> None:
    assert datetime.now().astimezone().utcoffset() == timedelta(0)
    line = SpoolLine(tmp_path / "spool", clock=FixedClock(LATE_UTC))
    tiff = imaging.pdf_to_tiff(three_page_pdf())
    with pytest.raises(FaxError, match="no result"):
        line.dial("0399999999", tiff, ident="+81 3 3580 4111", header=SENDER, timeout_s=0.1)
    [stamped] = (tmp_path / "spool" / "out" / "expired").glob("*.tif")
    pages = imaging.read_tiff(stamped.read_bytes())
    first = imaging.page_image(pages[0]).convert("1")
    rows = fax_header.render_band("x", first.width, pages[0].y_dpi).height
    tokyo = fax_header.render_band(fax_header.header_line(
        LATE_UTC.astimezone(timefmt.TOKYO), SENDER, 1, len(pages)), first.width, pages[0].y_dpi)
    utc = fax_header.render_band(fax_header.header_line(LATE_UTC, SENDER, 1, len(pages)), first.width,
                                 pages[0].y_dpi)
    assert fax_header.header_line(LATE_UTC.astimezone(timefmt.TOKYO), SENDER, 1, 3).startswith("2026/12/04 00:30")
    assert _band(first, rows) == _band(tokyo, rows)
    assert _band(first, rows) != _band(utc, rows)


@pytest.fixture
def sockets() -> Iterator[Path]:
    # UNIX socket paths must stay under 108 bytes: pytest's tmp paths can be longer.
    folder = Path(tempfile.mkdtemp(prefix="inkjst-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_a_fax_sent_after_15_utc_carries_the_next_tokyo_day_on_header_cover_report_and_log(
    tz_utc: None, node: Node, sockets: Path,
) -> None:
    clock = FixedClock(LATE_UTC)
    fax = FaxService(node.db, node.blobs, clock, node.audit, node.directory, node.node_id,
                     delivery=lambda: node.delivery, ocr=lambda pdf: (pdf, False),
                     schedule=JobSchedule(1, 60, 3600), timezone=node.settings.tz)
    remote = sockets / "remote.sock"
    line = LoopbackLine(sockets / "in.sock", remote, clock=clock, timezone=node.settings.tz)
    with AnsweringRemote(remote, sockets / "out") as far:
        job_id = fax.send("tanaka", "civil-affairs", "06-1234-5678", [three_page_pdf()], cover_page=True,
                          subject="時刻の確認")
        assert fax.run_due_jobs(line) == 1
        [received] = far.wait_for_results(1, timeout_s=60)
    assert received.success and received.pages_transferred == 4
    # The header line on the far machine's paper: Tokyo's date and time, page 1 of 4 (the cover page).
    office = node.directory.office("civil-affairs")
    sender = f"{office.name} {office.fax_number or ''}".strip()
    first = imaging.read_tiff((sockets / "out" / "call-000.tif").read_bytes())[0]
    page, y_dpi = imaging.page_image(first).convert("1"), first.y_dpi
    expected_text = fax_header.header_line(LATE_UTC.astimezone(timefmt.TOKYO), sender, 1, 4)
    assert expected_text.startswith("2026/12/04 00:30  FROM 民事局 03-3580-4111")
    rows = fax_header.render_band("x", page.width, y_dpi).height
    tokyo = fax_header.render_band(expected_text, page.width, y_dpi)
    utc = fax_header.render_band(fax_header.header_line(LATE_UTC, sender, 1, 4), page.width, y_dpi)
    got = page.crop((0, 0, page.width, rows))
    differs = sum(a != b for a, b in zip(got.tobytes(), tokyo.tobytes(), strict=True))
    differs_utc = sum(a != b for a, b in zip(got.tobytes(), utc.tobytes(), strict=True))
    assert differs < differs_utc, (differs, differs_utc)
    # The cover page's date row as the far machine printed it, read back by Tesseract: Tokyo's time
    # (the UTC clock says 15:30). OCR of small kanji is unreliable, the digits and zone are not.
    row = page.crop((700, 380, page.width, 500)).convert("L").resize((page.width - 700, 240))
    row_png = tempfile.NamedTemporaryFile(suffix=".png", dir=sockets, delete=False)
    row.save(row_png.name)
    seen = subprocess.run(["tesseract", row_png.name, "-", "-l", "jpn+eng", "--psm", "7"],
                          capture_output=True, text=True, check=True).stdout
    assert "00:30 JST" in seen and "2026" in seen, seen

    # The transmission report PDF: 和暦 with the Western year, JST, the next Tokyo day.
    text = _pdf_text(fax.job_report(job_id))
    assert "令和8年12月4日 (2026年) 00:30:00 JST" in text, text
    _assert_no_utc(text)

    # The fax log page shows the call in Tokyo time.
    node.fax = fax
    [attempt] = fax.attempts(job_id)
    with TestClient(create_app(node)) as client:
        _login(client, node, "tanaka")
        log = client.get("/fax/log?lang=en")
    assert log.status_code == 200
    assert timefmt.format_datetime(attempt.started_at, "en", seconds=True) in log.text
    _assert_no_utc(log.text)


def test_cli_tables_show_the_node_zone_and_json_keeps_utc(tmp_path: Path) -> None:
    data = tmp_path / "node"

    def run(*args: str, zone: str = "Europe/Berlin") -> str:
        # The machine's own TZ is UTC; the node's zone comes from the setting only.
        done = run_inkless(*args, "--data", str(data), env={"TZ": "UTC", "INKLESS_TIMEZONE": zone})
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("init", "--demo", zone="Asia/Tokyo")
    run("token", "create", "yamada", "--office", "secretariat", "--name", "scanner", "--expires-days", "30")
    table = run("token", "list")
    assert re.search(r"scanner\s+\d{4}-\d\d-\d\d \d\d:\d\d CES?T\s", table), table
    audit = run("audit", "list", "--limit", "1", zone="Asia/Tokyo")
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d JST", audit), audit
    _assert_no_utc(table + audit)
    [token] = json.loads(run("token", "list", "--json"))
    assert token["expires_at"].endswith("+00:00")
    bad = run_inkless("audit", "list", "--data", str(data), env={"INKLESS_TIMEZONE": "Asia/Tokio"})
    assert bad.returncode != 0 and "timezone 'Asia/Tokio' is not an IANA time zone" in bad.stderr
