"""Blob storage, content-addressed by SHA-256.

Blobs are immutable: the address of a blob is the hex SHA-256 of its bytes, so
writing the same bytes twice stores them once, and reading verifies them.

At rest, a node's blobs are encrypted under its master key (AES-256-GCM, in 1 MiB
chunks so that large uploads are never held in memory): route PDFs, received and
sent faxes, reports and envelopes alike. The file format is ``MAGIC || file id (16
bytes) || chunks``, each chunk ``length (4 bytes) || nonce || ciphertext+tag``; the
associated data binds each chunk to the file, its position and whether it is the
last, so chunks cannot be reordered, dropped or moved between files. Blobs written
in clear by earlier versions are still read (and verified by their address).
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from inkless.errors import IntegrityError, KeyStoreError, NotFoundError, StorageError, ValidationError

if TYPE_CHECKING:
    from inkless.pki.keystore import SecretBox

_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1024 * 1024
MAGIC = b"inkless-blob-v1\n"
_FILE_ID = 16
_LENGTH = struct.Struct(">I")


def _check_digest(digest: str) -> str:
    if not _DIGEST_RE.match(digest):
        raise ValidationError(f"not a SHA-256 blob address: {digest!r}")
    return digest


class BlobStore(Protocol):
    """Where documents, envelopes and images live."""

    def put(self, data: bytes) -> str:
        """Store ``data``; returns its SHA-256 hex digest."""

    def put_stream(self, stream: BinaryIO) -> str:
        """Store everything read from ``stream`` without holding it in memory."""

    def get(self, digest: str) -> bytes:
        """The bytes stored under ``digest`` (verified)."""

    def stream(self, digest: str) -> Iterator[bytes]:
        """The bytes stored under ``digest`` in chunks, without holding them all; verified as they come,
        the address after the last chunk (:class:`IntegrityError` then)."""
        ...

    def exists(self, digest: str) -> bool: ...

    def delete(self, digest: str) -> None:
        """Remove the blob (retention); no error if it is already gone."""

    def size(self, digest: str) -> int: ...

    def __iter__(self) -> Iterator[str]: ...

    def stored_before(self, cutoff: float) -> Iterator[str]:
        """Blobs last written before ``cutoff`` (a ``time.time()`` value): candidates for collection."""
        ...

    def delete_if_stored_before(self, digest: str, cutoff: float) -> bool:
        """Delete the blob unless it was (re)written since ``cutoff``; True if it was deleted."""
        ...


def _chunk_context(file_id: bytes, index: int, last: bool) -> str:
    return f"inkless/blob/{file_id.hex()}/{index}/{'last' if last else 'more'}"


def _lookahead(chunks: Iterator[bytes]) -> Iterator[tuple[bytes, bool]]:
    """Each chunk with "is it the last one?"; an empty input is one empty last chunk."""
    previous = next(chunks, b"")
    for chunk in chunks:
        if not chunk:
            continue
        yield previous, False
        previous = chunk
    yield previous, True


class LocalBlobStore:
    """Blobs as files in a folder: ``ab/cd/abcd…``, written atomically (temp file, fsync, rename).

    With a ``box`` (the node's master key) every blob is written encrypted; without one, in clear
    (unit tests, tools that only read clear blobs).
    """

    def __init__(self, root: Path, box: SecretBox | None = None) -> None:
        self.root = root
        self._box = box
        self._tmp = root / "tmp"
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create blob folder {root}: {exc.strerror}") from None

    def _path(self, digest: str) -> Path:
        _check_digest(digest)
        return self.root / digest[:2] / digest[2:4] / digest

    def put(self, data: bytes) -> str:
        view = memoryview(data)
        return self._write(bytes(view[i:i + _CHUNK]) for i in range(0, len(view), _CHUNK))

    def put_stream(self, stream: BinaryIO) -> str:
        return self._write(iter(lambda: stream.read(_CHUNK), b""))

    def _write(self, chunks: Iterator[bytes]) -> str:
        sha = hashlib.sha256()
        try:
            fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="blob-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    if self._box is None:
                        for chunk in chunks:
                            sha.update(chunk)
                            fh.write(chunk)
                    else:
                        self._write_sealed(fh, chunks, sha, self._box)
                    fh.flush()
                    os.fsync(fh.fileno())
                digest = sha.hexdigest()
                final = self._path(digest)
                final.parent.mkdir(parents=True, exist_ok=True)
                # Same content, same name: replacing an existing blob is harmless.
                os.replace(tmp_name, final)
                _fsync_dir(final.parent)
                return digest
            except BaseException:
                Path(tmp_name).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StorageError(f"cannot write blob: {exc.strerror}") from None

    @staticmethod
    def _write_sealed(fh: BinaryIO, chunks: Iterator[bytes], sha: hashlib._Hash, box: SecretBox) -> None:
        file_id = os.urandom(_FILE_ID)
        fh.write(MAGIC + file_id)
        for index, (chunk, last) in enumerate(_lookahead(chunks)):
            sha.update(chunk)
            sealed = box.seal(chunk, _chunk_context(file_id, index, last))
            fh.write(_LENGTH.pack(len(sealed)) + sealed)

    def get(self, digest: str) -> bytes:
        try:
            raw = self._path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"blob {digest} not found") from None
        data = raw
        if raw.startswith(MAGIC) and hashlib.sha256(raw).hexdigest() != digest:
            data = self._open_sealed(digest, raw)
        if hashlib.sha256(data).hexdigest() != digest:
            raise IntegrityError(f"blob {digest} is corrupt (its content no longer matches its address)")
        return data

    def _open_sealed(self, digest: str, raw: bytes) -> bytes:
        if self._box is None:
            raise KeyStoreError(f"blob {digest} is encrypted and this store has no master key")
        file_id = raw[len(MAGIC):len(MAGIC) + _FILE_ID]
        position = len(MAGIC) + _FILE_ID
        parts: list[bytes] = []
        index = 0
        while True:
            if position + _LENGTH.size > len(raw):
                raise IntegrityError(f"blob {digest} is corrupt (truncated)")
            (length,) = _LENGTH.unpack_from(raw, position)
            position += _LENGTH.size
            sealed = raw[position:position + length]
            position += length
            last = position >= len(raw)
            try:
                parts.append(self._box.open(sealed, _chunk_context(file_id, index, last)))
            except KeyStoreError:
                raise IntegrityError(
                    f"blob {digest} is corrupt (it does not decrypt: tampered, truncated or another node's key)"
                ) from None
            if last:
                return b"".join(parts)
            index += 1

    def stream(self, digest: str) -> Iterator[bytes]:
        path = self._path(digest)
        if not path.is_file():
            raise NotFoundError(f"blob {digest} not found")
        # The file is opened by the generator's first step, so a stream that is never read (an upload
        # whose connection failed first) leaves no open file behind.
        return self._stream(digest, path)

    def _stream(self, digest: str, path: Path) -> Iterator[bytes]:
        sha = hashlib.sha256()
        try:
            fh = path.open("rb")
        except FileNotFoundError:
            raise NotFoundError(f"blob {digest} not found") from None
        with fh:
            total = os.fstat(fh.fileno()).st_size
            head = fh.read(len(MAGIC) + _FILE_ID)
            chunks: Iterator[bytes]
            if head.startswith(MAGIC) and not _file_matches(fh, digest):
                chunks = self._sealed_chunks(digest, fh, head[len(MAGIC):], total)
            else:
                # In clear (written before encryption, or by a store without a key).
                fh.seek(0)
                chunks = iter(lambda: fh.read(_CHUNK), b"")
            for chunk in chunks:
                sha.update(chunk)
                yield chunk
        if sha.hexdigest() != digest:
            raise IntegrityError(f"blob {digest} is corrupt (its content no longer matches its address)")

    def _sealed_chunks(self, digest: str, fh: BinaryIO, file_id: bytes, total: int) -> Iterator[bytes]:
        if self._box is None:
            raise KeyStoreError(f"blob {digest} is encrypted and this store has no master key")
        index = 0
        while True:
            prefix = fh.read(_LENGTH.size)
            if len(prefix) < _LENGTH.size:
                raise IntegrityError(f"blob {digest} is corrupt (truncated)")
            (length,) = _LENGTH.unpack(prefix)
            sealed = fh.read(length)
            last = fh.tell() >= total
            try:
                yield self._box.open(sealed, _chunk_context(file_id, index, last))
            except KeyStoreError:
                raise IntegrityError(
                    f"blob {digest} is corrupt (it does not decrypt: tampered, truncated or another node's key)"
                ) from None
            if last:
                return
            index += 1

    def exists(self, digest: str) -> bool:
        return self._path(digest).exists()

    def size(self, digest: str) -> int:
        return len(self.get(digest))

    def delete(self, digest: str) -> None:
        self._path(digest).unlink(missing_ok=True)

    def __iter__(self) -> Iterator[str]:
        for path in self.root.glob("??/??/*"):
            if _DIGEST_RE.match(path.name):
                yield path.name

    def stored_before(self, cutoff: float) -> Iterator[str]:
        for path in self.root.glob("??/??/*"):
            try:
                if _DIGEST_RE.match(path.name) and path.stat().st_mtime < cutoff:
                    yield path.name
            except FileNotFoundError:  # removed meanwhile
                continue

    def delete_if_stored_before(self, digest: str, cutoff: float) -> bool:
        path = self._path(digest)
        try:
            # Writing the same bytes again replaces the file (new mtime): such a blob is in use again.
            if path.stat().st_mtime >= cutoff:
                return False
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def remove_stale_temporary_files(self, cutoff: float) -> int:
        """Remove half-written temporary files of writers that crashed before ``cutoff``; returns how many."""
        removed = 0
        for path in self._tmp.glob("blob-*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


class MemoryBlobStore:
    """A blob store in a dict, for unit tests."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}
        self._written: dict[str, float] = {}

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self._blobs[digest] = bytes(data)
        self._written[digest] = time.time()
        return digest

    def put_stream(self, stream: BinaryIO) -> str:
        return self.put(stream.read())

    def get(self, digest: str) -> bytes:
        try:
            return self._blobs[_check_digest(digest)]
        except KeyError:
            raise NotFoundError(f"blob {digest} not found") from None

    def stream(self, digest: str) -> Iterator[bytes]:
        data = self.get(digest)
        return iter([data[i:i + _CHUNK] for i in range(0, len(data), _CHUNK)] or [b""])

    def exists(self, digest: str) -> bool:
        return _check_digest(digest) in self._blobs

    def size(self, digest: str) -> int:
        return len(self.get(digest))

    def delete(self, digest: str) -> None:
        self._blobs.pop(_check_digest(digest), None)
        self._written.pop(digest, None)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._blobs))

    def stored_before(self, cutoff: float) -> Iterator[str]:
        return iter([d for d in self._blobs if self._written.get(d, 0.0) < cutoff])

    def delete_if_stored_before(self, digest: str, cutoff: float) -> bool:
        if digest not in self._blobs or self._written.get(digest, 0.0) >= cutoff:
            return False
        self.delete(digest)
        return True


def _file_matches(fh: BinaryIO, digest: str) -> bool:
    """Whether the whole file, as it is, hashes to ``digest`` (a clear blob); leaves ``fh`` where it was."""
    position = fh.tell()
    fh.seek(0)
    sha = hashlib.sha256()
    for chunk in iter(lambda: fh.read(_CHUNK), b""):
        sha.update(chunk)
    fh.seek(position)
    return sha.hexdigest() == digest


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
