"""Which passwords a user may choose: long enough, not common, not their own name, not a pattern.

Following NIST SP 800-63B (5.1.1.2), there are no composition rules (no "one digit, one
symbol"); instead a new password is compared with a list of commonly used passwords and with
the context of the account. The list ships with the package: ``common-passwords.txt.gz``, the
20,000 most common passwords compiled by Royce Williams (lower-cased and deduplicated), as
shipped by Django's ``CommonPasswordValidator`` (BSD licence). See docs/web.md for why a list and
not an estimator such as zxcvbn.

Each refusal is a ValidationError with a fixed English message that the web catalogs translate.
"""

from __future__ import annotations

import gzip
from functools import cache
from itertools import pairwise
from pathlib import Path

from inkless.errors import ValidationError

MIN_LENGTH = 12
MAX_LENGTH = 256
# Fewer different characters than this is a pattern, not a password ("aaaaaaaaaaaa", "abababababab").
MIN_DISTINCT = 5
# Login names and office codes shorter than this are too short to look for inside a password.
MIN_CONTEXT_LENGTH = 3

COMMON_LIST = Path(__file__).parent / "common-passwords.txt.gz"

TOO_SHORT = "password must be at least 12 characters"
TOO_LONG = "password must be at most 256 characters"
COMMON = "this password is one of the most commonly used passwords; choose another"
HAS_LOGIN = "the password must not contain the login name"
HAS_OFFICE = "the password must not contain the office code"
PATTERN = "the password must not be one character or a short pattern repeated, or a simple sequence"

# Characters stripped from both ends before the list is consulted: "password2026!" is "password".
_DECORATION = "0123456789!@#$%^&*()-_=+.,;:?/\\|~`'\"[]{}<> "


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords (lower case), read once."""
    with gzip.open(COMMON_LIST, "rt", encoding="utf-8") as fh:
        return frozenset(line.strip() for line in fh if line.strip())


def check_password_strength(password: str, login: str | None = None, office_code: str | None = None) -> str:
    """``password`` if a user may choose it for ``login`` of ``office_code``; ValidationError naming the rule."""
    if len(password) < MIN_LENGTH:
        raise ValidationError(TOO_SHORT)
    if len(password) > MAX_LENGTH:
        raise ValidationError(TOO_LONG)
    folded = password.casefold()
    core = folded.strip(_DECORATION)
    if _is_pattern(folded) or _is_pattern(core):
        raise ValidationError(PATTERN)
    common = common_passwords()
    if folded in common or core in common:
        # A common password with digits or symbols around it is guessed right after the bare one.
        raise ValidationError(COMMON)
    if login and _contains(folded, login):
        raise ValidationError(HAS_LOGIN)
    if office_code and _contains(folded, office_code):
        raise ValidationError(HAS_OFFICE)
    return password


def _contains(folded: str, name: str) -> bool:
    name = name.casefold()
    if folded == name:
        return True
    if len(name) < MIN_CONTEXT_LENGTH:
        return False
    # "civil-affairs" is also found written as "civilaffairs" or "civil_affairs".
    squashed = "".join(ch for ch in folded if ch.isalnum())
    return name in folded or "".join(ch for ch in name if ch.isalnum()) in squashed


def _is_pattern(text: str) -> bool:
    """A few characters repeated, a unit repeated, or a run like "abcdef…" / "123456…"."""
    if len(text) < MIN_LENGTH // 2:
        return len(text) > 0 and len(set(text)) <= 2
    if len(set(text)) < MIN_DISTINCT:
        return True
    for size in range(1, len(text) // 2 + 1):
        if len(text) % size == 0 and text[:size] * (len(text) // size) == text:
            return True
    steps = {(ord(b) - ord(a)) for a, b in pairwise(text)}
    return steps in ({1}, {-1}) or (text.isdigit() and (steps <= {1, -9} or steps <= {-1, 9}))
