"""The one formatter of times shown to people: office zone, 和暦 on filed documents, era boundaries."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from jinja2 import Environment

from inkless import timefmt
from inkless.config import load_settings
from inkless.errors import ConfigurationError

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(("day", "expected"), [
    (date(1868, 1, 25), "明治元年1月25日"),
    (date(1912, 7, 29), "明治45年7月29日"),
    (date(1912, 7, 30), "大正元年7月30日"),
    (date(1926, 12, 24), "大正15年12月24日"),
    (date(1926, 12, 25), "昭和元年12月25日"),
    (date(1989, 1, 7), "昭和64年1月7日"),
    (date(1989, 1, 8), "平成元年1月8日"),
    (date(2019, 4, 30), "平成31年4月30日"),
    (date(2019, 5, 1), "令和元年5月1日"),
    (date(2020, 1, 1), "令和2年1月1日"),
    (date(2026, 12, 3), "令和8年12月3日"),
])
def test_era_boundaries_and_gannen(day: date, expected: str) -> None:
    assert timefmt.format_date_wareki(day) == expected


def test_western_year_beside_the_era_and_dates_before_meiji_are_refused() -> None:
    assert timefmt.format_date_wareki(date(2026, 12, 3), western=True) == "令和8年12月3日 (2026年)"
    with pytest.raises(ValueError, match="Meiji"):
        timefmt.format_date_wareki(date(1868, 1, 24))


def test_tokyo_is_utc_plus_nine_all_year_and_crosses_the_date_line_at_15_utc() -> None:
    winter = datetime(2026, 12, 3, 8, 5, tzinfo=UTC)
    summer = datetime(2026, 7, 3, 8, 5, tzinfo=UTC)
    assert timefmt.format_datetime(winter, "en") == "2026-12-03 17:05 JST"
    assert timefmt.format_datetime(summer, "en") == "2026-07-03 17:05 JST"  # no daylight saving in Japan
    assert timefmt.format_datetime(winter, "ja") == "2026年12月3日 17:05 JST"
    late = datetime(2026, 12, 3, 15, 30, tzinfo=UTC)  # already the 4th in Tokyo
    assert timefmt.format_document_datetime(late) == "令和8年12月4日 (2026年) 00:30 JST"
    assert timefmt.format_document_datetime(late, seconds=True).endswith("00:30:00 JST")
    assert timefmt.format_document_datetime(None) == "—"
    # The new era began at midnight Tokyo time, 15:00 UTC the day before.
    assert timefmt.format_document_date(datetime(2019, 4, 30, 15, 0, tzinfo=UTC)) == "令和元年5月1日 (2019年)"


def test_an_office_abroad_sees_its_own_zone_with_cet_and_cest() -> None:
    winter = datetime(2026, 12, 3, 8, 5, tzinfo=UTC)
    summer = datetime(2026, 7, 3, 8, 5, tzinfo=UTC)
    assert timefmt.format_datetime(winter, "en", BERLIN) == "2026-12-03 09:05 CET"
    assert timefmt.format_datetime(summer, "en", "Europe/Berlin") == "2026-07-03 10:05 CEST"
    assert timefmt.iso_local(summer, BERLIN) == "2026-07-03T10:05:00+02:00"


def test_naive_values_are_read_as_utc() -> None:
    assert timefmt.format_datetime(datetime(2026, 12, 3, 8, 5), "en") == "2026-12-03 17:05 JST"


def test_the_timezone_setting_is_validated_and_defaults_to_tokyo(tmp_path: Path) -> None:
    assert load_settings(tmp_path, env={}).tz == ZoneInfo("Asia/Tokyo")
    assert load_settings(tmp_path, env={"INKLESS_TIMEZONE": "Europe/Berlin"}).timezone == "Europe/Berlin"
    with pytest.raises(ConfigurationError, match="timezone 'Asia/Tokio' is not an IANA time zone"):
        load_settings(tmp_path, env={"INKLESS_TIMEZONE": "Asia/Tokio"})


def test_jinja_filters_format_in_the_language_and_zone() -> None:
    env = Environment(autoescape=True)
    env.filters.update(timefmt.jinja_helpers("en", BERLIN))
    at = datetime(2026, 12, 3, 8, 5, 9, tzinfo=UTC)
    out = env.from_string("{{ t|localtime }}|{{ t|localtime(seconds=True) }}|{{ t|localdate }}|{{ d|localdate }}"
                          "|{{ t|isolocal }}").render(t=at, d=date(2026, 12, 24))
    assert out == "2026-12-03 09:05 CET|2026-12-03 09:05:09 CET|2026-12-03|2026-12-24|2026-12-03T09:05:09+01:00"
    env.filters.update(timefmt.jinja_helpers("ja"))
    assert env.from_string("{{ t|wareki }} {{ d|localdate }}").render(t=at, d=date(2026, 12, 24)) == (
        "令和8年12月3日 (2026年) 17:05 JST 2026年12月24日")


def test_a_date_seal_struck_after_15_utc_carries_the_tokyo_date() -> None:
    from inkless.directory.model import Role, User
    from inkless.seals.sealing import SealKind, imprint_for

    clerk = User(1, "tanaka", "田中 花子", 1, "civil-affairs", Role.CLERK, 1, True, False, True,
                 datetime(2026, 4, 1, tzinfo=UTC))
    late = datetime(2026, 12, 3, 15, 30, tzinfo=UTC)
    assert imprint_for(clerk, "民事局", SealKind.DATE, late).texts[1] == "R8.12.4"
    assert imprint_for(clerk, "民事局", SealKind.DATE, late, tz=BERLIN).texts[1] == "R8.12.3"
