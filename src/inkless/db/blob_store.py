"""A :class:`~inkless.blobs.BlobStore` in the node's database: chunked ``bytea`` rows, streamed.

The store a node on PostgreSQL uses (``blob_store = "auto"``), so that every process on every
machine sees the same blobs and ``pg_dump`` backs up everything. Each chunk (1 MiB of clear bytes)
is sealed under the node master key with the associated data of a blob file's chunk (file id,
position, last or not), so chunks cannot be reordered, dropped or moved between blobs; reading
verifies every chunk as it comes and the SHA-256 address at the end. Neither writing nor reading
holds more than a chunk or two in memory.

Writing: chunks go in under a temporary key (``upload-…``), then, in the same transaction, are
renamed to the blob's address and its ``blobs`` row is added; a writer that dies leaves nothing
(its transaction rolls back). Writing bytes that are stored already only moves ``stored_at``,
which keeps them from the collector as rewriting a blob file does.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from inkless.blobs import _CHUNK, _FILE_ID, LocalBlobStore, _check_digest, _chunk_context, _lookahead
from inkless.db.engine import Database
from inkless.db.tables_blobs import blob_chunks, blobs
from inkless.errors import IntegrityError, KeyStoreError, NotFoundError
from inkless.streams import ChunkReader

if TYPE_CHECKING:
    from inkless.pki.keystore import SecretBox


def _at(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def _now() -> datetime:
    # Wall-clock time, as a blob file's mtime: the collector compares it with time.time().
    return datetime.now(UTC)


class DatabaseBlobStore:
    """Blobs as rows of ``blobs`` and ``blob_chunks``; sealed under ``box`` when one is given."""

    def __init__(self, db: Database, box: SecretBox | None = None) -> None:
        self._db = db
        self._box = box

    # --- writing ----------------------------------------------------------------------------

    def put(self, data: bytes) -> str:
        view = memoryview(data)
        return self._write(bytes(view[i : i + _CHUNK]) for i in range(0, len(view), _CHUNK))

    def put_stream(self, stream: BinaryIO) -> str:
        return self._write(iter(lambda: stream.read(_CHUNK), b""))

    def _write(self, chunks: Iterator[bytes]) -> str:
        sha = hashlib.sha256()
        temporary = "upload-" + secrets.token_hex(28)
        file_id = os.urandom(_FILE_ID) if self._box is not None else None
        size = 0
        count = 0
        with self._db.begin() as conn:
            for index, (chunk, last) in enumerate(_lookahead(chunks)):
                sha.update(chunk)
                size += len(chunk)
                stored = chunk if file_id is None else self._seal(chunk, file_id, index, last)
                conn.execute(insert(blob_chunks).values(digest=temporary, seq=index, data=stored))
                count = index + 1
            digest = sha.hexdigest()
            row = {"digest": digest, "size": size, "chunks": count, "file_id": file_id, "stored_at": _now()}
            added = conn.execute(self._insert_new(conn).values(**row).returning(blobs.c.digest)).first() is not None
            # Stored already (by us earlier, or by a writer that committed while we wrote): keep that copy,
            # marked as written now; should the collector have removed it in between, ours takes its place.
            if (
                not added
                and conn.execute(
                    update(blobs).where(blobs.c.digest == digest).values(stored_at=row["stored_at"])
                ).rowcount
            ):
                conn.execute(delete(blob_chunks).where(blob_chunks.c.digest == temporary))
            else:
                if not added:
                    conn.execute(insert(blobs).values(**row))
                # No blob of this address existed: chunks under it are leftovers (a row deleted by hand).
                conn.execute(delete(blob_chunks).where(blob_chunks.c.digest == digest))
                conn.execute(update(blob_chunks).where(blob_chunks.c.digest == temporary).values(digest=digest))
        return digest

    def _seal(self, chunk: bytes, file_id: bytes, index: int, last: bool) -> bytes:
        assert self._box is not None
        return self._box.seal(chunk, _chunk_context(file_id, index, last))

    @staticmethod
    def _insert_new(conn: Connection) -> Any:
        """``INSERT … ON CONFLICT DO NOTHING`` into ``blobs``: waits for a concurrent writer of the same digest."""
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        return dialect.insert(blobs).on_conflict_do_nothing(index_elements=["digest"])

    # --- reading ----------------------------------------------------------------------------

    def stream(self, digest: str) -> Iterator[bytes]:
        """The blob's bytes chunk by chunk, each verified; the address is checked after the last one.

        A blob that does not match raises :class:`IntegrityError` at the chunk where it stops matching
        (or, for the address, after the last chunk): a caller that streams to a client must treat that
        as an aborted transfer.
        """
        _check_digest(digest)
        with self._db.read() as conn:
            row = conn.execute(
                select(blobs.c.chunks, blobs.c.file_id, blobs.c.size).where(blobs.c.digest == digest)
            ).first()
        if row is None:
            raise NotFoundError(f"blob {digest} not found")
        return self._chunks(digest, int(row.chunks), row.file_id, int(row.size))

    def _chunks(self, digest: str, count: int, file_id: bytes | None, size: int) -> Iterator[bytes]:
        sha = hashlib.sha256()
        seen = 0
        for index in range(count):
            # One chunk per query: a blob of any size passes through in bounded memory.
            with self._db.read() as conn:
                stored = conn.execute(
                    select(blob_chunks.c.data).where(blob_chunks.c.digest == digest, blob_chunks.c.seq == index)
                ).scalar()
            if stored is None:
                raise IntegrityError(f"blob {digest} is corrupt (chunk {index} of {count} is missing)")
            chunk = self._open(digest, bytes(stored), file_id, index, index == count - 1)
            sha.update(chunk)
            seen += len(chunk)
            yield chunk
        if seen != size or sha.hexdigest() != digest:
            raise IntegrityError(f"blob {digest} is corrupt (its content no longer matches its address)")

    def _open(self, digest: str, stored: bytes, file_id: bytes | None, index: int, last: bool) -> bytes:
        if file_id is None:
            return stored
        if self._box is None:
            raise KeyStoreError(f"blob {digest} is encrypted and this store has no master key")
        try:
            return self._box.open(stored, _chunk_context(file_id, index, last))
        except KeyStoreError:
            raise IntegrityError(
                f"blob {digest} is corrupt (it does not decrypt: tampered, truncated or another node's key)"
            ) from None

    def get(self, digest: str) -> bytes:
        return b"".join(self.stream(digest))

    def exists(self, digest: str) -> bool:
        _check_digest(digest)
        with self._db.read() as conn:
            return conn.execute(select(blobs.c.digest).where(blobs.c.digest == digest)).first() is not None

    def size(self, digest: str) -> int:
        _check_digest(digest)
        with self._db.read() as conn:
            size = conn.execute(select(blobs.c.size).where(blobs.c.digest == digest)).scalar()
        if size is None:
            raise NotFoundError(f"blob {digest} not found")
        return int(size)

    def __iter__(self) -> Iterator[str]:
        with self._db.read() as conn:
            digests = list(conn.execute(select(blobs.c.digest).order_by(blobs.c.digest)).scalars())
        return iter(digests)

    def count(self) -> int:
        """How many blobs are stored."""
        with self._db.read() as conn:
            return int(conn.execute(select(func.count()).select_from(blobs)).scalar_one())

    # --- removing ---------------------------------------------------------------------------

    def delete(self, digest: str) -> None:
        _check_digest(digest)
        with self._db.begin() as conn:
            conn.execute(delete(blobs).where(blobs.c.digest == digest))
            conn.execute(delete(blob_chunks).where(blob_chunks.c.digest == digest))

    def stored_before(self, cutoff: float) -> Iterator[str]:
        with self._db.read() as conn:
            digests = list(conn.execute(select(blobs.c.digest).where(blobs.c.stored_at < _at(cutoff))).scalars())
        return iter(digests)

    def delete_if_stored_before(self, digest: str, cutoff: float) -> bool:
        _check_digest(digest)
        with self._db.begin() as conn:
            # One statement decides: a writer that moved stored_at meanwhile keeps the blob.
            gone = conn.execute(delete(blobs).where(blobs.c.digest == digest, blobs.c.stored_at < _at(cutoff))).rowcount
            if gone:
                conn.execute(delete(blob_chunks).where(blob_chunks.c.digest == digest))
        return bool(gone)


@dataclass(frozen=True)
class BlobMove:
    """What ``inkless blobs migrate --to postgresql`` did."""

    moved: int  # copied into the database, read back and verified
    present: int  # in the database already (an earlier, interrupted run), verified there
    corrupt: tuple[str, ...]  # files that do not match their address: left in place, not copied
    bytes_moved: int
    files_removed: int


def _verify(store: DatabaseBlobStore, digest: str) -> None:
    for _ in store.stream(digest):
        pass


def _intact(store: DatabaseBlobStore, digest: str) -> bool:
    try:
        _verify(store, digest)
    except IntegrityError:
        return False
    return True


def move_blob_folder(
    folder: LocalBlobStore,
    store: DatabaseBlobStore,
    *,
    keep_files: bool = False,
    progress: Callable[[str, str], None] | None = None,
) -> BlobMove:
    """Copy every blob file of ``folder`` into ``store``, checking each hash on both sides.

    Resumable and idempotent: a blob the database holds already is verified there and not copied again.
    A file is removed (unless ``keep_files``) only after its copy has been read back and verified; a file
    that does not match its own address is reported and left where it is.
    """
    moved = present = removed = 0
    size = 0
    corrupt: list[str] = []
    for digest in sorted(folder):
        try:
            if store.exists(digest) and _intact(store, digest):
                present += 1
                outcome = "present"
            else:
                # Not there yet, or a damaged copy (it goes, and the file's bytes take its place).
                store.delete(digest)
                stored = store.put_stream(ChunkReader(folder.stream(digest)).as_binary())
                if stored != digest:  # the stream raises first; this is the belt to its braces
                    raise IntegrityError(f"blob {digest} is corrupt (it hashes to {stored})")
                _verify(store, digest)
                moved += 1
                size += store.size(digest)
                outcome = "moved"
        except IntegrityError:
            corrupt.append(digest)
            if progress:
                progress(digest, "corrupt")
            continue
        if not keep_files:
            folder.delete(digest)
            removed += 1
        if progress:
            progress(digest, outcome)
    return BlobMove(moved, present, tuple(corrupt), size, removed)
