"""Outbound fax scheduling like HylaFAX's sendfax -t/-I/-k, and the fax policy, without a line or a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from inkless.errors import PolicyError, ValidationError
from inkless.fax.jobs import JobSchedule, JobState, after_attempt, call_succeeded, parse_duration
from inkless.fax.model import CallResult
from inkless.fax.policy import check_fax_allowed, fax_allowed

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)


def _result(*, success: bool = True, code: int = 0, sent: int = 3, expected: int | None = 3,
            text: str = "OK") -> CallResult:
    return CallResult(
        success=success, t30_code=code, t30_text=text, pages_transferred=sent, pages_expected=expected,
        remote_ident="REMOTE", local_ident="LOCAL", calling_number=None, called_number="0311112222",
        sub_address=None, bit_rate=14400, ecm=True, compression="T.6 MMR", bad_rows=0, duration_s=42.0,
        started_at=T0,
    )


def _after(result: CallResult | None, tries: int, *, error: str | None = None, retryable: bool = True,
           kill: timedelta = timedelta(hours=3)) -> tuple[JobState, datetime | None, str]:
    outcome = after_attempt(now=T0, tries=tries, max_tries=3, interval_s=60, kill_at=T0 + kill, pages=3,
                            result=result, error_text=error, retryable=retryable)
    return outcome.state, outcome.next_attempt_at, outcome.text


def test_durations_in_hylafax_style() -> None:
    assert parse_duration("90", "interval") == 90
    assert parse_duration("15m", "interval") == 900
    assert parse_duration("3h", "kill time") == 10800
    assert parse_duration("1d", "kill time") == 86400
    assert parse_duration(60, "interval") == 60
    for bad in ("", "3x", "-5", "0", "h", "1.5h"):
        with pytest.raises(ValidationError):
            parse_duration(bad, "interval")


def test_schedule_limits() -> None:
    assert JobSchedule(3, 60, 3600).checked() == JobSchedule(3, 60, 3600)
    for bad in (JobSchedule(0, 60, 3600), JobSchedule(51, 60, 3600), JobSchedule(3, 0, 3600),
                JobSchedule(3, 60, 8 * 86400)):
        with pytest.raises(ValidationError):
            bad.checked()


def test_success_needs_phase_e_ok_and_every_page() -> None:
    assert call_succeeded(_result(), 3)
    assert not call_succeeded(_result(sent=2, expected=3), 3)
    assert not call_succeeded(_result(sent=2, expected=2), 3)  # the far end confirmed fewer than we have
    assert not call_succeeded(_result(success=False, code=49, text="The call dropped prematurely"), 3)
    assert not call_succeeded(_result(code=1), 3)
    assert _after(_result(), 1) == (JobState.DONE, None, "OK")
    state, _, text = _after(_result(sent=2, expected=3), 1)
    assert state == JobState.RETRYING and "only 2 of 3 pages" in text


def test_busy_and_dropped_calls_are_retried_until_tries_or_kill_time_run_out() -> None:
    assert _after(None, 1, error="busy") == (JobState.RETRYING, T0 + timedelta(seconds=60), "busy")
    assert _after(None, 2, error="no answer")[0] == JobState.RETRYING
    dropped = _result(success=False, code=49, sent=1, text="The call dropped prematurely")
    assert _after(dropped, 1) == (JobState.RETRYING, T0 + timedelta(seconds=60), "The call dropped prematurely")
    state, next_at, text = _after(None, 3, error="busy")
    assert (state, next_at) == (JobState.FAILED, None) and "gave up after 3 tries" in text
    state, _, text = _after(None, 1, error="busy", kill=timedelta(seconds=30))
    assert state == JobState.FAILED and "kill time" in text
    assert _after(None, 1, error="the document cannot be rendered", retryable=False)[0] == JobState.FAILED


def test_fax_policy_by_classification() -> None:
    check_fax_allowed(0, False)
    check_fax_allowed(1, True)
    with pytest.raises(ValidationError, match="needs confirmation"):
        check_fax_allowed(1, False)
    for level in (2, 3):
        with pytest.raises(PolicyError, match="never sent by fax"):
            check_fax_allowed(level, True)
    with pytest.raises(ValidationError):
        check_fax_allowed(4, True)
    assert [fax_allowed(level) for level in range(4)] == [True, True, False, False]


def test_disaster_fallback_decision_needs_every_condition() -> None:
    from inkless.fax.fallback import FallbackCandidate, decide

    after = timedelta(minutes=60)
    good = FallbackCandidate(1, "m", "hq@mlit", "mlit", 0, 1, 7, "civil-affairs", "tanaka", T0 - timedelta(minutes=61))

    def why(candidate: FallbackCandidate = good, *, enabled: bool = True,
            number: str | None = "0352538111") -> str | None:
        return decide(candidate, now=T0, after=after, fallback_enabled=enabled, fax_number=number, local_node="moj")

    from dataclasses import replace

    assert why() is None
    assert why(replace(good, node_id="moj")) == "local_recipient"
    assert why(replace(good, unreachable_since=None)) == "peer_not_down_long_enough"
    assert why(replace(good, unreachable_since=T0 - timedelta(minutes=59))) == "peer_not_down_long_enough"
    assert why(replace(good, priority=1)) == "not_urgent"
    assert why(replace(good, classification=2)) == "classification"
    assert why(number=None) == "no_fax_number"
    assert why(enabled=False) == "fallback_disabled"


def test_fax_settings_are_checked(tmp_path: Path) -> None:
    from inkless.config import load_settings
    from inkless.errors import ConfigurationError

    settings = load_settings(tmp_path, env={"INKLESS_FAX_TRIES": "5", "INKLESS_FAX_OCR_LANGUAGES": "jpn"})
    assert (settings.fax_tries, settings.fax_ocr_languages, settings.fax_fallback_after_minutes) == (5, "jpn", 60)
    for key, value in (("FAX_TRIES", "0"), ("FAX_RETRY_INTERVAL_SECONDS", "-1"), ("FAX_KILL_TIME_MINUTES", "x"),
                       ("FAX_FALLBACK_AFTER_MINUTES", "0"), ("FAX_OCR_LANGUAGES", "jpn;rm -rf")):
        with pytest.raises(ConfigurationError, match=key.lower()):
            load_settings(tmp_path, env={f"INKLESS_{key}": value})
