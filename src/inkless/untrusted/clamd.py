"""The optional virus-scan hook: ClamAV's ``clamd`` over its socket, INSTREAM protocol.

``clamd_socket`` names a Unix socket (``/run/clamav/clamd.ctl`` on Debian's ``clamav-daemon``) or
``tcp:HOST:PORT``; empty means no scanning. The protocol (clamd(8)): send ``zINSTREAM\\0``, then the
file in chunks, each prefixed by its length as a 4-byte big-endian number, then a zero-length
chunk; clamd answers ``stream: OK``, ``stream: NAME FOUND`` or ``... ERROR``, ending in ``\\0``.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Protocol

from inkless.errors import UntrustedFileError

CHUNK = 64 * 1024
MAX_REPLY = 4096


@dataclass(frozen=True)
class ScanVerdict:
    """What the scanner said about one file: clean, or the name of what it found."""

    clean: bool
    finding: str | None = None


class VirusScanner(Protocol):
    """Something that scans bytes for malware."""

    def scan(self, data: bytes) -> ScanVerdict: ...


class ClamdScanner:
    """A clamd client: one connection per file, INSTREAM."""

    def __init__(self, address: str, timeout: float = 30.0) -> None:
        self.address = address
        self.timeout = timeout

    def _connect(self) -> socket.socket:
        if self.address.startswith("tcp:"):
            host, _, port = self.address[4:].rpartition(":")
            return socket.create_connection((host, int(port)), timeout=self.timeout)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.address)
        except OSError:
            sock.close()
            raise
        return sock

    def scan(self, data: bytes) -> ScanVerdict:
        """Stream ``data`` to clamd; UntrustedFileError(reason ``scan_failed``) if clamd cannot answer."""
        try:
            with self._connect() as sock:
                sock.sendall(b"zINSTREAM\0")
                for start in range(0, len(data), CHUNK):
                    chunk = data[start:start + CHUNK]
                    sock.sendall(struct.pack(">I", len(chunk)) + chunk)
                sock.sendall(struct.pack(">I", 0))
                reply = b""
                while not reply.endswith(b"\0") and len(reply) < MAX_REPLY:
                    part = sock.recv(MAX_REPLY)
                    if not part:
                        break
                    reply += part
        except (OSError, ValueError) as exc:
            # Fail closed: a file that could not be scanned is not accepted while scanning is configured.
            raise UntrustedFileError(f"the virus scanner did not answer: {exc}", "scan_failed") from None
        return parse_reply(reply)


def parse_reply(reply: bytes) -> ScanVerdict:
    """The verdict of one clamd INSTREAM reply (``stream: OK\\0`` / ``stream: X FOUND\\0``)."""
    text = reply.rstrip(b"\0").decode("utf-8", "replace").strip()
    _, _, verdict = text.partition(": ")
    if verdict == "OK":
        return ScanVerdict(clean=True)
    if verdict.endswith(" FOUND"):
        return ScanVerdict(clean=False, finding=verdict[: -len(" FOUND")].strip()[:200])
    raise UntrustedFileError(f"the virus scanner answered {text[:200]!r}", "scan_failed")


def scanner_for(address: str) -> ClamdScanner | None:
    """The scanner of the ``clamd_socket`` setting, or None when scanning is not configured."""
    return ClamdScanner(address) if address.strip() else None
