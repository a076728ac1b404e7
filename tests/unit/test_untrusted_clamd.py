"""The virus-scan hook speaks clamd's INSTREAM protocol (tested against a fake clamd on a Unix socket)."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from inkless.errors import UntrustedFileError
from inkless.untrusted.clamd import CHUNK, ClamdScanner, parse_reply, scanner_for
from inkless.untrusted.files import FileLimits, check_file
from tests.helpers.seals import sample_pdf

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


class FakeClamd:
    """Accepts INSTREAM on a Unix socket like clamd: reassembles the chunks, answers OK or FOUND."""

    def __init__(self, path: Path, *, silent: bool = False) -> None:
        self.path = path
        self.silent = silent
        self.received: list[bytes] = []
        self.commands: list[bytes] = []
        self.chunk_sizes: list[int] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _read(self, conn: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            part = conn.recv(n - len(data))
            if not part:
                raise ConnectionError("closed")
            data += part
        return data

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                command = b""
                while not command.endswith(b"\0"):
                    command += self._read(conn, 1)
                self.commands.append(command)
                body = b""
                while True:
                    (size,) = struct.unpack(">I", self._read(conn, 4))
                    if size == 0:
                        break
                    self.chunk_sizes.append(size)
                    body += self._read(conn, size)
                self.received.append(body)
                if self.silent:
                    continue
                verdict = b"Win.Test.EICAR_HDB-1 FOUND" if EICAR in body else b"OK"
                conn.sendall(b"stream: " + verdict + b"\0")

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def clamd(tmp_path: Path) -> Iterator[FakeClamd]:
    fake = FakeClamd(tmp_path / "clamd.ctl")
    yield fake
    fake.close()


def test_a_clean_file_is_streamed_in_length_prefixed_chunks_and_accepted(clamd: FakeClamd) -> None:
    pdf = sample_pdf(40) + b"\n%" + b"x" * (2 * CHUNK)  # several chunks
    checked = check_file("a.pdf", pdf, FileLimits(max_bytes=len(pdf)), ClamdScanner(str(clamd.path), timeout=5))
    assert checked.kind == "pdf"
    assert clamd.commands == [b"zINSTREAM\0"]
    assert clamd.received == [pdf]
    assert len(clamd.chunk_sizes) >= 3 and max(clamd.chunk_sizes) <= CHUNK


def test_a_finding_refuses_the_file_with_its_name(clamd: FakeClamd) -> None:
    infected = sample_pdf() + b"\n%" + EICAR + b"\n"
    with pytest.raises(UntrustedFileError) as refused:
        check_file("invoice.pdf", infected, FileLimits(), ClamdScanner(str(clamd.path), timeout=5))
    assert refused.value.reason == "virus" and refused.value.file_name == "invoice.pdf"
    assert "Win.Test.EICAR_HDB-1" in str(refused.value)


def test_a_scanner_that_does_not_answer_refuses_the_file(tmp_path: Path) -> None:
    silent = FakeClamd(tmp_path / "silent.ctl", silent=True)
    try:
        with pytest.raises(UntrustedFileError) as refused:
            check_file("a.pdf", sample_pdf(), FileLimits(), ClamdScanner(str(silent.path), timeout=0.5))
        assert refused.value.reason == "scan_failed"
    finally:
        silent.close()
    with pytest.raises(UntrustedFileError) as missing:
        ClamdScanner(str(tmp_path / "no-such.ctl"), timeout=1).scan(b"data")
    assert missing.value.reason == "scan_failed"


def test_replies_and_the_setting() -> None:
    assert parse_reply(b"stream: OK\0").clean
    assert parse_reply(b"stream: Eicar-Signature FOUND\0").finding == "Eicar-Signature"
    with pytest.raises(UntrustedFileError):
        parse_reply(b"INSTREAM size limit exceeded. ERROR\0")
    assert scanner_for("") is None and scanner_for("  ") is None
    scanner = scanner_for("/run/clamav/clamd.ctl")
    assert scanner is not None and scanner.address == "/run/clamav/clamd.ctl"
