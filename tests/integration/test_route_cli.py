"""``inkless route`` as an operator runs it: exit codes, --json, clear errors; the console script at the end.

Most commands run in-process (Typer's runner, with the exit-code mapping of ``inkless.cli.main.main``)
to keep the test fast; the last one goes through the real console script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from inkless.cli.main import app
from inkless.errors import InklessError
from tests.helpers.route_docs import sample_pdf

INKLESS = str(Path(sys.executable).with_name("inkless"))


def test_route_commands_walk_a_route_to_the_office_seal(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INKLESS_")}
    data = tmp_path / "node"
    runner = CliRunner()

    def inkless(*args: str) -> subprocess.CompletedProcess[str]:
        result = runner.invoke(app, [*args, "--data", str(data)])
        code, stderr = result.exit_code, result.stderr
        if isinstance(result.exception, InklessError):
            code, stderr = result.exception.exit_code, f"error: {result.exception}"
        elif result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return subprocess.CompletedProcess(list(args), code, result.stdout, stderr)

    assert inkless("init", "--demo").returncode == 0
    document = tmp_path / "出張命令.pdf"
    document.write_bytes(sample_pdf(1))

    # Bad input: a clear message, exit 2, and no route.
    for args, message in (
        (["--step", "tanaka", "--title", "担当", "--step", "sato"], "one --title per --step"),
        (["--step", "tanaka", "--title", "担当", "--deadline", "24.12.2026"], "must be a date like"),
        (["--step", "tanaka", "--title", "担当", "--step", "tanaka", "--title", "係長"], "steps 1 and 2"),
        (["--step", "ghost", "--title", "担当"], "no user 'ghost'"),
    ):
        bad = inkless("route", "start", str(document), "--as", "tanaka", *args)
        assert bad.returncode == 2 and message in bad.stderr, (args, bad.stderr)
    assert inkless("route", "status", "1").returncode == 3

    started = inkless(
        "route", "start", str(document), "--as", "tanaka", "--step", "tanaka", "--title", "担当",
        "--step", "sato,suzuki", "--title", "課長", "--deadline", "2026-12-24", "--comment", "至急", "--json",
    )
    assert started.returncode == 0, started.stderr
    route = json.loads(started.stdout)
    assert route["document_name"] == "出張命令"
    assert route["waiting_for"] == ["tanaka"] and route["steps"][1]["deadline"] == "2026-12-24"
    rid = str(route["id"])

    queue = json.loads(inkless("route", "queue", "tanaka", "--json").stdout)
    assert [(q["id"], q["action"], q["step"]) for q in queue] == [(route["id"], "stamp", "担当")]

    early = inkless("route", "approve", rid, "--as", "sato")
    assert early.returncode == 4 and "not sato's turn" in early.stderr

    assert inkless("route", "approve", rid, "--as", "tanaka", "--kind", "date").returncode == 0
    back = inkless("route", "return", rid, "--as", "sato", "--comment", "日程を再確認", "--to-step", "1")
    assert back.returncode == 0 and "returned route" in back.stdout
    assert inkless("route", "approve", rid, "--as", "tanaka").returncode == 0
    assert inkless("route", "approve", rid, "--as", "suzuki").returncode == 0
    last = inkless("route", "approve", rid, "--as", "sato")
    assert last.returncode == 0 and "office seal (角印) is next" in last.stdout
    clerk = inkless("route", "approve", rid, "--as", "tanaka")
    assert clerk.returncode == 4 and "only approvers and administrators may use the office seal" in clerk.stderr
    sealed = inkless("route", "approve", rid, "--as", "sato")
    assert sealed.returncode == 0 and "PAdES B-LTA" in sealed.stdout, sealed.stderr

    script = subprocess.run(
        [INKLESS, "route", "status", rid, "--json", "--data", str(data)],
        capture_output=True, text=True, env=env, check=False, timeout=120,
    )
    assert script.returncode == 0, script.stderr
    status = json.loads(script.stdout)
    assert status["state"] == "completed" and status["office_sealed_by"] == "sato"
    assert [e["action"] for e in status["events"]] == [
        "started", "stamped", "returned", "stamped", "stamped", "stamped", "office_sealed"
    ]
    text = inkless("route", "status", rid)
    assert "完了 completed" in text.stdout and "日程を再確認" in text.stdout

    out = tmp_path / "final.pdf"
    assert inkless("route", "download", rid, "--out", str(out)).returncode == 0
    checked = subprocess.run(["pdfsig", str(out)], capture_output=True, text=True, check=False).stdout
    assert checked.count("Signature Validation: Signature is Valid.") == 4  # 担当, two 課長, office seal
    first = tmp_path / "rev0.pdf"
    assert inkless("route", "download", rid, "--out", str(first), "--revision", "0").returncode == 0
    assert first.read_bytes().startswith(document.read_bytes())  # revision 0: the upload plus the strip
    assert inkless("route", "reject", rid, "--as", "sato", "--comment", "x").returncode == 4

    # 差し戻し to the starter, then a corrected version from the command line.
    second = json.loads(inkless("route", "start", str(document), "--as", "tanaka", "--step", "sato", "--title",
                                "係長", "--resume-from", "start", "--json").stdout)
    sid = str(second["id"])
    assert second["resume_from"] == "start" and second["version"] == 1
    empty = inkless("route", "return", sid, "--as", "sato", "--comment", " ")
    assert empty.returncode == 2 and "comment is required" in empty.stderr
    back = inkless("route", "return", sid, "--as", "sato", "--comment", "金額を訂正してください")
    assert back.returncode == 0 and "to its starter tanaka (差し戻し)" in back.stdout
    assert "差し戻し returned" in inkless("route", "status", sid).stdout
    corrected = tmp_path / "出張命令-修正.pdf"
    corrected.write_bytes(sample_pdf(3))
    wrong = inkless("route", "resubmit", sid, str(corrected), "--as", "sato")
    assert wrong.returncode == 4 and "only the starter" in wrong.stderr
    again = inkless("route", "resubmit", sid, str(corrected), "--as", "tanaka", "--comment", "訂正済み", "--json")
    assert again.returncode == 0
    resumed = json.loads(again.stdout)
    assert resumed["state"] == "in_progress" and resumed["version"] == 2 and resumed["waiting_for"] == ["sato"]
    assert [(v["version"], v["pages"]) for v in resumed["versions"]] == [(1, 1), (2, 3)]
    assert inkless("route", "resubmit", sid, str(corrected), "--as", "tanaka").returncode == 4  # not returned now
