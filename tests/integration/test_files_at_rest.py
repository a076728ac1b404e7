"""What a node leaves on disk: private file modes, and documents encrypted under the master key."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

from inkless.blobs import MAGIC, LocalBlobStore
from inkless.config import load_settings
from inkless.pki.keystore import SecretBox, load_master_key
from tests.helpers.nodes import INKLESS, clean_env
from tests.helpers.seals import sample_pdf


def inkless(*args: str) -> subprocess.CompletedProcess[str]:
    # A permissive umask, as a login shell has: the node must not rely on the caller's.
    def umask_022() -> None:
        os.umask(0o022)

    return subprocess.run([INKLESS, *args], capture_output=True, text=True, env=clean_env(), check=False,
                          timeout=120, preexec_fn=umask_022)


@pytest.fixture(scope="module")
def used_node(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A demo node that has queued a fax and started an approval route."""
    folder = tmp_path_factory.mktemp("at-rest")
    data = folder / "node"
    assert inkless("init", "--data", str(data), "--demo").returncode == 0
    document = folder / "稟議書.pdf"
    document.write_bytes(sample_pdf())
    faxed = inkless("fax", "send", str(document), "--from", "civil-affairs", "--to", "0312345678", "--data", str(data))
    assert faxed.returncode == 0, faxed.stderr
    routed = inkless("route", "start", str(document), "--as", "tanaka", "--step", "sato", "--title", "係長",
                     "--data", str(data))
    assert routed.returncode == 0, routed.stderr
    return data


def modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in [root, *root.rglob("*")]
            if not p.is_socket()}


def test_every_file_is_private_to_the_node(used_node: Path) -> None:
    # While the database is in use its WAL and shared-memory files exist; SQLite gives them the database's mode.
    with sqlite3.connect(used_node / "inkless.db") as db:
        db.execute("UPDATE node_meta SET value = value WHERE key = 'node_id'")
        found = modes(used_node)
    assert {"inkless.db", "inkless.db-wal", "inkless.db-shm", "blobs", "blobs/tmp", "inkless.toml"} <= set(found)
    loose = {name: oct(mode) for name, mode in found.items() if mode & 0o077}
    assert loose == {}


def test_an_existing_database_is_made_private_when_the_node_opens(used_node: Path, tmp_path: Path) -> None:
    # A node created by an earlier version: database and WAL readable by everyone.
    for name in ("inkless.db", "inkless.db-wal", "inkless.db-shm"):
        if (used_node / name).exists():
            os.chmod(used_node / name, 0o644)
    assert inkless("node", "info", "--data", str(used_node)).returncode == 0
    assert stat.S_IMODE((used_node / "inkless.db").stat().st_mode) == 0o600


def test_documents_and_faxes_are_encrypted_at_rest(used_node: Path) -> None:
    blob_files = [p for p in (used_node / "blobs").glob("??/??/*") if p.is_file()]
    assert len(blob_files) >= 3  # the PDF (faxed and routed: stored once), the fax TIFF, the route revision
    for path in blob_files:
        raw = path.read_bytes()
        assert raw.startswith(MAGIC), path.name
        assert b"%PDF" not in raw and b"II*\x00" not in raw and b"Request for approval" not in raw
    # The node itself reads them back, verified against their address.
    settings = load_settings(used_node, env={})
    store = LocalBlobStore(settings.blob_dir, SecretBox(load_master_key(settings.master_key_file, env={})))
    contents = [store.get(p.name) for p in blob_files]
    assert any(c.startswith(b"%PDF") for c in contents) and any(c.startswith(b"II*\x00") for c in contents)
