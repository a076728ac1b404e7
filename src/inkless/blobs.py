"""Blob storage, content-addressed by SHA-256.

Blobs are immutable: the address of a blob is the hex SHA-256 of its bytes, so
writing the same bytes twice stores them once, and reading verifies them.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from inkless.errors import IntegrityError, NotFoundError, StorageError, ValidationError

_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1024 * 1024


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

    def exists(self, digest: str) -> bool: ...

    def delete(self, digest: str) -> None:
        """Remove the blob (retention); no error if it is already gone."""

    def size(self, digest: str) -> int: ...

    def __iter__(self) -> Iterator[str]: ...


class LocalBlobStore:
    """Blobs as files in a folder: ``ab/cd/abcd…``, written atomically (temp file, fsync, rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create blob folder {root}: {exc.strerror}") from None

    def _path(self, digest: str) -> Path:
        _check_digest(digest)
        return self.root / digest[:2] / digest[2:4] / digest

    def put(self, data: bytes) -> str:
        return self._write(iter([data]))

    def put_stream(self, stream: BinaryIO) -> str:
        return self._write(iter(lambda: stream.read(_CHUNK), b""))

    def _write(self, chunks: Iterator[bytes]) -> str:
        sha = hashlib.sha256()
        try:
            fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix="blob-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    for chunk in chunks:
                        sha.update(chunk)
                        fh.write(chunk)
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

    def get(self, digest: str) -> bytes:
        try:
            data = self._path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"blob {digest} not found") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise IntegrityError(f"blob {digest} is corrupt (its content no longer matches its address)")
        return data

    def exists(self, digest: str) -> bool:
        return self._path(digest).exists()

    def size(self, digest: str) -> int:
        try:
            return self._path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFoundError(f"blob {digest} not found") from None

    def delete(self, digest: str) -> None:
        self._path(digest).unlink(missing_ok=True)

    def __iter__(self) -> Iterator[str]:
        for path in self.root.glob("??/??/*"):
            if _DIGEST_RE.match(path.name):
                yield path.name


class MemoryBlobStore:
    """A blob store in a dict, for unit tests."""

    def __init__(self) -> None:
        self._blobs: dict[str, bytes] = {}

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        self._blobs[digest] = bytes(data)
        return digest

    def put_stream(self, stream: BinaryIO) -> str:
        return self.put(stream.read())

    def get(self, digest: str) -> bytes:
        try:
            return self._blobs[_check_digest(digest)]
        except KeyError:
            raise NotFoundError(f"blob {digest} not found") from None

    def exists(self, digest: str) -> bool:
        return _check_digest(digest) in self._blobs

    def size(self, digest: str) -> int:
        return len(self.get(digest))

    def delete(self, digest: str) -> None:
        self._blobs.pop(_check_digest(digest), None)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._blobs))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
