"""``inkless blobs migrate --to postgresql``: a node's blob folder moves into its database, every hash checked."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from inkless.app import build_node, init_node
from inkless.blob_collector import referenced_blobs
from inkless.blobs import LocalBlobStore
from inkless.config import load_settings, write_config
from inkless.db.blob_store import DatabaseBlobStore
from inkless.db.tables_blobs import blob_chunks
from inkless.delivery.service import NewDocument
from inkless.directory.demo import DEMO_NODE_ID, create_demo
from tests.helpers.cli import inkless
from tests.helpers.db import fresh_database
from tests.helpers.seals import sample_pdf

CRIMINAL = f"criminal-affairs@{DEMO_NODE_ID}"


@pytest.fixture
def folder_node(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A node on PostgreSQL whose blobs are still in its folder (as before blobs moved into the database),
    with a delivered message: envelope, documents, receipt."""
    data = tmp_path / "node"
    with fresh_database("postgresql", data) as url:
        node = init_node(
            load_settings(data, env={}, overrides={"node_id": DEMO_NODE_ID, "database_url": url, "blob_store": "files"})
        )
        try:
            create_demo(node.directory)
            assert node.delivery is not None
            message_id = node.delivery.send(
                "tanaka",
                "civil-affairs",
                [CRIMINAL],
                [],
                "移行前の文書",
                [NewDocument("a.pdf", sample_pdf(pages=1))],
                classification=1,
            )
            assert node.delivery.deliver_due().delivered == 1
            node.blobs.put(os.urandom(2 * 1024 * 1024 + 17))  # three chunks
            node.blobs.put(b"")
        finally:
            node.close()
        # The operator upgrades: blob_store back to its default, "auto" (the database on PostgreSQL).
        write_config(data, {"node_id": DEMO_NODE_ID, "database_url": url})
        yield data, message_id


def blob_files(folder: Path) -> list[Path]:
    return [p for p in folder.glob("??/??/*") if p.is_file()]


@pytest.mark.postgres
def test_migrate_moves_every_blob_checks_it_and_runs_again_harmlessly(folder_node: tuple[Path, str]) -> None:
    data, message_id = folder_node
    folder = data / "blobs"
    files = blob_files(folder)
    assert len(files) >= 3

    result = inkless("blobs", "migrate", "--to", "postgresql", "--data", str(data), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["moved"] == len(files) and report["already_in_database"] == 0 and report["corrupt"] == []
    assert report["files_removed"] == len(files) and report["blobs_in_database"] == len(files)
    assert not folder.exists()  # emptied and removed

    # The folder is no longer needed: the node reads every blob a record names from the database.
    node = build_node(load_settings(data, env={}))
    try:
        assert isinstance(node.blobs, DatabaseBlobStore)
        for digest in referenced_blobs(node):
            node.blobs.get(digest)
        assert node.delivery is not None
        opened = node.delivery.open_message(message_id, "takahashi")
        assert opened.metadata.subject == "移行前の文書"
        assert opened.documents[0].data.startswith(b"%PDF")
    finally:
        node.close()
    assert not folder.exists()

    again = inkless("blobs", "migrate", "--to", "postgresql", "--data", str(data))
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("moved 0 blob(s) (0 bytes) into the database, 0 were there already")


@pytest.mark.postgres
def test_an_interrupted_migration_resumes_and_a_corrupt_file_is_named_and_left(folder_node: tuple[Path, str]) -> None:
    data, _ = folder_node
    folder = data / "blobs"
    files = sorted(blob_files(folder))
    # An earlier run copied the first two blobs and was killed before removing their files; the second copy
    # was damaged in the database since (it is copied again from its file).
    node = build_node(load_settings(data, env={}))
    try:
        assert isinstance(node.blobs, DatabaseBlobStore)
        local = LocalBlobStore(folder, node.box)
        node.blobs.put(local.get(files[0].name))
        node.blobs.put(local.get(files[1].name))
        with node.db.begin() as conn:
            conn.execute(update(blob_chunks).where(blob_chunks.c.digest == files[1].name).values(data=b"damaged"))
    finally:
        node.close()
    # And one file was damaged on disk.
    damaged = files[-1]
    raw = bytearray(damaged.read_bytes())
    raw[-5] ^= 1
    damaged.write_bytes(bytes(raw))

    result = inkless("blobs", "migrate", "--to", "postgresql", "--data", str(data), "--json")
    assert result.returncode == 5
    report = json.loads(result.stdout)
    assert report["already_in_database"] == 1 and report["moved"] == len(files) - 2
    assert len(files) >= 3  # one present, one copied again, one damaged
    assert report["corrupt"] == [damaged.name]
    assert damaged.name in result.stderr and "do not match their address" in result.stderr
    assert blob_files(folder) == [damaged]  # kept for the operator to look at; not copied
    node = build_node(load_settings(data, env={}))
    try:
        assert not node.blobs.exists(damaged.name)
        node.blobs.get(files[1].name)  # verified: the damaged copy was replaced from its file
    finally:
        node.close()


def test_migrate_refuses_a_node_on_sqlite_and_changes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "node"
    node = init_node(load_settings(data, env={}, overrides={"node_id": DEMO_NODE_ID}))
    try:
        digest = node.blobs.put(b"stays in the folder")
    finally:
        node.close()
    result = inkless("blobs", "migrate", "--to", "postgresql", "--data", str(data))
    assert result.returncode == 6
    assert "this node's database is SQLite: its blobs stay in the blob folder" in result.stderr
    assert [p.name for p in blob_files(data / "blobs")] == [digest]
    wrong = inkless("blobs", "migrate", "--to", "s3", "--data", str(data))
    assert wrong.returncode == 6 and "blobs can only be moved to postgresql" in wrong.stderr
