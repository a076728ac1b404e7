"""``inkless procedure``: the demo catalogue, export and import in Shift_JIS, history, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_cli import run


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("procedure-cli") / "demo"
    result = run("init", "--data", str(folder), "--demo", "--json")
    assert result.returncode == 0, result.stderr
    return folder


def test_demo_catalogue_export_import_show(data: Path, tmp_path: Path) -> None:
    listed = json.loads(run("procedure", "list", "--data", str(data), "--json").stdout)
    assert len(listed) == 37
    assert {p["office"] for p in listed} == {"civil-affairs", "criminal-affairs", "secretariat", None}
    table = run("procedure", "list", "--office", "criminal-affairs", "--data", str(data)).stdout
    assert "MOJ-KEI-001" in table and "捜査関係事項照会への回答" in table and "公印" in table
    assert "MOJ-MIN-001" not in table and "MOJ-KAN-001" in table

    exported = tmp_path / "catalogue.csv"
    result = run("procedure", "export", "--encoding", "cp932", "-o", str(exported), "--data", str(data))
    assert result.returncode == 0, result.stderr
    text = exported.read_bytes().decode("cp932")
    assert text.startswith("手続コード,手続名,府省,担当部署,根拠法令,押印,FAX・紙\r\n")
    # A clerk edits the sheet: 供託申請 no longer takes fax or paper.
    edited = text.replace("MOJ-MIN-006,供託申請,法務省,civil-affairs,供託規則第13条,認印,可",
                          "MOJ-MIN-006,供託申請,法務省,civil-affairs,供託規則第13条,認印,不可")
    assert edited != text
    exported.write_bytes(edited.encode("cp932"))
    result = run("procedure", "import", str(exported), "--actor", "yamada", "--data", str(data))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"imported {exported}: 0 created, 1 changed, 36 unchanged"

    shown = json.loads(run("procedure", "show", "MOJ-MIN-006", "--data", str(data), "--json").stdout)
    assert shown["fax_or_paper_allowed"] is False and shown["version"] == 2
    assert [(h["change"], h["fields"], h["changed_by"]) for h in shown["history"]] == [
        ("created", [], "demo"), ("changed", ["fax_or_paper_allowed"], "yamada")]
    human = run("procedure", "show", "MOJ-MIN-006", "--data", str(data)).stdout
    assert "JST" in human and "fax_or_paper_allowed" in human


def test_bad_file_exit_code_and_message(data: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("手続コード,手続名,押印\nMOJ-Z-1,何か,拇印\n", encoding="utf-8")
    result = run("procedure", "import", str(bad), "--data", str(data))
    assert result.returncode == 2
    assert "line 2: seal: '拇印' is not one of なし, 認印, 実印, 公印" in result.stderr
    missing = run("procedure", "show", "NOPE", "--data", str(data))
    assert missing.returncode == 3 and "no procedure 'NOPE'" in missing.stderr
    unreadable = run("procedure", "import", str(tmp_path / "absent.csv"), "--data", str(data))
    assert unreadable.returncode == 2 and "cannot read" in unreadable.stderr


def test_metrics_commands(data: Path, tmp_path: Path) -> None:
    recorded = run("metrics", "paper", "civil-affairs", "--day", "2026-12-01", "--received", "4", "--sealed", "3",
                   "--procedure", "MOJ-MIN-006", "--actor", "tanaka", "--data", str(data))
    assert recorded.returncode == 0, recorded.stderr
    report = json.loads(run("metrics", "report", "--week", "2026-W49", "--json", "--data", str(data)).stdout)
    assert report["figures"]["paper_received"] == 4 and report["seals"] == {"digital": 0, "paper": 3}
    assert report["figures"]["digital_share"] == 0.0
    assert report["headline"]["text"] == "37手続中0手続が完全デジタル（0.0%）"
    human = run("metrics", "report", "--week", "2026-W49", "--office", "civil-affairs", "--data", str(data)).stdout
    assert "2026-W49  civil-affairs (民事局)" in human and "紙で受付 (paper received)" in human
    out = tmp_path / "procedures.csv"
    assert run("metrics", "export", "procedures", "--week", "2026-W49", "-o", str(out), "--data", str(data)
               ).returncode == 0
    lines = out.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "手続コード,手続名,担当部署,区分,デジタル件数,電子押印,FAX件数,FAX枚数,紙で受付,紙で押印"
    assert "MOJ-MIN-006,供託申請,civil-affairs,FAX・紙のみ,0,0,0,0,4,3" in lines
    checked = run("metrics", "rebuild", "--check", "--data", str(data))
    assert checked.returncode == 0 and checked.stdout.strip().endswith("; 0 differ")
    bad = run("metrics", "report", "--week", "49", "--data", str(data))
    assert bad.returncode == 2 and "is not an ISO week such as 2026-W49" in bad.stderr
