"""Benchmark: concurrent SIP fax calls' media (G.711 over RTP on loopback UDP, real time).

    .venv/bin/python bench/sip_media.py [--calls 1,8,16,30] [--pages 1]

For each N, N calls run at once, each between two FaxMediaSessions (caller and
answerer, spandsp audio terminals, PCMU, 20 ms real-time pacing) over UDP on
127.0.0.1, all sending the same text pages. Printed per N:

* completed calls (T.30 OK at both ends, every page through);
* CPU seconds per call-minute (the whole process's CPU over the calls' wall
  minutes; one call is both of its ends);
* line time per page against the loopback line's (``run_audio_back_to_back``:
  the same two spandsp terminals, the same pages, no network and no pacing),
  as the ratio SIP / loopback (the goal is ≤ 1.15);
* CPU against a bare spandsp audio loop on the same pages (that loopback run's
  CPU per line-minute), as the ratio SIP / bare.
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw

from inkless.fax import imaging
from inkless.fax import spandsp as sd
from inkless.fax.sip.media import FaxMediaSession, MediaPort
from inkless.fax.terminal import AudioTerminal, TerminalOptions, run_audio_back_to_back


def _pages(pages: int) -> bytes:
    """A4 pages (1728 × 2292 at 204×196 dpi) of small text lines, like a typed notice."""
    images = []
    for page in range(pages):
        image = Image.new("1", (imaging.FAX_WIDTH, 2292), 1)
        draw = ImageDraw.Draw(image)
        for row in range(90):
            draw.text((100, 100 + 23 * row), f"{page + 1}-{row + 1:02d}  The quick brown fox jumps over the "
                      f"lazy dog. 0123456789 disaster office notice", fill=0)
        images.append(image)
    return imaging.encode_tiff(images)


def _loopback(tx: Path, rx: Path) -> tuple[float, float]:
    """Line seconds and CPU seconds of the same fax over two terminals back to back."""
    cpu = time.process_time()
    with AudioTerminal(calling=True, options=TerminalOptions(ident="BENCH TX"), tx_file=tx) as caller, \
         AudioTerminal(calling=False, options=TerminalOptions(ident="BENCH RX"), rx_file=rx) as answerer:
        line_s = run_audio_back_to_back(caller, answerer)
        assert caller.outcome is not None and caller.outcome.completion_code == sd.T30_ERR_OK
    return line_s, time.process_time() - cpu


def _port_range() -> tuple[int, int]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        base = probe.getsockname()[1]
    base = min(base - base % 2, 65535 - 400)
    return base, base + 399


def _round(n: int, tx: Path, tmp: Path, pages: int) -> tuple[int, float, float]:
    """Run ``n`` calls at once; returns (completed, mean wall seconds per call, CPU seconds)."""
    ports = _port_range()
    pairs = []
    for i in range(n):
        caller = FaxMediaSession(MediaPort.allocate("127.0.0.1", ports), calling=True,
                                 options=TerminalOptions(ident="BENCH TX"), tx_tiff=tx, rx_tiff=None,
                                 name=f"bench-tx-{i}")
        answerer = FaxMediaSession(MediaPort.allocate("127.0.0.1", ports), calling=False,
                                   options=TerminalOptions(ident="BENCH RX"), tx_tiff=None,
                                   rx_tiff=tmp / f"rx-{n}-{i}.tif", name=f"bench-rx-{i}")
        pairs.append((caller, answerer))
    cpu = time.process_time()
    started = time.monotonic()
    for caller, answerer in pairs:
        caller.start_audio(("127.0.0.1", answerer.port.port), 0, "PCMU")
        answerer.start_audio(("127.0.0.1", caller.port.port), 0, "PCMU")
    walls = []
    completed = 0
    for caller, answerer in pairs:
        sent, received = caller.wait(1800), answerer.wait(1800)
        walls.append(time.monotonic() - started)
        if sent.completion_code == received.completion_code == sd.T30_ERR_OK and sent.pages_tx == pages:
            completed += 1
    return completed, sum(walls) / len(walls), time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", default="1,8,16,30", help="comma-separated numbers of concurrent calls")
    parser.add_argument("--pages", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        tx = tmp / "tx.tif"
        tx.write_bytes(_pages(args.pages))
        line_s, bare_cpu = _loopback(tx, tmp / "loopback-rx.tif")
        bare_per_minute = bare_cpu / (line_s / 60)
        print(f"loopback line (spandsp back to back): {line_s / args.pages:.1f} line s per page, "
              f"{bare_per_minute:.3f} CPU s per line-minute")
        print(f"{'calls':>5} {'completed':>9} {'wall s/call':>11} {'CPU s/call-min':>14} "
              f"{'line ratio':>10} {'CPU ratio':>9}")
        for n in (int(x) for x in args.calls.split(",")):
            completed, wall, cpu = _round(n, tx, tmp, args.pages)
            per_call_minute = cpu / (n * wall / 60)
            print(f"{n:5d} {completed:6d}/{n:<2d} {wall:11.1f} {per_call_minute:14.3f} "
                  f"{wall / line_s:10.2f} {per_call_minute / bare_per_minute:9.1f}")


if __name__ == "__main__":
    main()
