"""Roll-ups and dashboard figures on generated history with known totals (SQLite and PostgreSQL).

Every figure and CSV cell is compared with the totals the generator says it wrote; the roll-ups kept
in the events' transactions equal a rebuild from the source rows, also after a writer was killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete

from inkless.app import Node
from inkless.db.tables_metrics import metrics_rollup
from inkless.directory.demo import DemoSample
from inkless.errors import NotFoundError, ValidationError
from inkless.metrics import export
from inkless.metrics import rollup as r
from inkless.metrics.demo import create_demo_procedures
from inkless.metrics.periods import week_monday, week_of, weeks_back
from inkless.metrics.service import MetricsService
from tests.helpers.metrics_history import OFFICES, REMOTES, WEEKS, History, generate

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def history(node: Node, demo: DemoSample) -> Iterator[tuple[MetricsService, History]]:
    assert node.procedures is not None and node.metrics is not None
    create_demo_procedures(node.procedures)
    yield node.metrics, generate(node.db)


def test_every_figure_and_csv_cell_matches_the_generated_totals(node: Node,
                                                                 history: tuple[MetricsService, History]) -> None:
    metrics, h = history
    week = "2026-W49"
    report = metrics.report(week)
    fig = report["figures"]
    for metric in r.METRICS:
        assert fig[metric] == h.total(metric, week=week), metric
    # By hand from the plan: per week 7 messages out, 4 in, 3 intake submissions; faxes in 10, out 4.
    assert (fig["messages_out"], fig["messages_in"], fig["fax_in"], fig["fax_out"]) == (7, 4, 10, 4)
    assert (fig["fax_in_pages"], fig["fax_out_pages"], fig["seals_digital"], fig["intake"]) == (31, 5, 4, 3)
    assert fig["digital_items"] == 14 and fig["fax_paper_items"] == 14
    assert fig["digital_share"] == round(100 * 14 / 28, 1) == 50.0
    assert report["seals"] == {"digital": 4, "paper": 0}
    # Twelve weeks of trend, the generated four at the end.
    assert [w["week"] for w in report["weeks"]][-4:] == list(WEEKS)
    assert [w["fax_in_pages"] for w in report["weeks"]] == [0] * 8 + [31] * 4
    # Months: 2026-11 holds W46–W48 and the first days of W49 (Mon 30 Nov), 2026-12 the rest of W49.
    months = {m["month"]: m for m in report["months"]}
    assert months["2026-11"]["messages_out"] + months["2026-12"]["messages_out"] == 4 * 7
    assert report["fiscal_year"]["year"] == 2026 and report["fiscal_year"]["fax_in"] == 40
    assert months["2026-11"]["intake"] + months["2026-12"]["intake"] == report["fiscal_year"]["intake"] == 4 * 3

    # Per office; the node-wide office table adds up to the node.
    civil = metrics.report(week, "civil-affairs")
    for metric in r.METRICS:
        assert civil["figures"][metric] == h.total(metric, week=week, office="civil-affairs"), metric
    assert civil["office_name"] == "民事局" and civil["figures"]["fax_in"] == 7 and civil["figures"]["intake"] == 2
    assert {o["office"] for o in report["offices"]} == set(OFFICES)
    assert sum(o["fax_in_pages"] for o in report["offices"]) == fig["fax_in_pages"]

    # Per procedure over the 13 weeks ending W49 (all four generated weeks).
    procedures = {p["code"]: p for p in report["procedures"]}
    # MOJ-MIN-001: 5 messages and 2 intake submissions a week, four weeks.
    assert procedures["MOJ-MIN-001"]["label"] == "digital" and procedures["MOJ-MIN-001"]["digital_items"] == 28
    assert procedures["MOJ-MIN-005"]["label"] == "mixed"
    assert (procedures["MOJ-MIN-006"]["label"], procedures["MOJ-MIN-006"]["fax"],
            procedures["MOJ-MIN-006"]["fax_pages"]) == ("analogue", 16, 32)
    assert procedures["MOJ-KEI-001"]["label_ja"] == "FAX・紙のみ"
    assert procedures["MOJ-KAN-006"]["label"] == "mixed" and procedures["MOJ-MIN-002"]["label"] == "none"
    assert report["unclassified"]["fax"] == 4 and report["unclassified"]["fax_pages"] == 20
    headline = report["headline"]
    assert (headline["fully_digital"], headline["procedures"]) == (2, 37)
    assert headline["text"] == "37手続中2手続が完全デジタル（5.4%）"
    assert civil["headline"]["text"] == "18手続中1手続が完全デジタル（5.6%）"

    # The CSV tables carry the same figures, cell by cell.
    headers, rows = export.table(report, "weeks")
    assert headers[:5] == ["週", "FAX受信件数", "FAX受信枚数", "FAX送信件数", "FAX送信枚数"]
    assert headers[7] == "窓口受付"
    assert rows[-1] == [week, 10, 31, 4, 5, 4, 7, 3, 0, 50.0, 4, 0]
    assert rows[0][1:] == [0, 0, 0, 0, 0, 0, 0, 0, "", 0, 0]
    csv_text = export.to_csv(headers, rows)
    assert csv_text.splitlines()[-1] == "2026-W49,10,31,4,5,4,7,3,0,50.0,4,0"
    headers, rows = export.table(report, "procedures")
    cells = {row[0]: row for row in rows}
    assert cells["MOJ-MIN-006"] == ["MOJ-MIN-006", "供託申請", "civil-affairs", "FAX・紙のみ", 0, 0, 16, 32, 0, 0]
    assert cells[""][1] == "未分類" and cells[""][6:8] == [4, 20]
    _, office_rows = export.table(report, "offices")
    assert [row[:4] for row in office_rows] == [
        ["civil-affairs", "民事局", 7, 19], ["criminal-affairs", "刑事局", 3, 12], ["secretariat", "大臣官房", 0, 0]]
    assert [row[8] for row in office_rows] == [2, 0, 1]  # 窓口受付 per office

    # Who still faxes: the three generated numbers, pages and calls as generated.
    who = metrics.who_faxes(week)
    found = {(x["number"], x["direction"]): x for x in who["remotes"]}
    for number in REMOTES:
        for direction in ("RECV", "SEND"):
            key = f"{number}:{direction}"
            if h.remote_calls.get(key):
                assert found[(number, direction)]["calls"] == h.remote_calls[key]
                assert found[(number, direction)]["pages"] == h.remote_pages[key]
    top = who["remotes"][0]
    # Nobody was invited and nobody used the window with these numbers: known "no", not "unknown".
    assert top["number"] == "03-5555-0001" and top["direction"] == "RECV" and top["invited"] is False
    assert top["moved"] is False and top["moved_via"] is None
    assert set(top["offices"]) == {"civil-affairs", "criminal-affairs"}
    headers, rows = export.table(who, "remotes")
    assert headers[:5] == ["方向", "FAX番号", "発信元ID", "通数", "枚数"] and rows[0][:2] == ["受信", "03-5555-0001"]

    # Drill-down: the items behind a figure are exactly as many as it says.
    items = metrics.items("fax_in", week, "civil-affairs", "MOJ-MIN-006")
    assert len(items) == 4 and all(i.office == "civil-affairs" and i.kind == "fax_in" for i in items)
    assert sum(i.value for i in metrics.items("fax_in_pages", week, None, None)) == 31
    assert len(metrics.items("fax_in", week, "", None)) == 0  # every generated fax found its office
    assert len(metrics.items("messages_out", week, "civil-affairs", "")) == 0
    assert len(metrics.items("seals_digital", week, "criminal-affairs", None)) == 2
    intake = metrics.items("intake", week, "civil-affairs", "MOJ-MIN-001")
    assert len(intake) == 2 and {i.kind for i in intake} == {"intake"}
    assert all(i.counterpart and i.counterpart.startswith("R") for i in intake)
    assert [i.office for i in metrics.items("intake", week, None, None)].count("secretariat") == 1


def test_bad_report_input_is_refused(history: tuple[MetricsService, History]) -> None:
    metrics, _ = history
    with pytest.raises(ValidationError, match="is not an ISO week such as 2026-W49"):
        metrics.report("2026-49")
    with pytest.raises(ValidationError, match="is not an ISO week"):
        metrics.report("2026-W54")
    with pytest.raises(NotFoundError, match="no office 'nowhere'"):
        metrics.report("2026-W49", "nowhere")
    with pytest.raises(ValidationError, match="metric: 'pages'"):
        metrics.items("pages", "2026-W49", None, None)
    with pytest.raises(ValidationError, match="both counts are 0"):
        metrics.record_paper("civil-affairs", None, date(2026, 12, 1), 0, 0, "tanaka")


def test_paper_records_targets_and_a_procedure_that_goes_digital(node: Node,
                                                                 history: tuple[MetricsService, History]) -> None:
    metrics, _ = history
    # Paper the clerks handled in W49 (Tuesday 1 December 2026).
    metrics.record_paper("civil-affairs", "MOJ-MIN-001", date(2026, 12, 1), received=3, sealed=2, actor="tanaka")
    report = metrics.report("2026-W49")
    assert report["figures"]["paper_received"] == 3 and report["seals"] == {"digital": 4, "paper": 2}
    # MOJ-MIN-001 had only digital traffic; paper makes it mixed, and the headline drops.
    procedures = {p["code"]: p for p in report["procedures"]}
    assert procedures["MOJ-MIN-001"]["label"] == "mixed" and procedures["MOJ-MIN-001"]["paper_sealed"] == 2
    assert report["headline"]["fully_digital"] == 1
    assert report["figures"]["digital_share"] == round(100 * 14 / 31, 1)

    # A target on fax pages, baseline W46–W47 (31 + 5 pages a week), now 36 a week: no progress yet.
    metrics.set_target(None, "fax_pages", 90, date(2026, 11, 9), date(2026, 11, 22), date(2027, 3, 31), "yamada")
    [target] = metrics.report("2026-W49")["targets"]
    assert target["title"] == "FAX枚数を2027年3月までに90%削減"
    assert (target["baseline_weekly"], target["current_weekly"], target["progress_percent"]) == (36.0, 36.0, 0.0)

    # Thirteen weeks later MOJ-MIN-006 (fax only so far) runs on messages alone: it is now fully digital.
    later = week_of(week_monday("2026-W49") + timedelta(weeks=13))
    assert weeks_back(later, 13)[0] == week_of(week_monday("2026-W49") + timedelta(weeks=1))
    from tests.helpers.metrics_history import Writer, event_times

    with node.db.begin() as conn:
        writer = Writer(conn)
        for at in event_times(later, 3):
            writer.message_out(at, "civil-affairs", "MOJ-MIN-006")
    after = metrics.report(later)
    procedures = {p["code"]: p for p in after["procedures"]}
    assert procedures["MOJ-MIN-006"]["label"] == "digital" and procedures["MOJ-MIN-006"]["fax"] == 0
    assert after["headline"]["text"] == "37手続中1手続が完全デジタル（2.7%）"
    # The fax pages stopped: the target reads 100 % reduction, progress complete.
    [target] = after["targets"]
    assert target["current_weekly"] == 0.0 and target["achieved_percent"] == 100.0
    assert target["progress_percent"] == 100.0
    with pytest.raises(ValidationError, match="deadline: must be after the baseline"):
        metrics.set_target(None, "fax_pages", 50, date(2026, 11, 9), date(2026, 11, 22), date(2026, 11, 1), "y")


def test_rebuild_agrees_and_repairs(node: Node, history: tuple[MetricsService, History]) -> None:
    _, h = history
    checked = r.rebuild(node.db, check_only=True)
    assert checked.differences == {} and checked.counters > 0
    with node.db.read() as conn:
        kept = r.stored(conn)
    assert {k: v for k, v in kept.items() if "-W" in k[0]} == dict(h.expected)
    # Lost roll-ups (a restored old backup, a bug) come back from the source rows.
    with node.db.begin() as conn:
        conn.execute(delete(metrics_rollup).where(metrics_rollup.c.metric == r.FAX_IN_PAGES))
    broken = r.rebuild(node.db)
    assert len(broken.differences) == sum(1 for k in kept if k[3] == r.FAX_IN_PAGES)
    assert r.rebuild(node.db, check_only=True).differences == {}


def test_rollups_equal_a_rebuild_after_a_writer_is_killed_mid_way(node: Node, demo: DemoSample) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen([sys.executable, "-m", "tests.helpers.metrics_history", node.settings.database_url,
                           "100000"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True) as writer:
        assert writer.stdout is not None
        try:
            assert writer.stdout.readline().strip() == "started"
            time.sleep(1.0)  # mid-way: it writes one event per transaction for minutes
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    result = r.rebuild(node.db, check_only=True)
    assert result.counters > 0 and result.differences == {}
