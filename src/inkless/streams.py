"""Small adapters between chunk iterators and file objects, for data too large to hold in memory."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, cast


class ChunkReader(io.RawIOBase):
    """A read()-able view of a chunk iterator: blobs, decrypted envelopes and signed content pass through it."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""
        self._offset = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            rest = self._pending[self._offset:] + b"".join(self._chunks)
            self._pending, self._offset = b"", 0
            return rest
        while self._offset >= len(self._pending):
            chunk = next(self._chunks, None)
            if chunk is None:
                return b""
            self._pending, self._offset = chunk, 0
        out = self._pending[self._offset:self._offset + size]
        self._offset += len(out)
        return out

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def as_binary(self) -> BinaryIO:
        """This reader typed as the binary file object it behaves as."""
        return cast(BinaryIO, self)


@dataclass(frozen=True)
class StoredBody:
    """Bytes too large to hold, read afresh in chunks whenever needed (a stored envelope on its way to a peer),
    with their size and SHA-256 known ahead."""

    size: int
    sha256: str  # hex
    chunks: Callable[[], Iterator[bytes]]

    def read_all(self) -> bytes:
        """All of it in memory (small bodies, tests)."""
        return b"".join(self.chunks())
