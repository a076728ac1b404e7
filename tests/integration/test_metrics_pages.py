"""The migration dashboards over HTTP (SQLite and PostgreSQL): Japanese figures from generated history,
drill-down limited to the viewer's office, one-click classification, paper records, CSV exports."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from inkless.app import Node, init_node
from inkless.config import load_settings
from inkless.directory.demo import DEMO_NODE_ID, DEMO_ORGANISATION, create_demo
from inkless.metrics.demo import create_demo_procedures
from inkless.web.app import create_app
from tests.conftest import BACKENDS
from tests.helpers.db import fresh_database
from tests.helpers.metrics_history import History, generate
from tests.helpers.nodes import refused_url
from tests.helpers.web import BrowserLogin, TestClient, browser_login

WEEK = "2026-W49"


def cookie(session: BrowserLogin) -> dict[str, str]:
    return {"Cookie": f"inkless_session={session.cookie}"}


@dataclass
class Dashboards:
    node: Node
    client: TestClient
    history: History

    def get(self, login: str, path: str) -> tuple[int, str]:
        session = browser_login(self.node, login)
        response = self.client.get(path, headers=cookie(session))
        return response.status_code, response.text

    def post(self, login: str, path: str, data: dict[str, str]) -> tuple[int, str, str]:
        session = browser_login(self.node, login)
        response = self.client.post(path, data={**data, "csrf_token": session.csrf}, headers=cookie(session),
                                    follow_redirects=False)
        return response.status_code, response.headers.get("location", ""), response.text


@pytest.fixture(scope="module", params=BACKENDS)
def dashboards(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboards]:
    """One demo node per backend with the generated history (tests that change it look at deltas only)."""
    folder: Path = tmp_path_factory.mktemp("dashboards")
    with fresh_database(str(request.param), folder) as url:
        settings = load_settings(folder / "node", env={}, overrides={
            "node_id": DEMO_NODE_ID, "organisation": DEMO_ORGANISATION, "database_url": url,
            "base_url": refused_url()})
        node = init_node(settings)
        try:
            create_demo(node.directory)
            node.directory.add_user("kanri", "civil-affairs", "admin", 3, "管理 一郎")
            assert node.procedures is not None
            create_demo_procedures(node.procedures)
            history = generate(node.db)
            with TestClient(create_app(node), base_url=node.settings.base_url) as client:
                yield Dashboards(node, client, history)
        finally:
            node.close()


def _figure(html: str, key: str) -> int:
    match = re.search(rf'id="fig-{key}".*?<span class="value">(\d+)</span>', html, re.S)
    assert match, key
    return int(match.group(1))


def test_a_clerk_sees_the_office_dashboard_in_japanese(dashboards: Dashboards) -> None:
    status, html = dashboards.get("tanaka", f"/dashboard?week={WEEK}")
    assert status == 200
    assert '<html lang="ja">' in html and "移行状況" in html and "民事局" in html and "FAX受信枚数" in html
    h = dashboards.history
    assert _figure(html, "fax_in_pages") == h.total("fax_in_pages", week=WEEK, office="civil-affairs") == 19
    assert _figure(html, "messages_out") == h.total("messages_out", week=WEEK, office="civil-affairs") == 4
    assert "18手続中1手続が完全デジタル（5.6%）" in html
    # The charts are SVG in the page itself; the dashboard brings no script of its own.
    main = html.split("<main", 1)[1]
    assert "<svg" in main and "週ごとのFAX枚数とデジタル件数" in main and "<script" not in main
    # No English sentence on the Japanese page.
    for english in ("Fax pages", "Digital share", "Migration metrics", "Record paper"):
        assert english not in html
    # Another office's dashboard does not exist for this clerk.
    assert dashboards.get("tanaka", f"/dashboard?week={WEEK}&office=criminal-affairs")[0] == 404
    # English is available.
    status, english_html = dashboards.get("tanaka", f"/dashboard?week={WEEK}&lang=en")
    assert status == 200 and "Fax pages received" in english_html and "FAX受信枚数" not in english_html


def test_drill_down_shows_only_the_viewers_office(dashboards: Dashboards) -> None:
    status, html = dashboards.get("tanaka", f"/dashboard/items?metric=fax_in&period={WEEK}")
    assert status == 200
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td>", html)
    assert len(rows) == 7 and {office for _, office in rows} == {"civil-affairs"}
    assert "JST" in rows[0][0] or "時" in rows[0][0]
    assert dashboards.get("tanaka", f"/dashboard/items?metric=fax_in&period={WEEK}&office=criminal-affairs"
                          )[0] == 404
    # The criminal-affairs clerk sees his office's three faxes, none of civil-affairs.
    _, html = dashboards.get("takahashi", f"/dashboard/items?metric=fax_in&period={WEEK}")
    offices = re.findall(r"<tr><td>.*?</td><td>(.*?)</td>", html)
    assert offices == ["criminal-affairs"] * 3
    # An administrator sees the node and any office.
    status, html = dashboards.get("yamada", f"/dashboard?week={WEEK}")
    assert status == 200 and _figure(html, "fax_in_pages") == 31 and "ノード全体" in html
    assert "37手続中2手続が完全デジタル（5.4%）" in html
    _, html = dashboards.get("yamada", f"/dashboard/items?metric=fax_in&period={WEEK}&office=criminal-affairs")
    assert len(re.findall(r"<tr><td>", html)) == 3


def test_one_click_classification_moves_the_counts(dashboards: Dashboards) -> None:
    node = dashboards.node
    assert node.metrics is not None
    before = node.metrics.report(WEEK, "civil-affairs")
    [call] = [i for i in node.metrics.items("fax_in", WEEK, "civil-affairs", "")][:1]
    # Another office's clerk cannot classify it.
    status, _, _ = dashboards.post("takahashi", "/dashboard/classify", {"call": call.ref, "procedure": "MOJ-KEI-001"})
    assert status == 404
    status, location, _ = dashboards.post("tanaka", "/dashboard/classify", {
        "call": call.ref, "procedure": "MOJ-MIN-009", "back": f"/dashboard/items?metric=fax_in&period={WEEK}"})
    assert (status, location) == (303, f"/dashboard/items?metric=fax_in&period={WEEK}")
    after = node.metrics.report(WEEK, "civil-affairs")
    assert after["unclassified"]["fax"] == before["unclassified"]["fax"] - 1
    moved = {p["code"]: p for p in after["procedures"]}["MOJ-MIN-009"]
    assert moved["fax"] == 1 and moved["fax_pages"] == 5 and moved["label"] == "analogue"
    assert after["figures"]["fax_in_pages"] == before["figures"]["fax_in_pages"]  # moved, not added
    # Back, so that other tests see the generated history.
    assert dashboards.post("tanaka", "/dashboard/classify", {"call": call.ref, "procedure": ""})[0] == 303


def test_paper_form_and_its_errors(dashboards: Dashboards) -> None:
    node = dashboards.node
    assert node.metrics is not None
    before = node.metrics.report("2026-W48", "criminal-affairs")["figures"]
    status, location, _ = dashboards.post("takahashi", "/dashboard/paper", {
        "day": "2026-11-24", "procedure": "MOJ-KEI-002", "received": "2", "sealed": "5"})
    assert (status, location) == (303, "/dashboard?week=2026-W48&office=criminal-affairs")
    after = node.metrics.report("2026-W48", "criminal-affairs")["figures"]
    assert (after["paper_received"] - before["paper_received"], after["paper_sealed"] - before["paper_sealed"]) \
        == (2, 5)
    for data, message in (({"day": "24.11.2026", "received": "1"}, "日付は YYYY-MM-DD の形式で入力してください。"),
                          ({"day": "2026-11-24"}, "件数がどちらも0のため、記録するものがありません。"),
                          ({"day": "2026-11-24", "received": "1", "procedure": "NOPE"},
                           "手続一覧にその手続はありません。")):
        status, _, html = dashboards.post("takahashi", "/dashboard/paper", data)
        assert status in (404, 422) and message in html
    assert node.metrics.report("2026-W48", "criminal-affairs")["figures"] == after


def test_csv_and_json_exports(dashboards: Dashboards) -> None:
    session = browser_login(dashboards.node, "yamada")
    response = dashboards.client.get(f"/dashboard/export/weeks?week={WEEK}", headers=cookie(session))
    assert response.status_code == 200 and response.headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["週", "FAX受信件数", "FAX受信枚数"]
    assert rows[-1] == [WEEK, "10", "31", "4", "5", "4", "7", "3", "0", "50.0", "4", "0"]
    response = dashboards.client.get(f"/dashboard/export/procedures?week={WEEK}&format=json",
                                     headers=cookie(session))
    by_code = {row["手続コード"]: row for row in response.json()}
    assert by_code["MOJ-KEI-001"]["区分"] == "FAX・紙のみ" and by_code["MOJ-KEI-001"]["FAX件数"] == 20
    clerk = browser_login(dashboards.node, "tanaka")
    assert dashboards.client.get(f"/dashboard/export/weeks?week={WEEK}&office=secretariat",
                                 headers=cookie(clerk)).status_code == 404
    assert dashboards.client.get("/dashboard/export/secrets", headers=cookie(clerk)).status_code == 404
