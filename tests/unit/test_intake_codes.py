"""E-mail codes: 6 digits, 10 minutes, 5 wrong tries lock; hashes only; void codes accept nothing."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from inkless.intake.codes import (
    MAX_TRIES,
    CodeOutcome,
    CodeState,
    check_code,
    code_expiry,
    code_hash,
    new_code,
    new_receipt_number,
    new_token,
    token_hash,
)

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def _stored(code: str, *, tries: int = 0, state: str = "pending") -> CodeState:
    hashed = token_hash("browser-token")
    return CodeState(hashed, code_hash(hashed, code), tries, state, code_expiry(NOW))


def test_codes_tokens_and_receipt_numbers_look_right() -> None:
    codes = {new_code() for _ in range(200)}
    assert all(re.fullmatch(r"[0-9]{6}", c) for c in codes) and len(codes) > 150
    assert len(new_token()) >= 43 and new_token() != new_token()
    assert re.fullmatch(r"20261203-[ACDEFGHJKLMNPQRTUVWXY34679]{6}", new_receipt_number("20261203"))
    assert code_expiry(NOW) == NOW + timedelta(minutes=10)
    stored = _stored("123456")
    assert "123456" not in stored.code_hash and stored.code_hash != code_hash(token_hash("other"), "123456")


def test_the_right_code_in_time_is_accepted_with_spaces() -> None:
    assert check_code(_stored("012345"), "012 345", NOW) == (CodeOutcome.ACCEPTED, 0)
    assert check_code(_stored("012345"), "012345", NOW + timedelta(minutes=9, seconds=59))[0] == CodeOutcome.ACCEPTED


def test_five_wrong_tries_lock_and_the_right_code_no_longer_helps() -> None:
    stored = _stored("424242")
    for attempt in range(1, MAX_TRIES):
        outcome, tries = check_code(stored, "000000", NOW)
        assert (outcome, tries) == (CodeOutcome.WRONG, attempt)
        stored = CodeState(stored.token_hash, stored.code_hash, tries, "pending", stored.expires_at)
    assert check_code(stored, "000000", NOW) == (CodeOutcome.LOCKED, MAX_TRIES)
    locked = CodeState(stored.token_hash, stored.code_hash, MAX_TRIES, "locked", stored.expires_at)
    assert check_code(locked, "424242", NOW)[0] == CodeOutcome.LOCKED


def test_late_used_unknown_and_void_codes_are_refused() -> None:
    assert check_code(_stored("424242"), "424242", NOW + timedelta(minutes=10))[0] == CodeOutcome.EXPIRED
    assert check_code(_stored("424242", state="accepted"), "424242", NOW)[0] == CodeOutcome.EXPIRED
    assert check_code(None, "424242", NOW)[0] == CodeOutcome.EXPIRED
    # A status check for a number and address that do not match: counted and locked like any other.
    void = _stored("424242", state="void")
    assert check_code(void, "424242", NOW) == (CodeOutcome.WRONG, 1)
    assert check_code(_stored("424242", state="void", tries=4), "424242", NOW) == (CodeOutcome.LOCKED, 5)
    assert check_code(_stored("424242"), "42424", NOW)[0] == CodeOutcome.WRONG
    assert check_code(_stored("424242"), "abcdef", NOW)[0] == CodeOutcome.WRONG
