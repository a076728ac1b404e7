"""The blob store: content addressing, atomic writes, corruption detection."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from inkless.blobs import MAGIC, BlobStore, LocalBlobStore, MemoryBlobStore
from inkless.errors import IntegrityError, KeyStoreError, NotFoundError, ValidationError
from inkless.pki.keystore import SecretBox

KEY = bytes(range(32))


@pytest.fixture(params=["local", "local-encrypted", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "memory":
        return MemoryBlobStore()
    return LocalBlobStore(tmp_path / "blobs", SecretBox(KEY) if request.param == "local-encrypted" else None)


def sealed_store(root: Path) -> LocalBlobStore:
    return LocalBlobStore(root, SecretBox(KEY))


def on_disk(root: Path, digest: str) -> Path:
    return root / digest[:2] / digest[2:4] / digest


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


def test_encrypted_blobs_hold_no_plaintext_and_read_back(tmp_path: Path) -> None:
    store = sealed_store(tmp_path)
    data = b"%PDF-1.7 " + "機密の件".encode() * 400_000  # several 1 MiB chunks
    digest = store.put_stream(io.BytesIO(data))
    raw = on_disk(tmp_path, digest).read_bytes()
    assert raw.startswith(MAGIC) and b"%PDF" not in raw and "機密".encode() not in raw
    assert store.get(digest) == data and store.size(digest) == len(data)
    empty = store.put(b"")
    assert store.get(empty) == b""


def test_blobs_written_in_clear_by_earlier_versions_are_still_read(tmp_path: Path) -> None:
    digest = LocalBlobStore(tmp_path).put(b"%PDF-1.4 old clear blob")
    assert sealed_store(tmp_path).get(digest) == b"%PDF-1.4 old clear blob"


@pytest.mark.parametrize("damage", ["flip a byte", "drop the last chunk", "swap two chunks", "another key"])
def test_damaged_encrypted_blobs_are_refused(tmp_path: Path, damage: str) -> None:
    store = sealed_store(tmp_path)
    data = bytes(range(256)) * 10_000  # 2.5 MB: three chunks
    digest = store.put(data)
    path = on_disk(tmp_path, digest)
    raw = bytearray(path.read_bytes())
    head = len(MAGIC) + 16
    chunks: list[bytes] = []
    position = head
    while position < len(raw):
        length = int.from_bytes(raw[position:position + 4], "big")
        chunks.append(bytes(raw[position:position + 4 + length]))
        position += 4 + length
    assert len(chunks) == 3
    if damage == "flip a byte":
        raw[-5] ^= 1
        path.write_bytes(bytes(raw))
    elif damage == "drop the last chunk":
        path.write_bytes(bytes(raw[:head]) + chunks[0] + chunks[1])
    elif damage == "swap two chunks":
        path.write_bytes(bytes(raw[:head]) + chunks[1] + chunks[0] + chunks[2])
    else:
        store = LocalBlobStore(tmp_path, SecretBox(bytes(32)))
    with pytest.raises(IntegrityError, match="corrupt"):
        store.get(digest)


def test_an_encrypted_blob_without_the_master_key_is_a_key_store_error(tmp_path: Path) -> None:
    digest = sealed_store(tmp_path).put(b"secret")
    with pytest.raises(KeyStoreError):
        LocalBlobStore(tmp_path).get(digest)


def test_streaming_out_gives_the_same_bytes_chunk_by_chunk(store: BlobStore) -> None:
    data = bytes(range(256)) * 10_000  # 2.5 MB: three chunks
    digest = store.put(data)
    chunks = list(store.stream(digest))
    assert b"".join(chunks) == data
    assert max(len(c) for c in chunks) <= 1024 * 1024
    with pytest.raises(NotFoundError):
        store.stream("0" * 64)


def test_streaming_reads_a_clear_blob_that_starts_like_an_encrypted_one(tmp_path: Path) -> None:
    data = MAGIC + b"not really sealed"
    digest = LocalBlobStore(tmp_path).put(data)
    assert b"".join(sealed_store(tmp_path).stream(digest)) == data


@pytest.mark.parametrize("sealed", [True, False])
def test_streaming_out_a_damaged_blob_fails(tmp_path: Path, sealed: bool) -> None:
    store = sealed_store(tmp_path) if sealed else LocalBlobStore(tmp_path)
    digest = store.put(bytes(range(256)) * 10_000)
    path = on_disk(tmp_path, digest)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match="corrupt"):
        for _ in store.stream(digest):
            pass


def test_a_stream_that_is_never_read_or_read_halfway_leaves_no_file_open(tmp_path: Path) -> None:
    """An upload whose connection fails before (or while) it reads the envelope drops its stream."""
    import gc
    import os
    import warnings

    store = LocalBlobStore(tmp_path / "blobs", SecretBox(b"k" * 32))
    digest = store.put(os.urandom(3 * 1024 * 1024))
    before = len(os.listdir("/proc/self/fd"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        untouched = store.stream(digest)
        assert len(os.listdir("/proc/self/fd")) == before  # nothing is opened until the stream is read
        halfway = store.stream(digest)
        next(halfway)
        del untouched, halfway
        gc.collect()
    assert len(os.listdir("/proc/self/fd")) == before
    with pytest.raises(NotFoundError, match="not found"):
        store.stream("0" * 64)  # a missing blob is still said at once, before any reading
