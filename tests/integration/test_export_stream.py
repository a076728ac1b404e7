"""Exporting a message streams its documents to files: they appear under their names only once the whole
envelope was read and its signature holds; a damaged envelope leaves nothing behind."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from inkless.app import Node
from inkless.delivery.service import NewDocument
from inkless.directory.demo import DemoSample
from inkless.errors import IntegrityError


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_export_writes_documents_only_after_the_whole_envelope_holds(
        node: Node, demo: DemoSample, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    delivery = node.delivery
    assert delivery is not None
    scan = b"%PDF-1.7\n" + os.urandom(3_000_000)
    docs = [NewDocument("scan.pdf", scan), NewDocument("memo.txt", "メモ".encode(), "text/plain")]
    message_id = delivery.send("tanaka", "civil-affairs", ["criminal-affairs@moj"], [], "照会", docs,
                               classification=1)
    assert delivery.deliver_due().delivered == 1
    written = delivery.export(message_id, "takahashi", tmp_path / "good")
    assert sorted(p.name for p in written) == sorted(["scan.pdf", "memo.txt", "envelope.p7m",
                                                      "receipt-criminal-affairs_at_moj.p7s"])
    assert (tmp_path / "good" / "scan.pdf").read_bytes() == scan
    assert sorted(p.name for p in (tmp_path / "good").iterdir()) == sorted(p.name for p in written)

    stream = delivery._blobs.stream

    def damaged(digest: str) -> Iterator[bytes]:
        chunks = stream(digest)
        yield next(chunks)
        raise IntegrityError(f"blob {digest} is corrupt (truncated)")

    monkeypatch.setattr(delivery._blobs, "stream", damaged)
    with pytest.raises(IntegrityError, match="is corrupt"):
        delivery.export(message_id, "takahashi", tmp_path / "damaged")
    assert list((tmp_path / "damaged").iterdir()) == []
