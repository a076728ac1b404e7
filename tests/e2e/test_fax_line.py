"""A real call into a running node: ``inkless fax simulate`` dials ``inkless serve``'s loopback line."""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa

from inkless.config import load_settings
from inkless.db.tables_fax import fax_calls
from tests.e2e.conftest import ServedNode
from tests.helpers.faxdocs import three_page_pdf

ARRIVAL_LIMIT_SECONDS = 120


def test_simulated_remote_fax_reaches_the_served_node(served_node: ServedNode, tmp_path: Path) -> None:
    document = tmp_path / "notice.pdf"
    document.write_bytes(three_page_pdf())
    socket_path = served_node.data / "fax" / "loopback.sock"
    deadline = time.monotonic() + ARRIVAL_LIMIT_SECONDS
    while not socket_path.exists():  # the workers open the line shortly after start-up
        assert time.monotonic() < deadline, served_node.log.read_text()
        time.sleep(0.2)

    sent = served_node.cli("fax", "simulate", "--to", "03-3580-4111", str(document),
                           "--from-number", "029-876-5432", "--tsi", "TSUKUBA CITY")
    assert sent.returncode == 0, sent.stderr
    assert "sent: 3/3 pages" in sent.stdout

    settings = load_settings(served_node.data, env=served_node.env)
    engine = sa.create_engine(settings.database_url)
    try:
        while True:
            with engine.connect() as conn:
                rows = conn.execute(sa.select(fax_calls).where(fax_calls.c.direction == "RECV")).mappings().all()
            if rows:
                break
            assert time.monotonic() < deadline, served_node.log.read_text()
            time.sleep(0.5)
    finally:
        engine.dispose()
    (call,) = rows
    assert call["success"] and call["pages"] == 3 and call["t30_code"] == 0
    assert call["remote_number"] == "029-876-5432" and call["called_number"] == "03-3580-4111"
    assert call["remote_ident"] == "TSUKUBA CITY" and call["line"] == "loopback"
