"""The restore drill of docs/deployment.md on a small node: pg_dump, restore into a fresh database, and the
node opens there, its audit log verifies and a document reads back (blobs are in the dump)."""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from inkless.app import build_node, init_node
from inkless.audit.tasks import sign_tree_head_if_new
from inkless.config import load_settings, write_config
from inkless.delivery.service import NewDocument
from inkless.directory.demo import DEMO_NODE_ID, create_demo
from tests.helpers.cli import inkless
from tests.helpers.db import fresh_database, postgres_url
from tests.helpers.seals import sample_pdf

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump is not installed (postgresql-client)"),
]


@pytest.fixture
def spare_database() -> Iterator[str]:
    """The name of a new, empty database on the test server; dropped afterwards."""
    server = make_url(str(postgres_url())).set(drivername="postgresql+psycopg")
    name = "inkless_restore_" + secrets.token_hex(5)
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def libpq(url: str, database: str | None = None) -> str:
    """The server URL as pg_dump / pg_restore take it (no driver name, no options)."""
    parsed = make_url(url)
    parsed = parsed.set(drivername="postgresql", query={})
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def test_pg_dump_restored_into_a_fresh_database_opens_verifies_and_reads_back(
    tmp_path: Path, spare_database: str
) -> None:
    original = tmp_path / "original"
    with fresh_database("postgresql", original) as url:
        schema = make_url(url).query["options"].removeprefix("-csearch_path=")  # type: ignore[union-attr]
        node = init_node(load_settings(original, env={}, overrides={"node_id": DEMO_NODE_ID, "database_url": url}))
        try:
            create_demo(node.directory)
            assert node.delivery is not None
            document = sample_pdf(pages=2)
            message_id = node.delivery.send(
                "tanaka",
                "civil-affairs",
                [f"criminal-affairs@{DEMO_NODE_ID}"],
                [],
                "復元訓練",
                [NewDocument("訓練.pdf", document)],
                classification=1,
            )
            assert node.delivery.deliver_due().delivered == 1
            assert sign_tree_head_if_new(node) is not None
        finally:
            node.close()
        assert not (original / "blobs").exists()  # everything is in the database

        # 1. Dump. 2. Restore into a fresh database.
        dump = tmp_path / "node.dump"
        subprocess.run(
            ["pg_dump", "--format=custom", f"--schema={schema}", f"--file={dump}", libpq(url)],
            check=True,
            capture_output=True,
        )
    # The original schema is gone now (dropped with its test database): only the dump remains.
    restored_url = libpq(str(postgres_url()), spare_database)
    subprocess.run(["pg_restore", "--no-owner", f"--dbname={restored_url}", str(dump)], check=True, capture_output=True)

    # 3. A new data folder: the saved inkless.toml and master.key, database_url to the restored database.
    restored = tmp_path / "restored"
    restored.mkdir(mode=0o700)
    shutil.copy2(original / "master.key", restored / "master.key")
    write_config(
        restored, {"node_id": DEMO_NODE_ID, "database_url": f"{restored_url}?options=-csearch_path%3D{schema}"}
    )

    # 4. The node opens, its audit log verifies, and the clerk's document reads back.
    info = inkless("node", "info", "--data", str(restored))
    assert info.returncode == 0, info.stderr
    assert "node_id:        moj" in info.stdout
    verify = inkless("audit", "verify", "--data", str(restored))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    node = build_node(load_settings(restored, env={}))
    try:
        assert node.delivery is not None
        opened = node.delivery.open_message(message_id, "takahashi")
        assert opened.metadata.subject == "復元訓練"
        assert opened.documents[0].data == document
    finally:
        node.close()
    assert not (restored / "blobs").exists()
