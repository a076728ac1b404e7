"""The blob garbage collector: a blob left behind by a failed commit goes after the grace period, nothing else."""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from inkless.app import Node, build_node, init_node
from inkless.blob_collector import collect_orphan_blobs, referenced_blobs
from inkless.config import load_settings
from inkless.db.schema import blob_columns
from inkless.db.tables_fax import fax_jobs
from inkless.directory.demo import DEMO_NODE_ID, create_demo
from inkless.errors import StorageError
from inkless.workers import TASKS, _load_tasks
from tests.helpers.seals import sample_pdf

DAY = 24 * 3600


def collected_entries(node: Node) -> list[dict[str, object]]:
    with node.db.read() as conn:
        return [e.details for e in node.audit.entries(conn, 0, 1000, action="blob.collected")]


@pytest.fixture
def sqlite_node(tmp_path: Path) -> Iterator[Node]:
    """A SQLite demo node: there another process can hold the write lock and make a commit fail."""
    node = init_node(load_settings(tmp_path / "node", env={}, overrides={"node_id": DEMO_NODE_ID}))
    create_demo(node.directory)
    try:
        yield node
    finally:
        node.close()


def test_a_failed_commit_leaves_an_orphan_that_the_collector_removes_after_the_grace_period(
    sqlite_node: Node,
) -> None:
    node = sqlite_node
    impatient = build_node(dataclasses.replace(node.settings, database_lock_timeout_seconds=1))
    other_process = sqlite3.connect(node.settings.database_url.split(":///", 1)[1], isolation_level=None)
    document = sample_pdf(pages=2) + b"%orphan"
    try:
        other_process.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageError, match="database is locked"):
            impatient.fax.send("tanaka", "civil-affairs", "0312345678", [document])  # type: ignore[union-attr]
    finally:
        other_process.execute("ROLLBACK")
        other_process.close()
        impatient.close()
    orphans = set(node.blobs) - referenced_blobs(node)
    assert len(orphans) == 2  # the PDF and its rendered TIFF: written, then the commit failed

    kept_job = node.fax.send("tanaka", "civil-affairs", "0312345678", [sample_pdf()])  # type: ignore[union-attr]
    with node.db.read() as conn:
        kept = set(conn.execute(select(fax_jobs.c.document_blob, fax_jobs.c.tiff_blob)
                                .where(fax_jobs.c.id == kept_job)).one())

    assert collect_orphan_blobs(node).blobs == ()  # within the grace period: a write may be in progress
    assert orphans <= set(node.blobs)

    later = time.time() + node.settings.blob_gc_grace_hours * 3600 + 60
    removed = collect_orphan_blobs(node, now=later)
    assert set(removed.blobs) == orphans
    assert not orphans & set(node.blobs)
    assert all(node.blobs.get(digest) for digest in kept)
    [entry] = collected_entries(node)
    assert entry["count"] == 2 and set(entry["blobs"]) == orphans  # type: ignore[arg-type]
    assert collect_orphan_blobs(node, now=later).blobs == ()  # nothing left to do: no further entry
    assert len(collected_entries(node)) == 1


def test_a_blob_written_again_since_the_cutoff_is_kept(node: Node) -> None:
    digest = node.blobs.put(b"%PDF-1.7 draft")
    later = time.time() + 2 * DAY
    assert node.blobs.delete_if_stored_before(digest, later - 3 * DAY) is False
    assert node.blobs.get(digest) == b"%PDF-1.7 draft"


def test_every_blob_address_column_is_known_to_the_collector() -> None:
    # A new column holding a blob address must be marked info=BLOB, or its blobs would be collected.
    from inkless.db.schema import metadata

    marked = {f"{c.table.name}.{c.name}" for c in blob_columns()}
    looks_like_a_blob = {
        f"{table.name}.{c.name}" for table in metadata.sorted_tables for c in table.columns
        if str(c.type) == "VARCHAR(64)" and any(k in c.name for k in ("blob", "sha256", "digest"))
    }
    # Digests that are not blob addresses: an image kept in the row itself, a cache key (the page images
    # of a document are cached under its SHA-256; the rendered PNG's own blob is png_digest), keyed digests
    # of a submitter's phone and e-mail (matched, never stored in clear), the digest of an aggregate sent,
    # and the blob store's own tables (where blobs live on PostgreSQL, not records that name one).
    not_addresses = {"office_seal_images.sha256", "page_images.source_sha256", "intake_submissions.phone_digest",
                     "intake_submissions.email_digest", "metrics_aggregate_sends.sent_digest",
                     "blobs.digest", "blob_chunks.digest"}
    assert looks_like_a_blob - not_addresses == marked
    assert {"messages.envelope_sha256", "route_documents.blob_digest", "fax_calls.pdf_blob"} <= marked


def test_the_collector_runs_as_a_worker_task() -> None:
    _load_tasks()
    assert "blobs.collect" in {task.name for task in TASKS}
