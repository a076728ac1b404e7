"""Periods the metrics count in: ISO weeks and months in Asia/Tokyo, and fiscal years (4月–3月)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from inkless.errors import ValidationError

# Weeks and months are Japanese ones whatever the server's zone: a fax at 08:00 JST on Monday is that week's.
TOKYO = ZoneInfo("Asia/Tokyo")
WEEK_RE = re.compile(r"^(\d{4})-W(\d{2})$")
MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


def local_day(at: datetime | date) -> date:
    """The Tokyo calendar day of a stored UTC time (a date is taken as it is)."""
    if isinstance(at, datetime):
        return at.astimezone(TOKYO).date()
    return at


def week_of(at: datetime | date) -> str:
    """The ISO week, e.g. ``2026-W49``."""
    year, week, _ = local_day(at).isocalendar()
    return f"{year}-W{week:02d}"


def month_of(at: datetime | date) -> str:
    day = local_day(at)
    return f"{day.year}-{day.month:02d}"


def fiscal_year_of(at: datetime | date) -> int:
    """The Japanese fiscal year (年度): April to March, named by the year it starts in."""
    day = local_day(at)
    return day.year if day.month >= 4 else day.year - 1


def fiscal_year_months(year: int) -> list[str]:
    """The twelve months of fiscal year ``year``, April first."""
    return [f"{year + (m < 4)}-{m:02d}" for m in (4, 5, 6, 7, 8, 9, 10, 11, 12, 1, 2, 3)]


def parse_week(text: str) -> str:
    """A week as given by a user (``2026-W49``), checked; ValidationError otherwise."""
    match = WEEK_RE.match(text.strip())
    if match:
        try:
            date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
            return text.strip()
        except ValueError:
            pass
    raise ValidationError(f"week: {text!r} is not an ISO week such as 2026-W49")


def week_monday(week: str) -> date:
    match = WEEK_RE.match(week)
    if not match:
        raise ValidationError(f"week: {week!r} is not an ISO week such as 2026-W49")
    return date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)


def week_bounds(week: str) -> tuple[datetime, datetime]:
    """The week's start and end (exclusive) as UTC times: Monday 00:00 JST to the next Monday."""
    monday = week_monday(week)
    start = datetime.combine(monday, time(0), TOKYO).astimezone(UTC)
    return start, start + timedelta(days=7)


def weeks_back(week: str, count: int) -> list[str]:
    """``count`` weeks ending with ``week``, oldest first."""
    monday = week_monday(week)
    return [week_of(monday - timedelta(weeks=i)) for i in range(count - 1, -1, -1)]


def months_back(month: str, count: int) -> list[str]:
    match = MONTH_RE.match(month)
    if not match:
        raise ValidationError(f"month: {month!r} is not a month such as 2026-12")
    year, mon = int(match.group(1)), int(match.group(2))
    out = []
    for i in range(count - 1, -1, -1):
        index = year * 12 + (mon - 1) - i
        out.append(f"{index // 12}-{index % 12 + 1:02d}")
    return out


def month_of_week(week: str) -> str:
    """The month a week is shown under in monthly charts: the month of its Thursday (as ISO does for years)."""
    return month_of(week_monday(week) + timedelta(days=3))
