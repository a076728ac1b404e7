"""The clerk chooses the procedure an item is counted against (SQLite and PostgreSQL): on the fax send page
(and its API and command), checked against the office's catalogue, shown before sending, stored with the job
and counted when the fax goes out; the procedure chosen for a counterpart is chosen again next time."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inkless.app import Node
from inkless.cli.main import app as cli
from inkless.delivery.service import NewDocument
from inkless.directory.demo import DemoSample
from inkless.fax import imaging
from inkless.fax.model import CallResult
from inkless.metrics import rollup as r
from inkless.metrics.demo import create_demo_procedures
from inkless.metrics.periods import week_of
from inkless.web.app import create_app
from tests.helpers.seals import sample_pdf
from tests.helpers.web import TestClient, browser_login

OFFICE = "civil-affairs"


@pytest.fixture
def catalogue(node: Node, demo: DemoSample) -> Node:
    assert node.procedures is not None
    create_demo_procedures(node.procedures)
    return node


class AnsweringLine:
    """A line whose far end takes every page (the real lines are tested in the fax tests)."""

    name = "answering"

    def dial(self, number: str, tiff: bytes, *, ident: str, header: str | None, ecm: bool = True,
             timeout_s: float = 60.0) -> CallResult:
        pages = len(imaging.read_tiff(tiff))
        return CallResult(
            success=True, t30_code=0, t30_text="OK", pages_transferred=pages, pages_expected=pages,
            remote_ident="FAR", local_ident=ident, calling_number=None, called_number=number, sub_address=None,
            bit_rate=14400, ecm=ecm, compression="T.6 MMR", bad_rows=0, duration_s=10.0,
            started_at=datetime.now(UTC))

    def listen(self, handler: object) -> None: ...

    def hang_up(self) -> None: ...

    def close(self) -> None: ...


def _fax_out(node: Node, procedure: str) -> int:
    with node.db.read() as conn:
        kept = r.stored(conn)
    return kept.get((week_of(node.clock.now()), OFFICE, procedure, r.FAX_OUT), 0)


def test_the_fax_send_page_counts_the_chosen_procedure(catalogue: Node, tmp_path: Path) -> None:
    node = catalogue
    assert node.fax is not None
    clerk = browser_login(node, "tanaka")
    web = TestClient(create_app(node), cookies=clerk.cookies)
    page = web.get("/fax")
    assert 'id="procedure_code"' in page.text and "手続コード（任意）" in page.text
    assert '<option value="MOJ-MIN-006">供託申請</option>' in page.text
    assert "MOJ-KEI-001" not in page.text  # another office's procedure is not offered
    form = {"number": "06-1234-0000", "classification": "0", "csrf_token": clerk.csrf}
    files = {"document": ("notice.pdf", sample_pdf(1), "application/pdf")}

    # A code not in the office's catalogue, or not a code at all: a clear error, the form kept, nothing queued.
    for code in ("MOJ-KEI-001", "NOPE-1"):
        refused = web.post("/fax/send", data={**form, "procedure_code": code}, files=files)
        assert refused.status_code == 422
        assert f"手続コード {code} はこの部署の手続一覧にありません。" in refused.text
        assert f'name="procedure_code" type="text" maxlength="64" value="{code}"' in refused.text
    malformed = web.post("/fax/send", data={**form, "procedure_code": "供託"}, files=files)
    assert malformed.status_code == 422 and "手続コードは英数字と「.」「_」「-」で1〜64文字です。" in malformed.text
    assert node.fax.jobs(OFFICE) == []

    check = web.post("/fax/send", data={**form, "procedure_code": " MOJ-MIN-006 "}, files=files)
    assert check.status_code == 200 and "FAX送信の確認" in check.text
    assert re.search(r'<dd class="procedure">MOJ-MIN-006 供託申請</dd>', check.text)
    assert node.fax.jobs(OFFICE) == []
    draft = re.search(r'name="draft" value="([^"]+)"', check.text)
    hidden = re.search(r'name="procedure_code" value="([^"]*)"', check.text)
    assert draft and hidden and hidden.group(1) == "MOJ-MIN-006"
    sent = web.post("/fax/send", data={**form, "procedure_code": hidden.group(1), "draft": draft.group(1),
                                       "step": "send"})
    assert sent.status_code == 200 and "を受け付けました" in sent.text
    [job] = node.fax.jobs(OFFICE)
    assert job.procedure_code == "MOJ-MIN-006"
    assert re.search(rf'<tr data-job="{job.id}">.*?<td class="procedure">MOJ-MIN-006</td>', sent.text, re.S)
    # Counted when the call succeeds, against the procedure.
    assert _fax_out(node, "MOJ-MIN-006") == 0
    assert node.fax.run_due_jobs(AnsweringLine()) == 1  # type: ignore[arg-type]
    assert _fax_out(node, "MOJ-MIN-006") == 1

    # The API takes the same field, with the same check.
    headers = {"X-CSRF-Token": clerk.csrf}
    bad = web.post("/api/v1/fax/jobs", data={"number": "0611112222", "procedure_code": "MOJ-KEI-001"},
                   files=files, headers=headers)
    assert bad.status_code == 422 and "MOJ-KEI-001" in bad.json()["detail"]
    made = web.post("/api/v1/fax/jobs", data={"number": "0611112222", "procedure_code": "MOJ-MIN-001"},
                    files=files, headers=headers)
    assert made.status_code == 201 and made.json()["procedure_code"] == "MOJ-MIN-001"
    assert len(node.fax.jobs(OFFICE)) == 2

    # And the command line.
    document = tmp_path / "notice.pdf"
    document.write_bytes(sample_pdf(1))
    runner = CliRunner(env={"INKLESS_DATABASE_URL": node.settings.database_url, "INKLESS_NODE_ID": node.node_id})
    args = ["fax", "send", str(document), "--from", OFFICE, "--to", "0611113333", "--json",
            "--data", str(node.settings.data_dir)]
    refused_cli = runner.invoke(cli, [*args, "--procedure", "NOPE-1"])
    assert refused_cli.exit_code != 0 and len(node.fax.jobs(OFFICE)) == 2
    queued = runner.invoke(cli, [*args, "--procedure", "MOJ-MIN-002"])
    assert queued.exit_code == 0, queued.output
    assert '"procedure_code": "MOJ-MIN-002"' in queued.output


def test_the_procedure_chosen_for_a_counterpart_is_chosen_again(catalogue: Node) -> None:
    node = catalogue
    assert node.fax is not None and node.delivery is not None and node.procedures is not None
    node.fax.send("tanaka", OFFICE, "06-1234-0000", [sample_pdf(1)], procedure_code="MOJ-MIN-006")
    clerk = browser_login(node, "tanaka")
    web = TestClient(create_app(node), cookies=clerk.cookies)

    # 「FAXで返信」 and the like open the page with the number: the procedure is already chosen.
    page = web.get("/fax", params={"number": "+81 6 1234 0000"})
    assert 'name="procedure_code" type="text" maxlength="64" value="MOJ-MIN-006"' in page.text
    assert "この相手に前回選んだ手続です。" in page.text and 'data-remembered-from="number"' in page.text
    # The number typed again, the procedure left empty: the confirmation shows the remembered one.
    form = {"number": "06 1234 0000", "classification": "0", "csrf_token": clerk.csrf, "procedure_code": ""}
    check = web.post("/fax/send", data=form, files={"document": ("a.pdf", sample_pdf(1), "application/pdf")})
    assert re.search(r'<dd class="procedure">MOJ-MIN-006 供託申請 <span class="sub remembered">'
                     r"この相手に前回選んだ手続です。</span></dd>", check.text)
    draft = re.search(r'name="draft" value="([^"]+)"', check.text)
    assert draft and 'name="procedure_code" value="MOJ-MIN-006"' in check.text
    web.post("/fax/send", data={**form, "procedure_code": "MOJ-MIN-006", "draft": draft.group(1), "step": "send"})
    assert [j.procedure_code for j in node.fax.jobs(OFFICE)] == ["MOJ-MIN-006", "MOJ-MIN-006"]
    # A number nobody chose a procedure for starts empty.
    fresh = web.get("/fax", params={"number": "06-9999-0000"})
    assert 'name="procedure_code" type="text" maxlength="64" value=""' in fresh.text

    # Messages: each address the clerk typed remembers the procedure; the page's script asks for it.
    node.delivery.send("tanaka", OFFICE, ["criminal-affairs@moj"], [], "照会",
                       [NewDocument("a.pdf", sample_pdf(1))], procedure_code="MOJ-MIN-001")
    assert 'data-remembered-from="to"' in web.get("/compose").text
    for to in ("criminal-affairs@moj", "Criminal-Affairs@MOJ", "刑事局", "ケイジキョク, secretariat@moj"):
        assert web.get("/procedures/remembered", params={"to": to}).json() == {
            "code": "MOJ-MIN-001", "name": "登記事項証明書の交付請求"}, to
    assert web.get("/procedures/remembered", params={"number": "0612340000"}).json()["code"] == "MOJ-MIN-006"
    assert web.get("/procedures/remembered", params={"to": "secretariat@moj"}).json()["code"] is None
    # A later choice on the compose page replaces the earlier one; a code the office's catalogue lacks is
    # refused there as on the fax page, and nothing is sent.
    compose = {"to": "刑事局", "subject": "照会", "classification": "0", "csrf_token": clerk.csrf}
    attached = {"files": ("a.pdf", sample_pdf(1), "application/pdf")}
    sent_before = len(node.delivery.sent(OFFICE, "tanaka"))
    refused = web.post("/compose", data={**compose, "procedure_code": "MOJ-KEI-001"}, files=attached,
                       follow_redirects=False)
    assert refused.status_code == 422 and "手続コード MOJ-KEI-001 はこの部署の手続一覧にありません。" in refused.text
    assert len(node.delivery.sent(OFFICE, "tanaka")) == sent_before
    done = web.post("/compose", data={**compose, "procedure_code": "MOJ-MIN-002"}, files=attached,
                    follow_redirects=False)
    assert done.status_code == 303, done.text
    assert web.get("/procedures/remembered", params={"to": "刑事局"}).json()["code"] == "MOJ-MIN-002"
    # Another office remembers its own choices: 刑事局 never chose one for this number.
    other = browser_login(node, "takahashi")
    theirs = TestClient(create_app(node), cookies=other.cookies)
    assert theirs.get("/procedures/remembered", params={"number": "06-1234-0000"}).json()["code"] is None
    # A procedure taken out of the catalogue is no longer offered.
    node.procedures.retire("MOJ-MIN-006", "yamada")
    assert web.get("/procedures/remembered", params={"number": "06-1234-0000"}).json()["code"] is None
    assert 'value="MOJ-MIN-006"' not in web.get("/fax", params={"number": "06-1234-0000"}).text
    # Signed out: nothing.
    stranger = TestClient(create_app(node), follow_redirects=False)
    assert stranger.get("/procedures/remembered", params={"to": "刑事局"}).status_code in (303, 401)


def test_a_route_started_with_a_procedure_counts_its_seals_against_it(catalogue: Node, tmp_path: Path) -> None:
    node = catalogue
    assert node.routes is not None
    clerk = browser_login(node, "tanaka")
    web = TestClient(create_app(node), cookies=clerk.cookies, follow_redirects=False)
    page = web.get("/routes/new")
    assert 'id="procedure_code"' in page.text
    assert '<option value="MOJ-MIN-002">所有権移転登記の申請</option>' in page.text
    assert "この稟議の押印は、移行状況の集計でこの手続に数えられます。" in page.text
    form = {"csrf_token": clerk.csrf, "name": "登記申請書", "title": ["係長"], "approvers": ["sato"]}
    files = {"document": ("申請書.pdf", sample_pdf(1), "application/pdf")}
    refused = web.post("/routes", data={**form, "procedure_code": "MOJ-KEI-001"}, files=files)
    assert refused.status_code == 422 and "手続コード MOJ-KEI-001 はこの部署の手続一覧にありません。" in refused.text
    assert 'value="MOJ-KEI-001"' in refused.text and node.routes.queue("sato") == []
    started = web.post("/routes", data={**form, "procedure_code": "MOJ-MIN-002"}, files=files)
    assert started.status_code == 303, started.text
    route_id = int(started.headers["location"].split("/")[2].split("?")[0])
    detail = web.get(f"/routes/{route_id}")
    assert re.search(r'<dd id="route-procedure">MOJ-MIN-002 所有権移転登記の申請</dd>', detail.text)
    node.routes.approve(route_id, "sato")
    with node.db.read() as conn:
        kept = r.stored(conn)
    assert kept[(week_of(node.clock.now()), OFFICE, "MOJ-MIN-002", r.SEALS_DIGITAL)] == 1

    # The API and the command line take it too, with the same check.
    headers = {"X-CSRF-Token": clerk.csrf}
    steps = '[{"title": "係長", "approvers": ["sato"]}]'
    bad = web.post("/api/v1/routes", data={"steps": steps, "procedure_code": "NOPE-1"}, files=files, headers=headers)
    assert bad.status_code == 422
    made = web.post("/api/v1/routes", data={"steps": steps, "procedure_code": "MOJ-MIN-001"}, files=files,
                    headers=headers)
    assert made.status_code == 201 and made.json()["procedure_code"] == "MOJ-MIN-001"
    document = tmp_path / "申請書.pdf"
    document.write_bytes(sample_pdf(1))
    runner = CliRunner(env={"INKLESS_DATABASE_URL": node.settings.database_url, "INKLESS_NODE_ID": node.node_id})
    args = ["route", "start", str(document), "--as", "tanaka", "--step", "sato", "--title", "係長", "--json",
            "--data", str(node.settings.data_dir)]
    refused_cli = runner.invoke(cli, [*args, "--procedure", "MOJ-KEI-001"])
    assert refused_cli.exit_code != 0
    queued = runner.invoke(cli, [*args, "--procedure", "MOJ-MIN-005"])
    assert queued.exit_code == 0, queued.output
    assert '"procedure_code": "MOJ-MIN-005"' in queued.output
    # Waiting for sato's stamp: the API's route and the command's; the refused ones made none.
    stamps = [q.route.procedure_code for q in node.routes.queue("sato") if q.action == "stamp"]
    assert sorted(c or "" for c in stamps) == ["MOJ-MIN-001", "MOJ-MIN-005"]
