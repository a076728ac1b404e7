"""The decisions behind sessions, CSRF, rate limiting and languages, without a database."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from inkless.directory.tokens import hash_token, new_token_secret
from inkless.web.i18n import LOCALE_DIR, choose_language, load_translations
from inkless.web.security import (
    IDLE_MINUTES,
    PENDING_MINUTES,
    Stage,
    backoff_wait,
    csrf_matches,
    hash_session_token,
    retry_after,
    session_expiry,
)

NOW = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
WEB_DIR = LOCALE_DIR.parent


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def test_csrf_token_must_be_present_and_equal() -> None:
    assert csrf_matches("abc123", "abc123")
    assert not csrf_matches("abc123", "abc124")
    assert not csrf_matches("abc123", None)
    assert not csrf_matches("abc123", "")
    # A session without a token can never be satisfied by an empty submission.
    assert not csrf_matches("", "")


def test_session_and_token_hashes_are_sha256() -> None:
    assert hash_session_token("cookie") == hashlib.sha256(b"cookie").hexdigest()
    secret = new_token_secret()
    assert secret.startswith("ink_") and len(secret) == 4 + 43
    assert hash_token(secret) == hashlib.sha256(secret.encode()).hexdigest()
    assert new_token_secret() != secret


def test_active_session_idles_out_but_never_outlives_its_absolute_lifetime() -> None:
    assert session_expiry(NOW, NOW, Stage.ACTIVE, 480) == NOW + timedelta(minutes=IDLE_MINUTES)
    late = NOW + timedelta(minutes=470)
    assert session_expiry(NOW, late, Stage.ACTIVE, 480) == NOW + timedelta(minutes=480)
    # A node configured with short sessions gets short idle timeouts too.
    assert session_expiry(NOW, NOW, Stage.ACTIVE, 15) == NOW + timedelta(minutes=15)


@pytest.mark.parametrize("stage", [Stage.TOTP, Stage.ENROL, Stage.PASSWORD])
def test_unfinished_logins_expire_quickly(stage: Stage) -> None:
    assert session_expiry(NOW, NOW, stage, 480) == NOW + timedelta(minutes=PENDING_MINUTES)


def test_no_limit_below_the_threshold() -> None:
    assert retry_after([ago(10), ago(20)], NOW, 3, 900) is None
    assert retry_after([], NOW, 1, 900) is None


def test_limit_reached_waits_until_the_oldest_counted_failure_ages_out() -> None:
    assert retry_after([ago(100), ago(50), ago(10)], NOW, 3, 900) == 800
    # With more failures than the limit, enough must age out to get below it.
    assert retry_after([ago(300), ago(100), ago(50), ago(10)], NOW, 3, 900) == 800


def test_failures_outside_the_window_do_not_count() -> None:
    assert retry_after([ago(1000), ago(950), ago(10)], NOW, 3, 900) is None


def test_retry_after_is_at_least_one_second() -> None:
    assert retry_after([ago(899.9)] * 3, NOW, 3, 900) == 1


def test_backoff_is_free_below_the_threshold_then_doubles_from_the_last_failure() -> None:
    assert backoff_wait([ago(5), ago(4)], NOW, 3, 30, 900) is None
    assert backoff_wait([ago(5), ago(4), ago(3)], NOW, 3, 30, 900) == 27
    assert backoff_wait([ago(50)] * 4, NOW, 3, 30, 900) == 10
    assert backoff_wait([ago(50)] * 5, NOW, 3, 30, 900) == 70
    assert backoff_wait([ago(31)] * 3, NOW, 3, 30, 900) is None


def test_backoff_is_capped() -> None:
    assert backoff_wait([ago(0)] * 40, NOW, 3, 30, 900) == 900
    assert backoff_wait([ago(0)] * 400, NOW, 3, 30, 900) == 900


def test_language_choice_order() -> None:
    assert choose_language(None, None, "ja") == "ja"
    assert choose_language("en", None, "ja") == "en"
    assert choose_language(None, "en", "ja") == "en"
    assert choose_language("ja", "en", "en") == "ja"
    # Unknown values are ignored rather than trusted.
    assert choose_language("fr", "xx", "ja") == "ja"


def test_catalogs_compile_and_translate() -> None:
    ja = load_translations("ja")
    en = load_translations("en")
    assert ja.gettext("No documents received.") == "受信文書はありません"
    assert ja.gettext("Inbox") == "受信箱"
    assert en.gettext("Inbox") == "Inbox"
    assert ja.gettext("a message nobody translated") == "a message nobody translated"


def test_every_message_of_the_ui_has_a_japanese_translation() -> None:
    method_map = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
    options = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    used = {
        msg if isinstance(msg, str) else msg[0]
        for _file, _line, msg, _comments, _context in extract_from_dir(WEB_DIR, method_map, options)
    }
    # The disaster fallback's reason codes are rendered by the CLI, the API and the pages alike.
    used |= {
        msg if isinstance(msg, str) else msg[0]
        for _file, _line, msg, _comments, _context in extract_from_dir(
            WEB_DIR.parent / "delivery", [("faxnote.py", "python")])
    }
    assert "Inbox" in used and "Wrong login or password." in used
    assert "Not faxed: only urgent messages fall back to fax." in used
    with (LOCALE_DIR / "ja" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalog = read_po(fh, locale="ja")
    missing = sorted(m for m in used if not catalog.get(m) or not catalog.get(m).string)
    assert missing == []
    with (LOCALE_DIR / "en" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        english = read_po(fh, locale="en")
    assert sorted(m for m in used if english.get(m) is None) == []
