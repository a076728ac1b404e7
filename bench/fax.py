"""Benchmark: the fax engine's rendering speed and line efficiency.

    .venv/bin/python bench/fax.py [--pages 20] [--rounds 5] [--no-line]

(1) PDF → TIFF-F: inkless (pypdfium2 + libtiff, 204×196, threshold/dither, G4, one
    strip per page) in one process and in its render pool (``fax_render_processes``
    worker processes, one per core by default; started before the first timed round,
    its start-up printed apart) against Ghostscript's ``tiffg4`` device at
    ``-r204x196`` on the same N-page document, alternating rounds in the same run;
    prints pages/s of each and the ratios against Ghostscript. Ghostscript renders at
    page size (A4 → 1687 px wide), inkless fits the 1728 px scan line, so inkless does
    a little more work per page.

(2) Line seconds per page at V.17 14,400 bit/s for a text page and a photo page,
    with and without ECM and with T.6 MMR vs T.4 MH (MMR needs ECM, so "MMR
    without ECM" does not exist), over two spandsp audio terminals back to back.
    Each is compared with a theoretical minimum: the page's compressed bits /
    14,400 plus a T.30 overhead estimate (T30_OVERHEAD_S below), printed as the
    ratio measured / minimum.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw

from inkless.fax import imaging, render_pool
from inkless.fax import spandsp as sd
from inkless.fax.terminal import AudioTerminal, TerminalOptions, run_audio_back_to_back

# T.30 overhead of a one-page call that a perfect modem still pays, in seconds:
# CED answer tone 3.0; DIS, DCS, CFR each a V.21 frame with its 1 s preamble ≈ 1.2 × 3;
# TCF 1.5; V.17 long training 1.4; post-page command (EOP / PPS-EOP), MCF and DCN ≈ 1.2 × 3.
T30_OVERHEAD_S = 3.0 + 3 * 1.2 + 1.5 + 1.4 + 3 * 1.2
BIT_RATE = 14_400


def _document(pages: int) -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen import canvas

    font = "Helvetica"
    for path in ("/usr/share/fonts/opentype/ipaexfont-gothic/ipaexg.ttf",
                 "/usr/share/fonts/truetype/ipaexfont-gothic/ipaexg.ttf"):
        if Path(path).exists():
            pdfmetrics.registerFont(TTFont("IPAexGothic", path))
            font = "IPAexGothic"
            break
    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4, invariant=True)
    _, height = A4
    for page in range(pages):
        c.setFont(font, 11)
        for row in range(50):
            text = f"{page + 1}-{row + 1:02d}  災害対策本部からのお知らせ  The quick brown fox jumps over the lazy dog."
            if font == "Helvetica":
                text = text.encode("ascii", "replace").decode()
            c.drawString(50, height - 60 - 15 * row, text)
        c.showPage()
    c.save()
    return buf.getvalue()


def _cpu_seconds() -> float:
    """CPU time of this process, of its reaped children (Ghostscript) and of the render pool's live workers."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    workers = 0
    for pid in render_pool.worker_pids():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        workers += int(fields[11]) + int(fields[12])  # utime, stime in clock ticks
    return own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime + workers / os.sysconf("SC_CLK_TCK")


def _timed(work: Callable[[], object], walls: list[float], cpus: list[float]) -> None:
    cpu, wall = _cpu_seconds(), time.perf_counter()
    work()
    walls.append(time.perf_counter() - wall)
    cpus.append(_cpu_seconds() - cpu)


def bench_render(pages: int, rounds: int) -> None:
    gs = shutil.which("gs")
    if gs is None:
        sys.exit("Ghostscript (gs) is not installed: apt-get install ghostscript")
    pdf = _document(pages)
    t = time.perf_counter()
    single = imaging.pdf_to_tiff(pdf, parallel=False)
    first_single = time.perf_counter() - t
    t = time.perf_counter()
    pooled = imaging.pdf_to_tiff(pdf)  # starts the pool's processes
    first_pool = time.perf_counter() - t
    assert pooled == single, "the pool must write the file one process writes"
    assert len(imaging.read_tiff(pooled)) == pages
    runs: dict[str, tuple[list[float], list[float]]] = {"one": ([], []), "pool": ([], []), "gs": ([], [])}
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "doc.pdf"
        src.write_bytes(pdf)
        out = Path(tmp) / "gs.tif"
        command = [gs, "-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", "-sDEVICE=tiffg4", "-r204x196",
                   f"-sOutputFile={out}", str(src)]
        for _ in range(rounds):
            _timed(lambda: imaging.pdf_to_tiff(pdf, parallel=False), *runs["one"])
            _timed(lambda: imaging.pdf_to_tiff(pdf), *runs["pool"])
            _timed(lambda: subprocess.run(command, check=True), *runs["gs"])
    rate = {name: pages / min(walls) for name, (walls, _) in runs.items()}
    cpu_ms = {name: 1000 * min(cpus) / pages for name, (_, cpus) in runs.items()}
    names = {"one": "inkless, one process", "pool": f"inkless, pool of {render_pool.processes()} processes",
             "gs": "Ghostscript tiffg4"}
    print(f"(1) PDF → TIFF-F, {pages} A4 pages at 204×196, best of {rounds} (alternating rounds)")
    print(f"    {'':30} {'pages/s':>8} {'ratio to gs':>12} {'CPU ms/page':>12}")
    for name in ("one", "pool", "gs"):
        print(f"    {names[name]:30} {rate[name]:8.1f} {rate[name] / rate['gs']:12.2f} {cpu_ms[name]:12.1f}")
    print(f"    pool / one process: {rate['pool'] / rate['one']:.2f}")
    print(f"    first render (pool start-up included): one process {first_single:.2f} s, pool {first_pool:.2f} s")


def _text_page() -> Image.Image:
    pdf = _document(1)
    return imaging.render_pdf(pdf)[0]


def _photo_page() -> Image.Image:
    # A synthetic photograph: smooth gradients and circles over the whole page, dithered like a photo.
    grey = Image.new("L", (imaging.FAX_WIDTH, 2292), 255)
    draw = ImageDraw.Draw(grey)
    for y in range(100, 2200):
        draw.line((80, y, 1650, y), fill=int(30 + 190 * ((y - 100) / 2100)))
    for r in range(600, 0, -40):
        draw.ellipse((864 - r, 1146 - r, 864 + r, 1146 + r), fill=int(40 + r / 4))
    return imaging.binarize(grey)


def _compressed_bits(page: Image.Image, compression: str) -> int:
    # The whole single-page file: the image strip plus a few hundred bytes of TIFF directory.
    return 8 * len(imaging.encode_tiff([page], compression=compression))


def _call(tiff: Path, rx: Path, ecm: bool, compressions: int) -> tuple[float, sd.T30Stats | None, int]:
    caller = AudioTerminal(calling=True, options=TerminalOptions(ident="BENCH TX", ecm=ecm), tx_file=tiff)
    answerer = AudioTerminal(
        calling=False, options=TerminalOptions(ident="BENCH RX", ecm=ecm, compressions=compressions), rx_file=rx
    )
    try:
        line_s = run_audio_back_to_back(caller, answerer)
        assert caller.outcome is not None
        return line_s, None, caller.outcome.completion_code
    finally:
        caller.close()
        answerer.close()


def bench_line() -> None:
    print(f"(2) line seconds per page at V.17 {BIT_RATE} bit/s (T.30 overhead estimate {T30_OVERHEAD_S:.1f} s)")
    print(f"    {'page':6} {'mode':14} {'line s':>7} {'minimum s':>9} {'ratio':>6}")
    modes = [
        ("ECM + T.6 MMR", True, sd.T30_SUPPORT_T6_COMPRESSION | sd.T30_SUPPORT_T4_1D_COMPRESSION, "g4"),
        ("ECM + T.4 MH", True, sd.T30_SUPPORT_T4_1D_COMPRESSION, "g3"),
        ("no ECM, T.4 MH", False, sd.T30_SUPPORT_T4_1D_COMPRESSION, "g3"),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name, page in (("text", _text_page()), ("photo", _photo_page())):
            tiff = Path(tmp) / f"{name}.tif"
            tiff.write_bytes(imaging.encode_tiff([page]))
            for label, ecm, compressions, codec in modes:
                line_s, _, code = _call(tiff, Path(tmp) / f"{name}-rx.tif", ecm, compressions)
                minimum = _compressed_bits(page, codec) / BIT_RATE + T30_OVERHEAD_S
                status = "" if code == 0 else f"  (T.30 code {code})"
                print(f"    {name:6} {label:14} {line_s:7.1f} {minimum:9.1f} {line_s / minimum:6.2f}{status}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-line", action="store_true", help="only (1), without the line calls")
    args = parser.parse_args()
    bench_render(args.pages, args.rounds)
    if not args.no_line:
        bench_line()


if __name__ == "__main__":
    main()
