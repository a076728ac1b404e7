"""``inkless audit``, run as the installed console script on a demo node, as an operator would."""

from __future__ import annotations

import base64
import json
import re
import shutil
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from inkless.audit import merkle
from inkless.audit.log import TreeHead, verify_tree_head_signature
from tests.helpers.cli import inkless as run_inkless

INKLESS = Path(sys.executable).with_name("inkless")


def inkless(*args: str) -> subprocess.CompletedProcess[str]:
    # In this process, with a clean environment: no INKLESS_* variable of the test run leaks in.
    return run_inkless(*args)


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("demo") / "node"
    result = inkless("init", "--data", str(data), "--demo")
    assert result.returncode == 0, result.stderr
    return data


@pytest.fixture
def data(demo_template: Path, tmp_path: Path) -> Path:
    """A private copy of the demo node, free to tamper with."""
    copy = tmp_path / "node"
    shutil.copytree(demo_template, copy)
    return copy


def entry_count(data: Path) -> int:
    with sqlite3.connect(data / "inkless.db") as db:
        return int(db.execute("SELECT count(*) FROM audit_entries").fetchone()[0])


def test_verify_passes_on_a_fresh_node(data: Path) -> None:
    n = entry_count(data)
    result = inkless("audit", "verify", "--data", str(data))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"OK: {n} entries, 0 tree heads, root ")
    as_json = json.loads(inkless("audit", "verify", "--data", str(data), "--json").stdout)
    assert as_json["entries"] == n and as_json["ok"] is True


def test_head_signs_once_and_the_signature_verifies(data: Path) -> None:
    first = inkless("audit", "head", "--data", str(data), "--json")
    assert first.returncode == 0, first.stderr
    head = json.loads(first.stdout)
    assert head["tree_size"] == entry_count(data)
    again = json.loads(inkless("audit", "head", "--data", str(data), "--json").stdout)
    assert again == head  # no new entries: the same head
    cert = x509.load_pem_x509_certificate(head["certificate"].encode())
    parsed = TreeHead(
        node_id=head["node_id"], tree_size=head["tree_size"], root_hash=bytes.fromhex(head["root_hash"]),
        timestamp=datetime.fromisoformat(head["timestamp"]),
        signature=base64.b64decode(head["signature"]),
        certificate_der=cert.public_bytes(serialization.Encoding.DER),
    )
    assert verify_tree_head_signature(parsed)
    text = inkless("audit", "head", "--data", str(data))
    assert f"tree_size:               {head['tree_size']}" in text.stdout
    verify = inkless("audit", "verify", "--data", str(data))
    assert "1 tree head," in verify.stdout


def test_list_filters_by_action(data: Path) -> None:
    result = inkless("audit", "list", "--data", str(data), "--action", "user.created", "--json")
    assert result.returncode == 0, result.stderr
    entries = json.loads(result.stdout)
    assert entries and {e["action"] for e in entries} == {"user.created"}
    table = inkless("audit", "list", "--data", str(data), "--limit", "2")
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["index", "time", "actor"]
    assert "node.initialised" in lines[1] and len(lines) == 3
    # The table is for people: the node's zone (Tokyo) with its abbreviation; --json keeps UTC.
    assert re.match(r"0\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d JST\s", lines[1]), lines[1]
    assert entries[0]["at"].endswith("+00:00")


def test_proofs_print_and_verify(data: Path) -> None:
    n = entry_count(data)
    inc = json.loads(inkless("audit", "proof", "inclusion", "3", "--data", str(data), "--json").stdout)
    assert inc["verified"] is True and inc["tree_size"] == n
    path = [bytes.fromhex(h) for h in inc["audit_path"]]
    leaf, root = bytes.fromhex(inc["leaf_hash"]), bytes.fromhex(inc["root_hash"])
    assert merkle.verify_inclusion(3, n, leaf, path, root)
    sized = json.loads(
        inkless("audit", "proof", "inclusion", "1", "--size", "4", "--data", str(data), "--json").stdout
    )
    assert sized["tree_size"] == 4 and sized["verified"] is True
    con = inkless("audit", "proof", "consistency", "2", str(n), "--data", str(data))
    assert con.returncode == 0, con.stderr
    assert con.stdout.startswith(f"tree 2 -> tree {n}: verified")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["proof", "inclusion", "99"], "entry index 99 is not in a tree of"),
        (["proof", "inclusion", "0", "--size", "500"], "tree_size 500 is larger than the log"),
        (["proof", "consistency", "5", "3"], "first size 5 must be between 1 and the second size 3"),
    ],
)
def test_bad_arguments_get_a_clear_error(data: Path, args: list[str], message: str) -> None:
    result = inkless("audit", *args, "--data", str(data))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_node_folder_is_a_configuration_error(tmp_path: Path) -> None:
    result = inkless("audit", "verify", "--data", str(tmp_path / "nowhere"))
    assert result.returncode == 6
    assert "no inkless node" in result.stderr and "Traceback" not in result.stderr


def test_verify_names_a_tampered_entry_and_exits_5(data: Path) -> None:
    assert inkless("audit", "head", "--data", str(data)).returncode == 0
    with sqlite3.connect(data / "inkless.db") as db:
        (entry,) = db.execute("SELECT entry FROM audit_entries WHERE idx = 4").fetchone()
        forged = bytes(entry).replace(b'"clearance":1', b'"clearance":3')
        assert forged != bytes(entry)
        db.execute("UPDATE audit_entries SET entry = ? WHERE idx = 4", (forged,))
    result = inkless("audit", "verify", "--data", str(data))
    assert result.returncode == 5
    assert "audit entry 4 was altered" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
