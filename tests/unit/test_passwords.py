"""Which passwords may be chosen: the rules of inkless.directory.passwords, each with its refusal."""

from __future__ import annotations

import pytest

from inkless.directory import passwords
from inkless.directory.passwords import check_password_strength, common_passwords
from inkless.errors import ValidationError

LOGIN, OFFICE = "tanaka", "civil-affairs"


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", passwords.TOO_SHORT),
        ("x" * 257, passwords.TOO_LONG),
        ("aaaaaaaaaaaa", passwords.PATTERN),
        ("abcabcabcabc", passwords.PATTERN),
        ("121212121212", passwords.PATTERN),
        ("123456789012", passwords.PATTERN),
        ("987654321098", passwords.PATTERN),
        ("abcdefghijkl", passwords.PATTERN),
        ("aa2026!!!!!!", passwords.PATTERN),
        ("1qaz2wsx3edc", passwords.COMMON),  # in the shipped list as it is
        ("password1234", passwords.COMMON),  # a listed password with digits added
        ("P@ssw0rd2026!", passwords.COMMON),
        ("Sunshine!!!!", passwords.COMMON),
        ("tanaka", passwords.TOO_SHORT),
        ("tanaka-2026-spring", passwords.HAS_LOGIN),
        ("MY-TANAKA-PASSPHRASE", passwords.HAS_LOGIN),
        ("civil-affairs-2026", passwords.HAS_OFFICE),
        ("civilaffairs-door-7", passwords.HAS_OFFICE),
    ],
)
def test_weak_passwords_are_refused_naming_the_rule(password: str, message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        check_password_strength(password, LOGIN, OFFICE)
    assert refused.value.message == message


@pytest.mark.parametrize(
    "password", ["kawa-no-nagare-2026", "correct horse battery staple", "abcd-efgh-jkmn-pqrs", "839201746352"]
)
def test_reasonable_passwords_are_accepted(password: str) -> None:
    assert check_password_strength(password, LOGIN, OFFICE) == password


def test_the_shipped_list_is_the_common_password_list() -> None:
    listed = common_passwords()
    assert len(listed) > 19000
    assert {"123456", "password", "qwerty", "iloveyou"} <= listed
    assert all(p == p.lower() for p in listed)


def test_short_logins_are_only_refused_as_the_whole_password() -> None:
    # A two-letter login is inside many passphrases; only the login itself is refused.
    assert check_password_strength("kawa-no-nagare-2026", "ka", OFFICE)
