"""The disaster fallback end to end: two ``inkless serve`` processes and ``inkless fax simulate --answer``.

The receiving node is stopped; an urgent message the operator sends (no ``--as``) goes out by fax
through the loopback line to the simulated remote machine, which was restarted on a folder that
already holds an earlier fax. When the receiving node is back, the signed envelope is delivered as
well, marked there as received by fax first; the sender sees the fax outcome and the receipt.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from inkless.app import Node
from inkless.db.tables import audit_entries
from inkless.directory.peers import PeerService
from tests.conftest import BACKENDS
from tests.helpers.faxdocs import three_page_pdf
from tests.helpers.nodes import INKLESS, NodeProcess, init_nodes, node_processes, start_nodes

SETTINGS = {
    "delivery_poll_seconds": "1",
    "delivery_backoff_base_seconds": "1",
    "delivery_backoff_cap_seconds": "2",
    "delivery_lease_seconds": "5",
    "fax_poll_seconds": "1",
    "fax_fallback_after_minutes": "0.1",  # 6 seconds: fractional minutes are allowed
}
WAIT_SECONDS = 240


@dataclass
class Pair:
    moj: NodeProcess
    mlit: NodeProcess
    moj_ctl: Node
    mlit_ctl: Node


@pytest.fixture(params=BACKENDS)
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    with node_processes(str(request.param), tmp_path, ["moj", "mlit"], SETTINGS) as nodes:
        moj, mlit = nodes["moj"], nodes["mlit"]
        init_nodes({moj: (), mlit: ()})
        moj_ctl, mlit_ctl = moj.control(), mlit.control()
        try:
            moj_ctl.directory.add_office("civil-affairs", "民事局", "03-3580-4111", actor="cli")
            mlit_ctl.directory.add_office("disaster-hq", "災害対策本部", "03-5253-8111", actor="cli")
            start_nodes(moj, mlit)
            assert isinstance(moj_ctl.peers, PeerService) and isinstance(mlit_ctl.peers, PeerService)
            moj_ctl.peers.add(mlit.url, mlit.fingerprint)
            mlit_ctl.peers.add(moj.url, moj.fingerprint)
            assert moj_ctl.peers.refresh("mlit")[0].ok
            yield Pair(moj, mlit, moj_ctl, mlit_ctl)
        finally:
            moj_ctl.close()
            mlit_ctl.close()


def wait_until(condition: object, what: str, *logs: NodeProcess) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not callable(condition) or not condition():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {n.node_id} ---\n{n.log.read_text()[-3000:]}" for n in logs)
            raise AssertionError(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.2)


@pytest.fixture
def answering(pair: Pair, tmp_path: Path) -> Iterator[Path]:
    """``inkless fax simulate --answer`` on moj's outbound line, restarted on a folder holding an earlier fax."""
    out = tmp_path / "received"
    out.mkdir()
    earlier = {"answer": "ok", "remote_ident": "EARLIER", "pages_transferred": 1}
    (out / "call-000.json").write_text(json.dumps(earlier) + "\n")
    (out / "call-000.tif").write_bytes(b"II*\x00 an earlier fax")
    remote_socket = pair.moj.data / "fax" / "remote.sock"
    log = (tmp_path / "simulate.log").open("wb")
    process = subprocess.Popen(
        [INKLESS, "fax", "simulate", "--answer", "--out", str(out), "--data", str(pair.moj.data)],
        stdout=log, stderr=subprocess.STDOUT, env=pair.moj.env)
    try:
        wait_until(lambda: remote_socket.exists() or process.poll() is not None, "the simulated remote machine")
        assert process.poll() is None, (tmp_path / "simulate.log").read_text()
        yield out
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_urgent_mail_to_a_stopped_node_is_faxed_then_delivered_when_it_returns(
        pair: Pair, answering: Path, tmp_path: Path) -> None:
    moj, mlit = pair.moj, pair.mlit
    moj.cli("fax", "fallback", "enable", "civil-affairs")
    assert mlit.stop() == 0
    document = tmp_path / "notice.pdf"
    document.write_bytes(three_page_pdf())
    # Sent by the operator (no --as): the fallback faxes it for the office.
    message_id = moj.cli("send", "--from", "civil-affairs", "--to", "disaster-hq@mlit", "--subject", "避難所の開設",
                         "--classification", "1", "--priority", "urgent", str(document)).stdout.strip()
    delivery = pair.moj_ctl.delivery
    assert delivery is not None

    def fax_outcome() -> str | None:
        [status] = delivery.status(message_id, None)
        return status.fax_outcome.code if status.fax_outcome else None

    wait_until(lambda: fax_outcome() == "sent", "the fallback fax", moj)
    # The restarted remote numbered on after the earlier fax, which is untouched.
    assert (answering / "call-000.tif").read_bytes() == b"II*\x00 an earlier fax"
    facts = json.loads((answering / "call-001.json").read_text())
    assert facts["answer"] == "ok" and facts["pages_transferred"] == 4 and facts["called_number"] == "03-5253-8111"
    with Image.open(answering / "call-001.tif") as image:
        assert image.n_frames == 4  # the cover page and the three pages
    [status] = delivery.status(message_id, None)
    assert status.state in ("retrying", "queued") and status.fax_decision is not None
    assert status.fax_decision.code == "faxing"
    japanese = moj.cli("message", "status", message_id).stdout
    assert "03-5253-8111 へFAXで送信しました" in japanese and "Sent by fax" not in japanese

    # The peer is back: the signed original is delivered too, and the sender gets its receipt.
    mlit.start()
    wait_until(lambda: delivery.status(message_id, None)[0].state == "delivered", "the electronic delivery", moj, mlit)
    [status] = json.loads(moj.cli("message", "status", message_id, "--lang", "en", "--json").stdout)
    assert status["state"] == "delivered" and status["receipt"] is True
    assert status["fax_outcome"]["code"] == "sent"
    assert status["fax_outcome"]["text"].startswith("Sent by fax to 03-5253-8111 (fax job ")
    [item] = [i for i in mlit.cli_json("inbox", "disaster-hq") if i["message_id"] == message_id]
    assert item["authenticated"] is True and item["source"] == "inkless"
    assert item["fax_first"]["number"] == "03-5253-8111" and item["fax_first"]["pages"] == 4
    assert item["fax_first"]["from_number"] == "03-3580-4111"
    assert item["fax_copy_message_id"] is None  # the fax went to a paper machine, not to mlit's own line
    with pair.moj_ctl.db.begin() as conn:
        faxed = conn.execute(select(func.count()).select_from(audit_entries).where(
            audit_entries.c.object_id == message_id, audit_entries.c.action == "message.fax_fallback")).scalar_one()
    assert faxed == 1
