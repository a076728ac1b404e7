"""The one lookup of a Japanese font through fontconfig, for seals, fax pages and PDF reports.

Seal imprints want a Mincho (serif) face, like a carved seal; fax header lines and reports
want a Gothic (sans) face, which survives 1-bit thresholding at 3 mm. Either falls back to
any other Japanese face. reportlab embeds TrueType outlines only, so its callers ask for
``.ttf`` files. The choice is stable (ranked, then by path), so renderings stay
byte-identical across runs.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from inkless.errors import FontNotFoundError


class FontStyle(StrEnum):
    """The kind of Japanese face a caller prefers."""

    MINCHO = "mincho"
    GOTHIC = "gothic"


@dataclass(frozen=True)
class FontSource:
    """One face of a font file: the path and the face index inside a collection (.ttc)."""

    path: Path
    index: int = 0


# Families in order of preference: IPAex is what Debian ships (fonts-ipaexfont-mincho / -gothic).
_PREFERRED = {
    FontStyle.MINCHO: ("ipaexmincho", "ipamincho", "ipaex明朝", "ipa明朝"),
    FontStyle.GOTHIC: ("ipaexgothic", "ipagothic", "ipaexゴシック", "ipaゴシック"),
}
_HINTS = {
    FontStyle.MINCHO: ("mincho", "明朝", "serif cjk", "serif jp", "serif"),
    FontStyle.GOTHIC: ("gothic", "ゴシック", "sans cjk", "sans jp", "sans"),
}
_PACKAGE = {FontStyle.MINCHO: "fonts-ipaexfont-mincho", FontStyle.GOTHIC: "fonts-ipaexfont-gothic"}
_OUTLINE_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")


@lru_cache(maxsize=4)
def find_japanese_font(style: FontStyle, truetype_only: bool = False) -> FontSource:
    """The best installed Japanese face of ``style`` (else any Japanese face); FontNotFoundError if none.

    ``truetype_only``: a single-face ``.ttf`` file (what reportlab can embed).
    """
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        raise FontNotFoundError(
            f"cannot look up a Japanese font: fontconfig (fc-list) is not installed; "
            f"install fontconfig and {_PACKAGE[style]}"
        )
    try:
        out = subprocess.run(  # noqa: S603 - fixed argument list, no shell
            [fc_list, "--format", "%{file}\t%{index}\t%{family}\n", ":lang=ja"],
            capture_output=True, text=True, check=True, timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise FontNotFoundError(f"fontconfig lookup of a Japanese font failed: {exc}") from exc
    suffixes = (".ttf",) if truetype_only else _OUTLINE_SUFFIXES
    candidates: list[tuple[int, str, int]] = []
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or not parts[0].lower().endswith(suffixes):
            continue
        file, face, family = parts
        candidates.append((_rank(family, style), file, int(face) if face.isdigit() else 0))
    if not candidates:
        kind = "TrueType (.ttf) " if truetype_only else ""
        raise FontNotFoundError(
            f"no Japanese (CJK) {kind}font is installed; install {_PACKAGE[style]} "
            f"(IPAex) or another freely licensed CJK font"
        )
    _, file, index = min(candidates)
    return FontSource(Path(file), index)


def _rank(family: str, style: FontStyle) -> int:
    names = [name.strip().lower() for name in family.split(",")]
    if any(name.replace(" ", "") in _PREFERRED[style] for name in names):
        return 0
    if any(hint in name for name in names for hint in _HINTS[style]):
        return 1
    return 2
