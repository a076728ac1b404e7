"""Benchmark: N concurrent SIP fax calls between two SIP lines through a real Kamailio (G.711, real time).

    .venv/bin/python bench/sip_fax.py [--calls 1,8,16,30] [--pages 1]

Two ``SipLine``s (the sender and the receiver, each registered at a private Kamailio on a free
loopback port, ``fax_max_calls`` = 30) run N calls at once: N sender threads each ``dial`` the
receiver's number through Kamailio (digest auth, record-route) and send the same text pages in
G.711 PCMU with 20 ms real-time pacing. Printed per N:

* completed calls (T.30 OK at both ends, every page through);
* CPU seconds per call-minute (the process's CPU over the calls' line minutes; a call is both ends);
* line time per page against the loopback line's (two spandsp terminals back to back, the same
  pages, no network, no pacing) as the ratio SIP / loopback — the goal is ≤ 1.15;
* CPU against a bare spandsp audio loop on the same pages, as the ratio SIP / bare.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image, ImageDraw
from tests.helpers.kamailio import free_udp_port, running_kamailio

from inkless.config import load_settings
from inkless.fax import imaging
from inkless.fax import spandsp as sd
from inkless.fax.model import CallResult
from inkless.fax.sip.line import SipLine
from inkless.fax.terminal import AudioTerminal, TerminalOptions, run_audio_back_to_back

SENDER, RECEIVER = "0669410351", "0335804111"
PASSWORDS = {SENDER: "bench-sender", RECEIVER: "bench-receiver"}


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


def _loopback(tiff: bytes, folder: Path) -> tuple[float, float]:
    """Line seconds and CPU seconds of the same fax over two spandsp terminals back to back."""
    tx, rx = folder / "loop-tx.tif", folder / "loop-rx.tif"
    tx.write_bytes(tiff)
    cpu = time.process_time()
    with AudioTerminal(calling=True, options=TerminalOptions(ident="BENCH TX"), tx_file=tx) as caller, \
         AudioTerminal(calling=False, options=TerminalOptions(ident="BENCH RX"), rx_file=rx) as answerer:
        line_s = run_audio_back_to_back(caller, answerer)
        assert caller.outcome is not None and caller.outcome.completion_code == sd.T30_ERR_OK
    return line_s, time.process_time() - cpu


def _line(folder: Path, name: str, number: str, registrar: str, ports: str) -> SipLine:
    data = folder / name
    data.mkdir()
    return SipLine(load_settings(data, env={
        "INKLESS_FAX_LINE": "sip", "INKLESS_FAX_SIP_LISTEN": f"127.0.0.1:{free_udp_port()}",
        "INKLESS_FAX_SIP_REGISTRAR": registrar, "INKLESS_FAX_SIP_USERNAME": number,
        "INKLESS_FAX_SIP_PASSWORD": PASSWORDS[number], "INKLESS_FAX_SIP_GATEWAYS": registrar,
        "INKLESS_FAX_SIP_RTP_PORTS": ports, "INKLESS_FAX_MAX_CALLS": "30", "INKLESS_FAX_SIP_T38": "off",
        "INKLESS_FAX_SIP_TRUSTED_SOURCES": "127.0.0.1",
    }))


def _batch(sender: SipLine, received: list[CallResult], lock: threading.Lock, n: int,
           tiff: bytes) -> tuple[list[CallResult | Exception], float, float]:
    results: list[CallResult | Exception] = []

    def one() -> None:
        try:
            result: CallResult | Exception = sender.dial(RECEIVER, tiff, ident=SENDER, header=None)
        except Exception as exc:
            result = exc
        with lock:
            results.append(result)

    with lock:
        received.clear()
    cpu, wall = time.process_time(), time.monotonic()
    threads = [threading.Thread(target=one) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    deadline = time.monotonic() + 60
    while len(received) < n and time.monotonic() < deadline:
        time.sleep(0.2)
    return results, time.process_time() - cpu, time.monotonic() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", default="1,8,16,30")
    parser.add_argument("--pages", type=int, default=1)
    args = parser.parse_args()
    counts = [int(c) for c in args.calls.split(",")]
    tiff = _pages(args.pages)
    with tempfile.TemporaryDirectory(prefix="inkless-bench-sip-") as tmp:
        folder = Path(tmp)
        loop_line_s, loop_cpu = _loopback(tiff, folder)
        bare_cpu_per_min = loop_cpu / (loop_line_s / 60)
        print(f"loopback line: {loop_line_s / args.pages:.1f} s of line time per page, "
              f"bare spandsp loop {bare_cpu_per_min:.2f} CPU s per line-minute")
        with running_kamailio(folder / "kamailio", PASSWORDS) as kamailio:
            sender = _line(folder, "sender", SENDER, kamailio.uri, "50000-50199")
            receiver = _line(folder, "receiver", RECEIVER, kamailio.uri, "50200-50399")
            received: list[CallResult] = []
            lock = threading.Lock()

            def take(result: CallResult) -> None:
                with lock:
                    received.append(result)

            receiver.listen(take)
            sender.listen(lambda _r: None)
            try:
                deadline = time.monotonic() + 30
                while receiver.registration.state != "registered" and time.monotonic() < deadline:
                    time.sleep(0.1)
                print("calls  completed  wall s  line s/page  ratio vs loopback  CPU s/call-min  ratio vs bare")
                for n in counts:
                    results, cpu, wall = _batch(sender, received, lock, n, tiff)
                    sent = [r for r in results if isinstance(r, CallResult)]
                    with lock:
                        ok_rx = sum(1 for r in received if r.success and r.pages_transferred == args.pages)
                    completed = min(ok_rx, sum(1 for r in sent if r.success))
                    line_s = [r.duration_s for r in sent if r.success]
                    per_page = (sum(line_s) / len(line_s) / args.pages) if line_s else float("nan")
                    call_minutes = sum(line_s) / 60 if line_s else float("nan")
                    cpu_per_min = cpu / call_minutes if line_s else float("nan")
                    print(f"{n:5d}  {completed:4d}/{n:<4d}  {wall:6.1f}  {per_page:11.1f}  "
                          f"{per_page / (loop_line_s / args.pages):17.2f}  {cpu_per_min:14.2f}  "
                          f"{cpu_per_min / bare_cpu_per_min:13.2f}")
                    failed = [str(r) if isinstance(r, Exception) else r.t30_text
                              for r in results if not isinstance(r, CallResult) or not r.success]
                    if failed:
                        print(f"       failed: {', '.join(sorted(set(failed)))}")
            finally:
                sender.close()
                receiver.close()


if __name__ == "__main__":
    main()
