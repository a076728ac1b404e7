"""The one Japanese font lookup (fontconfig), shared by seals, fax pages and PDF reports."""

from __future__ import annotations

from pathlib import Path

import pytest
from fontTools.ttLib import TTFont

from inkless.errors import DeliveryError, FaxError, FontNotFoundError, SealError
from inkless.fonts import FontStyle, find_japanese_font


def _family(path: Path, index: int) -> str:
    with TTFont(str(path), fontNumber=index) as font:
        return str(font["name"].getDebugName(1))


def test_each_style_finds_its_face_and_reportlab_gets_truetype() -> None:
    mincho = find_japanese_font(FontStyle.MINCHO)
    gothic = find_japanese_font(FontStyle.GOTHIC)
    assert "Mincho" in _family(mincho.path, mincho.index)
    assert "Gothic" in _family(gothic.path, gothic.index)
    for style in FontStyle:
        assert find_japanese_font(style, truetype_only=True).path.suffix == ".ttf"
    # Stable: the same answer every time (imprints and reports stay byte-identical).
    find_japanese_font.cache_clear()
    assert find_japanese_font(FontStyle.MINCHO) == mincho


def test_without_japanese_fonts_every_user_says_what_to_install(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from inkless.delivery.report import gothic_font
    from inkless.fax.header import _font
    from inkless.seals.fonts import find_cjk_font

    config = tmp_path / "fonts.conf"
    config.write_text(f'<?xml version="1.0"?>\n<fontconfig><cachedir>{tmp_path}/cache</cachedir></fontconfig>\n')
    monkeypatch.setenv("FONTCONFIG_FILE", str(config))
    find_japanese_font.cache_clear()
    _font.cache_clear()
    try:
        with pytest.raises(FontNotFoundError, match="install fonts-ipaexfont-gothic"):
            find_japanese_font(FontStyle.GOTHIC)
        with pytest.raises(SealError, match=r"install fonts-ipaexfont-mincho .*or pass a font file explicitly"):
            find_cjk_font()
        with pytest.raises(DeliveryError, match=r"no Japanese \(CJK\) TrueType \(.ttf\) font is installed"):
            gothic_font()
        with pytest.raises(FaxError, match="cannot draw the fax header line: no Japanese"):
            _font(24)
    finally:
        monkeypatch.undo()
        find_japanese_font.cache_clear()
        _font.cache_clear()
    assert find_japanese_font(FontStyle.GOTHIC).path.is_file()
