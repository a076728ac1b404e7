"""Blobs in PostgreSQL: a node on PostgreSQL keeps documents in sealed chunks of its database, streamed."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, update

from inkless.app import Node, build_node, init_node
from inkless.blob_collector import collect_orphan_blobs
from inkless.blobs import LocalBlobStore
from inkless.config import load_settings
from inkless.db.blob_store import DatabaseBlobStore
from inkless.db.tables_blobs import blob_chunks, blobs
from inkless.delivery.service import NewDocument
from inkless.directory.demo import DEMO_NODE_ID, create_demo
from inkless.errors import IntegrityError, NotFoundError, ValidationError
from tests.helpers.db import fresh_database

pytestmark = pytest.mark.postgres

MIB = 1024 * 1024


@pytest.fixture
def pg_node(tmp_path: Path) -> Iterator[Node]:
    with fresh_database("postgresql", tmp_path / "node") as url:
        node = init_node(
            load_settings(tmp_path / "node", env={}, overrides={"node_id": DEMO_NODE_ID, "database_url": url})
        )
        try:
            yield node
        finally:
            node.close()


class Generated(io.RawIOBase):
    """``size`` pseudo-random bytes, made as they are read (never all in memory), with their SHA-256."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.sha = hashlib.sha256()
        self._block = os.urandom(MIB)
        self._counter = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self._counter += 1
        data = (self._counter.to_bytes(8, "big") + self._block)[:n]
        data += b"\0" * (n - len(data))
        self.left -= len(data)
        self.sha.update(data)
        return data


def chunk_rows(node: Node, digest: str) -> list[bytes]:
    with node.db.read() as conn:
        return [
            bytes(d)
            for d in conn.execute(
                select(blob_chunks.c.data).where(blob_chunks.c.digest == digest).order_by(blob_chunks.c.seq)
            ).scalars()
        ]


def test_a_node_on_postgresql_keeps_its_blobs_in_the_database_and_none_on_disk(pg_node: Node) -> None:
    assert isinstance(pg_node.blobs, DatabaseBlobStore)
    data = b"%PDF-1.7 confidential " * 100_000  # 2.2 MB: three chunks
    digest = pg_node.blobs.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert pg_node.blobs.get(digest) == data
    assert b"".join(pg_node.blobs.stream(digest)) == data
    assert pg_node.blobs.exists(digest) and pg_node.blobs.size(digest) == len(data)
    assert digest in set(pg_node.blobs)
    # Stored once, sealed: no chunk holds the clear text.
    assert pg_node.blobs.put(data) == digest
    rows = chunk_rows(pg_node, digest)
    assert len(rows) == 3 and not any(b"confidential" in row for row in rows)
    assert not pg_node.settings.blob_dir.exists()
    # Another process on the same database reads it.
    other = build_node(pg_node.settings)
    try:
        assert other.blobs.get(digest) == data
    finally:
        other.close()


def test_empty_and_missing_blobs_and_bad_addresses(pg_node: Node) -> None:
    empty = pg_node.blobs.put(b"")
    assert pg_node.blobs.get(empty) == b"" and pg_node.blobs.size(empty) == 0
    missing = hashlib.sha256(b"never stored").hexdigest()
    assert not pg_node.blobs.exists(missing)
    with pytest.raises(NotFoundError):
        pg_node.blobs.get(missing)
    with pytest.raises(ValidationError):
        pg_node.blobs.get("../../etc/passwd")
    pg_node.blobs.delete(missing)  # no error


def test_a_large_blob_streams_in_and_out_in_bounded_memory(pg_node: Node) -> None:
    size = 40 * MIB
    source = Generated(size)
    tracemalloc.start()
    try:
        digest = pg_node.blobs.put_stream(source)  # type: ignore[arg-type]
        _, peak_in = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        out = hashlib.sha256()
        length = 0
        for chunk in pg_node.blobs.stream(digest):
            out.update(chunk)
            length += len(chunk)
        _, peak_out = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert digest == source.sha.hexdigest() == out.hexdigest() and length == size
    # A few 1 MiB chunks at a time, never the 40 MiB.
    assert peak_in < 8 * MIB, peak_in
    assert peak_out < 8 * MIB, peak_out


@pytest.mark.parametrize("tamper", ["flip a byte", "drop the last chunk", "swap two chunks", "move a chunk in"])
def test_a_tampered_blob_is_refused(pg_node: Node, tamper: str) -> None:
    data = os.urandom(3 * MIB + 5)
    digest = pg_node.blobs.put(data)
    other = pg_node.blobs.put(os.urandom(2 * MIB))
    rows = chunk_rows(pg_node, digest)
    with pg_node.db.begin() as conn:
        where = blob_chunks.c.digest == digest
        if tamper == "flip a byte":
            changed = bytearray(rows[1])
            changed[100] ^= 1
            conn.execute(update(blob_chunks).where(where, blob_chunks.c.seq == 1).values(data=bytes(changed)))
        elif tamper == "drop the last chunk":
            conn.execute(delete(blob_chunks).where(where, blob_chunks.c.seq == 3))
            conn.execute(update(blobs).where(blobs.c.digest == digest).values(chunks=3))
        elif tamper == "swap two chunks":
            conn.execute(update(blob_chunks).where(where, blob_chunks.c.seq == 0).values(data=rows[1]))
            conn.execute(update(blob_chunks).where(where, blob_chunks.c.seq == 1).values(data=rows[0]))
        else:
            foreign = chunk_rows(pg_node, other)[0]
            conn.execute(update(blob_chunks).where(where, blob_chunks.c.seq == 0).values(data=foreign))
    with pytest.raises(IntegrityError, match="corrupt"):
        pg_node.blobs.get(digest)
    with pytest.raises(IntegrityError, match="corrupt"):
        for _ in pg_node.blobs.stream(digest):
            pass


def test_the_collector_sees_when_a_blob_was_last_written(pg_node: Node) -> None:
    digest = pg_node.blobs.put(b"orphan")
    later = time.time() + 60
    assert digest in set(pg_node.blobs.stored_before(later))
    assert digest not in set(pg_node.blobs.stored_before(time.time() - 60))
    assert not pg_node.blobs.delete_if_stored_before(digest, time.time() - 60)
    assert pg_node.blobs.delete_if_stored_before(digest, later)
    assert not pg_node.blobs.exists(digest)
    with pg_node.db.read() as conn:
        assert (
            conn.execute(
                select(func.count()).select_from(blob_chunks).where(blob_chunks.c.digest == digest)
            ).scalar_one()
            == 0
        )


def test_blob_store_files_keeps_the_folder_on_postgresql(pg_node: Node) -> None:
    forced = build_node(dataclasses.replace(pg_node.settings, blob_store="files"))
    try:
        assert isinstance(forced.blobs, LocalBlobStore)
    finally:
        forced.close()


def test_the_collector_removes_an_orphan_from_the_database_after_the_grace_period(pg_node: Node) -> None:
    orphan = pg_node.blobs.put(b"written, then its transaction failed")
    assert collect_orphan_blobs(pg_node).blobs == ()  # within the grace period
    later = time.time() + pg_node.settings.blob_gc_grace_hours * 3600 + 60
    assert collect_orphan_blobs(pg_node, now=later).blobs == (orphan,)
    assert not pg_node.blobs.exists(orphan)


def test_a_send_and_its_delivery_write_no_blob_file(pg_node: Node) -> None:
    create_demo(pg_node.directory)
    assert pg_node.delivery is not None
    document = b"%PDF-1.7 " + os.urandom(3 * MIB)
    message_id = pg_node.delivery.send(
        "tanaka",
        "civil-affairs",
        [f"criminal-affairs@{DEMO_NODE_ID}"],
        [],
        "ディスクに残さない",
        [NewDocument("a.pdf", document)],
        classification=1,
    )
    assert pg_node.delivery.deliver_due().delivered == 1
    assert pg_node.delivery.open_message(message_id, "takahashi").documents[0].data == document
    assert not pg_node.settings.blob_dir.exists()
    leftovers = [p for p in pg_node.settings.data_dir.rglob("*") if p.is_file() and p.stat().st_size > MIB]
    assert leftovers == []  # not in any other file of the data folder either
