"""Outbound fax scheduling, as HylaFAX's ``sendfax -t TRIES -I INTERVAL -k KILLTIME``: pure rules.

A job is tried at most ``max_tries`` times, ``interval_s`` apart, and never after its kill
time. Busy, no answer, and a call that fails part-way (the T.30 result says why) are retried;
a document that cannot be sent at all fails at once. A job is *done* only when T.30 phase E
ended OK and every page went through.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from inkless.errors import ValidationError
from inkless.fax.model import CallResult

DEFAULT_TRIES = 3
DEFAULT_INTERVAL_S = 300
DEFAULT_KILL_TIME_S = 3 * 3600
MAX_TRIES = 50
MAX_KILL_TIME_S = 7 * 24 * 3600
# A worker holds a claimed job this long; a crashed worker's job becomes due again afterwards.
CLAIM_SECONDS = 30 * 60

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class JobState(StrEnum):
    """Where an outbound fax job is."""

    QUEUED = "queued"
    SENDING = "sending"
    RETRYING = "retrying"
    DONE = "done"
    FAILED = "failed"


def parse_duration(text: str | int, what: str) -> int:
    """Seconds from ``90``, ``90s``, ``15m``, ``3h`` or ``1d``; ValidationError otherwise."""
    if isinstance(text, int):
        seconds = text
    else:
        match = _DURATION.match(text.lower())
        if not match:
            raise ValidationError(f"{what} {text!r} must be a number of seconds or like 90s, 15m, 3h, 1d")
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValidationError(f"{what} must be positive")
    return seconds


@dataclass(frozen=True)
class JobSchedule:
    """How hard to try: attempts, seconds between them, and the deadline after submission."""

    max_tries: int = DEFAULT_TRIES
    interval_s: int = DEFAULT_INTERVAL_S
    kill_after_s: int = DEFAULT_KILL_TIME_S

    def checked(self) -> JobSchedule:
        """This schedule, or ValidationError when a value is out of range."""
        if not 1 <= self.max_tries <= MAX_TRIES:
            raise ValidationError(f"tries must be 1-{MAX_TRIES}")
        if not 1 <= self.interval_s <= MAX_KILL_TIME_S:
            raise ValidationError("interval must be between 1 second and 7 days")
        if not 1 <= self.kill_after_s <= MAX_KILL_TIME_S:
            raise ValidationError("kill time must be between 1 second and 7 days")
        return self


@dataclass(frozen=True)
class AttemptOutcome:
    """What one attempt means for the job: its next state, when to try again, and what to report."""

    state: JobState
    next_attempt_at: datetime | None
    code: int
    text: str
    call_status: str  # the fax_calls status of this attempt: done | retry | failed


def call_succeeded(result: CallResult, pages: int) -> bool:
    """Success only when phase E ended OK and the far end took every page (never a partial transfer)."""
    if not result.success or result.t30_code != 0:
        return False
    if result.pages_expected is not None and result.pages_transferred != result.pages_expected:
        return False
    return result.pages_transferred == pages


def after_attempt(
    *,
    now: datetime,
    tries: int,
    max_tries: int,
    interval_s: int,
    kill_at: datetime,
    pages: int,
    result: CallResult | None,
    error_text: str | None = None,
    error_code: int | None = None,
    retryable: bool = True,
) -> AttemptOutcome:
    """Decide the job's next state after attempt number ``tries`` (1-based) ended.

    ``result`` is the call's CallResult if a fax session took place; otherwise ``error_text``
    says why not (busy, no answer, a line failure) and ``retryable`` whether trying again helps.
    """
    if result is not None:
        if call_succeeded(result, pages):
            return AttemptOutcome(JobState.DONE, None, result.t30_code, result.t30_text, "done")
        code = result.t30_code
        text = result.t30_text
        if result.success or code == 0:
            # Phase E said OK but pages are missing: that is a failure, and it says so.
            text = f"only {result.pages_transferred} of {pages} pages were confirmed ({result.t30_text})"
    else:
        code = -1 if error_code is None else error_code
        text = error_text or "the call failed"
    next_at = now + timedelta(seconds=interval_s)
    if not retryable:
        return AttemptOutcome(JobState.FAILED, None, code, text, "failed")
    if tries >= max_tries:
        return AttemptOutcome(JobState.FAILED, None, code, f"{text} (gave up after {tries} tries)", "failed")
    if next_at > kill_at:
        return AttemptOutcome(JobState.FAILED, None, code, f"{text} (kill time reached)", "failed")
    return AttemptOutcome(JobState.RETRYING, next_at, code, text, "retry")
