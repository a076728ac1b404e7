"""Intake submissions in the migration metrics (SQLite and PostgreSQL): a submission through the window is
counted per office, week and procedure in its own transaction, drills down to its receipt number, agrees
with a rebuild, and shows in the report, the CSV and the command line; "who still faxes" tells which
remote numbers were invited and which have since used the window or an e-mail pickup."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select
from typer.testing import CliRunner

from inkless.app import Node
from inkless.cli.main import app as cli
from inkless.db import tables as t
from inkless.db.tables_delivery import messages
from inkless.db.tables_pickup import pickups
from inkless.directory.demo import DemoSample
from inkless.intake.mailer import OutgoingMail
from inkless.intake.model import IntakeForm
from inkless.metrics import export
from inkless.metrics import rollup as r
from inkless.metrics.demo import create_demo_procedures
from inkless.web.app import create_app
from tests.helpers.intake import OFFICE, code_in, open_window
from tests.helpers.metrics_history import Writer
from tests.helpers.seals import sample_pdf
from tests.helpers.web import TestClient, browser_login

INVITED_MOVED = "0798-11-2222"  # invited, then submits giving +81 798 11 2222 as phone
PICKUP_ONLY = "06-1111-2222"  # never invited; opens an e-mail pickup sent with this number as mobile
INVITED_ONLY = "011-222-3333"  # invited, never moved
BY_ADDRESS = "045-999-0000"  # a pickup to this mobile names d@example.jp; later d@ submits without a phone
BY_LINK = "092-333-4444"  # invited; submits by the invitation letter's link, giving no phone


class RecordingMailer:
    def __init__(self) -> None:
        self.sent: list[OutgoingMail] = []

    def send(self, mail: OutgoingMail) -> None:
        self.sent.append(mail)


def _fax_from(node: Node, number: str) -> None:
    """A received fax in the fax log, counted as the fax service counts it (receiving is tested elsewhere)."""
    with node.db.begin() as conn:
        Writer(conn).fax("RECV", datetime.now(UTC), OFFICE, None, 2, number)


def _submit(node: Node, mailer: RecordingMailer, procedure: str, email: str, phone: str = "", via: str = "") -> str:
    assert node.intake is not None
    form = IntakeForm(name="山田 太郎", email=email, subject="申請", procedure=procedure, phone=phone)
    pending = node.intake.start_submission(OFFICE, form, [("申請書.pdf", sample_pdf(1))], "198.51.100.7", via)
    accepted = node.intake.confirm_submission(pending.token, code_in(mailer.sent[-1].text), "198.51.100.7")
    return accepted.receipt_number


def _pickup(node: Node, mobile: str, recipient: str, opened: bool) -> None:
    """An e-mail pickup row as the pickup service keeps it (its own tests cover mailing and opening)."""
    now = datetime.now(UTC)
    with node.db.begin() as conn:
        office_id = conn.execute(select(t.offices.c.id).where(t.offices.c.code == OFFICE)).scalar_one()
        message_id = str(uuid.uuid4())
        conn.execute(insert(messages).values(
            id=message_id, office_id=office_id, sender_login="tanaka", classification=0, priority="normal",
            subject_enc=b"x", envelope_sha256="0" * 64, envelope_size=1, document_count=1, created_at=now))
        r.add(conn, r.message_out(now, OFFICE, None))
        conn.execute(insert(pickups).values(
            message_id=message_id, office_id=office_id, sender_login="tanaka", recipient=recipient, mobile=mobile,
            token_hash=uuid.uuid4().hex, created_at=now, expires_at=now + timedelta(days=7), code_tries=0,
            opened_at=now if opened else None))


def test_intake_is_counted_and_who_faxes_shows_who_moved(node: Node, demo: DemoSample) -> None:
    assert node.procedures is not None and node.metrics is not None and node.intake is not None
    create_demo_procedures(node.procedures)
    open_window(node)
    mailer = RecordingMailer()
    node.intake.mailer = mailer
    listed = {p.name: p.code for p in node.procedures.procedures(OFFICE)}
    name, code = next(iter(listed.items()))
    metrics = node.metrics
    week = metrics.current_week()

    for number in (INVITED_MOVED, PICKUP_ONLY, INVITED_ONLY, BY_ADDRESS, BY_LINK):
        _fax_from(node, number)
    before = metrics.who_faxes(week)
    assert {x["number"]: (x["invited"], x["moved"]) for x in before["remotes"]} == dict.fromkeys(
        (INVITED_MOVED, PICKUP_ONLY, INVITED_ONLY, BY_ADDRESS, BY_LINK), (False, False))
    node.intake.invite_by_fax(OFFICE, INVITED_MOVED, "tanaka", "cli")
    node.intake.invite_by_fax(OFFICE, INVITED_ONLY, "tanaka", "cli")
    link = node.intake.invite_by_fax(OFFICE, BY_LINK, "tanaka", "cli")
    assert link.code and [i.code for i in node.intake.invitations(OFFICE) if i.number == BY_LINK] == [link.code]

    first = _submit(node, mailer, name, "taro@example.jp", phone="+81 798 11 2222")
    second = _submit(node, mailer, "その他", "d@example.jp")
    _submit(node, mailer, "その他", "shop@example.jp", via=link.code)
    _submit(node, mailer, "その他", "other@example.jp", via="not-a-code-of-ours")  # matches nothing
    _pickup(node, PICKUP_ONLY, "someone@example.jp", opened=True)
    _pickup(node, BY_ADDRESS, "D@Example.jp", opened=False)

    # Counted: one submission for the catalogue procedure, one for その他 (未分類), in the office's week.
    report = metrics.report(week, OFFICE)
    assert report["figures"]["intake"] == 4 and report["figures"]["messages_in"] == 0
    assert report["figures"]["digital_items"] == 4 + 2  # and the two pickup messages sent
    with node.db.read() as conn:
        kept = r.stored(conn)
    assert kept[(week, OFFICE, code, r.INTAKE)] == 1 and kept[(week, OFFICE, "", r.INTAKE)] == 3
    assert r.rebuild(node.db, check_only=True).differences == {}
    assert metrics.report(week)["figures"]["intake"] == 4
    assert [i.counterpart for i in metrics.items("intake", week, OFFICE, code)] == [first]
    unclassified = [i.counterpart for i in metrics.items("intake", week, OFFICE, "")]
    assert len(unclassified) == 3 and unclassified[0] == second
    assert metrics.items("intake", week, "criminal-affairs", None) == []
    headers, rows = export.table(report, "weeks")
    assert rows[-1][headers.index("窓口受付")] == 4
    procedures = {p["code"]: p for p in report["procedures"]}
    assert procedures[code]["digital_items"] == 1

    # Who still faxes: invited and moved, as the matching rule says.
    found = {x["number"]: x for x in metrics.who_faxes(week)["remotes"]}
    moved = found[INVITED_MOVED]
    assert (moved["invited"], moved["moved"], moved["moved_via"], moved["moved_via_ja"]) == (
        True, True, "intake", "受付窓口")
    assert moved["invited_at"] is not None and moved["moved_at"] >= moved["invited_at"]
    assert (found[PICKUP_ONLY]["invited"], found[PICKUP_ONLY]["moved"], found[PICKUP_ONLY]["moved_via"]) == (
        False, True, "pickup")
    assert (found[INVITED_ONLY]["invited"], found[INVITED_ONLY]["moved"]) == (True, False)
    # The invitation letter's link names its invitation: moved, though the submitter gave no phone.
    assert (found[BY_LINK]["invited"], found[BY_LINK]["moved"], found[BY_LINK]["moved_via"]) == (True, True, "intake")
    # The unopened pickup ties d@example.jp to the number; d@ then used the window without giving a phone.
    assert (found[BY_ADDRESS]["invited"], found[BY_ADDRESS]["moved"], found[BY_ADDRESS]["moved_via"]) == (
        False, True, "intake")
    headers, rows = export.table(metrics.who_faxes(week), "remotes")
    cells = {row[1]: dict(zip(headers, row, strict=True)) for row in rows}
    assert (cells[INVITED_MOVED]["案内済み"], cells[INVITED_MOVED]["移行済み"], cells[INVITED_MOVED]["移行先"]) == (
        "はい", "はい", "受付窓口")
    assert (cells[INVITED_ONLY]["移行済み"], cells[INVITED_ONLY]["移行日時"]) == ("いいえ", "")

    # The page says it in Japanese, with the way each number moved.
    session = browser_login(node, "tanaka")
    with TestClient(create_app(node), base_url=node.settings.base_url) as client:
        page = client.get(f"/dashboard/who-faxes?week={week}", headers={"Cookie": f"inkless_session={session.cookie}"})
        dashboard = client.get(f"/dashboard?week={week}", headers={"Cookie": f"inkless_session={session.cookie}"})
        listed = client.get("/dashboard/items", params={"metric": "intake", "period": week, "office": OFFICE},
                            headers={"Cookie": f"inkless_session={session.cookie}"})
    assert listed.status_code == 200 and first in listed.text and second in listed.text
    message_ids = {i.ref for i in metrics.items("intake", week, OFFICE, None)}
    assert all(f'href="/messages/{m}"' in listed.text for m in message_ids) and len(message_ids) == 4
    assert page.status_code == 200
    row = re.search(rf"<tr><td>[^<]*</td>\s*<td>{INVITED_MOVED}</td>.*?</tr>", page.text, re.S)
    assert row is not None and "受付窓口" in row.group(0) and row.group(0).count("はい") == 2
    assert "案内済み：この番号に受付窓口の案内FAXを送ったことがあります。" in page.text
    assert re.search(r'id="fig-intake".*?<span class="value">4</span>', dashboard.text, re.S)

    # The command line prints the same figures.
    runner = CliRunner(env={"INKLESS_DATABASE_URL": node.settings.database_url, "INKLESS_NODE_ID": node.node_id})
    data = str(node.settings.data_dir)
    result = runner.invoke(cli, ["metrics", "report", "--week", week, "--office", OFFICE, "--data", data])
    assert result.exit_code == 0, result.output
    assert "窓口受付 (intake submissions)" in result.output
    line = next(x for x in result.output.splitlines() if x.startswith("窓口受付"))
    assert line.split()[-1] == "4"
    result = runner.invoke(cli, ["metrics", "who-faxes", "--week", week, "--data", data])
    assert result.exit_code == 0 and "受付窓口" in result.output


def test_the_invitation_link_leads_to_the_form_and_is_kept(node: Node, demo: DemoSample) -> None:
    assert node.intake is not None
    open_window(node)
    client = TestClient(create_app(node), follow_redirects=False)
    short = client.get(f"/i/{OFFICE}", params={"via": "Abc123_-xyZ"})
    assert short.status_code == 303 and short.headers["location"] == f"/intake/{OFFICE}?via=Abc123_-xyZ"
    form = client.get(short.headers["location"])
    assert '<input type="hidden" name="via" value="Abc123_-xyZ">' in form.text
    # Anything that is not such a code is dropped, never echoed.
    for bad in ("<script>", "a b", "short"):
        assert client.get(f"/i/{OFFICE}", params={"via": bad}).headers["location"] == f"/intake/{OFFICE}"
        assert 'name="via"' not in client.get(f"/intake/{OFFICE}", params={"via": bad}).text

