"""Reads never queue behind a writer: they see the last committed state at once (SQLite WAL, PostgreSQL MVCC)."""

from __future__ import annotations

import threading
import time

from sqlalchemy import text, update

from inkless.app import Node
from inkless.db import tables as t
from inkless.directory.demo import DemoSample
from tests.conftest import reopen
from tests.helpers.nodes import INKLESS, clean_env

PROMPT_SECONDS = 5.0


def _in_thread(work: object) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []

    def run() -> None:
        out.append(work())  # type: ignore[operator]

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_a_reader_completes_while_another_connection_holds_a_write_transaction(node: Node, demo: DemoSample) -> None:
    other = reopen(node)
    try:
        with node.db.begin() as writer:
            # An uncommitted rename: the reader must not wait for it, and must not see it.
            writer.execute(update(t.offices).where(t.offices.c.code == "civil-affairs").values(name="改名中"))
            started = time.monotonic()
            thread, out = _in_thread(lambda: [o.name for o in other.directory.offices()])
            thread.join(PROMPT_SECONDS)
            assert not thread.is_alive(), "the read waited for the writer's lock"
            assert time.monotonic() - started < PROMPT_SECONDS
            assert "民事局" in out[0] and "改名中" not in out[0]  # type: ignore[operator]
        assert "改名中" in [o.name for o in other.directory.offices()]
    finally:
        other.close()


def test_read_only_commands_run_while_a_writer_holds_the_lock(node: Node, demo: DemoSample) -> None:
    import subprocess

    with node.db.begin() as writer:
        writer.execute(text("UPDATE node_meta SET value = value WHERE key = 'node_id'"))
        env = clean_env({"INKLESS_DATABASE_URL": node.settings.database_url,
                         "INKLESS_DATABASE_LOCK_TIMEOUT_SECONDS": "2"})
        for command in (["office", "list"], ["user", "list"], ["audit", "verify"], ["node", "info"]):
            result = subprocess.run([INKLESS, *command, "--data", str(node.settings.data_dir)], env=env,
                                    capture_output=True, text=True, timeout=120, check=False)
            assert result.returncode == 0, (command, result.stderr)
