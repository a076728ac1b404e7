"""The blob store: content addressing, atomic writes, corruption detection."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from inkless.blobs import BlobStore, LocalBlobStore, MemoryBlobStore
from inkless.errors import IntegrityError, NotFoundError, ValidationError


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    return LocalBlobStore(tmp_path / "blobs") if request.param == "local" else MemoryBlobStore()


def test_address_is_sha256_and_same_bytes_stored_once(store: BlobStore) -> None:
    data = "公文書".encode() * 1000
    digest = store.put(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.put(data) == digest
    assert list(store) == [digest]
    assert store.get(digest) == data
    assert store.size(digest) == len(data)


def test_stream_is_stored_like_bytes(store: BlobStore) -> None:
    data = bytes(range(256)) * 20000
    assert store.put_stream(io.BytesIO(data)) == hashlib.sha256(data).hexdigest()


def test_missing_and_malformed_addresses(store: BlobStore) -> None:
    with pytest.raises(NotFoundError):
        store.get("0" * 64)
    with pytest.raises(ValidationError):
        store.get("../../etc/passwd")
    store.delete("0" * 64)  # deleting what is not there is not an error


def test_delete(store: BlobStore) -> None:
    digest = store.put(b"x")
    store.delete(digest)
    assert not store.exists(digest)


def test_corruption_on_disk_is_detected(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    digest = store.put(b"original")
    path = tmp_path / digest[:2] / digest[2:4] / digest
    path.write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="corrupt"):
        store.get(digest)


def test_no_temporary_files_left_behind(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    store.put(b"a")
    store.put_stream(io.BytesIO(b"b" * 3_000_000))
    assert list((tmp_path / "tmp").iterdir()) == []
