"""Faxes over T.38: two spandsp T.38 terminals joined by an in-memory UDPTL path that loses and reorders."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from inkless.fax import imaging
from inkless.fax.model import CallSetup
from inkless.fax.terminal import PacketPath, T38Terminal, TerminalOptions, call_result, run_t38_back_to_back
from tests.helpers.faxdocs import three_page_pdf


def test_three_pages_over_t38_with_lost_and_reordered_packets(tmp_path: Path) -> None:
    tiff = imaging.pdf_to_tiff(three_page_pdf())
    tx_file = tmp_path / "tx.tif"
    tx_file.write_bytes(tiff)
    rx_file = tmp_path / "rx.tif"
    # Deterministic impairments on both directions: single losses, a burst, and late datagrams.
    forward = PacketPath(lose=lambda n: n in {25, 26, 27, 150, 400, 401, 900, 1500},
                         hold=lambda n: n % 61 == 7)
    backward = PacketPath(lose=lambda n: n in {12, 40, 41}, hold=lambda n: n % 23 == 5)
    started = datetime.now(UTC)
    with T38Terminal(calling=True, options=TerminalOptions(ident="+81 3 1111 2222"), send=forward.send,
                     tx_file=tx_file) as caller, \
         T38Terminal(calling=False, options=TerminalOptions(ident="+81 3 3333 4444"), send=backward.send,
                     rx_file=rx_file) as answerer:
        line_s = run_t38_back_to_back(caller, answerer, forward, backward)
        assert caller.outcome is not None and answerer.outcome is not None
        sent = call_result(caller.outcome, sending=True, line_seconds=line_s, started_at=started,
                           local_ident="+81 3 1111 2222", setup=CallSetup(called_number="0333334444"))
        received_outcome = answerer.outcome
    assert forward.lost >= 5 and forward.reordered > 0 and backward.lost >= 2 and backward.reordered > 0
    assert sent.success and sent.pages_transferred == sent.pages_expected == 3
    assert sent.remote_ident == "+81 3 3333 4444"
    assert received_outcome.completion_code == 0 and received_outcome.pages_rx == 3
    assert received_outcome.remote_ident == "+81 3 1111 2222" and received_outcome.ecm
    for got, want in zip(imaging.tiff_images(rx_file.read_bytes()), imaging.tiff_images(tiff), strict=True):
        assert imaging.pixel_difference(got, want) < 0.001
