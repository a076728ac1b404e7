"""``inkless send / deliver / inbox / message / report / list / outbox`` as a user runs them (console script)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from reportlab.lib.pagesizes import A4
from reportlab.pdfgen import canvas

from tests.helpers.cli import inkless as run_inkless

INKLESS = Path(sys.executable).with_name("inkless")


def inkless(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The command in this process (tests/helpers/cli.py), with a clean environment.
    return run_inkless(*args, "--data", str(data))


def ok(data: Path, *args: str) -> str:
    result = inkless(data, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def pdf(text: str, pages: int = 1) -> bytes:
    out = io.BytesIO()
    page = canvas.Canvas(out, pagesize=A4, invariant=True)
    for n in range(pages):
        page.drawString(72, 720, f"{text} {n + 1}")
        page.showPage()
    page.save()
    return out.getvalue()


@pytest.fixture
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh demo node per test: a message one test leaves queued would be delivered by another's deliver."""
    folder = tmp_path_factory.mktemp("cli") / "node"
    result = run_inkless("init", "--data", str(folder), "--demo")
    assert result.returncode == 0, result.stderr
    return folder


def test_send_deliver_read_export_report_and_refuse(data: Path, tmp_path: Path) -> None:
    doc = tmp_path / "回答書.pdf"
    doc.write_bytes(pdf("Answer", pages=3))
    ok(data, "list", "add", "answer-list", "criminal-affairs@moj", "secretariat@moj")
    message_id = ok(data, "send", "--from", "civil-affairs", "--list", "answer-list", "--subject", "回答",
                    "--classification", "1", "--priority", "urgent", "--as", "tanaka", str(doc)).strip()
    assert json.loads(ok(data, "deliver", "--once", "--json"))["delivered"] == 2

    status = json.loads(ok(data, "message", "status", message_id, "--as", "tanaka", "--json"))
    assert [(s["recipient"], s["state"], s["receipt"]) for s in status] == [
        ("criminal-affairs@moj", "delivered", True), ("secretariat@moj", "delivered", True)]
    listed = json.loads(ok(data, "inbox", "criminal-affairs", "--as", "takahashi", "--json"))
    assert [(i["message_id"], i["subject"], i["priority"]) for i in listed] == [(message_id, "回答", "urgent")]

    out = tmp_path / "export"
    ok(data, "message", "export", message_id, "--out", str(out), "--as", "takahashi")
    assert (out / "回答書.pdf").read_bytes() == doc.read_bytes()
    assert (out / "envelope.p7m").stat().st_size > doc.stat().st_size
    assert [p.name for p in out.glob("receipt-*.p7s")] == ["receipt-criminal-affairs_at_moj.p7s"]

    report = tmp_path / "report.pdf"
    ok(data, "report", message_id, "--out", str(report), "--as", "tanaka")
    text = subprocess.run(["pdftotext", "-layout", str(report), "-"], capture_output=True, text=True,
                          check=True).stdout
    for words in ("送信証明書", message_id, "civil-affairs@moj", "criminal-affairs@moj", "配達済 / delivered",
                  "有効 / valid", "3 (1 documents)"):
        assert words in text, words
    # The thumbnail of page 1 is an image on the page.
    images = subprocess.run(["pdfimages", "-list", str(report)], capture_output=True, text=True, check=True).stdout
    assert len(images.strip().splitlines()) == 3  # two header lines and one image

    cases = [
        (("send", "--from", "civil-affairs", "--to", "criminal-affairs@moj", "--subject", "秘", "--classification",
          "2", "--as", "tanaka", str(doc)), 4, "clearance 1"),
        (("send", "--from", "civil-affairs", "--to", "nowhere@moj", "--subject", "s", str(doc)), 3, "nowhere"),
        (("message", "show", "00000000-0000-4000-8000-000000000000", "--as", "yamada"), 3, "no message"),
    ]
    for args, code, words in cases:
        result = inkless(data, *args)
        assert result.returncode == code, (args, result.stderr)
        assert words in result.stderr, (args, result.stderr)
    assert json.loads(ok(data, "outbox", "--state", "queued", "--json")) == []


def test_message_status_shows_the_fallback_in_one_language(data: Path, tmp_path: Path) -> None:
    import sqlalchemy as sa

    doc = tmp_path / "notice.pdf"
    doc.write_bytes(pdf("Notice"))
    message_id = ok(data, "send", "--from", "civil-affairs", "--to", "criminal-affairs@moj", "--subject", "至急",
                    "--priority", "urgent", str(doc)).strip()
    engine = sa.create_engine(f"sqlite:///{data / 'inkless.db'}")
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE outbox SET fax_decision = 'no_fax_number', fax_decision_params = '{}' "
                                 "WHERE message_id = :m"), {"m": message_id})
    finally:
        engine.dispose()
    japanese = ok(data, "message", "status", message_id)
    assert "FAX送信しません：宛先の部署はFAX番号を公開していません。" in japanese and "Not faxed" not in japanese
    english = ok(data, "message", "status", message_id, "--lang", "en")
    assert "Not faxed: the recipient office publishes no fax number." in english and "FAX送信しません" not in english
    [status] = json.loads(ok(data, "message", "status", message_id, "--lang", "en", "--json"))
    assert status["fax_decision"]["code"] == "no_fax_number"
    assert status["fax_decision"]["text"] == "Not faxed: the recipient office publishes no fax number."
    refused = inkless(data, "message", "status", message_id, "--lang", "fr")
    assert refused.returncode != 0 and "--lang 'fr' must be one of ja, en" in refused.stderr
