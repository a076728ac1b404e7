"""Faxes through the real modem path: spandsp audio terminals on both ends of the loopback line."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from inkless.errors import FaxError
from inkless.fax import imaging
from inkless.fax.loopback import LoopbackLine
from inkless.fax.model import CallResult
from inkless.fax.simulate import AnsweringRemote, send_document
from inkless.fax.spandsp import T30_SUPPORT_T4_1D_COMPRESSION
from tests.helpers.faxdocs import three_page_pdf

# Fraction of pixels allowed to differ between the sent and received pages.
MAX_PIXEL_DIFFERENCE = 0.001
INKLESS = str(Path(sys.executable).with_name("inkless"))


class Inbox:
    """Collects what the line hands to its IncomingCallHandler."""

    def __init__(self) -> None:
        self.results: list[CallResult] = []
        self._cond = threading.Condition()

    def __call__(self, result: CallResult) -> None:
        with self._cond:
            self.results.append(result)
            self._cond.notify_all()

    def wait(self, count: int, timeout: float = 120.0) -> list[CallResult]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.results) >= count, timeout=timeout)
            return list(self.results)


@pytest.fixture(scope="module")
def pdf() -> bytes:
    return three_page_pdf()


@pytest.fixture(scope="module")
def sent_pages(pdf: bytes) -> list[object]:
    return list(imaging.tiff_images(imaging.pdf_to_tiff(pdf)))


@pytest.fixture
def line(tmp_path: Path) -> Iterator[tuple[LoopbackLine, Inbox]]:
    inbox = Inbox()
    # Deeper than sockaddr_un's 107 bytes allow: the line must still bind and connect.
    sockets = tmp_path / ("sockets-" + "x" * 100)
    sockets.mkdir()
    node_line = LoopbackLine(sockets / "node.sock", sockets / "remote.sock")
    node_line.listen(inbox)
    yield node_line, inbox
    node_line.close()


def _same_pages(received: bytes | None, sent: list[object]) -> None:
    assert received is not None
    pages = imaging.tiff_images(received)
    assert len(pages) == len(sent)
    for got, want in zip(pages, sent, strict=True):
        assert imaging.pixel_difference(got, want) < MAX_PIXEL_DIFFERENCE  # type: ignore[arg-type]


def test_a_three_page_pdf_arrives_with_the_call_facts(
    line: tuple[LoopbackLine, Inbox], pdf: bytes, sent_pages: list[object], tmp_path: Path
) -> None:
    node_line, inbox = line
    sent = send_document(
        node_line.socket_path, "0312345678", pdf, from_number="0298765432", tsi="+81 29 876 5432",
        sub_address="1234",
    )
    assert sent.success and sent.t30_code == 0 and sent.t30_text == "OK"
    assert (sent.pages_transferred, sent.pages_expected) == (3, 3)
    assert sent.remote_ident == "0312345678"  # the node answers with the called number as CSI
    (received,) = inbox.wait(1)
    assert received.success and received.t30_code == 0
    assert received.pages_transferred == 3
    assert received.remote_ident == "+81 29 876 5432"
    assert (received.calling_number, received.called_number, received.sub_address) == (
        "0298765432", "0312345678", "1234"
    )
    assert received.ecm and received.bit_rate == 14400 and received.compression == "T.6 MMR"
    assert received.bad_rows == 0 and received.duration_s > 20  # seconds of line time, not of CPU
    _same_pages(received.received_tiff, sent_pages)
    _pdf_embeds_the_received_strips(received.received_tiff, tmp_path)


def _strip(data: bytes, page: int) -> bytes:
    order, offsets = imaging._ifd_offsets(data)
    ifd = offsets[page]
    values: dict[int, int] = {}
    for k in range(struct.unpack(order + "H", data[ifd : ifd + 2])[0]):
        tag, kind, _n = struct.unpack(order + "HHI", data[ifd + 2 + 12 * k : ifd + 10 + 12 * k])
        raw = data[ifd + 10 + 12 * k : ifd + 14 + 12 * k]
        values[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), raw[: 2 if kind == 3 else 4])[0]
    strip = data[values[273] : values[273] + values[279]]
    if values.get(266) == 2:  # FillOrder LSB-to-MSB (spandsp writes that): PDF's CCITTFax is MSB-first
        strip = strip.translate(bytes(int(f"{b:08b}"[::-1], 2) for b in range(256)))
    return strip


def _pdf_embeds_the_received_strips(tiff: bytes | None, tmp_path: Path) -> None:
    # The inbox PDF carries the CCITT data as it came down the line (bit order aside): no re-encoding.
    assert tiff is not None
    pdf = tmp_path / "received.pdf"
    pdf.write_bytes(imaging.tiff_to_pdf(tiff))
    subprocess.run(["pdfimages", "-ccitt", str(pdf), str(tmp_path / "img")], check=True, timeout=60)
    for page in range(3):
        assert (tmp_path / f"img-{page:03d}.ccitt").read_bytes() == _strip(tiff, page)


def test_a_remote_that_hangs_up_mid_page_is_a_failure_with_the_t30_reason(
    line: tuple[LoopbackLine, Inbox], pdf: bytes
) -> None:
    node_line, inbox = line
    sent = send_document(node_line.socket_path, "0312345678", pdf, from_number="0298765432", hangup_after_page=1)
    assert not sent.success and sent.pages_transferred == 1
    (received,) = inbox.wait(1)
    assert not received.success
    assert received.t30_code != 0 and received.t30_text and received.t30_text != "OK"
    assert received.pages_transferred == 1
    assert received.received_tiff is not None and len(imaging.read_tiff(received.received_tiff)) == 1


def test_outbound_busy_twice_then_accepted_with_the_header_line(
    line: tuple[LoopbackLine, Inbox], pdf: bytes, sent_pages: list[object], tmp_path: Path
) -> None:
    node_line, _ = line
    tiff = imaging.pdf_to_tiff(pdf)
    with AnsweringRemote(node_line.remote_path, tmp_path / "remote", busy=2) as remote:
        outcomes: list[str] = []
        for _ in range(3):
            try:
                result = node_line.dial(
                    "0399999999", tiff, ident="+81 3 1234 5678", header="法務省 民事局 03-1234-5678"
                )
            except FaxError as exc:
                outcomes.append(str(exc))
                continue
            outcomes.append("sent" if result.success else result.t30_text)
        assert outcomes == ["busy", "busy", "sent"]
        assert result.pages_transferred == result.pages_expected == 3 and result.remote_ident == "REMOTE"
        (got,) = remote.wait_for_results(1, 60)
    assert got.success and got.remote_ident == "+81 3 1234 5678" and got.called_number == "0399999999"
    received = imaging.tiff_images((tmp_path / "remote" / "call-002.tif").read_bytes())
    facts = json.loads((tmp_path / "remote" / "call-000.json").read_text())
    assert facts["answer"] == "busy"
    for got_page, sent_page in zip(received, sent_pages, strict=True):
        band = got_page.crop((0, 0, got_page.width, 35))
        assert band.histogram()[0] > 500  # the header line was stamped
        body = (0, 40, got_page.width, got_page.height)
        assert imaging.pixel_difference(got_page.crop(body), sent_page.crop(body)) < MAX_PIXEL_DIFFERENCE  # type: ignore[attr-defined]


def test_outbound_falls_back_to_what_an_old_machine_offers(
    line: tuple[LoopbackLine, Inbox], pdf: bytes, sent_pages: list[object], tmp_path: Path
) -> None:
    node_line, _ = line
    old = AnsweringRemote(node_line.remote_path, tmp_path / "remote", ecm=False,
                          compressions=T30_SUPPORT_T4_1D_COMPRESSION)
    with old:
        result = node_line.dial("0399999999", imaging.pdf_to_tiff(pdf), ident="0312345678", header=None)
        (got,) = old.wait_for_results(1, 60)
    assert result.success and not result.ecm and result.compression == "T.4 1D MH"
    assert got.success and got.pages_transferred == 3
    _same_pages(got.received_tiff, sent_pages)


def test_outbound_to_a_remote_that_drops_mid_page_and_to_nobody(
    line: tuple[LoopbackLine, Inbox], pdf: bytes, tmp_path: Path
) -> None:
    node_line, _ = line
    tiff = imaging.pdf_to_tiff(pdf)
    with AnsweringRemote(node_line.remote_path, tmp_path / "remote", hangup_after_page=1):
        result = node_line.dial("0399999999", tiff, ident="0312345678", header=None)
    assert not result.success
    assert result.pages_transferred == 1 and result.pages_expected == 3
    assert result.t30_code != 0 and result.t30_text != "OK"
    with pytest.raises(FaxError, match="no answer"):
        node_line.dial("0399999999", tiff, ident="0312345678", header=None)


def test_simultaneous_calls_each_arrive(line: tuple[LoopbackLine, Inbox], pdf: bytes) -> None:
    node_line, inbox = line
    results: list[CallResult] = []
    callers = [
        threading.Thread(target=lambda n=n: results.append(
            send_document(node_line.socket_path, "0312345678", pdf, from_number=f"029876000{n}")))
        for n in range(4)
    ]
    for t in callers:
        t.start()
    for t in callers:
        t.join(120)
    assert len(results) == 4 and all(r.success for r in results)
    received = inbox.wait(4)
    assert sorted(r.calling_number or "" for r in received) == [f"029876000{n}" for n in range(4)]
    assert all(r.success and r.pages_transferred == 3 for r in received)


def _inkless(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INKLESS_")}
    return subprocess.run(
        [INKLESS, *args], capture_output=True, text=True, timeout=180, env=env
    )


def test_inkless_fax_simulate_as_a_separate_process(
    line: tuple[LoopbackLine, Inbox], pdf: bytes, tmp_path: Path
) -> None:
    node_line, inbox = line
    document = tmp_path / "notice.pdf"
    document.write_bytes(pdf)
    done = _inkless("fax", "simulate", "--to", "0312345678", str(document), "--from-number", "0298765432",
                    "--tsi", "CITY HALL", "--socket", str(node_line.socket_path), "--json")
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert facts["success"] and facts["pages_transferred"] == 3
    (received,) = inbox.wait(1)
    assert received.success and received.remote_ident == "CITY HALL"

    # The remote answering the node's calls, as its own process: busy once, then it takes the fax.
    answering = subprocess.Popen(
        [INKLESS, "fax", "simulate", "--answer", "--busy", "1",
         "--out", str(tmp_path / "out"), "--socket", str(node_line.remote_path), "--calls", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("INKLESS_")},
    )
    try:
        tiff = imaging.pdf_to_tiff(pdf)
        attempts = 0
        while True:
            attempts += 1
            try:
                result = node_line.dial("0399999999", tiff, ident="0312345678", header="Test 03-1234-5678")
                break
            except FaxError as exc:
                assert str(exc) in ("busy", "no answer") and attempts < 200  # no answer: still starting up
                threading.Event().wait(0.1)
        assert result.success and result.pages_transferred == 3
        assert answering.wait(60) == 0
    finally:
        if answering.poll() is None:
            answering.kill()
            answering.wait()
        answering.stdout.close()  # type: ignore[union-attr]
        answering.stderr.close()  # type: ignore[union-attr]
    assert (tmp_path / "out" / "call-000.json").exists() and (tmp_path / "out" / "call-001.tif").exists()
