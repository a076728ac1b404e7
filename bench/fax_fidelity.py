"""Benchmark: what a fax page keeps of thin strokes, inkless against Ghostscript.

    .venv/bin/python bench/fax_fidelity.py [--sizes 6 8 10 12] [--style mincho|gothic] [--save DIR]

A sheet of IPAex Mincho at each point size (sentences full of 本/木, 末/未, 土/士, 千/干, 申/山, 戸)
and a table ruled with 0.1 mm lines is faxed at 204×196 dpi by inkless (``imaging.render_pdf``) and
by Ghostscript's ``tiffg4`` device in the same run, and also rendered at 600 dpi. Per size it prints:

- CER: Tesseract (jpn, psm 6) character error rate of each fax page against the text, and of the
  600 dpi page itself (what OCR manages on a perfect page);
- strokes: the fraction of the 600 dpi page's stroke centre lines (its skeleton) whose fax pixel is black;
- the critical characters read correctly (read / present);

then the ratios inkless / Ghostscript, and whether each rule of the 0.1 mm table is continuous.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from inkless.fax import imaging

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers import fax_fidelity as ff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="+", default=[6, 8, 10, 12])
    parser.add_argument("--style", choices=["mincho", "gothic"], default="mincho")
    parser.add_argument("--save", type=Path, help="write the fax pages as PNG into this folder")
    args = parser.parse_args()
    sheet = ff.fidelity_sheet(tuple(args.sizes), style=args.style)
    t = time.perf_counter()
    ours = imaging.render_pdf(sheet.pdf)
    ours_s = time.perf_counter() - t
    t = time.perf_counter()
    theirs = ff.ghostscript_pages(sheet.pdf)
    theirs_s = time.perf_counter() - t
    reference = ff.reference_pages(sheet.pdf)
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        for n, (a, b) in enumerate(zip(ours, theirs, strict=True), 1):
            a.save(args.save / f"inkless-{n}.png")
            b.save(args.save / f"gs-{n}.png")
    print(f"IPAex {args.style.capitalize()}, fax 204×196 dpi, read by Tesseract jpn"
          f" (render {ours_s:.2f} s vs gs {theirs_s:.2f} s)")
    print(f"{'pt':>4} | {'CER inkless':>11} {'CER gs':>7} {'CER 600dpi':>10} {'ratio':>6} | "
          f"{'strokes inkless':>15} {'strokes gs':>10} {'ratio':>6} | critical read inkless / gs")
    for index, size in enumerate(sheet.sizes):
        truth = sheet.truth[index]
        read_ours = ff.ocr(ff.content(ours[index]))
        read_theirs = ff.ocr(ff.content(theirs[index], centred=False))
        read_ref = ff.ocr(reference[index], ff.REFERENCE_DPI, ff.REFERENCE_DPI)
        cer_ours, cer_theirs, cer_ref = (ff.cer(r, truth) for r in (read_ours, read_theirs, read_ref))
        kept_ours = ff.strokes_kept(ff.content(ours[index]), reference[index])
        kept_theirs = ff.strokes_kept(ff.content(theirs[index], centred=False), reference[index])

        def critical(read: str, truth: str = truth) -> str:
            counts = ff.critical_counts(read, truth)
            return f"{sum(min(r, n) for r, n in counts.values())}/{sum(n for _, n in counts.values())}"

        ratio = cer_ours / cer_theirs if cer_theirs else float("inf") if cer_ours else 1.0
        print(f"{size:4g} | {cer_ours:11.3f} {cer_theirs:7.3f} {cer_ref:10.3f} {ratio:6.2f} | "
              f"{kept_ours:15.3f} {kept_theirs:10.3f} {kept_ours / kept_theirs:6.3f} | "
              f"{critical(read_ours)} / {critical(read_theirs)}")
    table = len(sheet.sizes)
    ours_breaks = ff.border_breaks(ours[table], sheet)
    theirs_breaks = ff.border_breaks(theirs[table], sheet, centred=False)
    rules = len(sheet.table_rows_pt) + len(sheet.table_cols_pt)
    print(f"0.1 mm table: continuous rules inkless {rules - len(ours_breaks)}/{rules}, "
          f"Ghostscript {rules - len(theirs_breaks)}/{rules}")
    if ours_breaks:
        print("  inkless breaks: " + ", ".join(ours_breaks))


if __name__ == "__main__":
    main()
