"""T.38 between two served nodes through Kamailio.

Preferred by one side, or refused and redone in G.711 (the softmodem fallback remembered per number).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import sqlalchemy as sa

from inkless.config import load_settings
from inkless.db.tables_fax import fax_sip_softmodem
from tests.helpers.kamailio import Kamailio, running_kamailio
from tests.helpers.sip_nodes import (
    A_NUMBER,
    B_NUMBER,
    PASSWORDS,
    one_page_pdf,
    send_fax,
    sent_call,
    sip_node,
    wait_jobs,
    wait_received,
)

pytestmark = [pytest.mark.slow, pytest.mark.realtime]

@pytest.fixture
def kamailio(tmp_path: Path) -> Iterator[Kamailio]:
    with running_kamailio(tmp_path / "kamailio", PASSWORDS) as k:
        yield k



def test_t38_when_one_side_prefers_it(tmp_path: Path, kamailio: Kamailio) -> None:
    with ExitStack() as stack:
        b = stack.enter_context(sip_node(tmp_path, "b", B_NUMBER, kamailio, "40100-40199", t38="accept"))
        a = stack.enter_context(sip_node(tmp_path, "a", A_NUMBER, kamailio, "41100-41199", t38="prefer",
                                         gateways=kamailio.uri))
        send_fax(a, one_page_pdf(tmp_path), B_NUMBER)
        [job] = wait_jobs(a)
        [received] = wait_received(b)
    assert job["state"] == "done"
    assert (received["status"], received["media"], received["pages"]) == ("delivered", "t38", "1")
    assert sent_call(a)["media"] == "t38"


def test_t38_refused_completes_in_g711_and_the_next_call_starts_in_audio(tmp_path: Path, kamailio: Kamailio) -> None:
    with ExitStack() as stack:
        b = stack.enter_context(sip_node(tmp_path, "b", B_NUMBER, kamailio, "40200-40299", t38="off"))
        a = stack.enter_context(sip_node(tmp_path, "a", A_NUMBER, kamailio, "41200-41299", t38="prefer",
                                         gateways=kamailio.uri))
        document = one_page_pdf(tmp_path)
        send_fax(a, document, B_NUMBER)
        [job] = wait_jobs(a)
        assert job["state"] == "done"
        # A learned that B needs the softmodem ...
        settings = load_settings(a.node.data, env=a.node.env)
        engine = sa.create_engine(settings.database_url)
        try:
            with engine.connect() as conn:
                learned = conn.execute(sa.select(fax_sip_softmodem.c.number, fax_sip_softmodem.c.reason)).all()
        finally:
            engine.dispose()
        assert [n for n, _ in learned] == [B_NUMBER] and "488" in learned[0][1]
        # ... so the second call to B offers no T.38 at all (one refusal in A's log, not two).
        send_fax(a, document, B_NUMBER)
        jobs = wait_jobs(a, count=2)
        received = wait_received(b, count=2)
    assert [j["state"] for j in jobs] == ["done", "done"]
    assert [(c["status"], c["media"]) for c in received] == [("delivered", "g711")] * 2
    assert a.node.log.read_text().count("T.38 re-INVITE refused") == 1
