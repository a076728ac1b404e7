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
