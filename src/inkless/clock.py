"""The clock seam: production code asks a Clock for the time, tests pass a fixed one."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Something that tells the current time (always timezone-aware UTC)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


@dataclass
class FixedClock:
    """A clock for tests: stands still until advanced."""

    current: datetime = field(default_factory=lambda: datetime(2026, 4, 1, 9, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, **kwargs: float) -> None:
        """Move the clock forward, e.g. ``advance(seconds=30)``."""
        self.current = self.current + timedelta(**kwargs)
