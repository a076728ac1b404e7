"""Store and forward across real processes: a receiving node that is down for a while, and a sending node
killed with SIGKILL in the middle of a batch. Every message arrives exactly once, every sender gets its receipt."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from inkless.app import Node
from inkless.db.tables_delivery import inbox, outbox
from inkless.delivery.service import NewDocument
from inkless.directory.peers import PeerService
from tests.conftest import BACKENDS
from tests.helpers.nodes import NodeProcess, init_nodes, node_processes, start_nodes

# Rounds of stopping and killing real server processes: minutes per backend.
pytestmark = pytest.mark.slow

FAST = {
    "delivery_poll_seconds": "1",
    "delivery_backoff_base_seconds": "1",
    "delivery_backoff_cap_seconds": "2",
    "delivery_lease_seconds": "3",
}
WAIT_SECONDS = 180
DOCUMENT = NewDocument("notice.txt", b"disaster response notice\n", "text/plain")


@dataclass
class Pair:
    moj: NodeProcess
    npa: NodeProcess
    moj_ctl: Node
    npa_ctl: Node


@pytest.fixture(scope="module", params=BACKENDS)
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """moj and npa served on loopback and pinned both ways."""
    folder = tmp_path_factory.mktemp("resilience")
    with node_processes(str(request.param), folder, ["moj", "npa"], FAST) as nodes:
        moj, npa = nodes["moj"], nodes["npa"]
        init_nodes({moj: (("civil-affairs", "民事局"),), npa: (("security", "警備局"),)})
        start_nodes(moj, npa)
        moj_ctl, npa_ctl = moj.control(), npa.control()
        try:
            assert isinstance(moj_ctl.peers, PeerService) and isinstance(npa_ctl.peers, PeerService)
            moj_ctl.peers.add(npa.url, npa.fingerprint)
            npa_ctl.peers.add(moj.url, moj.fingerprint)
            assert moj_ctl.peers.refresh("npa")[0].ok
            yield Pair(moj, npa, moj_ctl, npa_ctl)
        finally:
            moj_ctl.close()
            npa_ctl.close()


def send_batch(node: Node, count: int, label: str) -> list[str]:
    """``count`` messages from civil-affairs@moj to security@npa, written as ``inkless send`` writes them."""
    assert node.delivery is not None
    return [
        node.delivery.send(None, "civil-affairs", ["security@npa"], [], f"{label} {i}", [DOCUMENT])
        for i in range(count)
    ]


def states(node: Node, ids: list[str]) -> dict[str, int]:
    """How many outbox rows of ``ids`` are in each state (one query: cheap enough to poll often)."""
    with node.db.begin() as conn:
        rows = conn.execute(
            select(outbox.c.state, func.count()).where(outbox.c.message_id.in_(ids)).group_by(outbox.c.state)
        ).all()
    return {str(r[0]): int(r[1]) for r in rows}


def wait_until(condition: object, what: str, *logs: NodeProcess) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not callable(condition) or not condition():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {n.node_id} ---\n{n.log.read_text()[-2000:]}" for n in logs)
            raise AssertionError(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.1)


def copies_received(node: Node, ids: list[str]) -> dict[str, int]:
    """How many inbox rows each message has on the receiving node (must be exactly one)."""
    with node.db.begin() as conn:
        rows = conn.execute(
            select(inbox.c.message_id, func.count()).where(inbox.c.message_id.in_(ids)).group_by(inbox.c.message_id)
        ).all()
    return {str(r[0]): int(r[1]) for r in rows}


def assert_exactly_once(pair: Pair, ids: list[str]) -> None:
    assert pair.moj_ctl.delivery is not None
    for message_id in ids:
        [status] = pair.moj_ctl.delivery.status(message_id, None)
        assert status.state == "delivered" and status.has_receipt, status
    assert copies_received(pair.npa_ctl, ids) == {message_id: 1 for message_id in ids}


def test_receiver_down_then_back_gets_all_50_exactly_once(pair: Pair) -> None:
    assert pair.npa.stop() == 0
    ids = send_batch(pair.moj_ctl, 50, "batch")
    # Every row has been tried against the stopped node and is waiting to be retried, with the reason.
    wait_until(lambda: states(pair.moj_ctl, ids).get("retrying", 0) == 50, "50 failed first attempts", pair.moj)
    assert pair.moj_ctl.delivery is not None
    [status] = pair.moj_ctl.delivery.status(ids[0], None)
    assert status.last_error and "npa" in status.last_error
    assert isinstance(pair.moj_ctl.peers, PeerService)
    assert pair.moj_ctl.peers.get("npa").unreachable_since is not None

    time.sleep(3)  # "an arbitrary time later": a few more failed rounds
    pair.npa.start()
    wait_until(lambda: states(pair.moj_ctl, ids).get("delivered", 0) == 50, "50 deliveries", pair.moj, pair.npa)
    assert_exactly_once(pair, ids)
    assert pair.moj_ctl.peers.get("npa").unreachable_since is None


def test_sender_killed_mid_batch_loses_and_duplicates_nothing(pair: Pair) -> None:
    # The batch waits in the outbox while the sender is stopped, so the kill lands inside one worker pass.
    assert pair.moj.stop() == 0
    ids = send_batch(pair.moj_ctl, 40, "killed")
    pair.moj.start(wait=False)
    wait_until(lambda: states(pair.moj_ctl, ids).get("delivered", 0) >= 1, "the first delivery", pair.moj)
    pair.moj.kill()
    delivered_at_kill = states(pair.moj_ctl, ids).get("delivered", 0)
    received_at_kill = len(copies_received(pair.npa_ctl, ids))
    print(f"killed the sender with {delivered_at_kill}/40 delivered, {received_at_kill} received")
    assert delivered_at_kill < 40, "the kill came after the batch, not in the middle of it"
    # Rows the dead worker had claimed come back after the lease; the restarted worker finishes the batch.
    pair.moj.start()
    wait_until(lambda: states(pair.moj_ctl, ids).get("delivered", 0) == 40, "40 deliveries", pair.moj, pair.npa)
    assert_exactly_once(pair, ids)
