"""Every row of the exit-code table in docs/cli.md, each produced by the real ``inkless`` command."""

from __future__ import annotations

import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.nodes import INKLESS, clean_env
from tests.helpers.seals import sample_pdf

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def inkless(*args: str, env: dict[str, str] | None = None, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        [INKLESS, *args], capture_output=True, text=True, env=clean_env(env), check=False, timeout=120, **kwargs
    )


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("exit-codes") / "node"
    result = inkless("init", "--data", str(data), "--demo")
    assert result.returncode == 0, result.stderr
    return data


@pytest.fixture
def data(demo_template: Path, tmp_path: Path) -> Path:
    """A private copy of the demo node for one test."""
    copy = tmp_path / "node"
    shutil.copytree(demo_template, copy)
    return copy


def documented_codes() -> set[int]:
    table = DOCS.read_text(encoding="utf-8").split("## Exit codes", 1)[1]
    return {int(m) for m in re.findall(r"^\| (\d+) \|", table, flags=re.M)}


def clean_failure(result: subprocess.CompletedProcess[str], code: int, message: str) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") or code in (0, 130)


def test_every_documented_code_has_its_test() -> None:
    tested = {int(name.rsplit("_", 1)[1]) for name in globals() if re.fullmatch(r"test_exit_\d+", name)}
    assert documented_codes() == tested


def test_exit_0(data: Path) -> None:
    result = inkless("node", "info", "--data", str(data))
    assert result.returncode == 0, result.stderr
    assert "node_id:" in result.stdout and result.stderr == ""


def test_exit_1(data: Path, tmp_path: Path) -> None:
    unsealed = tmp_path / "plain.pdf"
    unsealed.write_bytes(sample_pdf())
    result = inkless("verify", str(unsealed), "--data", str(data))
    assert result.returncode == 1, result.stderr
    assert "no seals" in (result.stdout + result.stderr).lower()
    assert "Traceback" not in result.stderr


def test_exit_2(data: Path) -> None:
    result = inkless("audit", "proof", "inclusion", "999", "--data", str(data))
    clean_failure(result, 2, "entry index 999 is not in a tree of")


def test_exit_3(data: Path) -> None:
    clean_failure(inkless("user", "totp", "nobody", "--data", str(data)), 3, "no user 'nobody'")


def test_exit_4(data: Path, tmp_path: Path) -> None:
    document = tmp_path / "secret.pdf"
    document.write_bytes(sample_pdf())
    result = inkless("fax", "send", str(document), "--from", "civil-affairs", "--to", "0312345678",
                     "--classification", "2", "--data", str(data))
    assert result.returncode == 4, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.startswith("error: ")


def test_exit_5(data: Path) -> None:
    with sqlite3.connect(data / "inkless.db") as db:
        db.execute("UPDATE audit_entries SET actor = 'someone-else' WHERE idx = 2")
    result = inkless("audit", "verify", "--data", str(data))
    assert result.returncode == 5, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr


def test_exit_6(tmp_path: Path) -> None:
    clean_failure(inkless("node", "info", "--data", str(tmp_path / "nothing")), 6, "inkless init")


def test_exit_7(data: Path) -> None:
    clean_failure(inkless("office", "add", "civil-affairs", "民事局", "--data", str(data)), 7, "civil-affairs")


@pytest.fixture
def exclusive_lock(data: Path) -> Iterator[None]:
    """Another program holding the SQLite database exclusively (a backup tool, a stuck process)."""
    holder = sqlite3.connect(data / "inkless.db", isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("UPDATE node_meta SET value = value WHERE key = 'node_id'")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_exit_8(data: Path, exclusive_lock: None) -> None:
    # A locked database at start is a storage failure, not a configuration mistake (it used to exit 6).
    started = time.monotonic()
    result = inkless("node", "info", "--data", str(data), env={"INKLESS_DATABASE_LOCK_TIMEOUT_SECONDS": "1"})
    clean_failure(result, 8, "database unavailable: database is locked")
    assert time.monotonic() - started < 60


def _file_size_limit(limit: int) -> None:
    # A disk that fills up: writes past ``limit`` bytes fail (with SIGXFSZ ignored, as a full disk would).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_exit_8_when_the_disk_is_full_at_init(tmp_path: Path) -> None:
    result = inkless("init", "--data", str(tmp_path / "node"), preexec_fn=lambda: _file_size_limit(64 * 1024))
    clean_failure(result, 8, "database unavailable")


def test_exit_8_when_the_master_key_is_missing(data: Path) -> None:
    (data / "master.key").unlink()
    result = inkless("office", "list", "--data", str(data))
    assert result.returncode == 8, result.stderr
    assert "master key" in result.stderr and "Traceback" not in result.stderr


def test_exit_130(data: Path) -> None:
    worker = subprocess.Popen(
        [INKLESS, "worker", "--data", str(data)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=clean_env({"INKLESS_FAX_LINE": "none"}),
    )
    try:
        assert worker.stdout is not None
        assert "workers running" in worker.stdout.readline()
        worker.send_signal(signal.SIGINT)
        out, err = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 130, (out, err)
    assert "workers stopped" in out and "Traceback" not in err
