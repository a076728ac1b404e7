"""A large message received by a real ``inkless serve`` keeps the receiver's memory within the bound of
docs/delivery.md: peak RSS (VmHWM, from /proc) grows by at most twice the message over the idle node."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from inkless.app import Node
from inkless.delivery.service import NewDocument
from tests.helpers.nodes import init_nodes, node_processes, start_nodes

pytestmark = pytest.mark.slow

MESSAGE = 40_000_000  # bytes of document: large enough that holding it a few times would show


def memory_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} in /proc")


def deliver(sender: Node, name: str, data: bytes) -> str:
    assert sender.delivery is not None
    message_id = sender.delivery.send("tanaka", "civil-affairs", ["security@npa"], [], "大容量",
                                      [NewDocument(name, data)], classification=1)
    result = sender.delivery.deliver_due()
    assert result.delivered == 1, sender.delivery.status(message_id, None)
    return message_id


def test_a_large_message_is_received_within_twice_its_size(tmp_path: Path) -> None:
    with node_processes("sqlite", tmp_path, ["moj", "npa"]) as nodes:
        moj, npa = nodes["moj"], nodes["npa"]
        init_nodes({moj: (("civil-affairs", "民事局"),), npa: (("security", "警備局"),)})
        start_nodes(moj, npa)
        moj.cli("peer", "add", npa.url, "--fingerprint", npa.fingerprint)
        npa.cli("peer", "add", moj.url, "--fingerprint", moj.fingerprint)
        moj.cli("peer", "refresh", "npa")
        sender = moj.control()
        try:
            sender.directory.add_user("tanaka", "civil-affairs", "clerk", 3, "田中")
            assert npa.process is not None
            pid = npa.process.pid
            # A small message first: the receiver's imports, keys and caches are then part of its idle size.
            deliver(sender, "small.pdf", b"%PDF-1.7\n" + os.urandom(10_000))
            idle = memory_mb(pid, "VmRSS")
            document = b"%PDF-1.7\n" + os.urandom(MESSAGE - 9)
            message_id = deliver(sender, "scan.pdf", document)
            peak = memory_mb(pid, "VmHWM")
        finally:
            sender.close()
        receiver = npa.control()
        try:
            assert receiver.delivery is not None
            [item] = [i for i in receiver.delivery.inbox("security", None) if i.message_id == message_id]
            opened = receiver.delivery.open_message(message_id, None)
        finally:
            receiver.close()
    [doc] = opened.documents
    assert doc.name == "scan.pdf" and hashlib.sha256(doc.data).digest() == hashlib.sha256(document).digest()
    assert item.authenticated and item.document_count == 1
    growth = peak - idle
    print(f"receiver: idle {idle:.0f} MB, peak {peak:.0f} MB, growth {growth:.0f} MB for a {MESSAGE / 2**20:.0f} MB "
          "message")
    assert growth <= 2 * MESSAGE / 2**20
