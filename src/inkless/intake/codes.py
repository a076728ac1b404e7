"""One-time e-mail codes and browser tokens: how they are made, stored and checked (pure functions).

A code is 6 digits, valid for 10 minutes, and 5 wrong tries lock it. Only hashes are stored: the
code's hash is keyed by the browser token's hash, so a database without the token's page cannot
even be brute-forced offline per code.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

CODE_DIGITS = 6
CODE_MINUTES = 10
MAX_TRIES = 5


class CodeOutcome(StrEnum):
    """What a submitted code did."""

    ACCEPTED = "accepted"
    WRONG = "wrong"  # counted; another try allowed
    LOCKED = "locked"  # this was the last allowed try, or it was locked already
    EXPIRED = "expired"  # too late, or no such token (indistinguishable to the browser)


def new_code() -> str:
    """Six random digits (leading zeros kept)."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def new_token() -> str:
    """A browser token of 256 bits (the hidden field of the code page)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What is stored of a token: its SHA-256."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def code_hash(stored_token_hash: str, code: str) -> str:
    """What is stored of a code: HMAC-SHA-256 keyed by its token's hash."""
    return hmac.new(stored_token_hash.encode("ascii"), code.encode("utf-8"), hashlib.sha256).hexdigest()


def code_expiry(now: datetime) -> datetime:
    return now + timedelta(minutes=CODE_MINUTES)


@dataclass(frozen=True)
class CodeState:
    """A stored code as the check sees it."""

    token_hash: str
    code_hash: str
    tries: int
    state: str  # pending | accepted | locked | void
    expires_at: datetime


def check_code(stored: CodeState | None, submitted: str, now: datetime) -> tuple[CodeOutcome, int]:
    """The outcome of ``submitted`` against ``stored`` at ``now``, and the tries counted after it."""
    if stored is None or stored.state == "accepted":
        return CodeOutcome.EXPIRED, 0
    if stored.state == "locked":
        return CodeOutcome.LOCKED, stored.tries
    if stored.expires_at <= now:
        return CodeOutcome.EXPIRED, stored.tries
    clean = submitted.strip().replace(" ", "")
    # A void row (status check for a number and address that do not match) accepts no code at all,
    # but counts and locks exactly as a real one does: the browser cannot tell them apart.
    good = stored.state == "pending" and len(clean) == CODE_DIGITS and clean.isdigit() and hmac.compare_digest(
        code_hash(stored.token_hash, clean), stored.code_hash)
    if good:
        return CodeOutcome.ACCEPTED, stored.tries
    tries = stored.tries + 1
    return (CodeOutcome.LOCKED if tries >= MAX_TRIES else CodeOutcome.WRONG), tries


def new_receipt_number(local_date: str) -> str:
    """A receipt number (受付番号): the office's date and six characters nobody can guess in sequence."""
    alphabet = "ACDEFGHJKLMNPQRTUVWXY34679"  # no look-alikes (0/O, 1/I/L, 2/Z, 5/S, 8/B)
    return f"{local_date}-" + "".join(secrets.choice(alphabet) for _ in range(6))
