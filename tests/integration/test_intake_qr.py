"""The QR codes of the intake window are read back by a decoder we did not write (zbarimg): the page's SVG,
the fax cover page at fax resolution, and the invitation letter."""

from __future__ import annotations

import io
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from inkless.fax.render import cover_image
from inkless.fax.service import CoverPage
from inkless.intake.documents import invitation_pdf, qr_png
from inkless.timefmt import TOKYO

URL = "https://moj.example.lg.jp/i/civil-affairs"


def zbar(image: Path) -> list[str]:
    out = subprocess.run(["zbarimg", "--quiet", "--raw", str(image)], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_the_fax_cover_page_invites_with_a_qr_code_that_reads_back(tmp_path: Path) -> None:
    cover = CoverPage("民事局", "03-3580-4111", "田中 一郎", "06-6941-0351", 2, "営業許可", datetime.now(UTC),
                      None, TOKYO, URL)
    image = tmp_path / "cover.png"
    cover_image(cover).save(image)  # 1-bit, 204 × 196 dpi: what goes down the line
    assert zbar(image) == [URL]
    without = CoverPage("民事局", "03-3580-4111", "田中 一郎", "06-6941-0351", 2, "営業許可", datetime.now(UTC))
    plain = tmp_path / "plain.png"
    cover_image(without).save(plain)
    assert subprocess.run(["zbarimg", "--quiet", str(plain)], capture_output=True).returncode == 4  # no code


def test_the_invitation_letter_and_the_page_qr_read_back(tmp_path: Path) -> None:
    letter = tmp_path / "letter.pdf"
    letter.write_bytes(invitation_pdf("民事局", "法務省", URL, datetime.now(UTC), TOKYO))
    subprocess.run(["pdftoppm", "-r", "150", "-png", str(letter), str(tmp_path / "letter")], check=True)
    assert zbar(next(tmp_path.glob("letter*.png"))) == [URL]
    text = subprocess.run(["pdftotext", str(letter), "-"], capture_output=True, text=True, check=True).stdout
    assert "次回からはオンラインで送れます" in text and URL in text
    png = tmp_path / "qr.png"
    png.write_bytes(qr_png(URL))
    assert zbar(png) == [URL]
    from PIL import Image

    assert Image.open(io.BytesIO(qr_png(URL))).size[0] >= 200
