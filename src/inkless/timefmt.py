"""Times as people read them: the office's zone (Asia/Tokyo by default), 和暦 on documents a clerk files.

inkless stores and exchanges times in UTC (database, API, CLI ``--json``, audit entries); every
place a person reads a time — pages, e-mails, CLI tables, PDFs, fax header lines and cover pages —
formats it through this module, in the zone of the ``timezone`` setting:

* ``format_datetime(dt, "en")`` → ``2026-12-03 17:05 JST`` (the English UI),
* ``format_datetime(dt, "ja")`` → ``2026年12月3日 17:05 JST`` (the Japanese UI),
* ``format_document_datetime(dt)`` → ``令和8年12月3日 (2026年) 17:05 JST`` (reports, receipts, cover pages),
* ``format_date_wareki(date)`` → ``令和8年12月3日`` (the first year of an era is written 元年: 令和元年5月1日).

The zone abbreviation shown is the zone's own (JST; CET/CEST for Europe/Berlin), never a fixed
"+09:00". Babel (already a dependency) formats Gregorian dates only: asked for
``ja_JP@calendar=japanese`` it silently prints the Western year, so the era table below is ours.
Eras start on the day the new era's name took effect (大正 1912-07-30, 昭和 1926-12-25, 平成
1989-01-08, 令和 2019-05-01; 明治 counts from 1868-01-25, the Gregorian date of 明治元年1月1日);
earlier dates are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from inkless.errors import ConfigurationError

DEFAULT_TIMEZONE = "Asia/Tokyo"
TOKYO = ZoneInfo(DEFAULT_TIMEZONE)

# Japanese eras, newest first: (first day, name).
ERAS: tuple[tuple[date, str], ...] = (
    (date(2019, 5, 1), "令和"),
    (date(1989, 1, 8), "平成"),
    (date(1926, 12, 25), "昭和"),
    (date(1912, 7, 30), "大正"),
    (date(1868, 1, 25), "明治"),
)


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (e.g. ``Asia/Tokyo``, ``Europe/Berlin``); ConfigurationError if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigurationError(
            f"timezone {name!r} is not an IANA time zone name (e.g. Asia/Tokyo, Europe/Berlin)"
        ) from None


def _aware(dt: datetime) -> datetime:
    # Stored times are UTC; a naive value can only be one read back without its zone.
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def to_local(dt: datetime, tz: tzinfo | str = TOKYO) -> datetime:
    """``dt`` in the office's zone (``tz``: a tzinfo, or a zone name such as ``settings.timezone``)."""
    return _aware(dt).astimezone(zone(tz) if isinstance(tz, str) else tz)


def zone_abbreviation(dt: datetime, tz: tzinfo | str = TOKYO) -> str:
    """The abbreviation of the office's zone at ``dt``: JST, CET or CEST, …"""
    return to_local(dt, tz).tzname() or ""


def format_datetime(dt: datetime | None, lang: str = "ja", tz: tzinfo | str = TOKYO, *,
                    seconds: bool = False) -> str:
    """A time as the UI shows it: ``2026-12-03 17:05 JST`` (en) or ``2026年12月3日 17:05 JST`` (ja)."""
    if dt is None:
        return ""
    local = to_local(dt, tz)
    clock = f"{local:%H:%M:%S}" if seconds else f"{local:%H:%M}"
    if lang == "ja":
        return f"{local.year}年{local.month}月{local.day}日 {clock} {local.tzname()}"
    return f"{local:%Y-%m-%d} {clock} {local.tzname()}"


def format_date(dt: datetime | None, lang: str = "ja", tz: tzinfo | str = TOKYO) -> str:
    """The office-zone date of ``dt``: ``2026-12-03`` (en) or ``2026年12月3日`` (ja)."""
    if dt is None:
        return ""
    local = to_local(dt, tz)
    return f"{local.year}年{local.month}月{local.day}日" if lang == "ja" else f"{local:%Y-%m-%d}"


def era_of(day: date) -> tuple[str, int]:
    """The Japanese era of ``day`` and the year within it: ``("令和", 8)`` for 2026-12-03."""
    for first, name in ERAS:
        if day >= first:
            return name, day.year - first.year + 1
    raise ValueError(f"dates before the Meiji era (1868-01-25) have no 和暦 here: {day}")


def format_date_wareki(day: date, *, western: bool = False) -> str:
    """``令和8年12月3日`` (``western=True``: ``令和8年12月3日 (2026年)``); year 1 is 元年."""
    era, year = era_of(day)
    text = f"{era}{'元' if year == 1 else year}年{day.month}月{day.day}日"
    return f"{text} ({day.year}年)" if western else text


def format_document_date(dt: datetime, tz: tzinfo | str = TOKYO) -> str:
    """The date for a document a clerk files: ``令和8年12月3日 (2026年)`` in the office's zone."""
    return format_date_wareki(to_local(dt, tz).date(), western=True)


def format_document_datetime(dt: datetime | None, tz: tzinfo | str = TOKYO, *, seconds: bool = False) -> str:
    """Date and time for a filed document: ``令和8年12月3日 (2026年) 17:05 JST`` (``—`` when unknown)."""
    if dt is None:
        return "—"
    local = to_local(dt, tz)
    clock = f"{local:%H:%M:%S}" if seconds else f"{local:%H:%M}"
    return f"{format_date_wareki(local.date(), western=True)} {clock} {local.tzname()}"


def iso_local(dt: datetime | None, tz: tzinfo | str = TOKYO) -> str:
    """ISO 8601 with the office's offset (``2026-12-03T17:05:00+09:00``), for ``<time datetime>``."""
    return to_local(dt, tz).isoformat(timespec="seconds") if dt is not None else ""


def jinja_helpers(lang: str, tz: tzinfo | str = TOKYO) -> dict[str, Callable[..., Any]]:
    """The template filters of one UI language, registered once per Jinja environment.

    ``{{ t|localtime }}``, ``{{ t|localtime(seconds=True) }}``, ``{{ t|localdate }}``,
    ``{{ t|wareki }}`` (date and time for documents), ``{{ t|isolocal }}`` (``<time datetime>``).
    """
    tzi = zone(tz) if isinstance(tz, str) else tz

    def localtime(dt: datetime | None, seconds: bool = False) -> str:
        return format_datetime(dt, lang, tzi, seconds=seconds)

    def localdate(dt: datetime | date | None) -> str:
        if dt is None:
            return ""
        if not isinstance(dt, datetime):  # a calendar date (a deadline) has no zone to convert
            return f"{dt.year}年{dt.month}月{dt.day}日" if lang == "ja" else dt.isoformat()
        return format_date(dt, lang, tzi)

    def wareki(dt: datetime | None) -> str:
        return format_document_datetime(dt, tzi)

    def isolocal(dt: datetime | None) -> str:
        return iso_local(dt, tzi)

    return {"localtime": localtime, "localdate": localdate, "wareki": wareki, "isolocal": isolocal}
